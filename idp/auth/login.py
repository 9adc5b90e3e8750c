"""Password sign-in: one answer for every failure, equal cost whether the user exists."""

from __future__ import annotations

from sqlalchemy import func, or_, select

from .. import audit, db
from ..models import User
from . import passwords


def find_user(identifier: str) -> User | None:
    identifier = identifier.strip()
    return db.session().scalar(
        select(User).where(
            or_(User.username == identifier, func.lower(User.email) == identifier.lower())
        )
    )


def authenticate(identifier: str, password: str) -> User | None:
    """The user if the credentials are right and the account is enabled, else None."""
    try:
        passwords.check_length(password)
    except passwords.PasswordTooLong:
        audit.record("login.failure", actor=identifier[:150], reason="password too long")
        return None
    user = find_user(identifier)
    ok = passwords.verify(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        reason = "disabled" if ok and user is not None else "bad credentials"
        audit.record("login.failure", actor=identifier[:150], reason=reason)
        return None
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        audit.record("password.rehashed", actor=user.sub)
    audit.record("login.success", actor=user.sub)
    return user
