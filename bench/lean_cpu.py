"""CPU per request of the lean reference app, calling it directly as wsgi_cpu.py calls the IdP.

    LEAN_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/lean_cpu.py [N]

The served comparison (bench/lean.sh beside bench/run.sh) moves by 10-20 % within minutes on
a shared host; in-process, without gunicorn and wrk, the two apps' own CPU compares more
steadily. Replays N client credentials token requests and N introspections against
``lean_reference.app`` (its tables set up afresh) and prints the same line as
``wsgi_cpu.py`` prints for the IdP's ``token`` and ``introspect``, so that the two can be
run one after the other on the same core:

    taskset -c 0 python bench/wsgi_cpu.py 3000 token introspect
    taskset -c 0 python bench/lean_cpu.py 3000
"""

from __future__ import annotations

import sys

import lean_reference
from wsgi_cpu import environ, replay, warm_up


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    credentials, active = lean_reference.setup()
    basic = "Basic " + credentials
    scenarios = {
        "token": environ("POST", "/token", b"grant_type=client_credentials&scope=api",
                         authorization=basic),
        "introspect": environ("POST", "/introspect",
                              f"token={active}".encode(),
                              authorization=basic),
    }  # fmt: skip
    app = lean_reference.app
    for name, env in scenarios.items():
        warm_up(app, name, env)
        print(f"lean {name:7s} {replay(app, env, count)}", flush=True)


if __name__ == "__main__":
    main()
