"""The account page's session list: where am I signed in, sign out one or everywhere."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from idp.account.devices import describe
from idp.models import AuditEvent, LogoutDelivery, UserSession

from ..helpers import Auth, csrf_token
from .conftest import find

FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


def browser(app, user_agent: str) -> Auth:
    client = app.test_client()
    client.environ_base["HTTP_USER_AGENT"] = user_agent
    return Auth(client)


def rows(app, user) -> list[UserSession]:
    return find(
        app, select(UserSession).where(UserSession.user_id == user.id).order_by(UserSession.id)
    )


def signed_in(auth: Auth) -> bool:
    return auth.client.get("/account/").status_code == 200


def post(auth: Auth, path: str, with_csrf: bool = True):
    page = auth.client.get("/account/")
    data = {"csrf_token": csrf_token(page.text)} if with_csrf else {}
    return auth.client.post(path, data=data)


@pytest.fixture
def two_browsers(app, user):
    """alice on a Windows laptop (here) and on her phone (elsewhere)."""
    laptop, phone = browser(app, FIREFOX_WINDOWS), browser(app, SAFARI_IPHONE)
    phone.login()
    laptop.login()
    return laptop, phone


@pytest.mark.parametrize(
    "user_agent, expected",
    [
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (SAFARI_IPHONE, "Safari on iPhone"),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
            "Edge on macOS",
        ),
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/126.0 Safari/537.36", "Chrome on Linux"),
        ("curl/8.5.0", "curl"),
        (None, "Unknown device"),
    ],
)
def test_device_is_described_from_the_user_agent(user_agent, expected):
    assert describe(user_agent) == expected


def test_account_page_lists_live_sessions_with_device_place_and_last_seen(app, two_browsers):
    laptop, phone = two_browsers
    page = laptop.client.get("/account/").text
    assert "Where you are signed in" in page
    assert "Firefox on Windows" in page and "Safari on iPhone" in page
    assert "From 127.0.0.1" in page and "last seen" in page
    assert page.count('class="tag">this browser') == 1
    assert re.search(r"Firefox on Windows</strong> <span class=\"tag\">this browser", page)
    assert "Sign out everywhere" in page


def test_signing_out_another_session_ends_only_that_one(app, user, two_browsers):
    # The issue: "sign out this session" from the list; the other browser is signed out on
    # its next request, this one stays.
    laptop, phone = two_browsers
    phone_row, laptop_row = rows(app, user)
    response = post(laptop, f"/account/sessions/{phone_row.id}/end")
    assert response.status_code == 302 and response.headers["Location"].endswith("/account/")
    assert "Signed out of Safari on iPhone." in laptop.client.get("/account/").text
    assert not signed_in(phone) and signed_in(laptop)
    phone_row, laptop_row = rows(app, user)
    assert phone_row.end_reason == "signed out from account page" and laptop_row.ended_at is None
    (event,) = find(app, select(AuditEvent).where(AuditEvent.event == "account.session_ended"))
    assert event.actor == user.sub and event.details["session_id"] == phone_row.id


def test_signing_out_this_session_from_the_list_signs_this_browser_out(app, user, two_browsers):
    laptop, phone = two_browsers
    _, laptop_row = rows(app, user)
    response = post(laptop, f"/account/sessions/{laptop_row.id}/end")
    assert response.status_code == 200 and "You are signed out" in response.text
    assert not signed_in(laptop) and signed_in(phone)


def test_sign_out_everywhere_ends_every_session_and_tells_every_rp(app, user, factory):
    # The issue: "sign out everywhere"; each session's back-channel RPs get a logout token.
    rp = factory.client(
        name="BC RP", logout_metadata={"backchannel_logout_uri": "https://rp.example/bc"}
    )
    laptop, phone = browser(app, FIREFOX_WINDOWS), browser(app, SAFARI_IPHONE)
    phone.login()
    phone.tokens(rp, scope="openid")
    laptop.login()
    laptop.tokens(rp, scope="openid")
    from idp.oauth import logout

    logout.dispatcher(app).stop()  # keep the queued tokens for inspection
    response = post(laptop, "/account/sessions/end-all")
    assert response.status_code == 200 and "You are signed out" in response.text
    assert not signed_in(laptop) and not signed_in(phone)
    assert all(r.end_reason == "signed out everywhere" for r in rows(app, user))
    assert len(find(app, select(LogoutDelivery))) == 2
    (event,) = find(
        app, select(AuditEvent).where(AuditEvent.event == "account.signed_out_everywhere")
    )
    assert event.details["sessions"] == 2


def test_another_users_session_cannot_be_ended(app, user, factory, two_browsers):
    # Access control: the id in the URL must be one of the signed-in user's sessions.
    factory.user(username="bob", email="bob@example.com")
    bob = browser(app, FIREFOX_WINDOWS)
    bob.login(username="bob")
    phone_row, _ = rows(app, user)
    assert post(bob, f"/account/sessions/{phone_row.id}/end").status_code == 404
    assert signed_in(two_browsers[1])


def test_ending_a_session_needs_the_csrf_token(app, user, two_browsers):
    # A third-party page cannot sign the user out of anything through these forms.
    laptop, phone = two_browsers
    phone_row, _ = rows(app, user)
    assert post(laptop, f"/account/sessions/{phone_row.id}/end", with_csrf=False).status_code == 400
    assert post(laptop, "/account/sessions/end-all", with_csrf=False).status_code == 400
    assert signed_in(phone) and signed_in(laptop)


def test_ended_sessions_are_not_listed(app, user, two_browsers):
    laptop, phone = two_browsers
    phone.logout()
    page = laptop.client.get("/account/").text
    assert "Safari on iPhone" not in page and "Firefox on Windows" in page
