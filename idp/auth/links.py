"""Single-use links mailed to users (password reset, verification, invitation, registration).

    token = issue(purpose, email, ttl_seconds, user=..., created_by=...)   in the caller's
                                                   transaction; only the hash is stored
    row = find(purpose, token)         the live link (unused, unrevoked, unexpired) or None
    row = consume(purpose, token)      the same, marked used by one atomic UPDATE: of two
                                       requests racing with one link, exactly one gets it
    revoke(purpose, user_id=..., email=...)   end the outstanding links (e.g. a new one sent)
    external_url(endpoint, **values)   an absolute URL built from ISSUER, never from the
                                       request's Host header (link poisoning)

A link's secret is 256 bits from ``secrets``; it is compared by its SHA-256 (``secret_hash``),
a lookup on a unique index, so no timing tells anything about other links.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select, update

from .. import db
from ..models import AccountLink, User, secret_hash, utcnow

PURPOSES = ("reset", "verify", "invite", "register")


def issue(
    purpose: str,
    email: str,
    ttl_seconds: int,
    *,
    user: User | None = None,
    created_by: str | None = None,
) -> str:
    """A new link's secret (to put in the mailed URL); its hash is added to the session."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    token = secrets.token_urlsafe(32)
    db.session().add(
        AccountLink(
            purpose=purpose,
            token_hash=secret_hash(token),
            user_id=user.id if user is not None else None,
            email=email,
            created_by=created_by,
            expires_at=utcnow() + timedelta(seconds=int(ttl_seconds)),
        )
    )
    return token


def _live(purpose: str, token: str):
    now = utcnow()
    return (
        AccountLink.purpose == purpose,
        AccountLink.token_hash == secret_hash(token),
        AccountLink.used_at.is_(None),
        AccountLink.revoked_at.is_(None),
        AccountLink.expires_at > now,
    )


def find(purpose: str, token: str) -> AccountLink | None:
    """The live link for this secret, without using it (to show the form it leads to)."""
    if not token or len(token) > 200:
        return None
    return db.session().scalar(select(AccountLink).where(*_live(purpose, token)))


def consume(purpose: str, token: str) -> AccountLink | None:
    """Use the link: one conditional UPDATE, so a link works exactly once even when two
    requests race (the loser's UPDATE matches no row). None if it was not live."""
    if not token or len(token) > 200:
        return None
    session = db.session()
    link_id = session.execute(
        update(AccountLink)
        .where(*_live(purpose, token))
        .values(used_at=utcnow())
        .returning(AccountLink.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    return session.get(AccountLink, link_id) if link_id is not None else None


def revoke(purpose: str, *, user_id: int | None = None, email: str | None = None) -> int:
    """Revoke the outstanding links of a purpose for a user or an address; how many."""
    conditions = [
        AccountLink.purpose == purpose,
        AccountLink.used_at.is_(None),
        AccountLink.revoked_at.is_(None),
    ]
    if user_id is not None:
        conditions.append(AccountLink.user_id == user_id)
    if email is not None:
        conditions.append(AccountLink.email == email)
    if user_id is None and email is None:
        raise ValueError("revoke needs user_id or email")
    return (
        db.session()
        .execute(
            update(AccountLink)
            .where(*conditions)
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        .rowcount
    )


def external_url(endpoint: str, **values) -> str:
    """The absolute URL of a route under ISSUER (scheme, host and path prefix), whatever
    the Host header of the request that caused the mail, and also outside any request
    (the CLI's `idp users invite`)."""
    issuer = urlsplit(current_app.config["ISSUER"])
    adapter = current_app.url_map.bind(
        issuer.netloc, script_name=issuer.path or "/", url_scheme=issuer.scheme
    )
    return adapter.build(endpoint, values, force_external=True)
