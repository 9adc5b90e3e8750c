"""Password hashing with argon2id (argon2-cffi), rehash on login, and equal-cost misses."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import Flask, current_app


class PasswordTooLong(ValueError):
    """Refused before hashing: an attacker must not make us hash megabytes."""


def init_app(app: Flask) -> None:
    hasher = PasswordHasher(
        memory_cost=int(app.config["ARGON2_MEMORY_COST"]),
        time_cost=int(app.config["ARGON2_TIME_COST"]),
        parallelism=int(app.config["ARGON2_PARALLELISM"]),
    )
    app.extensions["idp.passwords"] = hasher
    # Verified when a username is unknown, so a miss costs the same as a wrong password.
    app.extensions["idp.passwords.dummy"] = dummy_hash(
        hasher.memory_cost, hasher.time_cost, hasher.parallelism
    )


@lru_cache(maxsize=8)
def dummy_hash(memory_cost: int, time_cost: int, parallelism: int) -> str:
    """The hash of no one's password, made once per process and parameter set: it only has
    to cost what a real verification costs (its parameters), and one argon2 hash per app
    was half of create_app's time (every test builds an app)."""
    hasher = PasswordHasher(memory_cost=memory_cost, time_cost=time_cost, parallelism=parallelism)
    return hasher.hash("not-a-password-of-anyone")


def _hasher() -> PasswordHasher:
    return current_app.extensions["idp.passwords"]


def check_length(password: str) -> None:
    limit = int(current_app.config["PASSWORD_MAX_BYTES"])
    if len(password.encode("utf-8")) > limit:
        raise PasswordTooLong(f"passwords are limited to {limit} bytes")


def hash_password(password: str) -> str:
    check_length(password)
    return _hasher().hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    """True if the password matches; with no stored hash, burn one verification anyway."""
    check_length(password)
    try:
        if not stored_hash:
            _hasher().verify(current_app.extensions["idp.passwords.dummy"], password + "\0")
            return False
        return _hasher().verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """True when the hash was made with other parameters than the configured ones."""
    return _hasher().check_needs_rehash(stored_hash)
