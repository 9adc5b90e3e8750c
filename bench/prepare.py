"""Create the benchmark's user and client, and fetch the tokens the wrk scenarios send.

Run against a started server whose database is configured by the usual IDP_* variables
(IDP_DATABASE_URL, IDP_SECRET_KEY, IDP_INSTANCE_PATH). Prints shell `export` lines:

    eval "$(python bench/prepare.py http://127.0.0.1:8000 out/refresh_tokens.txt 64)"
"""

from __future__ import annotations

import base64
import re
import secrets
import sys
from urllib.parse import parse_qs, urlsplit

import requests

from idp import create_app, db
from idp.auth.passwords import hash_password
from idp.models import User
from idp.oauth.clients import create_client

USERNAME = "bench"
PASSWORD = "bench password " + "x" * 12


def create_rows() -> tuple[str, str, str]:
    app = create_app()
    with app.app_context():
        session = db.session()
        if session.query(User).filter_by(username=USERNAME).first() is None:
            session.add(
                User(username=USERNAME, password_hash=hash_password(PASSWORD), name="Bench",
                     email="bench@example.com", email_verified=True)
            )  # fmt: skip
        client, secret = create_client(
            session,
            name="bench",
            redirect_uris=["https://rp.example/cb"],
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
            scope="openid profile email offline_access api",
            public=False,
            first_party=True,  # no consent page: the login flow is login + code + token
        )
        session.commit()
        return client.client_id, secret, "https://rp.example/cb"


def pkce() -> tuple[str, str]:
    import hashlib

    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(page: str) -> str:
    """The sign-in form's CSRF token, from the page's HTML."""
    return CSRF.search(page).group(1)


def sign_in(issuer: str, username: str = USERNAME) -> requests.Session:
    """A browser session signed in as ``username`` (password PASSWORD)."""
    browser = requests.Session()
    csrf = csrf_token(browser.get(issuer + "/login").text)
    answer = browser.post(
        issuer + "/login",
        data={"csrf_token": csrf, "username": username, "password": PASSWORD, "next": ""},
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:300]
    return browser


def refuse_a_new_password(issuer: str, username: str = USERNAME) -> None:
    """Sign in as ``username`` and ask to change its password to a common one: refused
    (400) with zxcvbn's feedback on the page. The worker that served it then holds what
    checking a new password loads for good (the word lists, zxcvbn), as any worker behind
    password forms does."""
    browser = sign_in(issuer, username)
    csrf = csrf_token(browser.get(issuer + "/account/password").text)
    answer = browser.post(issuer + "/account/password", data={
        "csrf_token": csrf, "current_password": PASSWORD, "password": "password1"})  # fmt: skip
    if answer.status_code != 400 or "password-strength" not in answer.text:
        raise SystemExit(f"the password form did not refuse: {answer.status_code}")


def code_flow(issuer, browser, client_id, secret, redirect_uri, scope) -> dict:
    verifier, challenge = pkce()
    answer = browser.get(
        issuer + "/authorize",
        params={"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
                "scope": scope, "state": "s", "code_challenge": challenge,
                "code_challenge_method": "S256"},
        allow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 302, answer.text[:300]
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    tokens = requests.post(
        issuer + "/token",
        data={"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
              "redirect_uri": redirect_uri},
        auth=(client_id, secret),
    )  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


def main() -> None:
    issuer, refresh_file, count = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3])
    client_id, secret, redirect_uri = create_rows()
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    machine = requests.post(
        issuer + "/token", data={"grant_type": "client_credentials", "scope": "api"},
        auth=(client_id, secret),
    )  # fmt: skip
    assert machine.status_code == 200, machine.text
    browser = sign_in(issuer)
    user = code_flow(issuer, browser, client_id, secret, redirect_uri, "openid profile email")
    with open(refresh_file, "w") as out:
        for _ in range(count):
            grant = code_flow(issuer, browser, client_id, secret, redirect_uri, "openid profile")
            out.write(grant["refresh_token"] + "\n")
    print(f"export BENCH_CLIENT_ID={client_id}")
    print(f"export BENCH_CLIENT_SECRET={secret}")
    print(f"export BENCH_BASIC={basic}")
    print(f"export BENCH_ACCESS_TOKEN={machine.json()['access_token']}")
    print(f"export BENCH_USER_TOKEN={user['access_token']}")
    print(f"export BENCH_REFRESH_FILE={refresh_file}")
    print(f"export BENCH_REDIRECT_URI={redirect_uri}")
    print(f"export BENCH_USERNAME={USERNAME}")
    print(f"export BENCH_PASSWORD='{PASSWORD}'")


if __name__ == "__main__":
    main()
