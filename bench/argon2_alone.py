"""The CPU of one argon2id verification at the configured cost, alone (no app, no thread).

    MALLOC_MMAP_THRESHOLD_=33554432 taskset -c 0 python bench/argon2_alone.py [N] [BATCHES]

Verifies one hash N times (default 20) per batch, with libsodium (PyNaCl: what a sign-in's
check runs, idp/auth/passwords.py) and with argon2-cffi (what makes the hashes, and checked
the sign-ins until 2026-12-08), alternately, and prints each one's best batch: thread CPU
per verification, at ARGON2_MEMORY_COST, ARGON2_TIME_COST and ARGON2_PARALLELISM as
idp/config.py sets them. On a shared host argon2's time moves with the memory's load
(docs/benchmarks.md): compare the two within one run.
"""

from __future__ import annotations

import sys
import time

from argon2 import PasswordHasher

from idp.auth.passwords import _sodium_verify
from idp.config import DEFAULTS

PASSWORD = "bench password " + "x" * 12


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    hasher = PasswordHasher(
        time_cost=DEFAULTS["ARGON2_TIME_COST"],
        memory_cost=DEFAULTS["ARGON2_MEMORY_COST"],
        parallelism=DEFAULTS["ARGON2_PARALLELISM"],
    )
    stored = hasher.hash(PASSWORD)
    checks = {"libsodium": _sodium_verify, "argon2-cffi": hasher.verify}
    best = {name: float("inf") for name in checks}
    for check in checks.values():
        for _ in range(3):
            check(stored, PASSWORD)
    for _ in range(batches):
        for name, check in checks.items():
            best[name] = min(best[name], timed(check, stored, count))
    for name, seconds in best.items():
        print(f"{seconds * 1000:.2f} ms per argon2id verification, {name} "
              f"({stored.split('$')[3]})")  # fmt: skip


def timed(check, stored: str, count: int) -> float:
    """Thread CPU per check(stored, PASSWORD), over count calls."""
    started = time.thread_time()
    for _ in range(count):
        check(stored, PASSWORD)
    return (time.thread_time() - started) / count


if __name__ == "__main__":
    main()
