"""Password policy of NIST SP 800-63B rev. 4 §3.1.1.2 (password verifiers), and strength feedback.

https://pages.nist.gov/800-63-4/sp800-63b.html#passwordver

    check_password(password, username=, email=, name=) -> reasons a user can act on ([] = ok)
        length:    at least PASSWORD_MIN_LENGTH code points after NFKC, at most
                   PASSWORD_MAX_BYTES UTF-8 bytes (which always leaves room for 64 characters)
        blocklist: the 100,000 most common passwords (idp/data/, read once per process and
                   kept as 64-bit digests: 0.8 MB instead of 11 MB of strings)
        context:   the user's own username, email local part and name
    strength(password, ...) -> Strength(score 0-4, warning, suggestions) from zxcvbn

No composition rules (§3.1.1.2 says SHALL NOT) and any Unicode is accepted. Every place that
sets a password calls ``check_password`` first and hashes ``normalise(password)``.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import gzip
import re
import threading
import unicodedata
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app, has_app_context

BLOCKLIST_FILE = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"

# Context values shorter than this are compared for equality only: "al" as a username must
# not refuse every password that contains "al".
CONTEXT_MIN_LENGTH = 4

# zxcvbn's matching is quadratic in the length and refuses more than 72 characters; a longer
# password is judged by its first 72 (the estimate only guides, it refuses nothing).
STRENGTH_MAX_LENGTH = 72

TOO_SHORT = "Use at least {0} characters."
TOO_LONG = "This password is too long: use at most {0} bytes (about {1} characters)."
TOO_COMMON = (
    "This password is one of the most common passwords, which attackers try first. "
    "Choose another one."
)
HAS_USERNAME = "Don't use your username in your password."
HAS_EMAIL = "Don't use your email address in your password."
HAS_NAME = "Don't use your name in your password."


def normalise(password: str) -> str:
    """NFKC, as §3.1.1.2 recommends before hashing: the same password typed on another keyboard
    (composed or decomposed accents, full-width forms) gives the same bytes."""
    return unicodedata.normalize("NFKC", password)


def fold(text: str) -> str:
    """The form compared with the blocklist and the user's own words: NFKC, then case-folded."""
    return normalise(text).casefold()


class Words:
    """A fixed set of words, each held as the process's 64-bit ``hash()`` of it, sorted, with
    an optional rank per word: ``word in words``, ``words[word]`` (its rank), ``len(words)``.

    A worker keeps a word list for good once it has checked a password, so its size counts
    against every worker's memory: as Python strings in a frozenset or dict, the blocklist's
    96,518 entries took 11.5 MiB and zxcvbn's ranked lists ~10 MiB; as 8-byte digests (and
    8-byte ranks) they take 0.8 and 1.5 MB. A lookup hashes the word (as a set would) and
    bisects the array, a few µs. A word outside the set matches a digest in it with a chance
    of len(words) / 2**64, some 5 * 10**-15 for the blocklist: a password wrongly called
    common, or a word zxcvbn wrongly finds in its lists. The digests come from this process's
    own keyed string hash (SipHash, seeded per process), so nothing stored or shared depends
    on the seed.
    """

    __slots__ = ("digests", "ranks")

    def __init__(self, words: Iterable[str] | Mapping[str, int]) -> None:
        if isinstance(words, Mapping):
            pairs = sorted((hash(word), rank) for word, rank in words.items())
            self.digests = array("q", (digest for digest, _ in pairs))
            self.ranks = array("q", (rank for _, rank in pairs))
        else:
            self.digests = array("q", sorted({hash(word) for word in words}))
            self.ranks = None

    def _index(self, word: object) -> int:
        """The position of ``word``'s digest, or -1. Only strings are members: an int's
        hash is the int itself, so a digest must not answer for its word."""
        if not isinstance(word, str):
            return -1
        digest = hash(word)
        digests = self.digests
        i = bisect_left(digests, digest)
        return i if i < len(digests) and digests[i] == digest else -1

    def __contains__(self, word: object) -> bool:
        return self._index(word) >= 0

    def __getitem__(self, word: str) -> int:
        i = self._index(word)
        if i < 0 or self.ranks is None:
            raise KeyError(word)
        return self.ranks[i]

    def __len__(self) -> int:
        return len(self.digests)


def give_back_freed_memory() -> None:
    """Return the pages of freed blocks to the system now (glibc's ``malloc_trim``; nothing
    elsewhere). ``idp serve`` raises glibc's trim threshold to 32 MiB for argon2's buffer, so
    the megabytes a word list's loading frees would otherwise stay in the worker for good."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return
    trim.argtypes = [ctypes.c_size_t]
    gc.collect()
    trim(0)


@functools.cache
def blocklist() -> Words:
    """The common passwords, folded; read from the package once per process."""
    with gzip.open(BLOCKLIST_FILE, "rt", encoding="utf-8", newline="\n") as lines:
        words = Words(fold(line.rstrip("\n")) for line in lines if line.strip())
    give_back_freed_memory()
    return words


def setting(name: str) -> int:
    """A policy setting from the app's config, or its default outside an app."""
    if has_app_context():
        return int(current_app.config[name])
    from ..config import DEFAULTS

    return int(DEFAULTS[name])


def context_words(
    username: str | None, email: str | None, name: str | None
) -> list[tuple[str, str]]:
    """(folded word, reason) pairs for the user's own identifiers."""
    words = []
    if username:
        words.append((fold(username), HAS_USERNAME))
    if email:
        words.append((fold(email.rpartition("@")[0] or email), HAS_EMAIL))
    if name:
        words.append((fold(name), HAS_NAME))
        words.extend((part, HAS_NAME) for part in re.split(r"[\W_]+", fold(name)) if part)
    return [(w, reason) for w, reason in words if w]


def uses_context(folded: str, word: str) -> bool:
    if len(word) < CONTEXT_MIN_LENGTH:
        return folded == word
    return word in folded


def check_password(
    password: str,
    *,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> list[str]:
    """Why this password may not be chosen, worded for the user; [] when it may."""
    reasons = []
    normalised = normalise(password)
    # §3.1.1.2: each Unicode code point counts as one character (after normalisation).
    minimum = setting("PASSWORD_MIN_LENGTH")
    if len(normalised) < minimum:
        reasons.append(TOO_SHORT.format(minimum))
    limit = setting("PASSWORD_MAX_BYTES")
    if len(normalised.encode("utf-8")) > limit:
        reasons.append(TOO_LONG.format(limit, limit // 4))
    folded = normalised.casefold()
    if folded in blocklist():
        reasons.append(TOO_COMMON)
    for word, reason in context_words(username, email, name):
        if reason not in reasons and uses_context(folded, word):
            reasons.append(reason)
    return reasons


@dataclass(frozen=True)
class Strength:
    """zxcvbn's estimate for a password form: score 0 (weak) to 4, and what to do about it."""

    score: int
    warning: str = ""
    suggestions: list[str] = field(default_factory=list)


# zxcvbn keeps the user inputs of the current call in a module-level dictionary: two threads
# estimating at once would match against each other's username and email.
_zxcvbn_lock = threading.Lock()


@functools.cache
def _zxcvbn():
    """zxcvbn's estimator, its word lists held as ``Words`` (called under ``_zxcvbn_lock``).

    zxcvbn builds a dict of word -> rank for each of its lists when imported (~94,000 words)
    and only asks them ``word in ranked`` and ``ranked[word]`` (``matching.dictionary_match``);
    the per-call user inputs stay a dict. Its plain lists are emptied: nothing reads them
    after that build."""
    from zxcvbn import matching, zxcvbn

    compact(matching)
    give_back_freed_memory()
    return zxcvbn


def compact(matching) -> None:
    """zxcvbn's ranked dictionaries (``zxcvbn.matching``) as ``Words``, in place; nothing
    if this zxcvbn keeps them elsewhere (the estimates stay right, the memory is spent)."""
    ranked = getattr(matching, "RANKED_DICTIONARIES", None)
    if not isinstance(ranked, dict):
        return
    for name, words in list(ranked.items()):
        if name != "user_inputs" and isinstance(words, dict):
            ranked[name] = Words(words)
    lists = getattr(matching, "FREQUENCY_LISTS", {})
    for name in lists:
        lists[name] = []


def strength(
    password: str,
    *,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> Strength:
    """zxcvbn's score and feedback, with the user's own words as a dictionary."""
    inputs = [v for v in (username, email, email and email.rpartition("@")[0], name) if v]
    inputs += re.split(r"\s+", name.strip()) if name else []
    sample = normalise(password)[:STRENGTH_MAX_LENGTH]
    with _zxcvbn_lock:
        result = _zxcvbn()(sample, user_inputs=inputs)
    feedback = result["feedback"]
    return Strength(
        score=int(result["score"]),
        warning=feedback.get("warning") or "",
        suggestions=list(feedback.get("suggestions") or []),
    )
