"""Delivery of queued mail: SMTP (RFC 5321) or, without SMTP_HOST, the outbox folder.

    mail_messages row (pending) ──► Sender thread: deliver_round()
        the pending rows, earliest due first; per due row:
        claim it (conditional UPDATE: attempts+1, next try later = a lease)
        transmit: MAIL RCPT DATA in the round's SMTP session (connected for its first
            message: [STARTTLS | TLS] [AUTH]), or instance/outbox/<id>.eml
        250 after DATA ─► sent (body erased) │ 5xx ─► failed │ else retry, delay doubled,
        until MAIL_ATTEMPTS ─► failed;  retry_failed() puts failed rows back in the queue

A message is marked sent only after the server accepted it (RFC 5321 §4.2.1: 2yz), so a
crash between the two can send it twice but never lose it. A worker's rounds start at most
every MAIL_ROUND_INTERVAL seconds, so mail queued in a burst shares a round.
"""

from __future__ import annotations

import logging
import math
import os
import smtplib
import ssl
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

from flask import Flask, current_app
from sqlalchemy import select, update

from .. import audit, db, metrics
from ..background import Worker, seconds_until_due
from ..models import MailMessage, utcnow
from ..models.mail import (
    CLAIM,
    FAILED,
    MARK_FAILED,
    MARK_RETRY,
    MARK_SENT,
    PENDING,
    PENDING_ROWS,
)
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


def connect_smtp(config) -> smtplib.SMTP:
    """An SMTP session ready for mail: connected, [STARTTLS,] greeted, [authenticated]."""
    security = config["SMTP_SECURITY"]
    host = config["SMTP_HOST"]
    port = int(config["SMTP_PORT"] or DEFAULT_PORTS[security])
    timeout = float(config["SMTP_TIMEOUT"])
    if security == "ssl":
        connection = smtplib.SMTP_SSL(host, port, timeout=timeout, context=tls_context())
    else:
        connection = smtplib.SMTP(host, port, timeout=timeout)
    try:
        connection.ehlo()
        if security == "starttls":
            # Never fall back to plain text: without STARTTLS the password and the
            # message would cross the network readable (SMTPNotSupportedError).
            connection.starttls(context=tls_context())
            connection.ehlo()
        if config["SMTP_USERNAME"]:
            connection.login(str(config["SMTP_USERNAME"]), str(config["SMTP_PASSWORD"]))
    except BaseException:
        connection.close()
        raise
    return connection


@contextmanager
def smtp_errors():
    """smtplib's exceptions as Undelivered, transient or permanent by the server's reply."""
    try:
        yield
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()))
        raise smtp_reply(code, text) from None
    except smtplib.SMTPResponseException as exc:
        raise smtp_reply(exc.smtp_code, exc.smtp_error) from None
    except (smtplib.SMTPException, OSError) as exc:  # refused, timed out, TLS failed, dropped
        raise Undelivered(f"{type(exc).__name__}: {exc}"[:300]) from None


def _dropped(exc: BaseException) -> bool:
    """The session is gone (closed by the server, or 421: it is closing), not the message
    refused: RFC 5321 §3.8 lets a server end an idle session, or one that carried enough."""
    if isinstance(exc, smtplib.SMTPResponseException):  # at MAIL FROM, or after DATA
        return exc.smtp_code == 421
    if isinstance(exc, smtplib.SMTPRecipientsRefused):  # at RCPT TO
        return all(code == 421 for code, _text in exc.recipients.values())
    return isinstance(exc, (smtplib.SMTPServerDisconnected, ConnectionError))


class Conversation:
    """One SMTP session for the messages of a round: RFC 5321 §3.3 lets a session carry
    any number of mail transactions, so a burst of mail costs one connection, one TLS
    handshake and one AUTH, not one per message.

    It connects for the first message and ends (QUIT) with ``close()``. After a failed
    transaction it closes, so the next message starts on a new session and never pays for
    another's refusal; a reused session that the server ended meanwhile is opened again
    once for the message at hand, which is then sent as if it had been the first."""

    def __init__(self, config) -> None:
        self.config = config
        self.connection: smtplib.SMTP | None = None

    def send(self, to: str, message: str) -> None:
        """One transaction; raises Undelivered unless the server took the message."""
        data = message.encode("ascii")
        with smtp_errors():
            if self.connection is not None:
                try:
                    return self._transaction(to, data)
                except Exception as exc:
                    if not _dropped(exc):
                        raise
            self.connection = connect_smtp(self.config)
            self._transaction(to, data)

    def _transaction(self, to: str, data: bytes) -> None:
        try:
            self.connection.sendmail(envelope_sender(), [to], data)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (smtplib.SMTPException, OSError):
            pass  # the session is gone already: nothing to end
        finally:
            connection.close()


class Claimed(NamedTuple):
    """What the claim returns of a message: all that sending it needs."""

    id: int
    to_address: str
    subject: str
    message: str | None
    created_at: datetime


def transmit_outbox(row: Claimed) -> Path:
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


def transmit(row: Claimed, shared: Conversation) -> None:
    if shared.config["SMTP_HOST"]:
        shared.send(row.to_address, row.message or "")
    else:
        transmit_outbox(row)


@contextmanager
def conversation():
    """The SMTP session the messages of a round share (connected by the first, if any)."""
    shared = Conversation(current_app.config)
    try:
        yield shared
    finally:
        shared.close()


def retry_delay(attempt: int) -> timedelta:
    """Delay after the given (1-based) failed attempt: the base delay, doubled each time."""
    base = float(current_app.config["MAIL_RETRY_DELAY"])
    return timedelta(seconds=base * 2 ** (attempt - 1))


def pending_rows(limit: int):
    """(id, attempts, next_attempt_at) of up to ``limit`` pending rows, the earliest due first.
    The read ends at once: no transaction stays open while we talk to the SMTP server.

    It, the claim and marking a message sent are each a transaction of their own
    (``Statement.alone``: on PostgreSQL on the thread's held connection, no BEGIN or COMMIT);
    what must commit together (a failure and its audit event) goes through the session."""
    return PENDING_ROWS.alone({"limit": limit})


@dataclass(frozen=True)
class Round:
    """What one pass over the queue did: messages sent, and seconds until the next pending
    message is due (0: more are due now; None: none is pending)."""

    sent: int
    wait: float | None


def deliver_round(limit: int = 100) -> Round:
    """Attempt every message that is due now, up to ``limit`` of them.

    The wait comes from what the round saw (the first row not yet due, the retry times it
    set) without another look at the table, except when another worker claimed a row first:
    its lease is not known here, so the table is asked (``seconds_until_next``). A message
    queued during the round wakes the thread on its commit (``kick_after_commit``). The
    round's messages share one SMTP session (``Conversation``)."""
    rows = pending_rows(limit + 1)
    now = utcnow()
    # Ordered by due time: the first row not yet due is the earliest of those that wait.
    waiting = next((due for _, _, due in rows if due > now), None)
    later = [] if waiting is None else [waiting]
    sent, lost = 0, False
    with conversation() as shared:
        for message_id, attempts, due in rows[:limit]:
            if due > now:
                break  # ordered by due time: the rest are not due either
            outcome = attempt(message_id, attempts, shared)
            if outcome == SENT_NOW:
                sent += 1
            elif outcome == LOST:
                lost = True
            elif outcome != GAVE_UP:
                later.append(outcome)  # its next try
    if len(rows) > limit:
        _id, _attempts, first_left_due = rows[limit]  # the row past this round's limit
        if first_left_due <= now:
            return Round(sent, 0.0)
    if lost:
        return Round(sent, seconds_until_next())
    if not later:
        return Round(sent, None)
    return Round(sent, max((min(later) - utcnow()).total_seconds(), 0.0))


def deliver_due(limit: int = 100) -> int:
    """Attempt every message that is due now; returns how many were sent."""
    return deliver_round(limit).sent


SENT_NOW, LOST, GAVE_UP = "sent", "lost", "gave up"


def attempt(message_id: int, seen_attempts: int, shared: Conversation) -> str | datetime:
    """One delivery attempt of a message seen pending after ``seen_attempts`` attempts, in
    the ``shared`` SMTP session: SENT_NOW, LOST (another worker claimed it first, or it is
    no longer due), GAVE_UP (failed for good) or the time of its next try."""
    config = current_app.config
    now = utcnow()
    number = seen_attempts + 1
    # Claim the row: the single worker whose UPDATE matches sends it; the new
    # next_attempt_at doubles as a lease should this worker die mid-conversation.
    lease = max(retry_delay(number), timedelta(seconds=6 * float(config["SMTP_TIMEOUT"])))
    claim = {"message_id": message_id, "seen_attempts": seen_attempts, "now": now,
             "attempt": number, "lease_until": now + lease}  # fmt: skip
    found = CLAIM.alone(claim)
    if not found:
        return LOST
    row = Claimed(*found[0])
    try:
        transmit(row, shared)
    except Undelivered as exc:
        return failed(row.id, number, str(exc), permanent=exc.permanent)
    except Exception as exc:  # a bug must cost attempts, not loop forever on one message
        log.exception("mail %d: unexpected error while sending", row.id)
        return failed(row.id, number, f"unexpected {type(exc).__name__}", permanent=False)
    MARK_SENT.alone({"message_id": row.id, "now": utcnow()})
    metrics.mail_sent("smtp" if config["SMTP_HOST"] else "outbox")
    log.info("mail %d sent (attempt %d)", row.id, number)
    return SENT_NOW


def deliver_one(message_id: int, shared: Conversation | None = None) -> bool:
    """Attempt one message now if it is pending and due; True if the server took it."""
    s = db.session()
    seen = s.scalar(
        select(MailMessage.attempts).where(
            MailMessage.id == message_id, MailMessage.status == PENDING
        )
    )
    s.commit()
    if seen is None:
        return False
    with conversation() if shared is None else nullcontext(shared) as smtp:
        return attempt(message_id, seen, smtp) == SENT_NOW


def failed(message_id: int, number: int, error: str, permanent: bool) -> str | datetime:
    """Record a failed attempt: GAVE_UP after a permanent refusal or the last attempt,
    else the time of the next try (the delay doubled)."""
    s = db.session()
    log.warning("mail %d not delivered (attempt %d): %s", message_id, number, error)
    if permanent or number >= int(current_app.config["MAIL_ATTEMPTS"]):
        values = {"message_id": message_id, "error": error, "now": utcnow()}
        s.connection().execute(MARK_FAILED, values)
        audit.record("mail.failed", target=str(message_id), attempts=number, error=error)
        s.commit()
        metrics.mail_failed("refused" if permanent else "attempts")
        return GAVE_UP
    retry_at = utcnow() + retry_delay(number)
    values = {"message_id": message_id, "error": error, "next_attempt_at": retry_at}
    s.connection().execute(MARK_RETRY, values)
    s.commit()
    return retry_at


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
    with conversation() as shared:
        return Retried(queued=len(ids), sent=sum(deliver_one(i, shared) for i in ids))


def seconds_until_next() -> float | None:
    """Seconds until the next pending message is due; None when nothing is pending."""
    return seconds_until_due(MailMessage.next_attempt_at, MailMessage.status == PENDING)


class Sender(Worker):
    """A worker's mail thread; it runs only while messages are pending."""

    thread_name = "idp-mail"

    def __init__(self, app: Flask):
        super().__init__(app)
        self.last_look = time.monotonic()
        self.last_round = -math.inf

    @property
    def enabled(self) -> bool:
        return bool(self.app.config["MAIL_WORKER"]) and super().enabled

    def retry_after_error(self) -> float:
        return float(self.app.config["MAIL_RETRY_DELAY"])

    def round(self) -> float | None:
        """A round begins MAIL_ROUND_INTERVAL after the previous one at the earliest: while
        sign-ins keep queuing notices, each round sends what came meanwhile over one SMTP
        session, not one session per message (the first after a quiet spell goes at once)."""
        interval = float(self.app.config["MAIL_ROUND_INTERVAL"])
        self.pause(self.last_round + interval - time.monotonic())
        self.last_round = time.monotonic()
        return deliver_round().wait

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
    sender_thread(current_app._get_current_object()).kick_after_commit()
