"""The user's own data: browsers a user signed in from, and requests to delete an account.

``KnownDevice`` rows let the server tell a sign-in from a new browser (a notice by mail).
The browser holds a long random cookie; only a SHA-256 of it, salted with the user's
``sub``, is stored, so two accounts used in one browser do not share a stored value.
``DeletionRequest``: a user asks, an administrator approves (the account is deleted) or
rejects; a pending request can be cancelled by its user. At most one is pending per user.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .user import User

PENDING, APPROVED, REJECTED, CANCELLED = "pending", "approved", "rejected", "cancelled"


class KnownDevice(Base):
    __tablename__ = "known_devices"
    __table_args__ = (UniqueConstraint("user_id", "token_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    # "Firefox on Linux", for the user's data export; never used for a decision.
    description: Mapped[str | None] = mapped_column(String(120))
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeletionRequest(Base):
    __tablename__ = "deletion_requests"
    __table_args__ = (
        # One pending request per user, even when two requests race.
        Index(
            "uq_deletion_requests_pending",
            "user_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column()
    # Username of the administrator who approved or rejected it.
    decided_by: Mapped[str | None] = mapped_column(String(150))

    user: Mapped[User] = relationship(lazy="joined")
