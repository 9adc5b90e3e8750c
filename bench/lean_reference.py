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

No rate limit, audit, logging, metrics, liveness rule, resource indicator or client cache:
the gap between this and the IdP is what those and the IdP's own code cost.

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
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, request

DATABASE_URL = os.environ.get("LEAN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench")
ISSUER = os.environ.get("LEAN_ISSUER", "http://127.0.0.1:8802")
CLIENT_ID = "lean-client"
CLIENT_SECRET = "lean-secret"
SECRET_HASH = hashlib.sha256(CLIENT_SECRET.encode()).digest()
KEY_FILE = os.environ.get("LEAN_KEY_FILE", "/tmp/lean_reference_key.pem")

INSERT = "INSERT INTO lean_tokens (digest, client_id, scope, expires_at) VALUES (%s, %s, %s, %s)"
SELECT = "SELECT client_id, scope, expires_at FROM lean_tokens WHERE digest = %s"


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
app = Flask(__name__)
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


@app.post("/token")
def token():
    if not authenticated():
        return error("invalid_client", 401)
    if request.form.get("grant_type") != "client_credentials":
        return error("unsupported_grant_type", 400)
    now = int(time.time())
    scope = request.form.get("scope", "")
    claims = {
        "iss": ISSUER,
        "sub": CLIENT_ID,
        "aud": ISSUER,
        "client_id": CLIENT_ID,
        "iat": now,
        "exp": now + 3600,
        "jti": uuid.uuid4().hex,
        "scope": scope,
    }
    signing_input = f"{HEADER}.{b64(json.dumps(claims, separators=(',', ':')).encode())}"
    signature = KEY.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    access_token = f"{signing_input}.{b64(signature)}"
    digest = hashlib.sha256(access_token.encode()).hexdigest()
    connection().execute(INSERT, (digest, CLIENT_ID, scope, now + 3600), prepare=True)
    body = {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": scope,
    }
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


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


def setup() -> None:
    """Create the table and one active token; print the wrk scripts' environment."""
    with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS lean_tokens")
        conn.execute(
            "CREATE TABLE lean_tokens (id bigserial PRIMARY KEY, digest text UNIQUE NOT NULL,"
            " client_id text NOT NULL, scope text NOT NULL, expires_at bigint NOT NULL)"
        )
        access_token = secrets.token_urlsafe(32)
        digest = hashlib.sha256(access_token.encode()).hexdigest()
        conn.execute(INSERT, (digest, CLIENT_ID, "api", int(time.time()) + 86400))
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    print(f"export BENCH_BASIC={basic} BENCH_ACCESS_TOKEN={access_token}")


if __name__ == "__main__" and sys.argv[1:] == ["setup"]:
    setup()
