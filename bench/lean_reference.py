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
* ``POST /token`` with ``grant_type=refresh_token`` (RFC 6749 §6, rotating): the same client
  authentication; one UPDATE ... RETURNING that uses the refresh token up exactly once
  unless it has expired or its family is revoked (a second use revokes the family, RFC 9700
  §4.14.2); an access token and an ID token (OIDC Core §12.2), each signed RS256; one
  INSERT of the new pair's SHA-256s in the same family.
* ``GET /userinfo`` (OIDC Core §5.3): a bearer token's SHA-256, one prepared SELECT of the
  token joined to its user, the claims of its scope as JSON.

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
# A user's tokens: an access token and a refresh token per row, rotated in families.
INSERT_PAIR = (
    "INSERT INTO lean_pairs (access_digest, refresh_digest, family, username, scope,"
    " auth_time, expires_at, refresh_expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
USE_REFRESH = (
    "UPDATE lean_pairs SET used = true WHERE refresh_digest = %s AND NOT used"
    " AND refresh_expires_at > %s"
    " AND NOT EXISTS (SELECT 1 FROM lean_families f WHERE f.family = lean_pairs.family)"
    " RETURNING family, username, scope, auth_time"
)
REVOKE_FAMILY = (
    "INSERT INTO lean_families (family) SELECT family FROM lean_pairs"
    " WHERE refresh_digest = %s ON CONFLICT DO NOTHING"
)
USERINFO = (
    "SELECT u.username, u.name, u.email, u.email_verified, p.scope, p.expires_at"
    " FROM lean_pairs p JOIN lean_users u ON u.username = p.username WHERE p.access_digest = %s"
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
    if grant_type == "refresh_token":
        return refresh_token()
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


def refresh_token() -> Response:
    """The refresh token used up once, or its family revoked on a second use; a new access
    token, refresh token and ID token; one INSERT of the new pair."""
    digest = hashlib.sha256(request.form.get("refresh_token", "").encode()).hexdigest()
    conn = connection()
    now = int(time.time())
    row = conn.execute(USE_REFRESH, (digest, now), prepare=True).fetchone()
    if row is None:
        conn.execute(REVOKE_FAMILY, (digest,), prepare=True)
        return error("invalid_grant", 400)
    family, username, scope, auth_time = row
    claims = {"iss": ISSUER, "sub": username, "aud": ISSUER, "client_id": CLIENT_ID,
              "iat": now, "exp": now + 3600, "jti": uuid.uuid4().hex, "scope": scope}  # fmt: skip
    access = signed(HEADER, claims)
    refresh = secrets.token_urlsafe(32)
    id_claims = {"iss": ISSUER, "sub": username, "aud": CLIENT_ID, "iat": now,
                 "exp": now + 300, "auth_time": auth_time}  # fmt: skip
    values = (hashlib.sha256(access.encode()).hexdigest(),
              hashlib.sha256(refresh.encode()).hexdigest(), family, username, scope,
              auth_time, now + 3600, now + 86400)  # fmt: skip
    conn.execute(INSERT_PAIR, values, prepare=True)
    body = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": refresh,
        "scope": scope,
        "id_token": signed(ID_HEADER, id_claims),
    }
    return token_response(body)


@app.get("/userinfo")
def userinfo():
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        return Response("", 401, {"WWW-Authenticate": "Bearer"})
    digest = hashlib.sha256(auth[7:].encode()).hexdigest()
    row = connection().execute(USERINFO, (digest,), prepare=True).fetchone()
    if row is None or row[5] < time.time():
        return Response("", 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    username, name, email, verified, scope, _ = row
    scopes = scope.split()
    body = {"sub": username}
    if "profile" in scopes:
        body["name"] = name
    if "email" in scopes:
        body["email"] = email
        body["email_verified"] = verified
    return Response(json.dumps(body), mimetype="application/json")


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


REFRESH_COUNT = 64  # two per connection of the load's 32, as bench/run.sh makes them


def setup(
    refresh_file: str | None = None, refresh_count: int = REFRESH_COUNT
) -> tuple[str, str, str]:
    """Create the tables, one active client token and one active user token (and
    ``refresh_count`` refresh tokens, one family each, one per line of ``refresh_file``);
    the Basic credentials and the two access tokens, as ``(basic, active, user_token)``."""
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        for table in ("lean_pairs", "lean_families", "lean_users"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
        conn.execute(
            "CREATE TABLE lean_users (username text PRIMARY KEY, name text, email text,"
            " email_verified boolean NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE lean_pairs (id bigserial PRIMARY KEY, access_digest text UNIQUE NOT"
            " NULL, refresh_digest text UNIQUE NOT NULL, family text NOT NULL, username text"
            " NOT NULL, scope text NOT NULL, auth_time bigint NOT NULL, expires_at bigint NOT"
            " NULL, refresh_expires_at bigint NOT NULL, used boolean NOT NULL DEFAULT false)"
        )
        conn.execute("CREATE TABLE lean_families (family text PRIMARY KEY)")
        conn.execute(
            "INSERT INTO lean_users VALUES (%s, 'Lean User', 'lean@example.com', true)",
            (USERNAME,),
        )
        user_token = new_pairs(conn, 1)[0][0]
        if refresh_file:
            write_refresh_tokens(conn, refresh_file, refresh_count)
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
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    return basic, active, user_token


def new_pairs(conn, count: int) -> list[tuple[str, str]]:
    """``count`` new (access token, refresh token) pairs of the user, one family each."""
    now = int(time.time())
    pairs = [(secrets.token_urlsafe(32), secrets.token_urlsafe(32)) for _ in range(count)]
    for access, refresh in pairs:
        digests = (hashlib.sha256(access.encode()).hexdigest(),
                   hashlib.sha256(refresh.encode()).hexdigest())  # fmt: skip
        conn.execute(INSERT_PAIR, (*digests, uuid.uuid4().hex, USERNAME, "openid profile email",
                                   now, now + 3600, now + 86400))  # fmt: skip
    return pairs


def write_refresh_tokens(conn, path: str, count: int) -> None:
    """``count`` unused refresh tokens, one per line of ``path`` (bench/lua/refresh.lua's)."""
    with open(path, "w") as out:
        out.writelines(refresh + "\n" for _, refresh in new_pairs(conn, count))


def print_environment(refresh_file: str, refresh_count: int) -> None:
    """``setup()``, then the wrk scripts' and login_flow.py's environment, for bench/lean.sh."""
    basic, active, user_token = setup(refresh_file, refresh_count)
    print(f"export BENCH_BASIC={basic} BENCH_ACCESS_TOKEN={active}")
    print(f"export BENCH_USER_TOKEN={user_token} BENCH_REFRESH_FILE={refresh_file}")
    # bench/login_flow.py's settings, for the sign-in row.
    print(f"export BENCH_CLIENT_ID={CLIENT_ID} BENCH_CLIENT_SECRET={CLIENT_SECRET}")
    print(f"export BENCH_REDIRECT_URI={REDIRECT_URI} BENCH_USERNAME={USERNAME}")
    print(f"export BENCH_PASSWORD='{PASSWORD}'")


if __name__ == "__main__" and sys.argv[1:2] == ["setup"]:  # [FILE [COUNT]]
    print_environment(sys.argv[2] if len(sys.argv) > 2 else "/tmp/lean_refresh_tokens.txt",
                      int(sys.argv[3]) if len(sys.argv) > 3 else REFRESH_COUNT)  # fmt: skip
elif __name__ == "__main__" and sys.argv[1:2] == ["refresh-tokens"]:  # FILE COUNT: more of them
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        write_refresh_tokens(conn, sys.argv[2], int(sys.argv[3]))
