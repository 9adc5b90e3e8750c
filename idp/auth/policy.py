"""Password policy of NIST SP 800-63B rev. 4 §3.1.1.2 (password verifiers), and strength feedback.

https://pages.nist.gov/800-63-4/sp800-63b.html#passwordver

    check_password(password, username=, email=, name=) -> reasons a user can act on ([] = ok)
        length:    at least PASSWORD_MIN_LENGTH code points after NFKC, at most
                   PASSWORD_MAX_BYTES UTF-8 bytes (which always leaves room for 64 characters)
        blocklist: the 100,000 most common passwords (idp/data/), those of 8 characters or
                   more: a shorter one is refused by length whatever the settings. Read once
                   per process as 64-bit digests (0.3 MB; ``wordlists``)
        context:   the user's own username, email local part and name
    strength(password, ...) -> Strength(score 0-4, warning, suggestions) from zxcvbn

No composition rules (§3.1.1.2 says SHALL NOT) and any Unicode is accepted. Every place that
sets a password calls ``check_password`` first and hashes ``normalise(password)``.
"""

from __future__ import annotations

import functools
import gzip
import logging
import re
import sys
import threading
import types
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app, has_app_context

from .. import malloc
from ..config import PASSWORD_MIN_LENGTH_FLOOR
from . import wordlists
from .wordlists import Words

log = logging.getLogger(__name__)

DATA = Path(__file__).resolve().parent.parent / "data"
BLOCKLIST_SOURCE = DATA / "common-passwords.txt.gz"
# The lists as a worker holds them, built by ``rebuild_digests`` (wordlists.py says why).
BLOCKLIST_DIGESTS = DATA / "common-passwords.digests"
ZXCVBN_DIGESTS = DATA / "zxcvbn.digests"

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


@functools.cache
def blocklist() -> Words:
    """The common passwords, folded; read from the package once per process."""
    shipped = wordlists.read(BLOCKLIST_DIGESTS, BLOCKLIST_SOURCE)
    if shipped is not None:
        return shipped["common-passwords"]
    log.warning("%s does not match %s: folding the list here", BLOCKLIST_DIGESTS, BLOCKLIST_SOURCE)
    words = Words.of(common_passwords())
    malloc.give_back()
    return words


def common_passwords() -> list[str]:
    """The blocklist's words, folded, from its source in idp/data/: those that can decide a
    refusal. A word shorter than PASSWORD_MIN_LENGTH's floor never does: folding never
    shortens a password (NFKC, then case folding, which maps a character to one or more),
    so a password that folds to it is refused as too short already. They were 58,066 of
    the 96,518, 0.44 MiB of every worker behind a password form."""
    with gzip.open(BLOCKLIST_SOURCE, "rt", encoding="utf-8", newline="\n") as lines:
        folded = (fold(line.rstrip("\n")) for line in lines if line.strip())
        return [word for word in folded if len(word) >= PASSWORD_MIN_LENGTH_FLOOR]


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


# The digests zxcvbn's dictionaries are looked up by, for the estimate under way: every
# dictionary is asked about the same substrings of the password (``wordlists.Words``).
_zxcvbn_memo: dict[str, int] = {}


@functools.cache
def _zxcvbn():
    """zxcvbn's estimator, its ranked dictionaries held as ``Words`` (called under
    ``_zxcvbn_lock``).

    zxcvbn's ``matching`` module builds a dict of word -> rank for each list of its
    ``frequency_lists`` module when imported (~94,000 words) and only asks them ``word in
    ranked`` and ``ranked[word]`` (``matching.dictionary_match``); the per-call user inputs
    stay a dict. When idp/data/ holds the digests of this zxcvbn's lists, ``matching`` is
    imported with those lists hidden and gets the digests instead: no word is ever loaded.
    Otherwise the dictionaries it built are turned into digests (the estimates are the same,
    the memory of the build is spent)."""
    source = zxcvbn_source()
    shipped = source and wordlists.read(ZXCVBN_DIGESTS, source, memo=_zxcvbn_memo)
    hidden = "zxcvbn.frequency_lists"
    if shipped and "zxcvbn.matching" not in sys.modules and hidden not in sys.modules:
        sys.modules[hidden] = types.ModuleType(hidden)
        sys.modules[hidden].FREQUENCY_LISTS = {}
        try:
            import zxcvbn.matching  # noqa: F401 (its first import, with the lists hidden)
        finally:
            del sys.modules[hidden]
    from zxcvbn import matching, zxcvbn

    if shipped:
        matching.RANKED_DICTIONARIES.clear()
        matching.RANKED_DICTIONARIES.update(shipped)
        lists = getattr(matching, "FREQUENCY_LISTS", {})  # imported before: nothing reads them
        for name in lists:
            lists[name] = []
    else:
        log.warning("%s does not match zxcvbn's lists at %s: using its own", ZXCVBN_DIGESTS, source)
        compact(matching)
    malloc.give_back()
    return zxcvbn


def zxcvbn_source() -> Path | None:
    """zxcvbn's ``frequency_lists.py``, found without importing zxcvbn (which would build
    its dictionaries from it)."""
    from importlib.util import find_spec

    spec = find_spec("zxcvbn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "frequency_lists.py"


def rebuild_digests(into: Path | str = DATA) -> None:
    """Writes idp/data/'s digest files from their sources, into ``into`` under the same names.
    Run it in a fresh interpreter, where zxcvbn builds its dictionaries as it does unaided:

        python -c 'from idp.auth import policy; policy.rebuild_digests()'
    """
    from zxcvbn.matching import RANKED_DICTIONARIES

    into = Path(into)
    blocked = {"common-passwords": common_passwords()}
    wordlists.write(into / BLOCKLIST_DIGESTS.name, BLOCKLIST_SOURCE, blocked)
    ranked = {name: words for name, words in RANKED_DICTIONARIES.items() if name != "user_inputs"}
    wordlists.write(into / ZXCVBN_DIGESTS.name, zxcvbn_source(), ranked)  # as zxcvbn ranks


def compact(matching) -> None:
    """zxcvbn's ranked dictionaries (``zxcvbn.matching``) as ``Words``, in place; nothing
    if this zxcvbn keeps them elsewhere (the estimates stay right, the memory is spent)."""
    ranked = getattr(matching, "RANKED_DICTIONARIES", None)
    if not isinstance(ranked, dict):
        return
    for name, words in list(ranked.items()):
        if name != "user_inputs" and isinstance(words, dict):
            ranked[name] = Words.of(words, memo=_zxcvbn_memo)
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
        try:
            result = _zxcvbn()(sample, user_inputs=inputs)
        finally:
            _zxcvbn_memo.clear()
    feedback = result["feedback"]
    return Strength(
        score=int(result["score"]),
        warning=feedback.get("warning") or "",
        suggestions=list(feedback.get("suggestions") or []),
    )
