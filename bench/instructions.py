"""Instructions per request of each hot endpoint under callgrind: a measure that load does not move.

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \
        python bench/instructions.py N scenario ...

Scenarios: discovery, jwks, token (client credentials), introspect, userinfo, and on request
only ``refresh`` (rotating, RFC 6749 §6: an ID token and a JWT access token each time).
``--lean`` (first argument) counts bench/lean_reference.py's app instead, for token,
introspect, userinfo and refresh (LEAN_DATABASE_URL; its requests are lean_cpu.py's): the
floor under each of the IdP's, in the same unit.

The app is built as bench/wsgi_cpu.py builds it (IDP_DATABASE_URL or SQLite); each scenario
is warmed up uninstrumented, then instrumentation is switched on (``callgrind_control -i on``)
for exactly N requests and the counters are dumped, one file per scenario in the order given
(``/tmp/cg.PID.1``, ``.2``...): each file's ``summary:`` line divided by N is the
instructions per request. Threads of the process (the access log's writer) are counted; the
database server is not. Without valgrind it just runs the requests.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from urllib.parse import urlencode

from inprocess import service_app, user_tokens
from wsgi_cpu import call, environ, service_scenarios, warm_up

from idp import db


def control(*args: str) -> None:
    if "valgrind" not in os.environ.get("LD_PRELOAD", ""):  # not under callgrind
        return
    subprocess.run(["callgrind_control", *args, str(os.getpid())], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    time.sleep(0.2)


@contextmanager
def window(name: str):
    """Under callgrind, what runs inside is counted, from zero, and dumped as ``name``
    (the next /tmp/cg.PID.N); elsewhere nothing."""
    control("-i", "on")
    control("-z")
    yield
    control("-d", name)
    control("-i", "off")


def main() -> None:
    args = sys.argv[1:]
    lean = args[:1] == ["--lean"]
    if lean:
        args.pop(0)
    count = int(args.pop(0)) if args and args[0].isdigit() else 100
    if lean:
        import lean_cpu
        import lean_reference

        scenarios = lean_cpu.lean_scenarios(count)
        measure(lean_reference.app, scenarios, args or list(scenarios), count)
        return
    app, basic = service_app(**json.loads(os.environ.get("BENCH_CONFIG", "{}")))
    scenarios = service_scenarios(app, basic)
    if "userinfo" in args or not args:
        _, pairs = user_tokens(app, 1)
        scenarios["userinfo"] = environ("GET", "/userinfo", authorization="Bearer " + pairs[0][0])
    if "refresh" in args:  # rotating: each request presents a refresh token not used before
        rp_basic, pairs = user_tokens(app, count + 30)
        fresh = iter(pair[1] for pair in pairs)
        scenarios["refresh"] = lambda: environ(
            "POST", "/token", urlencode({"grant_type": "refresh_token",
                                         "refresh_token": next(fresh)}).encode(),
            authorization=rp_basic,
        )  # fmt: skip
    measure(app, scenarios, args or list(scenarios), count)
    db.engine(app).dispose()


def measure(app, scenarios: dict, names: list[str], count: int) -> None:
    """Each named scenario warmed up, then ``count`` requests in callgrind's window."""
    for name in names:
        env = scenarios[name]
        warm_up(app, name, env, 30)
        # A full collection of the set-up's objects would land in one run's window and not in
        # another's: frozen, they are not scanned again; collections of young objects remain.
        gc.collect()
        gc.freeze()
        profiler = cProfile.Profile(time.process_time) if os.environ.get("BENCH_PSTATS") else None
        with window(name):
            if profiler:  # instead: Python calls per request (BENCH_PSTATS=prefix, one each)
                profiler.enable()
            for _ in range(count):
                call(app, env)
            if profiler:
                profiler.disable()
        if profiler:
            profiler.dump_stats(f"{os.environ['BENCH_PSTATS']}.{name}")
        print(f"{name} done", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
