"""Subject identifiers (OpenID Connect Core 1.0 §8): public or pairwise per client.

A public client sees the user's local ``sub``. A pairwise client sees

    sub = base64url(HMAC-SHA256(key, sector_identifier || 0x00 || local sub))

where the sector identifier (§8.1) is the host of the client's ``sector_identifier_uri``,
else the host of its redirect URIs (one host; several need a sector_identifier_uri). The
key is PAIRWISE_SECRET, else derived from SECRET_KEY: the values are stable, differ between
sectors, and cannot be computed (nor linked across sectors) without the server's secret.
Changing the key changes every pairwise sub: relying parties then see new users.

``subject_for(client, user)`` is the one place that decides what a client sees; every place
that emits a ``sub`` (ID token, UserInfo, JWT access token, introspection, logout token)
calls it. ID tokens come back as ``id_token_hint`` (and token exchange subjects), so each
pairwise sub put in an ID token is recorded (``pairwise_subjects``) and ``local_sub`` maps
it back to the user.

``sector_identifier_uri`` (§8.1, OIDC Registration §5): an https URL of a JSON array that
must contain every registered redirect URI; fetched at registration and in the admin UI
without redirects, with a short timeout and a size limit, like a client's jwks_uri, and
never from a private address (``idp.outbound``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from .. import db, outbound
from ..models import Client, PairwiseSubject, User
from ..urls import https_or_loopback_http

log = logging.getLogger(__name__)

PAIRWISE = "pairwise"
SUBJECT_TYPES = ("public", PAIRWISE)
SECTOR_MAX_BYTES = 64 * 1024
SECTOR_TIMEOUT = 5.0  # seconds; the registration request waits for it


def _key() -> bytes:
    secret = current_app.config.get("PAIRWISE_SECRET") or current_app.config["SECRET_KEY"]
    # A key of its own, so a pairwise sub reveals nothing about SECRET_KEY's other uses.
    return hmac.new(secret.encode(), b"idp pairwise subject identifiers v1", "sha256").digest()


def is_pairwise(client: Client | None) -> bool:
    return client is not None and client.subject_type == PAIRWISE


def sector_identifier(client: Client) -> str:
    """§8.1: the host of sector_identifier_uri, else the one host of the redirect URIs."""
    uri = client.sector_identifier_uri or (client.redirect_uris or [""])[0]
    return (urlsplit(uri).hostname or "").lower()


def pairwise_sub(sector: str, local_sub: str) -> str:
    digest = hmac.new(_key(), sector.encode() + b"\x00" + local_sub.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")


def subject_for(client: Client | None, user: User) -> str:
    """The ``sub`` this client sees for this user (§8)."""
    if not is_pairwise(client):
        return user.sub
    return pairwise_sub(sector_identifier(client), user.sub)


def remember(client: Client | None, user: User) -> str:
    """subject_for, recording a pairwise value so that it maps back (ID tokens only)."""
    sub = subject_for(client, user)
    if sub == user.sub:
        return sub
    # The ID token is built after the token endpoint committed its transaction, so the
    # record is written on its own autocommitted connection; a concurrent first sign-in
    # inserting the same pair is ignored (ON CONFLICT DO NOTHING).
    session = db.session()
    values = {"sector": sector_identifier(client), "subject": sub, "user_id": user.id}
    with session.get_bind().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        known = select(PairwiseSubject.id).where(
            PairwiseSubject.sector == values["sector"], PairwiseSubject.subject == sub
        )
        if conn.scalar(known) is None:
            insert = db.insert_for(conn.dialect.name)
            conn.execute(insert(PairwiseSubject).values(**values).on_conflict_do_nothing())
    return sub


def local_sub(client: Client | None, sub: str) -> str | None:
    """The local sub of a sub this client was given, or None if it names nobody."""
    if not is_pairwise(client):
        return sub
    return db.session().scalar(
        select(User.sub)
        .join(PairwiseSubject, PairwiseSubject.user_id == User.id)
        .where(PairwiseSubject.sector == sector_identifier(client), PairwiseSubject.subject == sub)
    )


# --- sector_identifier_uri (§8.1) ---------------------------------------------------------


def sector_problem(uri: str, redirect_uris: list[str]) -> str | None:
    """Why ``uri`` is not a usable sector_identifier_uri for these redirect URIs, or None."""
    parts = urlsplit(uri)
    if not https_or_loopback_http(parts):
        return "must be an https URL"
    try:
        answer = outbound.fetch(
            uri,
            timeout=SECTOR_TIMEOUT,
            max_bytes=SECTOR_MAX_BYTES,
            headers={"Accept": "application/json"},
        )
    except outbound.Refused as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        log.warning("could not fetch a sector_identifier_uri", extra={"error": str(exc)[:200]})
        return "could not be fetched"
    if not answer.ok:  # a redirect included: the URI is read where it was registered
        log.warning("could not fetch a sector_identifier_uri", extra={"error": answer.status})
        return "could not be fetched"
    body = answer.body
    if len(body) > SECTOR_MAX_BYTES:
        return f"is larger than {SECTOR_MAX_BYTES // 1024} KiB"
    try:
        listed = json.loads(body)
    except (ValueError, RecursionError):
        return "is not JSON"
    if not isinstance(listed, list) or not all(isinstance(u, str) for u in listed):
        return "must be a JSON array of URLs"
    missing = [u for u in redirect_uris if u not in listed]
    if missing:
        return f"does not list the redirect URI {missing[0][:80]}"
    return None


def subject_problem(
    subject_type: str | None, sector_uri: str | None, redirect_uris: list[str]
) -> tuple[str, str] | None:
    """(field, reason) why these settings cannot be saved, or None; fetches the sector URI."""
    if subject_type not in (None, *SUBJECT_TYPES):
        return "subject_type", "must be public or pairwise"
    if sector_uri:
        problem = sector_problem(sector_uri, redirect_uris)
        return ("sector_identifier_uri", problem) if problem else None
    if subject_type == PAIRWISE:
        hosts = {(urlsplit(u).hostname or "").lower() for u in redirect_uris}
        if len(hosts) != 1:
            # §8.1: redirect URIs on several hosts need a sector_identifier_uri.
            return "sector_identifier_uri", "is required when redirect URIs use several hosts"
    return None
