"""Where the time of one token request goes: cProfile over N in-process requests.

Runs the app in this process (no network, no gunicorn) against IDP_DATABASE_URL or a
temporary SQLite file, issues N client_credentials tokens through Flask's test client,
and prints the functions with the most cumulative and own time.

    python bench/profile_token.py [N]

profile_introspection.py and profile_userinfo.py do the same for their endpoints.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time

from inprocess import service_app


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    app, basic = service_app(ISSUER="http://127.0.0.1:8000")
    http = app.test_client()

    def issue():
        answer = http.post(
            "/token",
            data={"grant_type": "client_credentials", "scope": "api"},
            headers={"Authorization": basic},
        )
        assert answer.status_code == 200, answer.data

    profile(issue, count, "tokens")


def profile(request, count: int, label: str) -> None:
    """Warm up, then time ``request`` unprofiled and profiled; print the listings."""
    for _ in range(50):  # warm caches (keys, prepared statements, SQLAlchemy's cache)
        request()
    cpu = time.process_time()
    for _ in range(count):
        request()
    cpu = (time.process_time() - cpu) / count * 1000
    # The process's CPU clock, not the wall clock: waits for the database and for a busy
    # machine's other processes are not the worker's cost.
    profiler = cProfile.Profile(time.process_time)
    started = time.perf_counter()
    profiler.enable()
    for _ in range(count):
        request()
    profiler.disable()
    elapsed = time.perf_counter() - started
    print(f"{count} {label}: {cpu:.3f} ms of CPU each unprofiled (test client included); "
          f"{elapsed / count * 1000:.2f} ms each with the profiler on")  # fmt: skip
    stats = pstats.Stats(profiler)
    if os.environ.get("BENCH_PSTATS"):  # for pstats' browser: python -m pstats FILE
        stats.dump_stats(os.environ["BENCH_PSTATS"])
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)
    print_groups(stats, cpu)


GROUPS = [  # (label, substrings of the file path), first match wins
    ("database driver + wait (psycopg, sqlite3)", ("psycopg", "sqlite3", "_sqlite", "pgconn")),
    ("SQLAlchemy (ORM, SQL compilation)", ("sqlalchemy",)),
    ("signing (cryptography, joserfc)", ("cryptography", "joserfc", "'sign'", "rsa")),
    ("Authlib (OAuth 2.0 framework)", ("authlib",)),
    ("rate limiter (flask_limiter, limits)", ("flask_limiter", "limits/")),
    ("metrics (prometheus_client)", ("prometheus_client",)),
    ("logging, json", ("logging", "json")),
    ("Flask, Werkzeug, test client", ("flask", "werkzeug", "wtforms", "jinja2")),
    ("idp's own code", ("/idp/",)),
]


def print_groups(stats: pstats.Stats, cpu_ms: float) -> None:
    """Own time (tottime) summed by library, as shares of the unprofiled CPU per request.

    The profiler's own cost per call inflates every function; its shares, applied to the
    CPU measured without it, estimate microseconds per component (functions called very
    often are overstated a little).
    """
    totals: dict[str, float] = {}
    for (filename, _line, name), row in stats.stats.items():
        where = f"{filename} {name}"
        label = next((g for g, keys in GROUPS if any(k in where for k in keys)), "other")
        totals[label] = totals.get(label, 0.0) + row[2]
    whole = sum(totals.values())
    print(f"\nown time by library, of {cpu_ms * 1000:.0f} µs of CPU per request (share):")
    for label, seconds in sorted(totals.items(), key=lambda item: -item[1]):
        print(f"  {seconds / whole * cpu_ms * 1000:6.0f} µs  {seconds / whole:5.1%}  {label}")


if __name__ == "__main__":
    main()
