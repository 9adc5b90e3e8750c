"""`idp mail retry`: send again what the SMTP relay refused (``mail.retry_failed``)."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from .. import mail
from .common import emit


@click.group("mail")
def mail_group():
    """Outgoing mail."""


@mail_group.command("retry")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def mail_retry(as_json):
    """Send again the messages that failed (once the relay is fixed)."""
    result = mail.retry_failed()
    emit(
        as_json,
        {"queued": result.queued, "sent": result.sent},
        f"{result.sent} of {result.queued} failed message(s) sent; "
        "the rest wait in the queue for the server's sender",
    )
