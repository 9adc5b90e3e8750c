"""The CPU of one argon2id verification at the configured cost, alone (no app, no thread).

    MALLOC_MMAP_THRESHOLD_=33554432 taskset -c 0 python bench/argon2_alone.py [N] [BATCHES]

Verifies one hash N times (default 20) per batch and prints the best batch's thread CPU per
verification, at ARGON2_MEMORY_COST, ARGON2_TIME_COST and ARGON2_PARALLELISM as
idp/config.py sets them. It compares builds of argon2-cffi-bindings (PyPI's wheel, one built
for the CPU: docs/deploy.md, "Sizing") in one venv after the other, minutes apart: on a
shared host argon2's time moves with the memory's load (docs/benchmarks.md).
"""

from __future__ import annotations

import sys
import time

from argon2 import PasswordHasher

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
    for _ in range(3):
        hasher.verify(stored, PASSWORD)
    best = min(timed(hasher, stored, count) for _ in range(batches))
    print(f"{best * 1000:.2f} ms per argon2id verification ({stored.split('$')[3]})")


def timed(hasher: PasswordHasher, stored: str, count: int) -> float:
    started = time.thread_time()
    for _ in range(count):
        hasher.verify(stored, PASSWORD)
    return (time.thread_time() - started) / count


if __name__ == "__main__":
    main()
