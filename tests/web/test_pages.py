"""Page behaviour every user meets: errors tied to the fields they are about, focus where the
fix starts, a way back from sign-out, a question before "sign out everywhere", plain words on
the authorization error page, and a skip link (WCAG 2.2 AA)."""

from __future__ import annotations

import re

import pytest

from ..factories import PASSWORD
from ..helpers import csrf_token


def tag(html: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    return re.search(rf'<[a-z]+ [^>]*id="{element_id}"[^>]*>', html).group(0)


def title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1)


def login(client, username: str, password: str):
    token = csrf_token(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"csrf_token": token, "username": username, "password": password}
    )


def test_a_failed_sign_in_marks_both_fields_and_focuses_the_password(client, user):
    # WCAG 2.2 §3.3.1: the error is identified and tied to the fields it is about.
    response = login(client, "alice", "wrong password")
    html = response.get_data(as_text=True)
    assert response.status_code == 401
    username, password = tag(html, "username"), tag(html, "password")
    for field in (username, password):
        assert 'aria-invalid="true"' in field and 'aria-describedby="login-error"' in field
    # The username is kept, so the fix starts at the password.
    assert "autofocus" in password and "autofocus" not in username
    assert 'value="alice"' in username
    assert title(html) == "Error: Sign in"


def test_a_sign_in_with_an_empty_username_focuses_the_username(client, user):
    html = login(client, "", PASSWORD).get_data(as_text=True)
    assert "autofocus" in tag(html, "username") and "autofocus" not in tag(html, "password")
    assert 'aria-invalid="true"' in tag(html, "username")


def test_the_sign_in_page_has_no_error_marks_before_a_mistake(client):
    html = client.get("/login").get_data(as_text=True)
    assert "aria-invalid" not in html and title(html) == "Sign in"
    assert "autofocus" in tag(html, "username")


def test_a_wrong_device_code_marks_the_field_it_is_about(client, auth, user):
    # RFC 8628 §3.3: the user types the code; a wrong one is said next to the field.
    auth.login()
    token = csrf_token(client.get("/device").get_data(as_text=True))
    response = client.post("/device", data={"csrf_token": token, "user_code": "BCDF-GHJK"})
    html = response.get_data(as_text=True)
    field = tag(html, "user_code")
    assert response.status_code == 400
    assert 'aria-invalid="true"' in field and 'aria-describedby="device-error"' in field
    assert "autofocus" in field
    assert title(html).startswith("Error: ")


@pytest.mark.parametrize(
    ("next_url", "back"),
    [("/account/", "/account/"), ("/admin/users?q=a", "/admin/users?q=a"),
     ("https://evil.example/", "/account/"), ("//evil.example/", "/account/"), (None, "/account/")],
)  # fmt: skip
def test_sign_out_has_a_cancel_back_to_the_page_it_came_from(client, auth, user, next_url, back):
    auth.login()
    html = client.get("/logout", query_string={"next": next_url} if next_url else None).text
    assert re.search(
        rf'<a class="button" href="{re.escape(back.replace("&", "&amp;"))}">Cancel</a>', html
    )


def test_the_sign_out_link_carries_the_page_it_is_on(client, auth, user):
    auth.login()
    html = client.get("/account/").get_data(as_text=True)
    assert 'href="/logout?next=/account/"' in html


def test_sign_out_everywhere_asks_first(app, client, auth, user):
    auth.login()
    account = client.get("/account/").get_data(as_text=True)
    assert 'href="/account/sessions/end-all"' in account  # a link to the question
    page = client.get("/account/sessions/end-all")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<h1>Sign out everywhere?</h1>" in html
    assert "This signs you out of 1 session, this browser included" in html
    assert 'action="/account/sessions/end-all"' in html and 'name="csrf_token"' in html
    assert client.get("/account/").status_code == 200  # still signed in


def test_the_authorization_error_page_says_what_happened_in_words(client):
    # RFC 6749 §4.1.2.1: an unknown client is not redirected to; the user gets a page.
    response = client.get(
        "/authorize",
        query_string={"client_id": "nobody", "response_type": "code",
                      "redirect_uri": "https://rp.example/cb", "scope": "openid"},
    )  # fmt: skip
    html = response.get_data(as_text=True)
    assert response.status_code in (400, 401)
    assert "not registered with this sign-in service" in html
    assert "Go back to the application" in html
    assert "contact the people who run the application" in html
    assert re.search(r'<p class="fine">For support: error code <code>invalid_client</code>', html)


@pytest.mark.parametrize("path", ["/login", "/logout", "/account/"])
def test_every_page_starts_with_a_skip_link_to_the_main_content(client, auth, user, path):
    # WCAG 2.2 §2.4.1 bypass blocks: the first link of the page.
    auth.login()
    html = client.get(path).get_data(as_text=True)
    body = html[html.index("<body>") :]
    first_link = re.search(r"<a [^>]*>[^<]*</a>", body).group(0)
    assert first_link == '<a class="skip-link" href="#main">Skip to main content</a>'
    assert 'id="main" tabindex="-1"' in html
