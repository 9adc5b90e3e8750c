"""CPU per request of the lean reference app, calling it directly as wsgi_cpu.py calls the IdP.

    LEAN_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python bench/lean_cpu.py [N]

The served comparison (bench/lean.sh beside bench/run.sh) moves by 10-20 % within minutes on
a shared host; in-process, without gunicorn and wrk, the two apps' own CPU compares more
steadily. Replays N client credentials token requests, N introspections, N UserInfo requests and N
rotating refreshes against ``lean_reference.app`` (its tables set up afresh) and prints the
same line as ``wsgi_cpu.py`` prints for the IdP's scenarios of those names, so that the two
can be run one after the other on the same core:

    taskset -c 0 python bench/wsgi_cpu.py 3000 token introspect userinfo refresh
    taskset -c 0 python bench/lean_cpu.py 3000

``lean_cpu.py N sign_in [BATCHES]`` runs N of the lean app's authorization code sign-ins
instead (GET /login, POST /login with argon2id in the request, GET /authorize, POST /token,
a new browser each time, as ``profile_sign_in.py`` runs the IdP's) and prints each step's
CPU per flow, the best of BATCHES batches, with one argon2id verification alone: the floor
under each step of ``profile_sign_in.py``'s table. Under callgrind (as profile_sign_in.py
runs there) the batches' instructions are dumped, every thread's.
"""

from __future__ import annotations

import sys
import time

import flows
import lean_reference
import psycopg
from instructions import window
from wsgi_cpu import environ, refresh_request, replay, warm_up


def sign_in(count: int, batches: int, basic: str) -> None:
    app = lean_reference.app
    names = flows.STEPS
    steps = dict.fromkeys(names, 0.0)

    def step(name, call):
        started = time.thread_time()
        answer = call()
        steps[name] += time.thread_time() - started
        return answer

    def flow():
        flows.sign_in(app, step, username=lean_reference.USERNAME,
                      password=lean_reference.PASSWORD, client_id=lean_reference.CLIENT_ID,
                      redirect_uri=lean_reference.REDIRECT_URI, authorization=basic)  # fmt: skip

    for _ in range(5):
        flow()
    best = None
    with window("sign_in"):  # under callgrind only, as profile_sign_in.py's
        for _ in range(batches):
            steps.update(dict.fromkeys(names, 0.0))
            for _ in range(count):
                flow()
            if best is None or sum(steps.values()) < sum(best.values()):
                best = dict(steps)
    started = time.thread_time()
    for _ in range(count):
        lean_reference.HASHER.verify(lean_reference.PASSWORD_HASH, lean_reference.PASSWORD)
    alone = (time.thread_time() - started) / count * 1000
    print(f"lean: {count} sign-in flows (best of {batches}), "
          f"CPU per flow {sum(best.values()) / count * 1000:.2f} ms:")  # fmt: skip
    for name in names:
        print(f"  {best[name] / count * 1000:7.2f} ms  {name}")
    print(f"  {alone:7.2f} ms  one argon2id verification alone (in POST /login)")


def lean_scenarios(count: int) -> dict:
    """The lean app's tables set up afresh, and its request per scenario (token, introspect,
    userinfo, refresh: a callable giving a refresh token not used before, enough for
    ``count`` requests and a warm-up), as wsgi_cpu.py's are for the IdP."""
    credentials, active, user_token = lean_reference.setup()
    basic = "Basic " + credentials
    scenarios = {
        "token": environ("POST", "/token", b"grant_type=client_credentials&scope=api",
                         authorization=basic),
        "introspect": environ("POST", "/introspect",
                              f"token={active}".encode(),
                              authorization=basic),
        "userinfo": environ("GET", "/userinfo", authorization="Bearer " + user_token),
    }  # fmt: skip
    with psycopg.connect(lean_reference.DATABASE_URL, autocommit=True) as conn:
        pairs = lean_reference.new_pairs(conn, count + 60)  # the warm-up and N requests
    refresh_tokens = iter(refresh for _, refresh in pairs)

    def refresh_env():  # rotating: each request presents a refresh token not used before
        return refresh_request(next(refresh_tokens), basic)

    scenarios["refresh"] = refresh_env
    return scenarios


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    if sys.argv[2:3] == ["sign_in"]:
        basic = "Basic " + lean_reference.setup()[0]
        sign_in(count, int(sys.argv[3]) if len(sys.argv) > 3 else 3, basic)
        return
    scenarios = lean_scenarios(count)
    app = lean_reference.app
    for name, env in scenarios.items():
        warm_up(app, name, env)
        print(f"lean {name:7s} {replay(app, env, count)}", flush=True)


if __name__ == "__main__":
    main()
