"""The outgoing mail queue: one row per message until the SMTP server has accepted it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text, bindparam, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Statement
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


# The sender's statements (idp/mail/delivery.py), built once from this table: not the ORM,
# since a notice per sign-in from a new browser makes delivery part of the sign-in's cost
# (docs/benchmarks.md). Each claims or settles one row by its id in one statement; the
# three of every delivery are ``db.Statement``s (prepared on PostgreSQL).
_T = MailMessage.__table__

# Pending rows, the earliest due first: the due ones are delivered, the first one not yet
# due tells the round how long to wait (the index ix_mail_messages_status serves both).
PENDING_ROWS = Statement(
    select(_T.c.id, _T.c.attempts, _T.c.next_attempt_at)
    .where(_T.c.status == PENDING)
    .order_by(_T.c.next_attempt_at, _T.c.id)
    .limit(bindparam("limit"))
)
# The claim: one worker's conditional UPDATE wins (attempts + 1, next try after a lease)
# and gets what it needs to transmit.
CLAIM = Statement(
    update(_T)
    .where(
        _T.c.id == bindparam("message_id"),
        _T.c.attempts == bindparam("seen_attempts"),
        _T.c.status == PENDING,
        _T.c.next_attempt_at <= bindparam("now"),
    )
    .values(attempts=bindparam("attempt"), next_attempt_at=bindparam("lease_until"))
    .returning(_T.c.id, _T.c.to_address, _T.c.subject, _T.c.message, _T.c.created_at)
)
# Accepted by the server: the body is erased (later messages carry single-use links).
MARK_SENT = Statement(
    update(_T)
    .where(_T.c.id == bindparam("message_id"))
    .values(status=SENT, sent_at=bindparam("now"), message=None, last_error=None)
)
MARK_RETRY = (
    update(_T)
    .where(_T.c.id == bindparam("message_id"))
    .values(last_error=bindparam("error"), next_attempt_at=bindparam("next_attempt_at"))
)
MARK_FAILED = (
    update(_T)
    .where(_T.c.id == bindparam("message_id"))
    .values(status=FAILED, last_error=bindparam("error"), failed_at=bindparam("now"))
)
