"""Signing keys, in the database so that every worker signs and publishes the same set."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class SigningKey(Base):
    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(16))
    private_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when a newer key of the same alg takes over; the public key stays published
    # until ``publish_until`` so tokens it signed keep verifying.
    retired_at: Mapped[datetime | None] = mapped_column()
    publish_until: Mapped[datetime | None] = mapped_column()
