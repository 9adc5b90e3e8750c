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

``lean_cpu.py N sign_in [BATCHES]`` runs N of the lean app's authorization code sign-ins
instead (GET /login, POST /login with argon2id in the request, GET /authorize, POST /token,
a new browser each time, as ``profile_sign_in.py`` runs the IdP's) and prints each step's
CPU per flow, the best of BATCHES batches, with one argon2id verification alone: the floor
under each step of ``profile_sign_in.py``'s table.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import sys
import time

import lean_reference
from wsgi_cpu import environ, replay, warm_up


def sign_in(count: int, batches: int, basic: str) -> None:
    app = lean_reference.app
    names = ("GET /login", "POST /login", "GET /authorize", "POST /token")
    steps = dict.fromkeys(names, 0.0)

    def step(name, call):
        started = time.thread_time()
        answer = call()
        steps[name] += time.thread_time() - started
        return answer

    def flow():
        http = app.test_client()  # a new browser each time
        page = step("GET /login", lambda: http.get("/login"))
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
        form = {"csrf_token": csrf, "username": lean_reference.USERNAME,
                "password": lean_reference.PASSWORD, "next": ""}  # fmt: skip
        signed_in = step("POST /login", lambda: http.post("/login", data=form))
        assert signed_in.status_code == 302, signed_in.status_code
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        query = {"response_type": "code", "client_id": lean_reference.CLIENT_ID, "state": "s",
                 "redirect_uri": lean_reference.REDIRECT_URI, "scope": "openid profile",
                 "code_challenge": challenge.rstrip(b"=").decode(),
                 "code_challenge_method": "S256"}  # fmt: skip
        answer = step("GET /authorize", lambda: http.get("/authorize", query_string=query))
        code = re.search(r"code=([^&]+)", answer.headers["Location"]).group(1)
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": lean_reference.REDIRECT_URI}  # fmt: skip
        headers = {"Authorization": basic}
        tokens = step("POST /token", lambda: http.post("/token", data=data, headers=headers))
        assert tokens.status_code == 200, tokens.data

    for _ in range(5):
        flow()
    best = None
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


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    credentials, active = lean_reference.setup()
    basic = "Basic " + credentials
    if sys.argv[2:3] == ["sign_in"]:
        sign_in(count, int(sys.argv[3]) if len(sys.argv) > 3 else 3, basic)
        return
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
