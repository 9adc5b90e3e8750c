"""Server-side browser sessions (OIDC Session Management's ``sid``) and their clients.

The browser cookie only points at a row here; ending the row ends the session in every
worker. ``session_clients`` records which relying parties a session signed into, which is
whom back-channel and front-channel logout must tell.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class UserSession(Base):
    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    auth_time: Mapped[int] = mapped_column()
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    # The factors really used, and when: [{"kind": "pwd"|"totp"|"recovery"|..., "at": epoch}].
    factors: Mapped[list[dict] | None] = mapped_column(JSON)
    user_agent: Mapped[str | None] = mapped_column(String(512))
    ip: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    end_reason: Mapped[str | None] = mapped_column(String(64))

    clients: Mapped[list[SessionClient]] = relationship(
        back_populates="session", cascade="all, delete-orphan"
    )


class SessionClient(Base):
    __tablename__ = "session_clients"

    session_id: Mapped[int] = mapped_column(
        ForeignKey("user_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True
    )
    first_at: Mapped[datetime] = mapped_column(default=utcnow)

    session: Mapped[UserSession] = relationship(back_populates="clients")


class LogoutDelivery(Base):
    """A back-channel logout token waiting to be POSTed to a client (with bounded retries)."""

    __tablename__ = "logout_deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    uri: Mapped[str] = mapped_column(Text)
    logout_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column()
    gave_up_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
