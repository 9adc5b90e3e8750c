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

from blinker import Namespace
from flask import current_app, g, request, session
from flask_login import LoginManager, login_user, logout_user
from sqlalchemy import Insert, bindparam, insert, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from .. import audit, db
from ..models import SessionClient, User, UserSession, utcnow
from ..models.session_sql import find_session_and_user

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None
login_manager.session_protection = "basic"

# last_seen_at is written at most this often, to keep writes off most requests.
TOUCH_INTERVAL = timedelta(seconds=60)

# Sent with each row ``terminate`` ends, with ``reason`` and ``keep_offline``. The protocol
# layer listens (``oauth.session_end``, connected by ``oauth.init_app``): this layer knows
# nothing of tokens. Receivers return the audit details of their consequences (a dict).
session_ended = Namespace().signal("session-ended")


def is_live(row: UserSession | None) -> bool:
    if row is None or row.ended_at is not None:
        return False
    now = utcnow()
    idle = timedelta(seconds=int(current_app.config["SESSION_IDLE_LIFETIME"]))
    absolute = timedelta(seconds=int(current_app.config["SESSION_ABSOLUTE_LIFETIME"]))
    return row.last_seen_at + idle > now and row.created_at + absolute > now


_SIGNED_IN = db.Statement(
    update(User)
    .where(User.id == bindparam("user_id"))
    .values(last_login_at=bindparam("at"), updated_at=bindparam("at"))
)

# Built once: every signed-in request runs it.
_SESSION_AND_USER = (
    select(UserSession, User)
    .join(User, User.id == UserSession.user_id)
    .where(UserSession.sid == bindparam("sid"))
)


@login_manager.user_loader
def load_user(sub: str) -> User | None:
    sid = session.get("sid")
    if not sid:
        return None
    s = db.session()
    # One statement for the row and its user (every signed-in request runs this): the
    # cookie's sub must name the row's user, else nobody is signed in. On PostgreSQL it
    # is a prepared statement on the driver (models/session_sql.py).
    if db.driver_path():
        found = find_session_and_user(sid)
    else:
        found = s.execute(_SESSION_AND_USER, {"sid": sid}).first()
    row, user = found if found is not None else (None, None)
    if user is not None and user.sub != sub:
        user = None
    if row is not None and row.ended_at is None and not is_live(row):
        terminate([row], "expired")  # timed out: end it with every consequence, now
        s.commit()
    if user is None or not user.is_active or not is_live(row) or row.user_id != user.id:
        return None
    if utcnow() - row.last_seen_at > TOUCH_INTERVAL:
        row.last_seen_at = utcnow()
        s.commit()
    g.user_session = row
    return user


def start(user: User, methods: list[str], factors: list[dict] | None = None) -> UserSession:
    """Begin a session for the user; the old cookie contents are dropped.

    ``factors`` (the row's factor record, auth.mfa) is written with the row itself, not by
    an UPDATE after it.

    Signing in again as the same user in the same browser re-authenticates the live session
    (same sid, new auth_time and amr), so relying parties keep their session; signing in as
    someone else ends the previous user's session with every consequence.
    """
    s = db.session()
    previous_sid = session.get("sid")
    previous = (
        s.scalar(select(UserSession).where(UserSession.sid == previous_sid))
        if previous_sid
        else None
    )
    session.clear()
    now = time.time()
    # The user row is written before any session row, the order every writer keeps (an
    # admin disabling the user, oauth.tokens.settle's row locks), so none waits in a cycle.
    # One UPDATE on the transaction's connection, then the session row's INSERT
    # (``_new_row``), not ORM flushes: the user's other changes go in the flush at commit.
    at = utcnow()
    _SIGNED_IN.execute({"user_id": user.id, "at": at})
    set_committed_value(user, "last_login_at", at)
    set_committed_value(user, "updated_at", at)
    user_agent = (request.headers.get("User-Agent") or "")[:512] or None
    if previous is not None and previous.user_id == user.id and is_live(previous):
        row = previous
        row.auth_time = int(now)
        row.amr = methods
        row.last_seen_at = utcnow()
        row.user_agent = user_agent
        row.ip = request.remote_addr
        if factors is not None:
            row.factors = factors
    else:
        if previous is not None:
            terminate([previous], "replaced by another sign-in")
        row = _new_row(user, int(now), at, methods, factors, user_agent)
    login_user(user)
    g.user_session = row
    session["sid"] = row.sid
    session["auth_time"] = row.auth_time
    # auth_time has whole seconds (OIDC Core §2); the exact instant decides "signed in
    # after" a pushed request arrived (oauth.par), which a second cannot.
    session["signed_in_at"] = now
    session["amr"] = methods
    session.permanent = False
    return row


_SESSION_COLUMNS = (
    "sid", "user_id", "created_at", "last_seen_at", "auth_time", "amr", "factors",
    "user_agent", "ip", "ended_at", "end_reason",
)  # fmt: skip
_INSERT_SESSION = db.Statement(
    insert(UserSession)
    .values({name: bindparam(name) for name in _SESSION_COLUMNS})
    .returning(UserSession.id)
)


def _new_row(user: User, auth_time: int, at, methods, factors, user_agent) -> UserSession:
    """A new session row, INSERTed at once (one statement, not an ORM flush at commit) and
    then added to the ORM session as the persistent object it is, loaded with what it holds:
    the request (``current()``) and the caller's later changes use it as any loaded row."""
    values = {
        "sid": secrets.token_urlsafe(24), "user_id": user.id, "created_at": at,
        "last_seen_at": at, "auth_time": auth_time, "amr": methods, "factors": factors,
        "user_agent": user_agent, "ip": request.remote_addr, "ended_at": None,
        "end_reason": None,
    }  # fmt: skip
    row_id = _INSERT_SESSION.execute(values).fetchone()[0]
    # As if loaded (db.as_loaded): nothing left to flush, and no attribute event per column
    # as the model's constructor would fire.
    return db.as_loaded(UserSession, {"id": row_id, **values})


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


def terminate(rows: list[UserSession], reason: str) -> list[UserSession]:
    """End sessions with every consequence sign-out has (the one entry point for ending).

    Each live row is ended (a conditional UPDATE, so two workers never end it twice); the
    tokens issued in it are revoked by the sign-out policy; a logout token is queued for
    every client with a back-channel logout URI, sent after the caller commits. Returns
    the rows this call ended. Front-channel logout needs the browser: see
    ``oauth.logout.frontchannel_uris``.
    """
    s = db.session()
    keep_offline = bool(current_app.config["SIGN_OUT_KEEPS_OFFLINE_ACCESS"])
    ended = []
    for row in rows:
        if row.ended_at is not None:
            continue
        won = s.execute(
            update(UserSession)
            .where(UserSession.id == row.id, UserSession.ended_at.is_(None))
            .values(ended_at=utcnow(), end_reason=reason)
            .execution_options(synchronize_session=False)
        ).rowcount
        s.refresh(row)
        if won != 1:
            continue
        ended.append(row)
        consequences = {}  # tokens_revoked, backchannel_queued (oauth.session_end)
        for _, details in session_ended.send(row, reason=reason, keep_offline=keep_offline):
            consequences.update(details or {})
        sub = s.scalar(select(User.sub).where(User.id == row.user_id))
        audit.record(
            "session.ended",
            target=sub,
            session_id=row.id,
            reason=reason,
            **consequences,
        )
    return ended


def end(reason: str = "logout") -> UserSession | None:
    """End this browser's session (the row and the cookie)."""
    row = current()
    if row is not None:
        terminate([row], reason)
    logout_user()
    session.clear()
    g.pop("user_session", None)
    return row


def end_all(user_id: int, reason: str, except_sid: str | None = None) -> list[UserSession]:
    """End every live session of a user (sign out everywhere, admin action, disabled user)."""
    query = select(UserSession).where(
        UserSession.user_id == user_id, UserSession.ended_at.is_(None)
    )
    if except_sid:
        query = query.where(UserSession.sid != except_sid)
    return terminate(list(db.session().scalars(query)), reason)


def live_sessions(user_id: int) -> list[UserSession]:
    """The user's sessions that are still live, most recently seen first."""
    rows = db.session().scalars(
        select(UserSession)
        .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    )
    return [row for row in rows if is_live(row)]


def expire_timed_out(limit: int = 500) -> int:
    """End sessions past their idle or absolute lifetime, telling their relying parties."""
    now = utcnow()
    idle = timedelta(seconds=int(current_app.config["SESSION_IDLE_LIFETIME"]))
    absolute = timedelta(seconds=int(current_app.config["SESSION_ABSOLUTE_LIFETIME"]))
    s = db.session()
    rows = list(
        s.scalars(
            select(UserSession)
            .where(
                UserSession.ended_at.is_(None),
                or_(
                    UserSession.last_seen_at <= now - idle, UserSession.created_at <= now - absolute
                ),
            )
            .limit(limit)
        )
    )
    ended = terminate(rows, "expired")
    s.commit()
    return len(ended)


def remember_client(sid: str | None, client_id: str) -> None:
    """Record that this session signed into the client (needed for logout fan-out)."""
    if not sid:
        return
    s = db.session()
    row = current()  # the row this request's user loader read, if it is that session
    if row is None or row.sid != sid:
        row = s.scalar(select(UserSession).where(UserSession.sid == sid))
    if row is None:
        return
    # One statement, not a look-up and an insert: a pair already recorded stays as it was
    # (its first_at kept), and two racing requests cannot both insert it. It runs on the
    # transaction's connection: it needs nothing of what the ORM holds unflushed.
    _REMEMBER_CLIENT.execute({"session_id": row.id, "client_id": client_id})  # first_at: default


def _remember_client_statement(dialect: str) -> Insert:
    """INSERT ... ON CONFLICT DO NOTHING into session_clients, for ``dialect``."""
    insert = db.insert_for(dialect)
    return (
        insert(SessionClient)
        .values(session_id=bindparam("session_id"), client_id=bindparam("client_id"))
        .on_conflict_do_nothing(index_elements=["session_id", "client_id"])
    )


_REMEMBER_CLIENT = db.Statement(_remember_client_statement)


def current_authentication() -> tuple[int, list[str]]:
    """(auth_time, amr) of the signed-in user."""
    row = current()
    if row is not None:
        return row.auth_time, list(row.amr or ["pwd"])
    return int(session.get("auth_time") or time.time()), list(session.get("amr") or ["pwd"])


__all__ = [
    "current",
    "current_authentication",
    "current_sid",
    "end",
    "end_all",
    "end_row",
    "expire_timed_out",
    "is_live",
    "live_sessions",
    "load_user",
    "login_manager",
    "remember_client",
    "start",
    "terminate",
]
