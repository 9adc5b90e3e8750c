"""Repeated protocol and browser actions for tests (log in, run the code flow...)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from .factories import PASSWORD

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, env: dict[str, str] | None = None) -> str:
    """``code`` in a fresh interpreter (nothing of this process's caches or imports), run
    from the project's root, with ``env`` added to this process's environment; its output."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def kib(pid: int, field: str = "VmRSS") -> int:
    """VmRSS (resident now) or VmHWM (the most ever resident) of a process, in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


def serving_thread(server, name: str | None = None) -> threading.Thread:
    """A daemon thread (not started) to run a test HTTP server's ``serve_forever`` in. It polls
    for ``shutdown()`` every 50 ms: at the default 0.5 s, stopping the server at the end of
    every test that uses one waited up to half a second."""
    return threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True
    )


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636 §4.1-4.2."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic_auth(client_id: str, secret: str) -> dict:
    """RFC 6749 §2.3.1: form-urlencode id and secret, then Basic."""
    from urllib.parse import quote

    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def allowed_methods(response) -> set[str]:
    """The methods an Allow header lists (RFC 9110 §10.2.1), besides OPTIONS and HEAD, which
    Flask answers for every route."""
    listed = {m.strip() for m in response.headers.get("Allow", "").split(",") if m.strip()}
    return listed - {"OPTIONS", "HEAD"}


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html
    )
    assert match, "no CSRF token in page"
    return match.group(1)


def csrf_refused(response) -> bool:
    """The answer is CSRFProtect's refusal (idp.errors.csrf_refused), not just any 400: a form's
    own validation errors are 400s too, so a lost CSRF check would pass a status check."""
    return response.status_code == 400 and 'data-refusal="csrf"' in response.get_data(as_text=True)


def stored_rows(app, ignore_columns=()) -> dict[str, list[tuple]]:
    """Every row of every table (ordered by primary key), without the named columns."""
    from sqlalchemy import select

    from idp import db
    from idp.models import Base

    with app.app_context():
        session = db.session()
        result = {}
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in ignore_columns]
            statement = select(*columns).order_by(*table.primary_key.columns)
            result[table.name] = [tuple(r) for r in session.execute(statement)]
        return result


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class Auth:
    """Browser-like actions through the Flask test client."""

    def __init__(self, client):
        self.client = client

    def login(self, username="alice", password=PASSWORD, next_url=None):
        page = self.client.get("/login" + (f"?{urlencode({'next': next_url})}" if next_url else ""))
        data = {
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "username": username,
            "password": password,
            "next": next_url or "",
        }
        return self.client.post("/login", data=data)

    def logout(self):
        page = self.client.get("/logout")
        token = csrf_token(page.get_data(as_text=True))
        return self.client.post("/logout", data={"csrf_token": token})

    def authorize(self, params: dict, consent: str | None = "allow"):
        """GET /authorize; if the consent page shows, answer it. Returns the final response."""
        url = "/authorize?" + urlencode(params)
        response = self.client.get(url)
        if consent and response.status_code == 200 and b'name="allow"' in response.data:
            token = csrf_token(response.get_data(as_text=True))
            response = self.client.post(url, data={"csrf_token": token, consent: consent.title()})
        return response

    def code_flow_params(self, client, scope="openid profile email", **extra):
        verifier, challenge = pkce_pair()
        params = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": client.redirect_uri,
            "scope": scope,
            "state": secrets.token_urlsafe(8),
            "nonce": secrets.token_urlsafe(8),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        params.update(extra)
        return params, verifier

    def get_code(self, client, scope="openid profile email", **extra) -> tuple[str, str, dict]:
        """Run login + authorize + consent; returns (code, code_verifier, params)."""
        params, verifier = self.code_flow_params(client, scope, **extra)
        response = self.authorize(params)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        result = query(response.headers["Location"])
        assert "code" in result, result
        return result["code"], verifier, params

    def token(self, client, data: dict, headers: dict | None = None):
        if client.client_secret and headers is None:
            headers = basic_auth(client.client_id, client.client_secret)
        elif headers is None:
            headers = {}
            data = {"client_id": client.client_id, **data}
        return self.client.post("/token", data=data, headers=headers)

    def exchange(self, client, code, verifier, redirect_uri=None):
        return self.token(
            client,
            {
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": redirect_uri or client.redirect_uri,
            },
        )

    def tokens(self, client, scope="openid profile email", **extra) -> dict:
        """A full sign-in ending in the token response JSON."""
        code, verifier, _ = self.get_code(client, scope, **extra)
        response = self.exchange(client, code, verifier)
        assert response.status_code == 200, response.get_json()
        return response.get_json()
