"""The lean Flask app of issue 17: what Flask, psycopg and RS256 alone cost on this machine.

Not part of the IdP. It does the least a token endpoint and an introspection endpoint can
do, so that ``bench/lean.sh`` measures the floor under ``idp serve`` with the same wrk
scripts, on the same machine, minutes apart:

* ``POST /token`` (client_credentials): HTTP Basic client authentication against one
  in-memory client (SHA-256 of the secret, constant-time compare), an RFC 9068 JWT signed
  RS256 with ``cryptography`` directly, and one INSERT of the token's SHA-256 through a
  psycopg 3 prepared statement in autocommit.
* ``POST /introspect``: the same client authentication and one prepared SELECT of the
  needed columns by hash.

* The authorization code sign-in of ``bench/login_flow.py``, the least of it: ``GET /login``
  (a form with a CSRF token kept in Flask's signed session cookie), ``POST /login`` (the
  token compared in constant time, one argon2id verification at the IdP's default cost,
  the user put in the session), ``GET /authorize`` (the session's user, the client's
  redirect URI, S256 PKCE; one INSERT of the code's SHA-256) and ``POST /token`` with
  ``grant_type=authorization_code`` (Basic client authentication; one UPDATE ... RETURNING
  that uses the code up exactly once; the PKCE check; an access token and an ID token, each
  signed RS256; one INSERT of the access token's SHA-256).

No rate limit, audit, logging, metrics, liveness rule, resource indicator or client cache,
no server-side session, consent, device notice, lockout or second factor: the gap between
this and the IdP is what those and the IdP's own code cost.

    LEAN_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench python lean_reference.py setup
    gunicorn --worker-class gthread --threads 2 lean_reference:app
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
import time
import uuid

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, redirect, request, session

DATABASE_URL = os.environ.get("LEAN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench")
ISSUER = os.environ.get("LEAN_ISSUER", "http://127.0.0.1:8802")
CLIENT_ID = "lean-client"
CLIENT_SECRET = "lean-secret"
SECRET_HASH = hashlib.sha256(CLIENT_SECRET.encode()).digest()
KEY_FILE = os.environ.get("LEAN_KEY_FILE", "/tmp/lean_reference_key.pem")

REDIRECT_URI = "https://lean.example/cb"
USERNAME = "lean-user"
PASSWORD = "lean password " + "x" * 12
# The IdP's defaults (idp/config.py: ARGON2_MEMORY_COST, ARGON2_TIME_COST, ARGON2_PARALLELISM).
HASHER = PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1)

INSERT = "INSERT INTO lean_tokens (digest, client_id, scope, expires_at) VALUES (%s, %s, %s, %s)"
SELECT = "SELECT client_id, scope, expires_at FROM lean_tokens WHERE digest = %s"
INSERT_CODE = (
    "INSERT INTO lean_codes (digest, username, challenge, scope, nonce, auth_time, expires_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
USE_CODE = (
    "UPDATE lean_codes SET used = true WHERE digest = %s AND NOT used AND expires_at > %s"
    " RETURNING username, challenge, scope, nonce, auth_time"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_key() -> rsa.RSAPrivateKey:
    if not os.path.exists(KEY_FILE):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with open(KEY_FILE, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    with open(KEY_FILE, "rb") as pem:
        return serialization.load_pem_private_key(pem.read(), password=None)


KEY = load_key()
HEADER = b64(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": "lean"}).encode())
ID_HEADER = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "lean"}).encode())
PASSWORD_HASH = HASHER.hash(PASSWORD)  # per worker, at start
app = Flask(__name__)
app.secret_key = os.environ.get("LEAN_SECRET_KEY", "lean-reference-secret-key")
local = threading.local()


def connection() -> psycopg.Connection:
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = psycopg.connect(DATABASE_URL, autocommit=True)
    return conn


def error(code: str, status: int) -> Response:
    return Response(json.dumps({"error": code}), status, mimetype="application/json")


def authenticated() -> bool:
    auth = request.authorization
    if auth is None or auth.type != "basic" or auth.username != CLIENT_ID:
        return False
    given = hashlib.sha256((auth.password or "").encode()).digest()
    return hmac.compare_digest(given, SECRET_HASH)


def signed(header: str, claims: dict) -> str:
    signing_input = f"{header}.{b64(json.dumps(claims, separators=(',', ':')).encode())}"
    signature = KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


def access_token(subject: str, scope: str, now: int) -> str:
    """An RFC 9068 JWT, and one INSERT of its SHA-256."""
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "aud": ISSUER,
        "client_id": CLIENT_ID,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    token = signed(HEADER, claims)
    digest = hashlib.sha256(token.encode()).hexdigest()
    connection().execute(INSERT, (digest, CLIENT_ID, scope, now + 3600), prepare=True)
    return token


def token_response(body: dict) -> Response:
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


@app.post("/token")
def token():
    if not authenticated():
        return error("invalid_client", 401)
    grant_type = request.form.get("grant_type")
    if grant_type == "authorization_code":
        return code_token()
    if grant_type != "client_credentials":
        return error("unsupported_grant_type", 400)
    now = int(time.time())
    scope = request.form.get("scope", "")
    body = {
        "access_token": access_token(CLIENT_ID, scope, now),
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": scope,
    }
    return token_response(body)


def code_token() -> Response:
    """The code used up once (one UPDATE ... RETURNING), PKCE S256, two RS256 JWTs."""
    form = request.form
    if form.get("redirect_uri") != REDIRECT_URI:
        return error("invalid_grant", 400)
    digest = hashlib.sha256(form.get("code", "").encode()).hexdigest()
    now = int(time.time())
    row = connection().execute(USE_CODE, (digest, now), prepare=True).fetchone()
    if row is None:
        return error("invalid_grant", 400)
    username, challenge, scope, nonce, auth_time = row
    verifier = form.get("code_verifier", "").encode()
    if not hmac.compare_digest(b64(hashlib.sha256(verifier).digest()), challenge):
        return error("invalid_grant", 400)
    id_claims = {"iss": ISSUER, "sub": username, "aud": CLIENT_ID, "iat": now,
                 "exp": now + 300, "auth_time": auth_time}  # fmt: skip
    if nonce:
        id_claims["nonce"] = nonce
    body = {
        "access_token": access_token(username, scope, now),
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": scope,
        "id_token": signed(ID_HEADER, id_claims),
    }
    return token_response(body)


@app.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        form = request.form
        expected = session.pop("csrf", "")
        if not expected or not hmac.compare_digest(form.get("csrf_token", ""), expected):
            return Response("Your session expired.", 400)
        try:
            ok = form.get("username") == USERNAME and HASHER.verify(
                PASSWORD_HASH, form.get("password", "")
            )
        except VerificationError:
            ok = False
        if not ok:
            return Response("Incorrect username or password.", 401)
        session.clear()
        session["user"] = USERNAME
        session["auth_time"] = int(time.time())
        return redirect(form.get("next") or "/", 302)
    session["csrf"] = secrets.token_urlsafe(32)
    page = (
        '<!doctype html><title>Sign in</title><form method="post" action="/login">'
        f'<input name="csrf_token" type="hidden" value="{session["csrf"]}">'
        '<input name="username"><input name="password" type="password">'
        '<input name="next" type="hidden" value=""><button>Sign in</button></form>'
    )
    return Response(page, mimetype="text/html")


@app.get("/authorize")
def authorize():
    args = request.args
    if args.get("client_id") != CLIENT_ID or args.get("redirect_uri") != REDIRECT_URI:
        return Response("Unknown client or redirect URI.", 400)
    if "user" not in session:
        return redirect("/login", 302)
    challenge = args.get("code_challenge", "")
    if args.get("response_type") != "code" or args.get("code_challenge_method") != "S256":
        return redirect(f"{REDIRECT_URI}?error=invalid_request", 302)
    code = secrets.token_urlsafe(32)
    digest = hashlib.sha256(code.encode()).hexdigest()
    values = (digest, session["user"], challenge, args.get("scope", ""), args.get("nonce"),
              session["auth_time"], int(time.time()) + 60)  # fmt: skip
    connection().execute(INSERT_CODE, values, prepare=True)
    state = f"&state={args['state']}" if args.get("state") else ""
    return redirect(f"{REDIRECT_URI}?code={code}{state}&iss={ISSUER}", 302)


@app.post("/introspect")
def introspect():
    if not authenticated():
        return error("invalid_client", 401)
    digest = hashlib.sha256(request.form.get("token", "").encode()).hexdigest()
    row = connection().execute(SELECT, (digest,), prepare=True).fetchone()
    if row is None or row[2] < time.time():
        body = {"active": False}
    else:
        body = {"active": True, "client_id": row[0], "scope": row[1], "exp": row[2]}
    return Response(json.dumps(body), mimetype="application/json")


def setup() -> tuple[str, str]:
    """Create the tables and one active token; the Basic credentials and that token, as
    ``(basic, active)``."""
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS lean_tokens")
        conn.execute(
            "CREATE TABLE lean_tokens (id bigserial PRIMARY KEY, digest text UNIQUE NOT NULL,"
            " client_id text NOT NULL, scope text NOT NULL, expires_at bigint NOT NULL)"
        )
        conn.execute("DROP TABLE IF EXISTS lean_codes")
        conn.execute(
            "CREATE TABLE lean_codes (id bigserial PRIMARY KEY, digest text UNIQUE NOT NULL,"
            " username text NOT NULL, challenge text NOT NULL, scope text NOT NULL, nonce text,"
            " auth_time bigint NOT NULL, expires_at bigint NOT NULL,"
            " used boolean NOT NULL DEFAULT false)"
        )
        active = secrets.token_urlsafe(32)
        digest = hashlib.sha256(active.encode()).hexdigest()
        conn.execute(INSERT, (digest, CLIENT_ID, "api", int(time.time()) + 86400))
    return base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode(), active


def print_environment() -> None:
    """``setup()``, then the wrk scripts' and login_flow.py's environment, for bench/lean.sh."""
    basic, active = setup()
    print(f"export BENCH_BASIC={basic} BENCH_ACCESS_TOKEN={active}")
    # bench/login_flow.py's settings, for the sign-in row.
    print(f"export BENCH_CLIENT_ID={CLIENT_ID} BENCH_CLIENT_SECRET={CLIENT_SECRET}")
    print(f"export BENCH_REDIRECT_URI={REDIRECT_URI} BENCH_USERNAME={USERNAME}")
    print(f"export BENCH_PASSWORD='{PASSWORD}'")


if __name__ == "__main__" and sys.argv[1:] == ["setup"]:
    print_environment()
