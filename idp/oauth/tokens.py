"""Token issuance and revocation on the ``tokens`` table (RFC 6749 §5.1, RFC 7009).

Opaque bearer tokens (RFC 6750) of 256 random bits; only their SHA-256 hashes are stored.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.orm import lazyload

from .. import audit, db
from ..models import AuthorizationCode, Token, secret_hash, utcnow
from . import jwt_tokens
from .cache import registry


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def generate_bearer_token(
    grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True
) -> dict:
    """Authlib token generator: the response body of RFC 6749 §5.1."""
    token = {
        "token_type": "Bearer",
        "access_token": new_secret(),
        # The client's own lifetime when an admin set one, else the server default.
        "expires_in": int(
            expires_in
            or getattr(client, "access_token_lifetime", None)
            or current_app.config["ACCESS_TOKEN_LIFETIME"]
        ),
    }
    if scope is not None:
        token["scope"] = scope
    if include_refresh_token:
        token["refresh_token"] = new_secret()
    return token


def save_token(token: dict, request) -> Token:
    """Store the hashes of a freshly generated token; called by Authlib's grants."""
    now = utcnow()
    code = getattr(request, "authorization_code", None)
    parent = getattr(request, "refresh_token", None)
    row = Token(
        client_id=request.client.client_id,
        user_id=request.user.id if request.user else None,
        grant_type=request.payload.grant_type,
        scope=token.get("scope") or "",
        # A code exchanged for one resource (RFC 8707 §2.2) still grants all its scopes.
        granted_scope=parent.granted_scope
        if parent
        else (code.scope if code else (token.get("scope") or "")),
        access_token_hash=secret_hash(token["access_token"]),
        issued_at=now,
        access_expires_at=now + timedelta(seconds=token["expires_in"]),
        family_id=parent.family_id if parent else uuid.uuid4().hex,
        authorization_code_id=code.id if code else getattr(parent, "authorization_code_id", None),
        auth_time=code.auth_time if code else (parent.auth_time if parent else None),
        amr=code.amr if code else (parent.amr if parent else None),
        sid=code.sid if code else (parent.sid if parent else None),
    )
    if "refresh_token" in token:
        row.refresh_token_hash = secret_hash(token["refresh_token"])
        lifetime = (
            request.client.refresh_token_lifetime or current_app.config["REFRESH_TOKEN_LIFETIME"]
        )
        row.refresh_expires_at = now + timedelta(seconds=int(lifetime))
    # RFC 9068 / RFC 8707: audience, lifetime and format (JWT or opaque) of the access token.
    jwt_tokens.shape(token, request, row)
    session = db.session()
    row.id = insert(session, row)
    session.commit()
    if parent is not None:
        # A racing reuse of the parent may have revoked the family after this rotation won
        # but before this row existed: RFC 9700 §4.14.2 wants the new tokens revoked too.
        # The row lock waits for such a revocation to commit (found by the two-worker test).
        if parent_revoked_meanwhile(parent.id):
            row.revoked_at = utcnow()
            session.execute(
                update(Token).where(Token.id == row.id).values(revoked_at=row.revoked_at)
            )
        session.commit()  # also releases the row lock
    return row


def insert(session, row: Token) -> int:
    """INSERT the values set on a new (transient) row; its id.

    One Core statement instead of the ORM unit of work, which costs more than the INSERT
    itself on the token endpoint. Columns left unset get their table defaults; ``row``
    stays out of the session (it is the caller's record of what was stored).
    """
    values = {name: row.__dict__[name] for name in TOKEN_COLUMNS if name in row.__dict__}
    if session.in_transaction():  # a code or refresh token was used up: commit together
        return session.execute(INSERT_TOKEN, values).scalar_one()
    # Nothing else to write in this request (client credentials): the INSERT alone,
    # autocommitted, is one round trip instead of three (BEGIN, INSERT, COMMIT).
    with session.get_bind().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn.execute(INSERT_TOKEN, values).scalar_one()


TOKEN_COLUMNS = tuple(c.key for c in Token.__table__.columns if c.key != "id")
INSERT_TOKEN = sql_insert(Token.__table__).returning(Token.__table__.c.id)


def parent_revoked_meanwhile(parent_id: int) -> bool:
    query = select(Token.revoked_at).where(Token.id == parent_id).with_for_update()
    return db.session().scalar(query) is not None


# Built once: the look-up runs on every introspection, revocation and UserInfo request.
# The client row is loaded only if asked for (those endpoints compare client_id); the user,
# whose state decides "active", comes in the join.
FIND_TOKEN = (
    select(Token)
    .where(
        or_(
            Token.access_token_hash == bindparam("digest"),
            Token.refresh_token_hash == bindparam("digest"),
        )
    )
    .options(lazyload(Token.client))
)


def find(token_string: str, hint: str | None = None) -> Token | None:
    """The row holding this access or refresh token, whichever it is.

    One indexed look-up on both hash columns: RFC 7009 §2.1 makes ``token_type_hint`` only
    an optimisation, and a wrong hint must not hide the token (nor cost a second query).
    """
    digest = secret_hash(token_string)
    row = db.session().scalar(FIND_TOKEN, {"digest": digest})
    if row is not None:
        row.presented_as = "access_token" if row.access_token_hash == digest else "refresh_token"
    return row


def client_enabled(row: Token) -> bool:
    """Whether the token's client still exists and is enabled (read through the cache)."""
    return registry().client(row.client_id) is not None


def revoke(row: Token) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def revoke_family(family_id: str, reason: str) -> int:
    """Revoke every token descended from one grant (RFC 9700 §4.14.2)."""
    result = db.session().execute(
        update(Token)
        .where(Token.family_id == family_id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    audit.record("token.family_revoked", target=family_id, reason=reason, count=result.rowcount)
    return result.rowcount


def revoke_for_code(code_id: int, reason: str) -> int:
    """Revoke every token issued from one authorization code (RFC 6749 §4.1.2)."""
    families = (
        db.session()
        .scalars(select(Token.family_id).where(Token.authorization_code_id == code_id).distinct())
        .all()
    )
    return sum(revoke_family(f, reason) for f in families)


def revoke_for_user_client(user_id: int, client_id: str) -> int:
    result = db.session().execute(
        update(Token)
        .where(Token.user_id == user_id, Token.client_id == client_id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return result.rowcount


def revoke_for_session(sid: str, keep_offline: bool = True) -> int:
    """Sign-out policy: end what a browser session issued; returns how many rows were revoked.

    Tokens issued in the session are revoked, except, when keep_offline, refresh tokens
    granted with offline_access (OIDC Core §11): those survive sign-out, but the access
    token issued with them ends now. Codes not yet redeemed expire.
    """
    session = db.session()
    now = utcnow()
    revoked = 0
    for row in session.scalars(select(Token).where(Token.sid == sid, Token.revoked_at.is_(None))):
        offline = row.refresh_token_hash is not None and "offline_access" in (
            row.granted_scope.split()
        )
        if keep_offline and offline:
            row.access_expires_at = min(row.access_expires_at, now)
        else:
            row.revoked_at = now
            revoked += 1
    session.execute(
        update(AuthorizationCode)
        .where(
            AuthorizationCode.sid == sid,
            AuthorizationCode.used_at.is_(None),
            AuthorizationCode.expires_at > now,
        )
        .values(expires_at=now)
    )
    return revoked
