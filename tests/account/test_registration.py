"""Self-registration (issue 14, flow 5): REGISTRATION_USERS = off | open | domains:...; the
answer never tells whether an address has an account; the account exists only once the
mailed link is followed, so the address is verified before the first sign-in; throttled."""

from __future__ import annotations

import statistics
import time
from html import unescape

import pytest
from sqlalchemy import func, select

from idp import create_app, db
from idp.account.register import allowed_domains
from idp.config import ConfigError
from idp.models import User, secret_hash
from tests.helpers import csrf_refused, csrf_token

from .mail_support import *  # noqa: F403
from .mail_support import (
    audit_events,
    deliver,
    link_in,
    link_rows,
    token_of,
    user_row,
)

OPEN = pytest.mark.config(REGISTRATION_USERS="open")
UNTHROTTLED = pytest.mark.config(
    RATELIMIT_EMAIL_LINK_IP="10000/minute", RATELIMIT_EMAIL_LINK_ADDRESS="10000/minute"
)
PASSWORD = "a long and unusual passphrase"


def start(client, address: str, **kwargs):
    page = client.get("/account/register", **kwargs)
    assert page.status_code == 200
    return client.post(
        "/account/register",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "email": address},
        **kwargs,
    )


def complete(client, url: str, username="newbie", password=PASSWORD, **kwargs):
    page = client.get(url, **kwargs)
    assert page.status_code == 200, page.status_code
    return client.post(
        "/account/register/complete",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "token": token_of(url),
            "username": username,
            "name": "New Bie",
            "password": password,
            "confirm": password,
        },
        **kwargs,
    )


def user_count(app) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count(User.id)))


def test_off_by_default(app, client):
    assert client.get("/account/register").status_code == 404
    assert client.get("/account/register/complete?token=x").status_code == 404
    assert "Create an account" not in client.get("/login").get_data(as_text=True)


@pytest.mark.parametrize("value", ["on", "domains:", "domains:not a domain", "everyone"])
def test_config_check_refuses_unknown_modes(app_config, value):
    with pytest.raises(ConfigError, match="IDP_REGISTRATION_USERS"):
        create_app({**app_config, "REGISTRATION_USERS": value})


@OPEN
def test_register_verify_then_sign_in(app, client, auth, mailbox):
    login = client.get("/login").get_data(as_text=True)
    assert 'href="/account/register">Create an account</a>' in login

    answer = start(client, "new@example.org")
    assert answer.status_code == 200
    assert "Check your inbox" in answer.get_data(as_text=True)
    # Nothing to sign in with before the link is followed: no account exists yet.
    assert user_count(app) == 0
    assert auth.login("new@example.org", PASSWORD).status_code == 401

    (message,) = deliver(app, mailbox)
    assert message["To"] == "new@example.org"
    url = link_in(message, "/account/register/complete")
    assert url.startswith("http://localhost/account/register/complete?token=")
    (row,) = link_rows(app, "register")
    assert row.token_hash == secret_hash(token_of(url)) and row.user_id is None

    page = client.get(url)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    done = complete(client, url)
    assert done.status_code == 302
    assert done.headers["Location"] == "/login?login_hint=newbie"
    newbie = user_row(app, "newbie")
    assert (newbie.email, newbie.email_verified, newbie.name) == (
        "new@example.org",
        True,
        "New Bie",
    )
    assert auth.login("newbie", PASSWORD).status_code == 302
    assert [e.details["taken"] for e in audit_events(app, "registration.requested")] == [False]
    assert [e.actor for e in audit_events(app, "registration.completed")] == [newbie.sub]

    assert client.get(url).status_code == 404  # single use


@OPEN
@UNTHROTTLED
def test_a_taken_address_gets_the_same_answer(app, client, factory, mailbox):
    factory.user(username="alice", email="alice@example.com")
    taken = start(client, "alice@example.com")
    free = start(client, "free@example.com")
    # Same status, same body: the page tells nobody which addresses have accounts.
    assert taken.status_code == free.status_code == 200
    assert taken.get_data(as_text=True).replace("alice@example.com", "X") == free.get_data(
        as_text=True
    ).replace("free@example.com", "X")

    to_alice, to_free = deliver(app, mailbox)
    assert to_alice["To"] == "alice@example.com"
    assert to_alice["Subject"] == "You already have an account"
    text = to_alice.get_body(("plain",)).get_content()
    assert "token=" not in text and "http://localhost/login" in text
    assert to_free["Subject"] == "Finish creating your account"
    assert [r.email for r in link_rows(app, "register")] == ["free@example.com"]


@OPEN
@UNTHROTTLED
def test_the_answer_takes_as_long_for_a_taken_address(app, client, factory):
    factory.user(username="alice", email="alice@example.com")
    page = client.get("/account/register").get_data(as_text=True)
    token = csrf_token(page)

    def timed(address: str) -> float:
        begun = time.perf_counter()
        response = client.post("/account/register", data={"csrf_token": token, "email": address})
        assert response.status_code == 200
        return time.perf_counter() - begun

    taken, free = [], []
    for i in range(12):
        taken.append(timed("alice@example.com"))
        free.append(timed(f"free{i}@example.com"))
    slow, fast = sorted([statistics.median(taken), statistics.median(free)], reverse=True)
    # Neither path hashes a password or calls out: the difference is noise (a few ms).
    assert slow - fast < max(0.025, 0.5 * fast), (taken, free)


@pytest.mark.config(REGISTRATION_USERS="domains:example.com,example.org")
def test_domains_mode_refuses_other_domains_with_a_form_error(app, client, mailbox):
    refused = start(client, "someone@elsewhere.net")
    assert refused.status_code == 400
    html = unescape(refused.get_data(as_text=True))
    assert "<title>Error: " in html and 'id="error-summary"' in html
    assert "Accounts can only be created with an address at example.com or example.org." in html
    assert deliver(app, mailbox) == []
    assert start(client, "someone@Example.ORG").status_code == 200
    assert [m["To"] for m in deliver(app, mailbox)] == ["someone@example.org"]


@OPEN
@pytest.mark.config(RATELIMIT_EMAIL_LINK_ADDRESS="3/minute")
def test_throttled_per_address(app, client, steady_clock):
    # RFC 6585 §4: 429 Too Many Requests, with Retry-After.
    statuses = [start(client, "target@example.com").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert start(client, "other@example.com").status_code == 200


@OPEN
@pytest.mark.config(RATELIMIT_EMAIL_LINK_IP="2/minute", RATELIMIT_EMAIL_LINK_ADDRESS="100/minute")
def test_throttled_per_ip(app, client, steady_clock):
    statuses = [start(client, f"n{i}@example.com").status_code for i in range(3)]
    assert statuses == [200, 200, 429]


@OPEN
def test_a_new_request_revokes_the_older_link(app, client, mailbox):
    start(client, "new@example.org")
    start(client, "new@example.org")
    first, second = deliver(app, mailbox)
    assert client.get(link_in(first, "/account/register/complete")).status_code == 404
    assert complete(client, link_in(second, "/account/register/complete")).status_code == 302


@OPEN
def test_the_password_policy_and_username_rules_apply(app, client, factory, mailbox):
    factory.user(username="taken")
    start(client, "new@example.org")
    url = link_in(deliver(app, mailbox)[0], "/account/register/complete")
    response = complete(client, url, username="Taken", password="password")
    assert response.status_code == 400
    html = unescape(response.get_data(as_text=True))
    assert "This username is taken." in html
    assert "one of the most common passwords" in html
    assert user_count(app) == 1
    assert complete(client, url).status_code == 302  # the link survived the refusal


@OPEN
def test_two_links_for_one_address_make_one_account(app, client, mailbox):
    # Two registrations of one address in two mailboxes' worth of time: the second link
    # finds the address taken and creates nothing.
    other = client.application.test_client()
    start(client, "new@example.org")
    url_1 = link_in(deliver(app, mailbox)[0], "/account/register/complete")
    page_1 = client.get(url_1)
    start(other, "new@example.org")  # revokes the first link
    url_2 = link_in(deliver(app, mailbox)[1], "/account/register/complete")
    assert complete(other, url_2, username="first").status_code == 302
    late = client.post(
        "/account/register/complete",
        data={
            "csrf_token": csrf_token(page_1.get_data(as_text=True)),
            "token": token_of(url_1),
            "username": "second",
            "password": PASSWORD,
            "confirm": PASSWORD,
        },
    )
    assert late.status_code == 404
    assert user_row(app, "second") is None


@OPEN
def test_forms_need_the_csrf_token(app, client, mailbox):
    assert csrf_refused(client.post("/account/register", data={"email": "new@example.org"}))
    assert link_rows(app, "register") == []


@OPEN
def test_no_open_redirect_after_registration(app, client, mailbox):
    start(client, "new@example.org")
    url = link_in(deliver(app, mailbox)[0], "/account/register/complete")
    page = client.get(url + "&next=https://evil.example/")
    response = client.post(
        "/account/register/complete?next=//evil.example",
        data={
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "token": token_of(url),
            "username": "newbie",
            "password": PASSWORD,
            "confirm": PASSWORD,
            "next": "https://evil.example/",
        },
    )
    assert response.headers["Location"] == "/login?login_hint=newbie"


@OPEN
def test_links_ignore_a_forged_host_header(app, mailbox):
    # Link poisoning: the mailed URL comes from ISSUER, not from the request's Host.
    browser = app.test_client()
    start(browser, "new@example.org", base_url="http://evil.example")
    assert link_in(deliver(app, mailbox)[0], "/account/register/complete").startswith(
        "http://localhost/"
    )


PROXY = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "id.example.com",
    "X-Forwarded-Prefix": "/idp",
}


@pytest.mark.config(
    ISSUER="https://id.example.com/idp",
    REGISTRATION_USERS="open",
    PROXY_FIX_X_PROTO=1,
    PROXY_FIX_X_HOST=1,
    PROXY_FIX_X_PREFIX=1,
)
def test_links_work_behind_the_documented_reverse_proxy(app, auth, mailbox):
    # docs/deploy.md: the proxy serves the issuer's path prefix and forwards the rest.
    browser = app.test_client()
    through_proxy = {"base_url": "https://id.example.com", "headers": PROXY}
    assert start(browser, "new@example.org", **through_proxy).status_code == 200
    url = link_in(deliver(app, mailbox)[0], "/account/register/complete")
    assert url.startswith("https://id.example.com/idp/account/register/complete?token=")
    forwarded = url.removeprefix("https://id.example.com/idp")  # what the proxy passes on
    done = complete(browser, forwarded, **through_proxy)
    assert done.status_code == 302
    assert done.headers["Location"] == "/idp/login?login_hint=newbie"
    assert user_row(app, "newbie").email_verified is True


def test_the_mode_comes_from_the_environment(app_config, monkeypatch):
    # IDP_* values are parsed as JSON when they can be; these stay plain strings.
    monkeypatch.setenv("IDP_REGISTRATION_USERS", "domains:example.com, example.org")
    config = {k: v for k, v in app_config.items() if k != "REGISTRATION_USERS"}
    app = create_app(config)
    with app.test_request_context():
        assert allowed_domains() == ("example.com", "example.org")
    db.engine(app).dispose()
