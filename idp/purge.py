"""Purging of what has expired, so that no table grows without bound (RFC 6749 §10.5, §4.1.2).

Rows are deleted ``PURGE_RETENTION`` seconds after they stopped mattering:

    authorization_codes   expired (used or not); so are device_codes and
                          pushed_authorization_requests
    tokens                access token and refresh token both expired, or revoked
    user_sessions         ended, or past their idle or absolute lifetime (their
                          session_clients go with them, ON DELETE CASCADE)
    logout_deliveries     created longer ago than the logout token lives
    mail_messages         sent (failed ones stay until `idp mail retry` sends them)
    *replay* tables       entries (JWT jti, DPoP proofs) whose expires_at has passed

A rotated refresh token stays until it expires, because presenting it again must still revoke
its family (RFC 9700 §4.14.2). Run by ``idp purge``, and by each worker at most every
``PURGE_INTERVAL`` seconds after a response has been sent, in batches so that no statement
holds locks for long. Several workers purging at once is harmless: deletes are idempotent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import Flask, Response
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from . import db
from .models import (
    AccountLink,
    AuthorizationCode,
    Base,
    DeviceCode,
    LogoutDelivery,
    MailMessage,
    PushedAuthorizationRequest,
    Token,
    UserSession,
    utcnow,
)

log = logging.getLogger("idp.purge")

BATCH = 5000


def _delete_in_batches(session: Session, table, condition) -> int:
    """Delete the rows matching condition, BATCH at a time, committing after each batch."""
    keys = list(table.primary_key.columns)
    total = 0
    if len(keys) != 1:
        total = session.execute(delete(table).where(condition)).rowcount or 0
        session.commit()
        return total
    key = keys[0]
    while True:
        ids = session.scalars(select(key).where(condition).limit(BATCH)).all()
        if not ids:
            return total
        total += session.execute(delete(table).where(key.in_(ids))).rowcount or 0
        session.commit()
        if len(ids) < BATCH:
            return total


def replay_tables() -> list:
    """Tables of replay-detection entries (JWT jti, DPoP proofs) with an expires_at column."""
    return [
        table
        for name, table in Base.metadata.tables.items()
        if "replay" in name and "expires_at" in table.c
    ]


def rules(config, now: datetime) -> dict[str, tuple]:
    cutoff = now - timedelta(seconds=int(config["PURGE_RETENTION"]))
    idle = timedelta(seconds=int(config["SESSION_IDLE_LIFETIME"]))
    absolute = timedelta(seconds=int(config["SESSION_ABSOLUTE_LIFETIME"]))
    logout_lifetime = timedelta(seconds=int(config.get("LOGOUT_TOKEN_LIFETIME", 120)))
    found = {
        "authorization_codes": (AuthorizationCode, AuthorizationCode.expires_at < cutoff),
        "tokens": (
            Token,
            or_(
                Token.revoked_at < cutoff,
                and_(
                    Token.access_expires_at < cutoff,
                    or_(Token.refresh_expires_at.is_(None), Token.refresh_expires_at < cutoff),
                ),
            ),
        ),
        "user_sessions": (
            UserSession,
            or_(
                UserSession.ended_at < cutoff,
                UserSession.last_seen_at < cutoff - idle,
                UserSession.created_at < cutoff - absolute,
            ),
        ),
        "logout_deliveries": (LogoutDelivery, LogoutDelivery.created_at < cutoff - logout_lifetime),
        "mail_messages": (MailMessage, MailMessage.sent_at < cutoff),
        # Reset, verification, invitation and registration links (auth.links): dead once
        # expired, used or not; the admin UI's invitation state reads the latest one.
        "account_links": (AccountLink, AccountLink.expires_at < cutoff),
        # RFC 8628 device codes and RFC 9126 pushed requests: short-lived, like codes.
        "device_codes": (DeviceCode, DeviceCode.expires_at < cutoff),
        "pushed_authorization_requests": (
            PushedAuthorizationRequest,
            PushedAuthorizationRequest.expires_at < cutoff,
        ),
    }
    found = {name: (model.__table__, condition) for name, (model, condition) in found.items()}
    for table in replay_tables():
        found[table.name] = (table, table.c.expires_at < cutoff)
    return found


def purge(session: Session, config, now: datetime | None = None) -> dict[str, int]:
    """Delete every expired row; returns how many per table."""
    now = now or utcnow()
    counts = {
        name: _delete_in_batches(session, table, condition)
        for name, (table, condition) in rules(config, now).items()
    }
    log.info("purged expired rows", extra={"deleted": counts})
    return counts


def _purge_after_response(app: Flask) -> None:
    with app.app_context():
        try:
            purge(db.session(), app.config)
        except Exception:  # a failed purge is retried at the next interval
            log.exception("automatic purge failed")
            db.session().rollback()


def purge_hook(app: Flask) -> Callable[[Response], Response]:
    """The after-request hook that schedules a purge when this worker's interval has passed."""
    state = app.extensions["idp.purge"]

    def maybe_purge(response: Response) -> Response:
        now = time.monotonic()
        if now < state["next"]:  # nearly every response: one comparison
            return response
        if float(app.config["PURGE_INTERVAL"]) > 0:
            state["next"] = now + float(app.config["PURGE_INTERVAL"])
            response.call_on_close(lambda: _purge_after_response(app))
        return response

    return maybe_purge


def init_app(app: Flask) -> None:
    interval = float(app.config["PURGE_INTERVAL"])
    # A random first delay spreads the workers' purges over the interval.
    app.extensions["idp.purge"] = {"next": time.monotonic() + random.uniform(0.5, 1.0) * interval}
    app.after_request(purge_hook(app))
