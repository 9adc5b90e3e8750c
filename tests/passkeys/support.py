"""Helpers of the passkey tests: the pages' options, a registered passkey, audit events."""

from __future__ import annotations

import html
import json
import re

from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, MailMessage, User, WebAuthnCredential

from ..helpers import csrf_token

ORIGIN = "http://localhost"  # tests/conftest.py ISSUER
RP_ID = "localhost"


def options_of(page_html: str) -> dict:
    """The WebAuthn options a form carries in data-options."""
    match = re.search(r'data-options="([^"]*)"', page_html)
    assert match, "no data-options in page"
    return json.loads(html.unescape(match.group(1)))


def add_passkey(client, authenticator, name="Laptop", **create):
    """Add a passkey through the account page, as static/js/passkeys.js does."""
    page = client.get("/account/passkeys/new").get_data(as_text=True)
    credential = authenticator.create(options_of(page), ORIGIN, **create)
    return client.post(
        "/account/passkeys/new",
        data={
            "csrf_token": csrf_token(page),
            "name": name,
            "credential": json.dumps(credential),
            "client_error": "",
        },
    )


def sign_in_options(client, token: str) -> dict:
    response = client.post("/login/passkey/options", headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def login_page_token(client) -> str:
    return csrf_token(client.get("/login").get_data(as_text=True))


def post_assertion(client, token: str, credential: dict, next_url: str = ""):
    return client.post(
        "/login/passkey",
        json={"credential": credential, "next": next_url},
        headers={"X-CSRFToken": token},
    )


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        s = db.session()
        rows = list(s.scalars(select(AuditEvent).where(AuditEvent.event == name)))
        for row in rows:
            s.expunge(row)
        return rows


def stored_passkeys(app) -> list[WebAuthnCredential]:
    with app.app_context():
        s = db.session()
        rows = list(s.scalars(select(WebAuthnCredential).order_by(WebAuthnCredential.id)))
        for row in rows:
            s.expunge(row)
        return rows


def mails(app) -> list[MailMessage]:
    with app.app_context():
        s = db.session()
        rows = list(s.scalars(select(MailMessage).order_by(MailMessage.id)))
        for row in rows:
            s.expunge(row)
        return rows


def user_id(app, username: str) -> int:
    with app.app_context():
        return db.session().scalar(select(User.id).where(User.username == username))
