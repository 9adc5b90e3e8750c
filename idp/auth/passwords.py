"""Password hashing with argon2id, rehash on login, and equal-cost misses.

argon2-cffi makes the hashes; libsodium (PyNaCl) verifies those in the form argon2-cffi
writes here (``SODIUM_FORM``: the same function, RFC 9106, in code chosen for the CPU at
run time), argon2-cffi every other hash (``_verify_one``).

Passwords are NFKC-normalised before hashing (NIST SP 800-63B rev. 4 §3.1.1.2): the same
password typed as "ﬁ" or "fi", with full-width or ASCII digits, is one password. Hashes made
before normalisation hold the raw form, so ``match`` tries the NFKC form first, then the raw
form; a raw-form match tells the caller to rehash (``authenticate`` stores the NFKC hash).
The number of verifications depends only on the password typed, never on the account: an
unknown user burns the dummy hash as many times as a known one would be tried.

Every argon2 hash and verification of a process runs on one thread of its own (``_run``),
one at a time: a worker serves one core, so this costs no sign-in throughput, and a worker
holds one ARGON2_MEMORY_COST buffer (19 MiB) at a time, not one per request thread.
libsodium maps its buffer for each verification, filled in one system call
(MAP_POPULATE), and unmaps it after. argon2-cffi's buffer comes from the argon2 thread's
own glibc malloc arena, in which nothing else allocates, so each hash reuses the block the
previous one freed, still in memory. ``idp serve``'s malloc thresholds keep that block in
the arena; the worker gives it back (``_Release``) before a libsodium check and once no
password has been hashed for ARGON2_RELEASE_AFTER_IDLE seconds, so an idle worker does not
hold it (docs/architecture.md, "Hot paths").
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app
from nacl import pwhash
from nacl.exceptions import InvalidkeyError

from .. import malloc
from .policy import normalise

_executor: tuple[int, ThreadPoolExecutor, _Release] | None = None
_executor_lock = threading.Lock()
RELEASE_AFTER_IDLE = 10.0  # ARGON2_RELEASE_AFTER_IDLE, set by init_app
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter (malloc.h)


def _glibc():
    """The C library when it is glibc and the process runs with a fixed trim threshold
    (``idp serve`` sets MALLOC_TRIM_THRESHOLD_), else None: with glibc's own moving
    thresholds there is nothing to put back."""
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_", "").isdigit():
        return None
    return malloc.glibc()


class _Release:
    """Gives argon2-cffi's buffer back to the system once no argon2-cffi computation has run
    for ``RELEASE_AFTER_IDLE`` seconds, or before a libsodium check; while hashes keep
    coming, each reuses it.

    The freed buffer is the top of the argon2 thread's own arena, which glibc shrinks only
    when a large block of that arena is freed while the top exceeds the trim threshold
    (``malloc_trim`` leaves a thread arena's top alone). So, once idle, this lowers the
    threshold, has the argon2 thread free a 256 KiB block, and puts the threshold back.
    One thread per process (and only where the C library is glibc), asleep until an
    argon2-cffi computation: a libsodium check leaves nothing in the arena."""

    def __init__(self, executor: ThreadPoolExecutor) -> None:
        self.executor = executor
        self.last = 0.0
        self.holding = False  # an argon2-cffi computation ran since the last release
        self.pending = threading.Event()
        self.libc = _glibc()
        if self.libc is not None:  # the threshold to put back: idp serve's, checked there
            self.keep = int(os.environ["MALLOC_TRIM_THRESHOLD_"])
            threading.Thread(target=self._run, name="argon2-release", daemon=True).start()

    def used(self) -> None:
        self.last = time.monotonic()
        self.pending.set()

    def _run(self) -> None:
        while True:
            self.pending.wait()
            self.pending.clear()  # a computation from now on asks for another release
            while (left := self.last + RELEASE_AFTER_IDLE - time.monotonic()) > 0:
                time.sleep(left)
            try:
                self.executor.submit(self.release).result()
            except RuntimeError:  # the executor is shut down: the process is exiting
                return

    def run(self, sodium: bool, call, *args):
        """On the argon2 thread: call(*args). libsodium maps a buffer of its own, so before
        its check the block an argon2-cffi hash left in the arena goes back: one buffer at
        a time, whichever library computes."""
        if not sodium:
            self.holding = True
        elif self.holding:
            self.release()
        return call(*args)

    def release(self) -> None:
        """On the argon2 thread, between computations: its arena's free top goes back."""
        held, self.holding = self.holding, False
        libc = self.libc
        if not held or libc is None:
            return
        libc.mallopt(M_TRIM_THRESHOLD, 128 * 1024)
        try:
            libc.free(libc.malloc(256 * 1024))
        finally:
            libc.mallopt(M_TRIM_THRESHOLD, self.keep)


def _run(call, *args, sodium: bool = False):
    """call(*args) on this process's argon2 thread (made after a fork, as threads are not
    inherited); its exceptions are raised here. ``sodium``: a libsodium check."""
    global _executor
    pid = os.getpid()
    if _executor is None or _executor[0] != pid:
        with _executor_lock:
            if _executor is None or _executor[0] != pid:
                executor = ThreadPoolExecutor(1, thread_name_prefix="argon2")
                _executor = (pid, executor, _Release(executor))
    _, executor, release = _executor
    try:
        return executor.submit(release.run, sodium, call, *args).result()
    finally:
        if not sodium:
            release.used()


class PasswordTooLong(ValueError):
    """Refused before hashing: an attacker must not make us hash megabytes."""


def init_app(app: Flask) -> None:
    hasher = PasswordHasher(
        memory_cost=int(app.config["ARGON2_MEMORY_COST"]),
        time_cost=int(app.config["ARGON2_TIME_COST"]),
        parallelism=int(app.config["ARGON2_PARALLELISM"]),
    )
    app.extensions["idp.passwords"] = hasher
    global RELEASE_AFTER_IDLE
    RELEASE_AFTER_IDLE = float(app.config["ARGON2_RELEASE_AFTER_IDLE"])
    # Verified when a username is unknown, so a miss costs the same as a wrong password.
    app.extensions["idp.passwords.dummy"] = dummy_hash(
        hasher.memory_cost, hasher.time_cost, hasher.parallelism
    )


@lru_cache(maxsize=8)
def dummy_hash(memory_cost: int, time_cost: int, parallelism: int) -> str:
    """The hash of no one's password, made once per process and parameter set: it only has
    to cost what a real verification costs (its parameters), and one argon2 hash per app
    was half of create_app's time (every test builds an app)."""
    hasher = PasswordHasher(memory_cost=memory_cost, time_cost=time_cost, parallelism=parallelism)
    return _run(hasher.hash, "not-a-password-of-anyone")


def _hasher() -> PasswordHasher:
    return current_app.extensions["idp.passwords"]


def check_length(password: str) -> None:
    """Refuse more than PASSWORD_MAX_BYTES, typed or after NFKC (which can expand a
    character up to 18 times)."""
    limit = int(current_app.config["PASSWORD_MAX_BYTES"])
    if len(password.encode("utf-8", "surrogatepass")) > limit:
        raise PasswordTooLong(f"passwords are limited to {limit} bytes")
    if len(normalise(password).encode("utf-8", "surrogatepass")) > limit:
        raise PasswordTooLong(f"passwords are limited to {limit} bytes")


def hash_password(password: str) -> str:
    """The argon2id hash of the password's NFKC form."""
    check_length(password)
    return _run(_hasher().hash, normalise(password))


NFKC, RAW = "nfkc", "raw"


def candidates(password: str) -> list[tuple[str, str]]:
    """(form name, text) to verify, in order: the NFKC form, then the raw form if it differs."""
    normalised = normalise(password)
    forms = [(NFKC, normalised)]
    if normalised != password:
        forms.append((RAW, password))
    return forms


# The hashes libsodium verifies as argon2-cffi does (the form ``hash_password`` writes):
# argon2id, version 1.3, a salt of 8 bytes or more, a hash of 16 or more, the whole string
# under libsodium's crypto_pwhash_STRBYTES (128). Anything else goes to argon2-cffi.
SODIUM_FORM = re.compile(
    r"\$argon2id\$v=19\$m=[1-9][0-9]{0,9},t=[1-9][0-9]{0,9},p=[1-9][0-9]{0,2}"
    r"\$[A-Za-z0-9+/]{11,}\$[A-Za-z0-9+/]{22,}"
)
SODIUM_MAX = 127


def sodium_verifies(stored_hash: str) -> bool:
    """Whether libsodium verifies this hash (``SODIUM_FORM``)."""
    return len(stored_hash) <= SODIUM_MAX and SODIUM_FORM.fullmatch(stored_hash) is not None


def _sodium_verify(stored_hash: str, text: str) -> bool:
    try:
        return pwhash.argon2id.verify(stored_hash.encode("ascii"), text.encode("utf-8"))
    except InvalidkeyError:  # a wrong password (libsodium tells no other failure apart)
        return False


def _verify_one(stored_hash: str, text: str) -> bool:
    """libsodium for the hashes this service writes: the same argon2id, but it picks the
    code for the CPU it runs on (AVX2, AVX-512) where PyPI's argon2-cffi wheel runs code
    built for every x86-64 CPU, and checks a password with about half the CPU
    (docs/benchmarks.md, twenty-eighth round). argon2-cffi for every other hash."""
    if sodium_verifies(stored_hash):
        return _run(_sodium_verify, stored_hash, text, sodium=True)
    try:
        return _run(_hasher().verify, stored_hash, text)
    except (VerificationError, InvalidHashError):
        return False


def match(stored_hash: str | None, password: str) -> str | None:
    """Which form of the password the hash holds: ``"nfkc"``, ``"raw"`` (a hash made before
    normalisation: rehash it) or None. With no stored hash, the dummy is verified as many
    times as a real hash would be, so a miss costs the same whether the user exists."""
    check_length(password)
    forms = candidates(password)
    if not stored_hash:
        dummy = current_app.extensions["idp.passwords.dummy"]
        for _, text in forms:
            _verify_one(dummy, text + "\0")
        return None
    for name, text in forms:
        if _verify_one(stored_hash, text):
            return name
    return None


def verify(stored_hash: str | None, password: str) -> bool:
    """True if the password matches (either form); with no stored hash, burn the same work."""
    return match(stored_hash, password) is not None


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with other parameters than the configured ones."""
    return _hasher().check_needs_rehash(stored_hash)
