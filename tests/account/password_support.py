"""Helpers of the password tests: mail through a real SMTP server (aiosmtpd), links in it."""

from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import select

from idp import db
from idp.mail import delivery
from idp.models import AuditEvent, User

from ..helpers import csrf_token
from ..mail.conftest import instance, mailbox, smtp_server, stop_sender  # noqa: F401

NEW_PASSWORD = "lantern orchard velvet 42"


@pytest.fixture
def app_config(app_config, smtp_server):  # noqa: F811
    """Mail goes to the test's SMTP server; the sender runs when a test says so (deliver)."""
    return {
        **app_config,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server.port,
        "SMTP_SECURITY": "none",
        "SMTP_TIMEOUT": 5,
        "MAIL_FROM": "Identity <idp@example.com>",
        "MAIL_WORKER": False,
        "RATELIMIT_KEY_PREFIX": "idp-test-" + secrets.token_hex(6),
    }


def deliver(app, mailbox) -> list:  # noqa: F811
    """Run the mail sender once over SMTP; every message the server has received."""
    with app.app_context():
        delivery.deliver_due()
    return mailbox.received


def text_part(message) -> str:
    return message.get_body(("plain",)).get_content()


def html_part(message) -> str:
    return message.get_body(("html",)).get_content()


def link_in(message) -> str:
    (url,) = set(
        re.findall(r"https?://\S+/password/reset\?token=[A-Za-z0-9_-]+", text_part(message))
    )
    return url


def get_user(app, username="alice") -> User:
    with app.app_context():
        s = db.session()
        row = s.scalar(select(User).where(User.username == username))
        s.expunge(row)
        return row


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        s = db.session()
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))
        for row in rows:
            s.expunge(row)
        return rows


def forgot(client, identifier: str, **kwargs):
    page = client.get("/password/forgot")
    token = csrf_token(page.get_data(as_text=True))
    return client.post(
        "/password/forgot", data={"csrf_token": token, "username": identifier}, **kwargs
    )
