"""The authorization code sign-in through a Flask test client, step by step: the flow that
``profile_sign_in.py`` runs against the IdP and ``lean_cpu.py sign_in`` against the lean
app, so that their per-step figures compare like with like."""

from __future__ import annotations

import re
from collections.abc import Callable

from prepare import csrf_token, pkce

STEPS = ("GET /login", "POST /login", "GET /authorize", "POST /token")


def sign_in(app, step: Callable, *, username: str, password: str, client_id: str,
            redirect_uri: str, authorization: str, device: dict | None = None) -> None:  # fmt: skip
    """One flow in a new browser: GET /login, POST /login, GET /authorize (a first-party
    client: straight to the code), POST /token with PKCE. ``step(name, call)`` runs each
    request (and measures it); a step that does not answer as it should raises.

    ``device``: a returning browser instead. Its device cookie (``idp_device``) is kept
    there from the first flow and sent by the next ones, which so send no new-device
    notice (bench/login_flow.py's BENCH_RETURNING_BROWSER)."""
    http = app.test_client()
    if device:
        http.set_cookie("idp_device", device["value"])
    page = step("GET /login", lambda: http.get("/login"))
    form = {"csrf_token": csrf_token(page.text), "username": username,
            "password": password, "next": ""}  # fmt: skip
    signed_in = step("POST /login", lambda: http.post("/login", data=form))
    assert signed_in.status_code == 302, signed_in.status_code
    verifier, challenge = pkce()
    query = {"response_type": "code", "client_id": client_id, "state": "s",
             "redirect_uri": redirect_uri, "scope": "openid profile",
             "code_challenge": challenge, "code_challenge_method": "S256"}  # fmt: skip
    answer = step("GET /authorize", lambda: http.get("/authorize", query_string=query))
    code = re.search(r"code=([^&]+)", answer.headers["Location"]).group(1)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": redirect_uri}  # fmt: skip
    headers = {"Authorization": authorization}
    tokens = step("POST /token", lambda: http.post("/token", data=data, headers=headers))
    assert tokens.status_code == 200, tokens.data
    if device is not None and not device:
        device["value"] = http.get_cookie("idp_device").value
