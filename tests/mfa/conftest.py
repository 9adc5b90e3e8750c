"""MFA test fixtures: a real SMTP server (aiosmtpd) for the notices, and helpers that act
like a person with an authenticator app (pyotp computes the codes, RFC 6238)."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from sqlalchemy import select

from idp import db
from idp.auth import totp
from idp.mail import delivery
from idp.models import TOTPCredential, User
from tests.helpers import csrf_token
from tests.mail.conftest import mailbox, smtp_server  # noqa: F401


@pytest.fixture
def app_config(app_config, smtp_server):  # noqa: F811
    app_config.update(
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=smtp_server.port,
        SMTP_SECURITY="none",
        SMTP_TIMEOUT=5,
        MAIL_FROM="Identity <idp@example.com>",
        MAIL_WORKER=False,  # the tests deliver (deliver_due) and then read the mailbox
    )
    return app_config


def delivered(app, mailbox) -> list:  # noqa: F811
    """Deliver the queued mail to the aiosmtpd server and return everything it received."""
    with app.app_context():
        delivery.deliver_due()
    return list(mailbox.received)


def subjects(app, mailbox) -> list[str]:  # noqa: F811
    return [m["Subject"] for m in delivered(app, mailbox)]


def secret_of(app, username="alice") -> str:
    with app.app_context():
        user = db.session().scalar(select(User).where(User.username == username))
        row = db.session().scalar(select(TOTPCredential).where(TOTPCredential.user_id == user.id))
        return totp.decrypt(user, row.secret_encrypted)


def code_at(secret: str, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset_steps * 30)


def page_secret(html: str) -> str:
    """The setup key as the page shows it (grouped by four)."""
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', html)
    assert match, "no setup key on the page"
    return match.group(1).replace(" ", "")


def post_form(client, url: str, **fields):
    page = client.get(url)
    return client.post(url, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **fields})


def enrol_in_account(client) -> str:
    """Set up an authenticator app from the account page; returns its secret."""
    page = client.get("/account/totp")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    secret = page_secret(html)
    response = client.post(
        "/account/totp", data={"csrf_token": csrf_token(html), "code": code_at(secret)}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return secret


def recovery_codes_on(html: str) -> list[str]:
    return re.findall(
        r"<li><code>([a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4})</code></li>", html
    )
