"""Password sign-in: one answer for every failure, equal cost whether the user exists.

Progressive lockout (OWASP Authentication Cheat Sheet, "Account Lockout"; NIST SP 800-63B
§5.2.2): after ``LOCKOUT_THRESHOLD`` consecutive failures the account is locked for
``LOCKOUT_BASE_SECONDS``, doubled by each further failure up to ``LOCKOUT_MAX_SECONDS``. A
locked account answers exactly like a wrong password, after the same argon2 work, so lockout
never tells whether an account exists. A successful sign-in, or an admin, resets the count.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import bindparam, func, or_, select, update

from .. import audit, db, metrics
from ..models import User, user_sql, utcnow
from . import passwords

# Built once (every sign-in runs it): the username as typed, or the email in any case.
_FIND_USER = select(User).where(
    or_(User.username == bindparam("username"), func.lower(User.email) == bindparam("email"))
)


def find_user(identifier: str) -> User | None:
    identifier = identifier.strip()
    email = identifier.lower()
    if db.driver_path():  # PostgreSQL: a prepared statement on the driver (models/user_sql.py)
        return user_sql.find_user(identifier, email)
    return db.session().scalar(_FIND_USER, {"username": identifier, "email": email})


def authenticate(identifier: str, password: str, *, complete: bool = True) -> User | None:
    """The user if the credentials are right and the account is enabled, else None.

    ``complete=False``: the password is only the first factor (auth.mfa), so the failure
    count is kept until the second factor is right too (else each correct password would
    reset the lockout that wrong second factors build up).
    """
    try:
        passwords.check_length(password)
    except passwords.PasswordTooLong:
        audit.record("login.failure", actor=identifier[:150], reason="password too long")
        metrics.login_failed("password_too_long")
        return None
    user = find_user(identifier)
    # Verified even when locked: the answer's cost must not tell the account is locked.
    matched = passwords.match(user.password_hash if user else None, password)
    ok = matched is not None
    if user is not None and is_locked(user):
        audit.record("login.failure", actor=identifier[:150], reason="locked")
        metrics.login_failed("locked")
        return None
    if not ok or user is None or not user.is_active:
        reason = "disabled" if ok and user is not None else "bad credentials"
        audit.record("login.failure", actor=identifier[:150], reason=reason)
        metrics.login_failed(reason.replace(" ", "_"))
        if user is not None and not ok:
            record_failure(user)
        return None
    if complete:
        clear_failures(user)
    # A hash of the raw form (made before NFKC normalisation) is replaced by the NFKC one.
    if matched == passwords.RAW or passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
        audit.record("password.rehashed", actor=user.sub, nfkc=matched == passwords.RAW)
    audit.record("login.success", actor=user.sub)
    return user


def clear_failures(user: User) -> None:
    """A complete sign-in resets the lockout count."""
    if user.failed_logins or user.locked_until is not None:
        user.failed_logins = 0
        user.locked_until = None


def is_locked(user: User) -> bool:
    return user.locked_until is not None and user.locked_until > utcnow()


def lock_seconds(failures: int) -> int:
    """How long the account is locked after this many consecutive failures (0: not locked)."""
    config = current_app.config
    threshold = int(config["LOCKOUT_THRESHOLD"])
    if threshold <= 0 or failures < threshold:
        return 0
    base, ceiling = int(config["LOCKOUT_BASE_SECONDS"]), int(config["LOCKOUT_MAX_SECONDS"])
    return min(base * 2 ** min(failures - threshold, 32), ceiling)


def record_failure(user: User) -> None:
    """Count a wrong password (atomically: workers may race) and lock when it is time."""
    failures = (
        db.session()
        .execute(
            update(User)
            .where(User.id == user.id)
            .values(failed_logins=User.failed_logins + 1)
            .returning(User.failed_logins)
        )
        .scalar_one()
    )
    seconds = lock_seconds(failures)
    if seconds:
        user.locked_until = utcnow() + timedelta(seconds=seconds)
        audit.record("login.locked", actor=user.sub, failures=failures, seconds=seconds)
