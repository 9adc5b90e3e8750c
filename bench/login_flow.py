"""Load test of the full authorization-code sign-in, password check included.

Each flow is a new browser: GET /login, POST /login (argon2id verification), GET /authorize
(first-party client: straight to the code), POST /token (code + PKCE). Prints a RESULT line
like the wrk scenarios (flows/s, p50, p99, errors) and exits 1 on any error.

BENCH_PASSKEY_OPTIONS=1 adds the request a browser's sign-in page makes at load where
passkeys can be offered in autofill (static/js/passkeys.js, conditional mediation): POST
/login/passkey/options, which also writes the challenge into the session cookie.

BENCH_RETURNING_BROWSER=1 makes each load thread a returning browser: every flow after its
first starts with no session but with the device cookie (``idp_device``) the first one got,
as a person signing in again from their own browser does, so no new-device notice is sent
(its scenario is named login_flow_returning). Without it every flow is a new browser and
sends one: the worst case, and the benchmark's flow.

    python bench/login_flow.py http://127.0.0.1:8000 --threads 8 --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

import requests
from prepare import csrf_token, pkce  # noqa: E402 (run from bench/)

PASSKEY_OPTIONS = os.environ.get("BENCH_PASSKEY_OPTIONS") == "1"
RETURNING = os.environ.get("BENCH_RETURNING_BROWSER") == "1"
DEVICE_COOKIE = "idp_device"  # idp.auth.devices.COOKIE


def one_flow(issuer, client_id, secret, redirect_uri, user, password, device: dict | None):
    """One sign-in in a new browser, or, given ``device``, in a returning one: its device
    cookie is kept there from the first flow and sent by the next ones."""
    browser = requests.Session()
    if device:
        browser.cookies.set(DEVICE_COOKIE, device["value"])
    page = browser.get(issuer + "/login")
    csrf = csrf_token(page.text)
    if PASSKEY_OPTIONS:
        options = browser.post(issuer + "/login/passkey/options", headers={"X-CSRFToken": csrf})
        if options.status_code != 200 or "challenge" not in options.json():
            return False
    signed_in = browser.post(
        issuer + "/login",
        data={"csrf_token": csrf, "username": user, "password": password, "next": ""},
        allow_redirects=False,
    )
    if signed_in.status_code != 302:
        return False
    verifier, challenge = pkce()
    answer = browser.get(
        issuer + "/authorize",
        params={"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                "scope": "openid profile", "state": "s", "code_challenge": challenge,
                "code_challenge_method": "S256"},
        allow_redirects=False,
    )  # fmt: skip
    if answer.status_code != 302 or "code=" not in answer.headers.get("Location", ""):
        return False
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    tokens = browser.post(
        issuer + "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
              "redirect_uri": redirect_uri},
        auth=(client_id, secret),
    )  # fmt: skip
    if device is not None and not device:
        device["value"] = browser.cookies.get(DEVICE_COOKIE)
    return tokens.status_code == 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("issuer")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10)
    args = parser.parse_args()
    env = os.environ
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + args.duration

    def worker():
        device = {} if RETURNING else None  # as bench/flows.py's sign_in
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            try:
                ok = one_flow(args.issuer, env["BENCH_CLIENT_ID"], env["BENCH_CLIENT_SECRET"],
                              env["BENCH_REDIRECT_URI"], env["BENCH_USERNAME"],
                              env["BENCH_PASSWORD"], device)  # fmt: skip
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                errors[0] += 0 if ok else 1

    began = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.monotonic() - began
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1000

    scenario = "login_flow_returning" if RETURNING else "login_flow"
    result = {"scenario": scenario, "requests": len(latencies),
              "rps": round(len(latencies) / seconds, 1), "p50_ms": round(pct(50), 2),
              "p99_ms": round(pct(99), 2), "max_ms": round(latencies[-1] * 1000, 2),
              "errors": errors[0]}  # fmt: skip
    print("RESULT " + json.dumps(result))
    raise SystemExit(1 if errors[0] else 0)


if __name__ == "__main__":
    main()
