"""The outgoing mail queue: one row per message until the SMTP server has accepted it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow

PENDING, SENT, FAILED = "pending", "sent", "failed"


class MailMessage(Base):
    """A rendered message (RFC 5322 text) and its delivery state: pending, sent or failed.

    ``message`` is emptied once the server accepted it: later messages carry single-use links,
    and no copy needs to outlive the delivery. To and Subject stay for the operator.
    """

    __tablename__ = "mail_messages"
    __table_args__ = (Index("ix_mail_messages_status", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(255))
    message: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()
    failed_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
