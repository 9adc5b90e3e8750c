"""Creating users: the service `idp users create`, the admin UI and `idp demo` call, so that
a new account's password is hashed (argon2id, ``passwords.py``) in one place.

Each caller checks its own input first (which usernames and emails are taken, the form).
"""

from __future__ import annotations

from ..models import User
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
