"""Shared steps of the user's-own-data tests (profile, export, deletion, new-device notice):
a real SMTP server (aiosmtpd, from tests/mail), pages' CSRF tokens, audit rows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import db
from idp.mail import delivery
from idp.models import AuditEvent, User

from ..helpers import csrf_token
from ..mail.conftest import SMTPServer


def use_smtp(app, server: SMTPServer) -> None:
    app.config.update(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=server.port,
        SMTP_SECURITY="none",
        SMTP_TIMEOUT=5,
        MAIL_FROM="Identity <idp@example.com>",
    )


@pytest.fixture
def mail_server(app, smtp_server):
    """The app mails the test SMTP server; the sender stops before the server does, so no
    connection is cut halfway (an unclosed transport warning)."""
    use_smtp(app, smtp_server)
    yield smtp_server
    delivery.sender_thread(app).stop()


def delivered(app, mailbox) -> list:
    """What the SMTP server received once the sender has finished its round."""
    delivery.sender_thread(app).stop()
    with app.app_context():
        delivery.deliver_due()
    return list(mailbox.received)


def text_of(message) -> str:
    return message.get_body(("plain",)).get_content()


def token_from(client, url: str = "/account/") -> str:
    return csrf_token(client.get(url).get_data(as_text=True))


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session().scalars(
            select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)
        )
        rows = list(rows)
        for row in rows:
            db.session().expunge(row)
        return rows


def stored_user(app, username: str) -> User | None:
    with app.app_context():
        user = db.session().scalar(select(User).where(User.username == username))
        if user is not None:
            db.session().expunge(user)
        return user
