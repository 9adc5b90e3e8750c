"""The browser session: who is signed in, when, and how (auth_time and amr of OIDC Core §2)."""

from __future__ import annotations

import time

from flask import session
from flask_login import LoginManager, login_user, logout_user
from sqlalchemy import select

from .. import db
from ..models import User

login_manager = LoginManager()
login_manager.login_view = "auth.login"
login_manager.login_message = None
login_manager.session_protection = "basic"


@login_manager.user_loader
def load_user(sub: str) -> User | None:
    user = db.session().scalar(select(User).where(User.sub == sub))
    return user if user is not None and user.is_active else None


def start(user: User, methods: list[str]) -> None:
    """Begin a fresh session for the user; the old session's contents are dropped."""
    session.clear()
    login_user(user)
    session["auth_time"] = int(time.time())
    session["amr"] = methods
    session.permanent = False


def end() -> None:
    logout_user()
    session.clear()


def current_authentication() -> tuple[int, list[str]]:
    """(auth_time, amr) of the signed-in user."""
    return int(session.get("auth_time") or time.time()), list(session.get("amr") or ["pwd"])
