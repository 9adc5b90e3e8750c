"""How long one full pass of the cyclic garbage collector holds the GIL in a loaded app,
with and without ``gc.freeze()`` right after the app is built, as
``idp.gunicorn_conf.post_worker_init`` does in each worker.

    python bench/gc_pause.py [N]     # SQLite in a temp folder, or IDP_DATABASE_URL

The app is built as ``wsgi_cpu.py`` builds it (``inprocess.service_app`` freezes it), then
answers N requests of each hot endpoint (token, introspection, UserInfo, refresh): what a
worker makes on its first requests
(compiled templates and statements, caches, tokens' rows) stays within the collector's reach.
A full pass is timed then, and again after ``gc.unfreeze()`` (the same objects, none frozen:
a worker without the freeze). While a pass runs no other thread of the process runs, so its
length is a stall of every request in flight on that worker.
"""

from __future__ import annotations

import gc
import sys
import time

from wsgi_cpu import call, environ, refresh_request, service_app, service_scenarios, user_tokens

from idp import db


def full_pass_ms(repeat: int = 5) -> float:
    """The quickest of ``repeat`` full collections, in ms (nothing is garbage by then)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        gc.collect()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    app, basic = service_app()  # collected and frozen, as post_worker_init does
    scenarios = service_scenarios(app, basic)
    rp_basic, pairs = user_tokens(app, count + 1)
    scenarios["userinfo"] = environ("GET", "/userinfo", authorization="Bearer " + pairs[0][0])
    for name in ("token", "introspect", "userinfo"):
        for _ in range(count):
            status, body = call(app, scenarios[name])
            assert status.startswith("200"), (name, status, body[:200])
    for _access, refresh in pairs[1:]:
        status, answer = call(app, refresh_request(refresh, rp_basic))
        assert status.startswith("200"), (status, answer[:200])
    frozen, tracked = gc.get_freeze_count(), len(gc.get_objects())
    with_freeze = full_pass_ms()
    gc.unfreeze()
    without = full_pass_ms()
    print(f"frozen at start: {frozen:,} objects; made since: {tracked:,}")
    print(f"full collection with the freeze: {with_freeze:.1f} ms; "
          f"without (all {frozen + tracked:,}): {without:.1f} ms")  # fmt: skip
    db.engine(app).dispose()


if __name__ == "__main__":
    main()
