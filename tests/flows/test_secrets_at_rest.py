"""Secrets at rest: client secrets, codes and tokens are stored only as SHA-256 hashes.

RFC 6749 §10.3 (access tokens kept confidential in storage), §10.4 (refresh tokens),
§10.5 (codes) and RFC 9700 §4.14: a database leak must not hand out usable credentials.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from idp import db
from idp.models import AuthorizationCode, Base, Client, Token

from ..factories import PASSWORD


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def dump_database(app) -> str:
    """Every value of every row of every table, as one searchable text."""
    parts = []
    with db.engine(app).connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(select(table)).mappings().all()
            for row in rows:
                for name, value in row.items():
                    if isinstance(value, dict | list):
                        value = json.dumps(value)
                    parts.append(f"{table.name}.{name}={value}")
    return "\n".join(parts)


def test_no_plaintext_secret_is_stored_after_a_full_flow(app, client, auth, user, oauth_client):
    # RFC 6749 §10.3-§10.5: codes, tokens and client secrets are never stored in plaintext.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    response = auth.exchange(oauth_client, code, verifier)
    assert response.status_code == 200, response.get_json()
    first = response.get_json()
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    ).get_json()
    assert "access_token" in refreshed

    plaintexts = {
        "client secret": oauth_client.client_secret,
        "authorization code": code,
        "code verifier": verifier,
        "access token": first["access_token"],
        "refresh token": first["refresh_token"],
        "rotated access token": refreshed["access_token"],
        "rotated refresh token": refreshed["refresh_token"],
        "user password": PASSWORD,
    }
    dump = dump_database(app)
    assert "tokens.access_token_hash=" in dump and "clients.client_secret_hash=" in dump
    leaked = [what for what, value in plaintexts.items() if value in dump]
    assert leaked == []


def test_stored_hashes_are_sha256_of_the_secrets(db_session, client, auth, user, oauth_client):
    # The stored values are the SHA-256 hex digests of what was handed out, so the server can
    # still look each credential up (RFC 6749 §10.3-§10.5 with confidentiality at rest).
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    session = db_session
    session.expire_all()

    stored_client = session.scalar(select(Client).where(Client.client_id == oauth_client.client_id))
    assert stored_client.client_secret_hash == sha256_hex(oauth_client.client_secret)

    codes = session.scalars(select(AuthorizationCode)).all()
    assert [row.code_hash for row in codes] == [sha256_hex(code)]

    rows = session.scalars(select(Token)).all()
    assert len(rows) == 1
    assert rows[0].access_token_hash == sha256_hex(tokens["access_token"])
    assert rows[0].refresh_token_hash == sha256_hex(tokens["refresh_token"])


def test_public_client_has_no_stored_secret(db_session, public_client):
    # RFC 6749 §2.1: a public client has no credentials, so nothing secret is stored for it.
    row = db_session.scalar(select(Client).where(Client.client_id == public_client.client_id))
    assert public_client.client_secret is None
    assert row.client_secret_hash is None
