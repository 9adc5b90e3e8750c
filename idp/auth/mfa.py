"""STUB for the passkey branch only: the lead replaces this file with the real MFA framework
(issue #15) at merge. It has exactly the contract the passkey second-factor view uses:

    begin(user, amr, next_url)   the password was right; the second factor is pending
    pending_user() -> User|None  whose second factor is pending in this browser
    finish(amr_list) -> str      the factor was proven: start the session, return next URL
"""

from __future__ import annotations

import time

from flask import session as cookie
from sqlalchemy import select

from .. import db
from ..models import User
from . import session

PENDING = "mfa.pending"
LIFETIME = 600


def begin(user: User, amr: list[str], next_url: str) -> None:
    cookie[PENDING] = {"sub": user.sub, "amr": list(amr), "next": next_url, "at": time.time()}


def pending_user() -> User | None:
    state = cookie.get(PENDING)
    if not isinstance(state, dict) or state.get("at", 0) + LIFETIME < time.time():
        return None
    user = db.session().scalar(select(User).where(User.sub == state.get("sub")))
    return user if user is not None and user.is_active else None


def finish(amr_list: list[str]) -> str:
    state = cookie.pop(PENDING)
    user = db.session().scalar(select(User).where(User.sub == state["sub"]))
    amr = list(dict.fromkeys([*state["amr"], *amr_list]))
    session.start(user, amr)
    return state["next"]
