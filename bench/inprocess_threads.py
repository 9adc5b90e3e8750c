"""CPU per request of the IdP and of the issue's lean app, without an HTTP server: each
app's prepared WSGI requests replayed from THREADS threads at once, in this process.

    taskset -c 0 python bench/inprocess_threads.py [N] [THREADS]

Run on one core (taskset), as a worker is pinned by run.sh, the figure is what the app
itself costs with its threads interleaved as gunicorn's are, and the database's round trips
real (IDP_DATABASE_URL, LEAN_DATABASE_URL: PostgreSQL on the other core). Set against
run.sh's and lean.sh's server CPU per request for the same endpoints, the difference is what
serving over HTTP adds (gunicorn's parser, poller and hand-overs, the sockets, and caches
that no longer hold one request's working set): docs/benchmarks.md, eighth round.

The lean app's table is made again first (``lean_reference.setup``), as the IdP's set-up and
run.sh empty the database they are given.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import sys
import threading
import time
from urllib.parse import urlencode

from wsgi_cpu import call, environ, service_app, service_scenarios


def lean_scenarios():
    import lean_reference as lean

    with contextlib.redirect_stdout(io.StringIO()):  # it prints wrk's environment
        lean.setup()
    basic = base64.b64encode(f"{lean.CLIENT_ID}:{lean.CLIENT_SECRET}".encode()).decode()
    form = urlencode({"grant_type": "client_credentials", "scope": "api"}).encode()
    token = environ("POST", "/token", form, authorization="Basic " + basic)
    status, body = call(lean.app, token)
    assert status.startswith("200"), body
    introspect = environ(
        "POST", "/introspect",
        urlencode({"token": json.loads(body)["access_token"]}).encode(),
        authorization="Basic " + basic,
    )  # fmt: skip
    return lean.app, {"token": token, "introspect": introspect}


def idp_scenarios():
    app, basic = service_app()
    scenarios = service_scenarios(app, basic)
    return app, {"token": scenarios["token"], "introspect": scenarios["introspect"]}


def replay(app, env, count: int, threads: int) -> tuple[float, float]:
    """(CPU µs per request, requests per second) of ``count`` requests from each thread."""

    def work():
        for _ in range(count):
            call(app, env)

    for _ in range(200):  # warm-up: statements prepared, caches filled
        call(app, env)
    workers = [threading.Thread(target=work) for _ in range(threads)]
    cpu, wall = time.process_time(), time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    total = count * threads
    return cpu / total * 1e6, total / wall


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    for label, build in (("lean", lean_scenarios), ("idp", idp_scenarios)):
        app, scenarios = build()
        for name, env in scenarios.items():
            best = min(replay(app, env, count, threads) for _ in range(3))
            print(f"{label:5s} {name:11s} CPU {best[0]:6.0f} µs/request  ({best[1]:,.0f}/s, "
                  f"{threads} threads)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
