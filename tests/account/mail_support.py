"""What the email-verification, invitation and registration tests share: a real SMTP server
(aiosmtpd, tests/mail/conftest.py) the app sends to, and helpers to read the mailed links.

A test module imports the fixtures with ``from .mail_support import *`` (a conftest.py in
this folder would be shared with other features' tests).
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from idp import db
from idp.mail import delivery
from idp.models import AccountLink, AuditEvent, User
from tests.helpers import Auth, csrf_token
from tests.mail.conftest import mailbox, smtp_server  # noqa: F401  (fixtures)

__all__ = [
    "admin",
    "admin_client",
    "app_config",
    "claims_of",
    "audit_events",
    "deliver",
    "form",
    "link_in",
    "link_rows",
    "mailbox",
    "smtp_server",
    "stop_sender",
    "token_of",
    "user_row",
]


@pytest.fixture
def app_config(app_config, smtp_server):  # noqa: F811
    """Mail goes to the test's SMTP server; the test delivers it (no sender thread)."""
    return {
        **app_config,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server.port,
        "SMTP_SECURITY": "none",
        "MAIL_FROM": "Identity <idp@example.com>",
        "MAIL_WORKER": False,
    }


@pytest.fixture(autouse=True)
def stop_sender(app):
    yield
    delivery.sender_thread(app).stop()


@pytest.fixture
def admin(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


@pytest.fixture
def admin_client(app, admin):
    """A browser signed in as the admin."""
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser


def claims_of(client, auth, oauth_client, username="alice", password=None) -> tuple[dict, dict]:
    """(ID token claims, UserInfo claims) after signing in with the email scope."""
    import base64
    import json

    from tests.factories import PASSWORD

    auth.logout()
    assert auth.login(username, password or PASSWORD).status_code == 302
    tokens = auth.tokens(oauth_client, scope="openid email")
    payload = tokens["id_token"].split(".")[1]
    id_token = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    userinfo = client.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).get_json()
    return id_token, userinfo


def deliver(app, mailbox) -> list[EmailMessage]:  # noqa: F811
    """Deliver what is queued; every message the SMTP server received so far."""
    with app.app_context():
        delivery.deliver_due()
    return mailbox.received


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def link_in(message: EmailMessage, path: str) -> str:
    """The one URL to ``path`` in the text part; the HTML part links to the same URL."""
    found = re.findall(r"https?://\S+" + re.escape(path) + r"\?token=[\w-]+", text_of(message))
    assert len(found) == 1, f"no single {path} link in: {text_of(message)}"
    html = message.get_body(("html",)).get_content()
    assert f'href="{found[0]}"' in html
    return found[0]


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def form(client, url: str, data: dict, get_url: str | None = None):
    """GET the form's page (for its CSRF token), then POST the fields to ``url``."""
    page = client.get(get_url or url)
    assert page.status_code == 200, page.status_code
    return client.post(url, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **data})


def user_row(app, username: str) -> User | None:
    with app.app_context():
        session = db.session()
        row = session.scalar(select(User).where(User.username == username))
        if row is not None:
            session.expunge(row)
        return row


def link_rows(app, purpose: str) -> list[AccountLink]:
    with app.app_context():
        session = db.session()
        rows = list(
            session.scalars(
                select(AccountLink).where(AccountLink.purpose == purpose).order_by(AccountLink.id)
            )
        )
        for row in rows:
            session.expunge(row)
        return rows


def audit_events(app, event: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == event)))
