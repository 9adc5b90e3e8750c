"""Creating users: the service `idp users create`, the admin UI and `idp demo` call, so that
a new account's password is hashed (argon2id, ``passwords.py``) in one place; and the
"your password was changed" notice every way of changing a password sends.

Each caller checks its own input first (which usernames and emails are taken, the form).
"""

from __future__ import annotations

from .. import mail
from ..models import User, utcnow
from . import links
from .passwords import hash_password


def create_user(session, *, username: str, password: str | None = None, **claims) -> User:
    """A new user with the hash of ``password``; without one, password sign-in is off.

    Raises ``passwords.PasswordTooLong`` before anything is added to the session.
    """
    user = User(
        username=username,
        password_hash=hash_password(password) if password else None,
        **claims,
    )
    session.add(user)
    return user


def notify_password_changed(user: User, how: str) -> None:
    """Mail "your password was changed" to the user's address, if there is one."""
    if not user.email:
        return
    mail.send(
        user.email,
        "Your password was changed",
        "password_changed",
        name=user.name or user.username,
        username=user.username,
        how=how,
        when=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        forgot_url=links.external_url("password.forgot"),
    )
