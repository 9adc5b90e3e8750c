"""A demo relying party mounted at /demo by `idp demo`: a public client using PKCE.

It walks the real code flow against this server over HTTP and shows the verified ID token
and the userinfo response. It exists only when DEMO is on.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from urllib.error import HTTPError
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, Flask, abort, current_app, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select

from . import db, mail
from .auth.passwords import hash_password
from .auth.users import create_user
from .models import Client, User
from .oauth.clients import create_client

bp = Blueprint("demo", __name__, url_prefix="/demo")
DEMO_CLIENT_NAME = "Demo relying party"
COOKIE = "demo_rp"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="demo-rp")


def _redirect_uri() -> str:
    return current_app.config["ISSUER"] + "/demo/callback"


def prepare(app: Flask) -> dict:
    """Create or reset the demo admin and the demo client; returns what to print."""
    s = db.session()
    password = secrets.token_urlsafe(12)
    admin = s.scalar(select(User).where(User.username == "admin"))
    if admin is None:
        admin = create_user(
            s,
            username="admin",
            email="admin@example.com",
            email_verified=True,
            name="Demo Admin",
            given_name="Demo",
            family_name="Admin",
            is_admin=True,
        )
    admin.password_hash = hash_password(password)
    admin.disabled = False
    client = s.scalar(select(Client).where(Client.client_name == DEMO_CLIENT_NAME))
    if client is None:
        client, _ = create_client(
            s,
            name=DEMO_CLIENT_NAME,
            redirect_uris=[_redirect_uri()],
            grant_types=["authorization_code", "refresh_token"],
            scope="openid profile email offline_access",
            public=True,
            first_party=False,
        )
    client.redirect_uris = [_redirect_uri()]
    s.commit()
    return {
        "issuer": app.config["ISSUER"],
        "username": "admin",
        "password": password,
        "client_id": client.client_id,
        "mail": mail.destination(app),
    }


def banner(info: dict) -> str:
    issuer = info["issuer"]
    return (
        "\n  Identity provider demo\n"
        f"  issuer:        {issuer}\n"
        f"  discovery:     {issuer}/.well-known/openid-configuration\n"
        f"  sign in as:    {info['username']} / {info['password']}   (new password each run)\n"
        f"  demo client:   {info['client_id']} (public, PKCE)\n"
        f"  mail goes to:  {info['mail']}\n"
        "  second factor: admins need one (MFA_REQUIRED_FOR_ADMINS): the first sign-in asks\n"
        "                 you to add an authenticator app (TOTP) or, later, a passkey\n\n"
        f"  Open {issuer}/demo/ to sign in through the demo relying party,\n"
        f"  or {issuer}/account/ to see your account page.\n"
    )


def _client_id() -> str:
    client = db.session().scalar(select(Client).where(Client.client_name == DEMO_CLIENT_NAME))
    if client is None:
        abort(404)
    return client.client_id


@bp.get("/")
def start():
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    pending = {"verifier": verifier, "state": state, "nonce": nonce}
    query = urlencode(
        {
            "response_type": "code",
            "client_id": _client_id(),
            "redirect_uri": _redirect_uri(),
            "scope": "openid profile email offline_access",
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
    )
    # A relying party is another site: its state lives in its own cookie, not the IdP session
    # (which signing in replaces).
    response = redirect(current_app.config["ISSUER"] + "/authorize?" + query)
    response.set_cookie(
        COOKIE,
        _serializer().dumps(pending),
        max_age=600,
        httponly=True,
        samesite="Lax",
        path="/demo",
    )
    return response


def _error_code(error: HTTPError) -> str:
    """The OAuth error code of a refused request (RFC 6749 §5.2), else the HTTP status."""
    try:
        code = json.load(error).get("error")
    except (OSError, ValueError, AttributeError):
        code = None
    return code if isinstance(code, str) and code.isascii() else f"HTTP {error.code}"


def _fetch(url: str, data: dict | None = None, token: str | None = None) -> dict:
    body = urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310 - our own issuer
        return json.load(response)


@bp.get("/callback")
def callback():
    try:
        pending = _serializer().loads(request.cookies.get(COOKIE, ""), max_age=600)
    except BadSignature:
        pending = None
    if not pending or request.args.get("state") != pending["state"]:
        return render_template("demo/result.html", error="state mismatch: start again"), 400
    if "error" in request.args:
        return render_template("demo/result.html", error=request.args["error"]), 400
    issuer = current_app.config["ISSUER"]
    try:
        meta = _fetch(issuer + "/.well-known/openid-configuration")
        tokens = _fetch(
            meta["token_endpoint"],
            {
                "grant_type": "authorization_code",
                "code": request.args.get("code", ""),
                "redirect_uri": _redirect_uri(),
                "client_id": _client_id(),
                "code_verifier": pending["verifier"],
            },
        )
        jwks = KeySet.import_key_set(_fetch(meta["jwks_uri"]))
        claims = jwt.decode(tokens["id_token"], jwks).claims
        userinfo = _fetch(meta["userinfo_endpoint"], token=tokens["access_token"])
    except HTTPError as exc:  # refused, e.g. a code used twice when the page is reloaded
        error = f"the provider refused the request ({_error_code(exc)}): start again"
        return render_template("demo/result.html", error=error), 400
    except (OSError, ValueError, KeyError, JoseError):  # unreachable, or not what OIDC says
        error = "the provider could not be reached or gave an unusable answer"
        return render_template("demo/result.html", error=error), 502
    ok = claims.get("nonce") == pending["nonce"] and claims.get("iss") == issuer
    return render_template(
        "demo/result.html",
        claims=claims,
        userinfo=userinfo,
        verified=ok,
        iss=request.args.get("iss"),
        scope=tokens.get("scope"),
    )


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
