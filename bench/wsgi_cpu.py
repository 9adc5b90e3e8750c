"""CPU and wall time per request of each hot endpoint, calling the WSGI app directly.

    python bench/wsgi_cpu.py [N] [scenario ...]   # SQLite in a temp folder, or IDP_DATABASE_URL

No network, no gunicorn, no test client: one prepared WSGI environ per scenario is replayed
N times against ``create_app()`` as deployed (limits, metrics, access log on). CPU is this
process only (the database server's work is not in it). This is the quick loop used while
optimising; the figures in docs/benchmarks.md come from bench/run.sh (wrk over HTTP).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import sys
import time
from urllib.parse import urlencode

from inprocess import service_app, user_tokens

from idp import db

PROFILE = os.environ.get("BENCH_PROFILE")  # a pstats sort key: tottime, cumulative


def environ(method: str, path: str, body: bytes = b"", **headers: str) -> dict:
    env = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
        "wsgi.version": (1, 0), "HTTP_HOST": "127.0.0.1",
    }  # fmt: skip
    if body:
        env["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in headers.items():
        env["HTTP_" + name.upper()] = value
    return env


def call(app, env) -> tuple[str, bytes]:
    env = env() if callable(env) else dict(env)
    env["wsgi.input"] = io.BytesIO(env["wsgi.input"].getvalue())
    status = []
    body = b"".join(app(env, lambda s, h, exc=None: status.append(s)))
    return status[0], body


def warm_up(app, name: str, env, times: int = 50) -> None:
    """Replay scenario ``name`` ``times`` times, each answer a 200 (caches, prepared
    statements and the keys are then as a busy worker has them)."""
    for _ in range(times):
        status, body = call(app, env)
        assert status.startswith("200"), (name, status, body[:300])


def service_scenarios(app, basic: str) -> dict:
    """The requests of a client of the service app: discovery, JWKS, a client credentials
    token request, and the introspection of a token it was given."""
    form = urlencode({"grant_type": "client_credentials", "scope": "api"}).encode()
    cc = environ("POST", "/token", form, authorization=basic)
    status, body = call(app, cc)
    assert status.startswith("200"), body
    token = json.loads(body)["access_token"]
    return {
        "discovery": environ("GET", "/.well-known/openid-configuration"),
        "jwks": environ("GET", "/jwks.json"),
        "token": cc,
        "introspect": environ(
            "POST", "/introspect", urlencode({"token": token}).encode(), authorization=basic
        ),  # fmt: skip
    }


def refresh_request(refresh_token: str, basic: str) -> dict:
    """The token request that rotates ``refresh_token`` (RFC 6749 §6), as the client ``basic``."""
    body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token})
    return environ("POST", "/token", body.encode(), authorization=basic)


def all_scenarios(app, basic: str, count: int) -> dict:
    """``service_scenarios`` and a user's: ``userinfo``, and ``refresh`` (a callable giving
    the next of enough refresh tokens for ``count`` requests and a warm-up)."""
    scenarios = service_scenarios(app, basic)
    rp_basic, pairs = user_tokens(app, 1 + count + 60)
    scenarios["userinfo"] = environ("GET", "/userinfo", authorization="Bearer " + pairs[0][0])
    refresh_tokens = iter(pair[1] for pair in pairs[1:])

    def refresh_env():  # rotating: each request presents a refresh token not used before
        return refresh_request(next(refresh_tokens), rp_basic)

    scenarios["refresh"] = refresh_env
    return scenarios


def main() -> None:
    args = sys.argv[1:]
    count = int(args.pop(0)) if args and args[0].isdigit() else 2000
    app, basic = service_app(**json.loads(os.environ.get("BENCH_CONFIG", "{}")))
    scenarios = all_scenarios(app, basic, count)
    for name in args or scenarios:
        env = scenarios[name]
        warm_up(app, name, env)
        profiler = cProfile.Profile() if PROFILE else None
        if profiler:
            profiler.enable()
        line = replay(app, env, count)
        if profiler:
            profiler.disable()
            pstats.Stats(profiler, stream=sys.stdout).sort_stats(PROFILE).print_stats(35)
        print(f"{name:12s} {line}", flush=True)
    db.engine(app).dispose()


def replay(app, env, count: int) -> str:
    """``env`` replayed ``count`` times in ten batches: the CPU and wall time per request of
    the quickest batch (the least disturbed by whatever else the machine runs) and the
    median one, in ms, as one line."""
    batches = []
    for _ in range(10):
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(max(count // 10, 1)):
            call(app, env)
        batches.append((time.process_time() - cpu, time.perf_counter() - wall))
    per = max(count // 10, 1) / 1000
    cpu = sorted(b[0] / per for b in batches)
    wall = sorted(b[1] / per for b in batches)
    return (f"CPU min {cpu[0]:6.3f} median {cpu[5]:6.3f} ms   "
            f"wall min {wall[0]:6.3f} median {wall[5]:6.3f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
