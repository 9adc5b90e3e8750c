"""Browser sessions, kept server-side: a ``user_sessions`` row per sign-in.

The signed cookie holds only the user's ``sub`` and the session's ``sid``. Every request
checks the row, so ending it (sign-out, "sign out everywhere", an admin, a disabled account)
ends the session in every worker at once. ``sid`` is the OpenID Connect session id that ID
tokens and logout tokens carry. Idle and absolute lifetimes are configuration.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta

from flask import current_app, g, request, session
from flask_login import LoginManager, login_user, logout_user
from sqlalchemy import select

from .. import db
from ..models import SessionClient, User, UserSession, utcnow

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None
login_manager.session_protection = "basic"

# last_seen_at is written at most this often, to keep writes off most requests.
TOUCH_INTERVAL = timedelta(seconds=60)


def is_live(row: UserSession | None) -> bool:
    if row is None or row.ended_at is not None:
        return False
    now = utcnow()
    idle = timedelta(seconds=int(current_app.config["SESSION_IDLE_LIFETIME"]))
    absolute = timedelta(seconds=int(current_app.config["SESSION_ABSOLUTE_LIFETIME"]))
    return row.last_seen_at + idle > now and row.created_at + absolute > now


@login_manager.user_loader
def load_user(sub: str) -> User | None:
    sid = session.get("sid")
    if not sid:
        return None
    s = db.session()
    row = s.scalar(select(UserSession).where(UserSession.sid == sid))
    user = s.scalar(select(User).where(User.sub == sub))
    if user is None or not user.is_active or not is_live(row) or row.user_id != user.id:
        return None
    if utcnow() - row.last_seen_at > TOUCH_INTERVAL:
        row.last_seen_at = utcnow()
        s.commit()
    g.user_session = row
    return user


def start(user: User, methods: list[str]) -> UserSession:
    """Begin a fresh session for the user; the old cookie contents are dropped."""
    session.clear()
    row = UserSession(
        sid=secrets.token_urlsafe(24),
        user_id=user.id,
        auth_time=int(time.time()),
        amr=methods,
        user_agent=(request.headers.get("User-Agent") or "")[:512] or None,
        ip=request.remote_addr,
    )
    db.session().add(row)
    user.last_login_at = utcnow()
    login_user(user)
    session["sid"] = row.sid
    session["auth_time"] = row.auth_time
    session["amr"] = methods
    session.permanent = False
    return row


def current() -> UserSession | None:
    """The live session row of this request, if someone is signed in."""
    return g.get("user_session")


def current_sid() -> str | None:
    row = current()
    return row.sid if row is not None else None


def end_row(row: UserSession, reason: str) -> None:
    if row.ended_at is None:
        row.ended_at = utcnow()
        row.end_reason = reason


def terminate(rows: list[UserSession], reason: str) -> None:
    """End sessions with every consequence sign-out has (the one entry point for ending)."""
    for row in rows:
        end_row(row, reason)


def end(reason: str = "logout") -> UserSession | None:
    """End this browser's session (the row and the cookie)."""
    row = current()
    if row is not None:
        terminate([row], reason)
    logout_user()
    session.clear()
    return row


def end_all(user_id: int, reason: str, except_sid: str | None = None) -> list[UserSession]:
    """End every live session of a user (sign out everywhere, admin action, disabled user)."""
    query = select(UserSession).where(
        UserSession.user_id == user_id, UserSession.ended_at.is_(None)
    )
    if except_sid:
        query = query.where(UserSession.sid != except_sid)
    rows = list(db.session().scalars(query))
    terminate(rows, reason)
    return rows


def remember_client(sid: str | None, client_id: str) -> None:
    """Record that this session signed into the client (needed for logout fan-out)."""
    if not sid:
        return
    s = db.session()
    row = s.scalar(select(UserSession).where(UserSession.sid == sid))
    if row is None:
        return
    exists = s.get(SessionClient, (row.id, client_id))
    if exists is None:
        s.add(SessionClient(session_id=row.id, client_id=client_id))


def current_authentication() -> tuple[int, list[str]]:
    """(auth_time, amr) of the signed-in user."""
    row = current()
    if row is not None:
        return row.auth_time, list(row.amr or ["pwd"])
    return int(session.get("auth_time") or time.time()), list(session.get("amr") or ["pwd"])


__all__ = [
    "current", "current_authentication", "current_sid", "end", "end_all", "end_row",
    "is_live", "load_user", "login_manager", "remember_client", "start", "terminate",
]
