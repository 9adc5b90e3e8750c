"""Outgoing mail: queued in the database, delivered over SMTP by a background thread.

    send(to, subject, template, **context)   render + queue in the caller's transaction;
                                             the sender wakes when the caller commits
    retry_failed()                           what `idp mail retry` runs
    destination(app)                         where mail goes, for the demo banner

Without SMTP_HOST (development) messages go to instance/outbox/ as .eml files, and the log
gets one line with To and Subject (never the body: it will carry single-use links).
"""

from __future__ import annotations

from flask import Flask
from sqlalchemy import bindparam, insert

from .. import db
from ..models import MailMessage
from .delivery import Retried, Sender, kick_after_commit, outbox_dir, retry_failed
from .message import render

__all__ = ["Retried", "destination", "init_app", "retry_failed", "send"]

# One pending row (the model's defaults: pending, due now), its id back.
QUEUE = db.Statement(
    insert(MailMessage)
    .values(
        to_address=bindparam("to_address"),
        subject=bindparam("subject"),
        message=bindparam("message"),
    )
    .returning(MailMessage.id)
)


def send(to: str, subject: str, template: str, **context) -> int:
    """Queue templates/mail/<template>.txt + .html for ``to``; sent after the caller commits.
    Returns the queued row's id.

    The row is INSERTed at once on the session's connection, in the caller's transaction:
    nothing else refers to it, so it needs no ORM object and no place in the flush (a
    notice goes out with every sign-in from a new browser)."""
    message = render(to, subject, template, **context)
    values = {"to_address": message["To"], "subject": subject, "message": message.as_string()}
    queued = QUEUE.execute(values).fetchone()[0]
    kick_after_commit()
    return queued


def destination(app: Flask) -> str:
    """Where mail goes, in a few words (the demo banner prints it)."""
    config = app.config
    if not config["SMTP_HOST"]:
        return f"{outbox_dir(app)}/ as .eml files (no SMTP_HOST)"
    from .delivery import DEFAULT_PORTS

    port = config["SMTP_PORT"] or DEFAULT_PORTS[config["SMTP_SECURITY"]]
    return f"SMTP {config['SMTP_HOST']}:{port} ({config['SMTP_SECURITY']})"


def init_app(app: Flask) -> None:
    app.extensions["idp.mail"] = sender = Sender(app)
    app.before_request(sender.maybe_look)  # a time check on each request
