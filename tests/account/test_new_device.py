"""The "sign-in from a new device or browser" notice (issue 14, flow 7): a browser is known
by a random cookie (hashed per user in storage, not fingerprinted); a sign-in from a browser
the user has not used before mails them, once; a user can turn it off. Mail is read from a
real SMTP server."""

# ruff: noqa: F811  (the mail fixtures, imported, are parameters of the tests)
from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import db
from idp.auth.devices import COOKIE, device_hash
from idp.models import KnownDevice

from ..factories import PASSWORD
from ..helpers import Auth, csrf_token
from ..mail.conftest import instance, mailbox, smtp_server, stop_sender  # noqa: F401
from .own import delivered, events, mail_server, text_of, token_from  # noqa: F401

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)


def browser(app, user_agent: str = FIREFOX):
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return client


def sign_in(client, username: str = "alice"):
    response = Auth(client).login(username)
    assert response.status_code == 302
    return response


def devices(app, user_id: int) -> list[KnownDevice]:
    with app.app_context():
        rows = list(db.session().scalars(select(KnownDevice).where(KnownDevice.user_id == user_id)))
        for row in rows:
            db.session().expunge(row)
        return rows


def cookie_header(response) -> str:
    (header,) = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE + "=")]
    return header


def test_the_first_sign_in_of_an_account_is_remembered_without_a_notice(
    app, user, mail_server, mailbox
):
    laptop = browser(app)
    response = sign_in(laptop)
    header = cookie_header(response)
    # A long-lived, random, HttpOnly, SameSite=Lax cookie (RFC 6265bis §4.1.2).
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Max-Age=34560000" in header
    assert "Secure" not in header  # the test issuer is http://localhost
    value = laptop.get_cookie(COOKIE).value
    assert len(value) == 43
    (row,) = devices(app, user.id)
    assert row.token_hash != value and value not in row.token_hash
    assert row.description == "Firefox on Linux"
    assert delivered(app, mailbox) == []
    assert events(app, "signin.new_device") == []


def test_a_new_browser_is_announced_once(app, user, mail_server, mailbox):
    sign_in(browser(app))  # the laptop: the account's first device
    phone = browser(app, SAFARI)
    sign_in(phone)

    (message,) = delivered(app, mailbox)
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "New sign-in to your account"
    text = text_of(message)
    assert "Safari on iPhone" in text and "IP address: 127.0.0.1" in text
    assert " UTC" in text and "http://localhost/account/" in text
    (event,) = events(app, "signin.new_device")
    assert event.actor == user.sub
    assert event.details == {"device": "Safari on iPhone", "notified": True}

    # The same phone again (a new session, same browser): known, no second mail.
    Auth(phone).logout()
    sign_in(phone)
    assert len(delivered(app, mailbox)) == 1
    assert len(devices(app, user.id)) == 2


def test_a_known_browser_is_not_announced(app, user, mail_server, mailbox):
    laptop = browser(app)
    sign_in(laptop)
    for _ in range(2):
        Auth(laptop).logout()
        sign_in(laptop)
    assert delivered(app, mailbox) == []
    assert len(devices(app, user.id)) == 1


def test_a_forged_cookie_is_a_new_browser(app, user, mail_server, mailbox):
    sign_in(browser(app))
    stranger = browser(app)
    stranger.set_cookie(COOKIE, "not-a-device-cookie")
    response = sign_in(stranger)
    assert stranger.get_cookie(COOKIE).value != "not-a-device-cookie"
    assert cookie_header(response)
    assert len(delivered(app, mailbox)) == 1


def test_no_notice_when_the_user_turned_it_off(app, client, user, mail_server, mailbox):
    sign_in(client)
    token = token_from(client)
    assert client.post("/account/notices", data={"csrf_token": token}).status_code == 302
    sign_in(browser(app, SAFARI))
    assert delivered(app, mailbox) == []
    (event,) = events(app, "signin.new_device")
    assert event.details["notified"] is False
    assert len(devices(app, user.id)) == 2  # still remembered


def test_one_browser_two_accounts_store_unrelated_hashes(app, user, factory, mail_server):
    factory.user(username="bob", email="bob@example.com")
    shared = browser(app)
    sign_in(shared)
    Auth(shared).logout()
    sign_in(shared, "bob")
    with app.app_context():
        hashes = [row.token_hash for row in db.session().scalars(select(KnownDevice))]
    assert len(hashes) == 2 and len(set(hashes)) == 2


@pytest.mark.config(NEW_DEVICE_NOTICE_IP=False)
def test_the_ip_address_is_left_out_when_configured(app, user, mail_server, mailbox):
    sign_in(browser(app))
    sign_in(browser(app, SAFARI))
    (message,) = delivered(app, mailbox)
    assert "127.0.0.1" not in text_of(message) and "IP address" not in text_of(message)


@pytest.mark.config(NEW_DEVICE_NOTICES=False)
def test_the_feature_can_be_switched_off(app, user, mail_server, mailbox):
    laptop = browser(app)
    response = sign_in(laptop)
    assert not [h for h in response.headers.getlist("Set-Cookie") if h.startswith(COOKIE)]
    sign_in(browser(app, SAFARI))
    assert delivered(app, mailbox) == [] and devices(app, user.id) == []


@pytest.mark.config(ISSUER="https://id.example.com")
def test_the_cookie_is_secure_under_https(app, user):
    client = app.test_client()
    page = client.get("/login", base_url="https://id.example.com")
    response = client.post(
        "/login",
        base_url="https://id.example.com",
        data={"csrf_token": csrf_token(page.text), "username": "alice", "password": PASSWORD},
    )
    assert response.status_code == 302
    assert "Secure" in cookie_header(response)


def test_only_the_most_recent_browsers_are_kept(app, user, mail_server, monkeypatch):
    # Storage stays bounded: past KEEP browsers, the least recently seen are forgotten
    # (a forgotten browser is announced again when it comes back, which is the safe side).
    monkeypatch.setattr("idp.auth.devices.KEEP", 3)
    laptops = [browser(app) for _ in range(5)]
    for laptop in laptops:
        sign_in(laptop)
    Auth(laptops[0]).logout()
    sign_in(laptops[0])  # seen again: now the most recent one
    kept = devices(app, user.id)
    assert len(kept) == 3
    with app.app_context():
        expected = {
            device_hash(user, laptop.get_cookie(COOKIE).value)
            for laptop in (laptops[0], laptops[3], laptops[4])
        }
    assert {row.token_hash for row in kept} == expected
