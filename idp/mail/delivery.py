"""Delivery of queued mail: SMTP (RFC 5321) or, without SMTP_HOST, the outbox folder.

    mail_messages row (pending) ──► Sender thread: deliver_due()
        claim a due row (conditional UPDATE: attempts+1, next try later = a lease)
        transmit: SMTP [STARTTLS | TLS] [AUTH] MAIL RCPT DATA, or instance/outbox/<id>.eml
        250 after DATA ─► sent (body erased) │ 5xx ─► failed │ else retry, delay doubled,
        until MAIL_ATTEMPTS ─► failed;  retry_failed() puts failed rows back in the queue

A message is marked sent only after the server accepted it (RFC 5321 §4.2.1: 2yz), so a
crash between the two can send it twice but never lose it.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import event, select, update

from .. import audit, db, metrics
from ..background import Worker, seconds_until_due
from ..models import MailMessage, utcnow
from ..models.mail import FAILED, PENDING, SENT
from .message import envelope_sender

log = logging.getLogger("idp.mail")

DEFAULT_PORTS = {"starttls": 587, "ssl": 465, "none": 25}


class Undelivered(Exception):
    """The message was not accepted; ``permanent`` when sending it again cannot help."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.permanent = permanent


def outbox_dir(app: Flask | None = None) -> Path:
    return Path((app or current_app).instance_path) / "outbox"


def tls_context() -> ssl.SSLContext:
    """Certificate and host name checked against the system's trust store."""
    return ssl.create_default_context()


def smtp_reply(code: int, text: bytes | str) -> Undelivered:
    """RFC 5321 §4.2.1: 4yz is transient (try again later), 5yz permanent."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return Undelivered(f"SMTP {code} {text}"[:300], permanent=500 <= code < 600)


def transmit_smtp(config, to: str, message: str) -> None:
    """One SMTP conversation; raises Undelivered unless the server took the message."""
    security = config["SMTP_SECURITY"]
    host = config["SMTP_HOST"]
    port = int(config["SMTP_PORT"] or DEFAULT_PORTS[security])
    timeout = float(config["SMTP_TIMEOUT"])
    try:
        if security == "ssl":
            connection = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls_context())
        else:
            connection = smtplib.SMTP(host, port, timeout=timeout)
        with connection:
            connection.ehlo()
            if security == "starttls":
                # Never fall back to plain text: without STARTTLS the password and the
                # message would cross the network readable (SMTPNotSupportedError).
                connection.starttls(context=tls_context())
                connection.ehlo()
            if config["SMTP_USERNAME"]:
                connection.login(str(config["SMTP_USERNAME"]), str(config["SMTP_PASSWORD"]))
            connection.sendmail(envelope_sender(), [to], message.encode("ascii"))
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise smtp_reply(code, text) from None
    except smtplib.SMTPResponseException as exc:
        raise smtp_reply(exc.smtp_code, exc.smtp_error) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS failed, dropped
        raise Undelivered(f"{type(exc).__name__}: {exc}"[:300]) from None


def transmit_outbox(row: MailMessage) -> Path:
    """Development: the message as a .eml file (readable by any mail program)."""
    folder = outbox_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = row.created_at.strftime("%Y%m%dT%H%M%S")
    path = folder / f"{stamp}-{row.id}.eml"
    temporary = path.with_suffix(".tmp")
    try:
        # 0600: later messages carry single-use links.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write((row.message or "").encode("ascii"))
        os.replace(temporary, path)
    except OSError as exc:
        raise Undelivered(f"outbox: {exc}") from None
    # Only To and Subject: the body will carry tokens.
    log.info("mail to=%s subject=%r written to %s", row.to_address, row.subject, path)
    return path


def transmit(row: MailMessage) -> None:
    config = current_app.config
    if config["SMTP_HOST"]:
        transmit_smtp(config, row.to_address, row.message or "")
    else:
        transmit_outbox(row)


def retry_delay(attempt: int) -> timedelta:
    """Delay after the given (1-based) failed attempt: the base delay, doubled each time."""
    base = float(current_app.config["MAIL_RETRY_DELAY"])
    return timedelta(seconds=base * 2 ** (attempt - 1))


def due_ids(limit: int) -> list[int]:
    s = db.session()
    ids = s.scalars(
        select(MailMessage.id)
        .where(MailMessage.status == PENDING, MailMessage.next_attempt_at <= utcnow())
        .order_by(MailMessage.next_attempt_at, MailMessage.id)
        .limit(limit)
    ).all()
    s.commit()  # no transaction stays open while we talk to the SMTP server
    return list(ids)


def deliver_due(limit: int = 100) -> int:
    """Attempt every message that is due now; returns how many were sent."""
    return sum(deliver_one(i) for i in due_ids(limit))


def deliver_one(message_id: int) -> bool:
    config = current_app.config
    s = db.session()
    row = s.get(MailMessage, message_id, populate_existing=True)
    now = utcnow()
    if row is None or row.status != PENDING or row.next_attempt_at > now:
        return False
    attempt = row.attempts + 1
    # Claim the row: the single worker whose UPDATE matches sends it; the new
    # next_attempt_at doubles as a lease should this worker die mid-conversation.
    lease = max(retry_delay(attempt), timedelta(seconds=6 * float(config["SMTP_TIMEOUT"])))
    won = s.execute(
        update(MailMessage)
        .where(
            MailMessage.id == row.id,
            MailMessage.attempts == row.attempts,
            MailMessage.status == PENDING,
        )
        .values(attempts=attempt, next_attempt_at=now + lease)
    ).rowcount
    s.commit()
    if won != 1:
        return False
    s.refresh(row)
    try:
        transmit(row)
    except Undelivered as exc:
        failed(row, attempt, str(exc), permanent=exc.permanent)
        return False
    except Exception as exc:  # a bug must cost attempts, not loop forever on one message
        log.exception("mail %d: unexpected error while sending", row.id)
        failed(row, attempt, f"unexpected {type(exc).__name__}", permanent=False)
        return False
    row.status = SENT
    row.sent_at = utcnow()
    row.message = None  # the server has it; no copy of a link outlives the delivery
    row.last_error = None
    s.commit()
    metrics.mail_sent("smtp" if config["SMTP_HOST"] else "outbox")
    log.info("mail %d sent (attempt %d)", row.id, attempt)
    return True


def failed(row: MailMessage, attempt: int, error: str, permanent: bool) -> None:
    s = db.session()
    row.last_error = error
    log.warning("mail %d not delivered (attempt %d): %s", row.id, attempt, error)
    if permanent or attempt >= int(current_app.config["MAIL_ATTEMPTS"]):
        row.status = FAILED
        row.failed_at = utcnow()
        audit.record("mail.failed", target=str(row.id), attempts=attempt, error=error)
        s.commit()
        metrics.mail_failed("refused" if permanent else "attempts")
        return
    row.next_attempt_at = utcnow() + retry_delay(attempt)
    s.commit()


@dataclass(frozen=True)
class Retried:
    """What retry_failed() did: messages put back in the queue, and how many went out now."""

    queued: int
    sent: int


def retry_failed() -> Retried:
    """Queue every failed message again (its attempts start over) and try each once now."""
    s = db.session()
    ids = list(s.scalars(select(MailMessage.id).where(MailMessage.status == FAILED)))
    if ids:
        s.execute(
            update(MailMessage)
            .where(MailMessage.id.in_(ids), MailMessage.status == FAILED)
            .values(status=PENDING, attempts=0, next_attempt_at=utcnow(), failed_at=None)
        )
        audit.record("mail.retried", count=len(ids))
    s.commit()
    return Retried(queued=len(ids), sent=sum(deliver_one(i) for i in ids))


def seconds_until_next() -> float | None:
    """Seconds until the next pending message is due; None when nothing is pending."""
    return seconds_until_due(MailMessage.next_attempt_at, MailMessage.status == PENDING)


class Sender(Worker):
    """A worker's mail thread; it runs only while messages are pending."""

    thread_name = "idp-mail"

    def __init__(self, app: Flask):
        super().__init__(app)
        self.last_look = time.monotonic()

    @property
    def enabled(self) -> bool:
        return bool(self.app.config["MAIL_WORKER"]) and super().enabled

    def retry_after_error(self) -> float:
        return float(self.app.config["MAIL_RETRY_DELAY"])

    def round(self) -> float | None:
        deliver_due()
        return seconds_until_next()

    def maybe_look(self) -> None:
        """Called on requests: every SESSION_SWEEP_INTERVAL, look for mail another process
        (the CLI, a worker that died) left pending."""
        interval = float(self.app.config["SESSION_SWEEP_INTERVAL"])
        if time.monotonic() - self.last_look >= interval:
            self.last_look = time.monotonic()
            self.kick()


def sender_thread(app: Flask | None = None) -> Sender:
    return (app or current_app).extensions["idp.mail"]


def kick_after_commit() -> None:
    """Wake this worker's sender once the current transaction commits."""
    app = current_app._get_current_object()
    event.listen(db.session(), "after_commit", lambda _s: sender_thread(app).kick(), once=True)
