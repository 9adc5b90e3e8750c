"""Word lists held as sorted 64-bit digests, shipped ready in ``idp/data/``: the password
policy's common-password blocklist and zxcvbn's ranked dictionaries (``policy``).

    Words                  ``word in words``, ``words[word]`` (its rank), ``len(words)``
    read(path, source)     {name: Words} from a digest file, or None if ``source`` has changed
    write(path, ...)       writes one (``policy.rebuild_digests`` writes idp/data/'s)

A worker keeps these lists for good once it has checked a new password. Built from their words
in the worker, ~190,000 short strings passed through Python's small-object allocator, and a
few objects that outlived the build kept 1-MiB blocks of it from being freed: a worker behind
a password form held 6.6 MiB more than one that read the digests (docs/benchmarks.md,
twenty-second round). Read from the file, each list is two arrays and no word is ever a
Python object.

The digest is BLAKE2b with an 8-byte output (RFC 7693) of the word's UTF-8, as a signed
little-endian integer: fixed, unlike Python's per-process ``hash()``, so that it can be
computed once and shipped. A word outside a list matches a digest in it with a chance of
len(list) / 2**64, some 2 * 10**-15 for the blocklist: a password wrongly called common, or
a word zxcvbn wrongly finds in its lists.
"""

from __future__ import annotations

import hashlib
import json
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from pathlib import Path

FORMAT = "idp word digests 2"
DIGEST = "blake2b-64"
ITEM_BYTES = {"q": 8, "I": 4, "H": 2}  # each array's typecode: its item's width on disk
RANKS = {ITEM_BYTES[t]: t for t in "HI"}  # a list's rank width, as the header gives it


def digest(word: str) -> int:
    """The word's 64-bit digest, as stored in a digest file."""
    raw = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(raw, "little", signed=True)


class Words:
    """A fixed set of words as their sorted digests, with an optional rank per word.

    A lookup digests the word (~0.8 µs) and bisects the array. ``memo``, a dict shared by
    several lists, keeps each word's digest so that asking every list about the same word
    digests it once (zxcvbn asks its six lists about every substring of a password); whoever
    passes it empties it."""

    __slots__ = ("digests", "ranks", "memo")

    def __init__(self, digests: array, ranks: array | None = None, memo: dict | None = None):
        self.digests = digests
        self.ranks = ranks
        self.memo = memo

    @classmethod
    def of(cls, words: Iterable[str] | Mapping[str, int], memo: dict | None = None) -> Words:
        """The set of ``words``, or of a mapping's keys with its values as ranks (2 bytes
        each where they fit, as zxcvbn's do, else 4)."""
        if isinstance(words, Mapping):
            pairs = sorted((digest(word), rank) for word, rank in words.items())
            ranks = [rank for _, rank in pairs]
            typecode = "H" if max(ranks, default=0) < 1 << 16 else "I"
            return cls(array("q", (d for d, _ in pairs)), array(typecode, ranks), memo)
        return cls(array("q", sorted({digest(word) for word in words})), None, memo)

    def _index(self, word: object) -> int:
        """The position of ``word``'s digest, or -1. Only strings are members."""
        if not isinstance(word, str):
            return -1
        memo = self.memo
        if memo is None:
            key = digest(word)
        else:
            key = memo.get(word)
            if key is None:
                key = memo[word] = digest(word)
        digests = self.digests
        i = bisect_left(digests, key)
        return i if i < len(digests) and digests[i] == key else -1

    def __contains__(self, word: object) -> bool:
        return self._index(word) >= 0

    def __getitem__(self, word: str) -> int:
        i = self._index(word)
        if i < 0 or self.ranks is None:
            raise KeyError(word)
        return self.ranks[i]

    def __len__(self) -> int:
        return len(self.digests)


def fingerprint(source: Path) -> str:
    """SHA-256 of the file a digest file was built from."""
    with open(source, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write(path: Path, source: Path, lists: Mapping[str, Iterable[str] | Mapping[str, int]]) -> None:
    """A digest file: one JSON line naming the lists and the source's SHA-256, then for each
    list its sorted digests (8 bytes, little-endian, signed) and, if ranked, the matching
    ranks (2 or 4 bytes as the header says, little-endian, unsigned)."""
    built = {name: Words.of(words) for name, words in lists.items()}
    header = {
        "format": FORMAT,
        "digest": DIGEST,
        "source": {"file": source.name, "sha256": fingerprint(source)},
        "lists": [[name, len(w), w.ranks.itemsize if w.ranks else 0] for name, w in built.items()],
    }
    with open(path, "wb") as out:
        out.write(json.dumps(header).encode() + b"\n")
        for words in built.values():
            for part in (words.digests, words.ranks):
                if part is not None:
                    out.write(_little_endian(part).tobytes())


def read(path: Path, source: Path, memo: dict | None = None) -> dict[str, Words] | None:
    """The lists of a digest file, in the order written; None if ``source`` is no longer
    the file they were built from (or the file is missing or not of this format)."""
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
            if (
                header.get("format") != FORMAT
                or header.get("digest") != DIGEST
                or header["source"]["sha256"] != fingerprint(source)
            ):
                return None
            lists = {}
            for name, count, rank_bytes in header["lists"]:
                digests = _read_array(f, "q", count)
                ranks = _read_array(f, RANKS[rank_bytes], count) if rank_bytes else None
                lists[name] = Words(digests, ranks, memo)
            if f.read(1):
                return None
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None
    return lists


def _read_array(f, typecode: str, count: int) -> array:
    """``count`` items read straight into a new array (no bytes object in between)."""
    items = array(typecode, [0]) * count
    if items.itemsize != ITEM_BYTES[typecode]:
        raise ValueError(f"array {typecode!r} is {items.itemsize} bytes here")
    if f.readinto(items) != count * items.itemsize:
        raise EOFError(f"a list of {count} is cut short")
    return _little_endian(items)


def _little_endian(items: array) -> array:
    """``items`` in little-endian order (swapped in place on a big-endian machine)."""
    if sys.byteorder == "big":
        items.byteswap()
    return items
