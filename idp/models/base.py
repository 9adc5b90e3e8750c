"""Declarative base and column helpers shared by every model."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime}


# The largest primary key: ids are INTEGER columns, 32 bits in PostgreSQL. A larger number
# from a URL or a paging cursor names no row, and PostgreSQL would refuse it with an error.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


def secret_hash(value: str) -> str:
    """SHA-256 of a long random secret (client secret, token, code) for storage.

    These values carry at least 128 bits of entropy, so a fast hash is enough to make a
    database leak useless; argon2 would cap the token endpoint at a few requests a second.
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_matches(value: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented secret with its stored hash."""
    if not stored_hash:
        return False
    return hmac.compare_digest(secret_hash(value), stored_hash)
