"""Forgot password: a mailed, single-use, hashed, expiring link (issue 14, flow 2;
NIST SP 800-63B rev. 4 §4.2.1 account recovery, OWASP Forgot Password Cheat Sheet).

Mail is read from a real SMTP server (aiosmtpd) on a loopback port.
"""

from __future__ import annotations

import re
import statistics
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, update

from idp import db
from idp.models import AccountLink, User, secret_hash, utcnow

from ..factories import PASSWORD
from ..helpers import Auth, csrf_refused, csrf_token
from .password_support import (  # noqa: F401
    NEW_PASSWORD,
    app_config,
    deliver,
    events,
    forgot,
    get_user,
    html_part,
    instance,
    link_in,
    mailbox,
    smtp_server,
    stop_sender,
    text_part,
)

SENT = "Check your email"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def mailed_link(app, client, mailbox, identifier="alice") -> str:  # noqa: F811
    assert forgot(client, identifier).status_code == 200
    return link_in(deliver(app, mailbox)[-1])


def submit_new_password(client, password=NEW_PASSWORD):
    page = client.get("/password/reset")
    assert page.status_code == 200, page.get_data(as_text=True)[:300]
    token = csrf_token(page.get_data(as_text=True))
    return client.post("/password/reset", data={"csrf_token": token, "password": password})


def set_disabled(app, username="alice"):
    with app.app_context():
        db.session().execute(update(User).where(User.username == username).values(disabled=True))
        db.session().commit()


def test_the_sign_in_page_links_to_forgot_password(client):
    page = client.get("/login").get_data(as_text=True)
    assert 'href="/password/forgot"' in page and "Forgot your password?" in page


def test_the_mailed_link_resets_the_password_and_does_not_sign_in(
    app,
    client,
    user,
    mailbox,  # noqa: F811
):
    link = mailed_link(app, client, mailbox)
    (message,) = mailbox.received
    assert message["To"] == "alice@example.com" and message["Subject"] == "Reset your password"
    assert link.startswith("http://localhost/password/reset?token=")
    assert link in html_part(message) and "30 minutes" in text_part(message)
    # Following the link moves the secret out of the address bar.
    followed = client.get(path_of(link))
    assert followed.status_code == 302 and followed.headers["Location"] == "/password/reset"
    response = submit_new_password(client)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    login_page = client.get("/login").get_data(as_text=True)
    assert "Your password was changed. Sign in with your new password." in login_page
    # Never signed in by the reset itself.
    assert client.get("/account/").status_code == 302
    assert Auth(app.test_client()).login(password=PASSWORD).status_code == 401
    assert Auth(app.test_client()).login(password=NEW_PASSWORD).status_code == 302
    (event,) = events(app, "password.reset")
    assert event.actor == user.sub
    notice = deliver(app, mailbox)[-1]
    assert notice["Subject"] == "Your password was changed"
    assert NEW_PASSWORD not in notice.as_string()


def test_the_link_is_single_use(app, client, user, mailbox):  # noqa: F811
    link = mailed_link(app, client, mailbox)
    client.get(path_of(link))
    assert submit_new_password(client).status_code == 302
    again = app.test_client()
    again.get(path_of(link))
    response = again.get("/password/reset")
    assert response.status_code == 400
    assert "This link no longer works" in response.get_data(as_text=True)


def test_only_the_hash_of_the_link_is_stored_and_it_expires_in_30_minutes(
    app,
    client,
    user,
    mailbox,  # noqa: F811
):
    link = mailed_link(app, client, mailbox)
    token = link.rsplit("=", 1)[1]
    with app.app_context():
        (row,) = db.session().scalars(select(AccountLink)).all()
        assert row.purpose == "reset" and row.token_hash == secret_hash(token)
        assert token not in repr(row.__dict__)
        lifetime = row.expires_at - row.created_at
        assert timedelta(minutes=29) < lifetime <= timedelta(minutes=30, seconds=1)


@pytest.mark.config(PASSWORD_RESET_TTL=60)
def test_the_lifetime_is_configurable_and_an_expired_link_is_refused(
    app,
    client,
    user,
    mailbox,  # noqa: F811
):
    link = mailed_link(app, client, mailbox)
    with app.app_context():
        row = db.session().scalar(select(AccountLink))
        assert row.expires_at - row.created_at <= timedelta(seconds=61)
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session().commit()
    client.get(path_of(link))
    assert client.get("/password/reset").status_code == 400


def test_a_new_link_revokes_the_older_ones(app, client, user, mailbox):  # noqa: F811
    first = mailed_link(app, client, mailbox)
    second = mailed_link(app, client, mailbox)
    client.get(path_of(first))
    assert client.get("/password/reset").status_code == 400
    client.get(path_of(second))
    assert client.get("/password/reset").status_code == 200


def test_after_a_reset_every_session_ends_and_tokens_are_revoked(
    app,
    client,
    user,
    oauth_client,
    mailbox,  # noqa: F811
):
    signed_in = Auth(app.test_client())
    signed_in.login()
    tokens = signed_in.tokens(oauth_client, scope="openid")
    link = mailed_link(app, client, mailbox)
    client.get(path_of(link))
    assert submit_new_password(client).status_code == 302
    assert signed_in.client.get("/account/").status_code == 302
    userinfo = client.get(
        "/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 401
    (event,) = events(app, "password.reset")
    assert event.details["sessions_ended"] == 1


def test_a_reset_clears_a_lockout(app, client, user, mailbox):  # noqa: F811
    with app.app_context():
        db.session().execute(
            update(User).values(failed_logins=9, locked_until=utcnow() + timedelta(hours=1))
        )
        db.session().commit()
    client.get(path_of(mailed_link(app, client, mailbox)))
    assert submit_new_password(client).status_code == 302
    assert Auth(app.test_client()).login(password=NEW_PASSWORD).status_code == 302


def test_the_new_password_follows_the_policy_and_a_refusal_keeps_the_link(
    app,
    client,
    user,
    mailbox,  # noqa: F811
):
    client.get(path_of(mailed_link(app, client, mailbox)))
    refused = submit_new_password(client, password="alice")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "<title>Error: " in page
    assert "Use at least 8 characters." in page
    assert "Don&#39;t use your username in your password." in page
    assert submit_new_password(client).status_code == 302


def test_a_user_disabled_after_the_mail_cannot_use_the_link(
    app,
    client,
    user,
    mailbox,  # noqa: F811
):
    link = mailed_link(app, client, mailbox)
    set_disabled(app)
    client.get(path_of(link))
    assert client.get("/password/reset").status_code == 400


def test_the_pages_send_no_referrer_and_load_nothing_from_elsewhere(
    app,
    client,
    user,
    mailbox,  # noqa: F811
):
    # The link carries a secret: no Referer may take it to a third party.
    link = mailed_link(app, client, mailbox)
    pages = [client.get("/password/forgot"), client.get(path_of(link))]
    pages.append(client.get("/password/reset"))
    for response in pages:
        assert response.headers["Referrer-Policy"] == "no-referrer"
    html = pages[-1].get_data(as_text=True)
    assert '<meta name="referrer" content="no-referrer">' in html
    for url in re.findall(r'(?:src|href|action)="([^"]+)"', html):
        assert url.startswith(("/", "#")) and not url.startswith("//"), url
    assert link.rsplit("=", 1)[1] not in html  # the secret is not in the page either


def test_the_forms_need_their_csrf_token(app, client, user, mailbox):  # noqa: F811
    assert csrf_refused(client.post("/password/forgot", data={"username": "alice"}))
    assert deliver(app, mailbox) == []
    client.get(path_of(mailed_link(app, client, mailbox)))
    assert csrf_refused(client.post("/password/reset", data={"password": NEW_PASSWORD}))


def test_no_open_redirect_through_next(app, client, user, mailbox):  # noqa: F811
    client.get(path_of(mailed_link(app, client, mailbox)) + "&next=https://evil.example/")
    page = client.get("/password/reset?next=//evil.example/")
    token = csrf_token(page.get_data(as_text=True))
    response = client.post(
        "/password/reset?next=https://evil.example/",
        data={"csrf_token": token, "password": NEW_PASSWORD, "next": "https://evil.example/"},
    )
    assert response.headers["Location"] == "/login"


# --- no account enumeration ---------------------------------------------------------------


@pytest.fixture
def accounts(factory, user):
    factory.user(username="dora", email="dora@example.com", disabled=True)
    factory.user(username="noemail")


def test_the_answer_is_the_same_whether_or_not_the_account_exists(
    app,
    client,
    accounts,
    mailbox,  # noqa: F811
):
    answers = {
        name: forgot(app.test_client(), name)
        for name in ("alice@example.com", "nobody@example.com", "dora", "noemail", "alice")
    }
    bodies = {name: (r.status_code, r.get_data(as_text=True)) for name, r in answers.items()}
    assert len(set(bodies.values())) == 1, "the answers differ"
    status, body = bodies["alice"]
    assert status == 200 and SENT in body
    # Only the enabled account with an address got mail (twice: by email and by username).
    received = deliver(app, mailbox)
    assert [m["To"] for m in received] == ["alice@example.com", "alice@example.com"]
    requested = events(app, "password.reset_requested")
    assert len(requested) == 5 and sum(e.details["sent"] for e in requested) == 2


def test_the_answer_takes_the_same_time_whether_or_not_the_account_exists(app, client, accounts):
    # Timing within noise: the median of interleaved requests for an account that gets a
    # link and for one that does not. Mail delivery is off (MAIL_WORKER false), as it happens
    # after the response in another thread. The time is this thread's CPU time (the test
    # client runs the request in it): the same work costs the same, where the wall clock
    # also counted the turns other processes took on a loaded machine (a median 40 ms
    # against 24 ms once, while two test runs shared two cores).
    app.config["RATELIMIT_ENABLED"] = False
    limiter = app.extensions["idp.limiter"]
    limiter.enabled = False
    token = csrf_token(client.get("/password/forgot").get_data(as_text=True))

    def timed(identifier: str) -> float:
        start = time.thread_time()
        response = client.post(
            "/password/forgot", data={"csrf_token": token, "username": identifier}
        )
        elapsed = time.thread_time() - start
        assert response.status_code == 200
        return elapsed

    names = ("alice", "nobody-here", "dora")
    for name in names:  # warm-up: templates compiled, statements prepared
        timed(name)
    samples = {name: [] for name in names}
    for _ in range(25):
        for name in names:
            samples[name].append(timed(name))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["alice"]
    for value in medians.values():
        assert abs(value - base) < max(0.25 * base, 0.001), medians


@pytest.mark.config(RATELIMIT_RESET_IP="100/minute", RATELIMIT_RESET_ACCOUNT="3/minute")
@pytest.mark.usefixtures("steady_clock")
def test_requests_are_limited_per_account(app, client, user):
    for n in range(3):
        assert (
            forgot(client, "alice", environ_base={"REMOTE_ADDR": f"203.0.113.{n}"}).status_code
            == 200
        )
    refused = forgot(client, "alice", environ_base={"REMOTE_ADDR": "203.0.113.99"})
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    # An unknown account is limited the same way (the limit reveals nothing).
    for _ in range(3):
        forgot(client, "nobody", environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert forgot(client, "nobody", environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 429


@pytest.mark.config(RATELIMIT_RESET_IP="2/minute", RATELIMIT_RESET_ACCOUNT="100/minute")
@pytest.mark.usefixtures("steady_clock")
def test_requests_are_limited_per_address(app, client, user):
    for name in ("alice", "bob"):
        assert forgot(client, name, environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200
    assert forgot(client, "carol", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 429
    assert forgot(client, "carol", environ_base={"REMOTE_ADDR": "203.0.113.8"}).status_code == 200


# --- links built from ISSUER --------------------------------------------------------------


def test_the_link_ignores_the_host_header(app, client, user, mailbox):  # noqa: F811
    # Link poisoning: a forged Host must not end up in the mailed link.
    page = client.get("/password/forgot", headers={"Host": "evil.example"})
    token = csrf_token(page.get_data(as_text=True))
    client.post(
        "/password/forgot",
        data={"csrf_token": token, "username": "alice"},
        headers={"Host": "evil.example", "X-Forwarded-Host": "evil.example"},
    )
    (message,) = deliver(app, mailbox)
    assert "evil.example" not in message.as_string()
    assert link_in(message).startswith("http://localhost/password/reset?token=")


@pytest.mark.config(
    ISSUER="https://id.example.com/sso",
    PROXY_FIX_X_FOR=1,
    PROXY_FIX_X_PROTO=1,
    PROXY_FIX_X_PREFIX=1,
)
def test_the_flow_works_behind_the_documented_reverse_proxy(app, user, mailbox):  # noqa: F811
    # docs/deploy.md: nginx forwards X-Forwarded-For/-Proto (and a prefix); links use ISSUER.
    proxy = {"X-Forwarded-For": "203.0.113.5", "X-Forwarded-Proto": "https",
             "X-Forwarded-Prefix": "/sso"}  # fmt: skip
    browser = app.test_client()
    browser.environ_base.update({"REMOTE_ADDR": "127.0.0.1"})
    page = browser.get("/password/forgot", headers=proxy, base_url="https://id.example.com")
    token = csrf_token(page.get_data(as_text=True))
    browser.post(
        "/password/forgot",
        data={"csrf_token": token, "username": "alice"},
        headers=proxy,
        base_url="https://id.example.com",
    )
    link = link_in(deliver(app, mailbox)[0])
    assert link.startswith("https://id.example.com/sso/password/reset?token=")
    local = path_of(link).removeprefix("/sso")
    followed = browser.get(local, headers=proxy, base_url="https://id.example.com")
    assert followed.headers["Location"] == "/sso/password/reset"
    page = browser.get("/password/reset", headers=proxy, base_url="https://id.example.com")
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    done = browser.post(
        "/password/reset",
        data={"csrf_token": token, "password": NEW_PASSWORD},
        headers=proxy,
        base_url="https://id.example.com",
    )
    assert done.status_code == 302 and done.headers["Location"] == "/sso/login"
    (event,) = events(app, "password.reset")
    assert event.actor == user.sub
