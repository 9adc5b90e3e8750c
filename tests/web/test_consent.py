"""The consent page of the authorization endpoint (OIDC Core §3.1.2.4, RFC 6749 §4.1.1)."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuditEvent, AuthorizationCode, Consent

from ..helpers import Auth, csrf_token, query


@pytest.fixture
def signed_in(auth, user):
    assert auth.login().status_code == 302
    return user


def authorize_url(params: dict) -> str:
    return "/authorize?" + urlencode(params)


def is_consent_page(response) -> bool:
    return response.status_code == 200 and 'name="allow"' in response.text


def scope_items(html: str) -> list[tuple[str, bool]]:
    """(text, marked as new) for each scope listed on the consent page."""
    listing = re.search(r'<ul class="scopes">(.*?)</ul>', html, re.S).group(1)
    items = []
    for attrs, body in re.findall(r"<li\b([^>]*)>(.*?)</li>", listing, re.S):
        marked = "new" in attrs or re.search(r">\s*new\s*<", body) is not None
        text = re.sub(r"<[^>]+>.*?</[^>]+>|<[^>]+>", "", body).strip()
        items.append((text, marked))
    return items


def stored_consent(app, user, client) -> Consent | None:
    with app.app_context():
        return db.session().scalar(
            select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id)
        )


def code_count(app) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(AuthorizationCode))


def test_consent_page_names_the_client_and_each_scope_in_plain_words(
    client, auth, signed_in, factory
):
    # OIDC Core §3.1.2.4: the user is told who asks for what before granting it.
    rp = factory.client(name="Photo Printer")
    params, _ = auth.code_flow_params(rp, scope="openid email phone")
    page = client.get(authorize_url(params))
    assert is_consent_page(page)
    text = page.text
    assert "Photo Printer" in text
    assert [item for item, _ in scope_items(text)] == [
        "Sign you in and know who you are",
        "Your email address",
        "Your phone number",
    ]
    assert "alice" in text  # who is signed in


def test_client_name_is_escaped_on_the_consent_page(client, auth, signed_in, factory):
    rp = factory.client(name='<img src=x onerror="alert(1)">')
    params, _ = auth.code_flow_params(rp, scope="openid")
    page = client.get(authorize_url(params))
    assert is_consent_page(page)
    assert "<img src=x" not in page.text
    assert "&lt;img src=x" in page.text


def test_allow_stores_consent_and_redirects_with_a_code(app, client, auth, signed_in, oauth_client):
    # RFC 6749 §4.1.2: after approval the user agent goes back with code and state.
    params, _ = auth.code_flow_params(oauth_client, scope="openid email")
    response = auth.authorize(params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(oauth_client.redirect_uri + "?")
    result = query(location)
    assert result["code"] and result["state"] == params["state"]

    consent = stored_consent(app, signed_in, oauth_client)
    assert consent is not None
    assert consent.scopes == {"openid", "email"}
    with app.app_context():
        event = db.session().scalar(select(AuditEvent).where(AuditEvent.event == "consent.granted"))
    assert event.actor == signed_in.sub
    assert event.target == oauth_client.client_id
    assert set(event.details["scope"].split()) == {"openid", "email"}


def test_deny_redirects_with_access_denied_and_stores_nothing(
    app, client, auth, signed_in, oauth_client
):
    # RFC 6749 §4.1.2.1: access_denied, with the state of the request.
    params, _ = auth.code_flow_params(oauth_client, scope="openid email")
    response = auth.authorize(params, consent="deny")
    assert response.status_code == 302
    result = query(response.headers["Location"])
    assert result["error"] == "access_denied"
    assert result["state"] == params["state"]
    assert "code" not in result
    assert stored_consent(app, signed_in, oauth_client) is None
    assert code_count(app) == 0


def test_same_scopes_again_skip_the_consent_page(client, auth, signed_in, oauth_client):
    # OIDC Core §3.1.2.4: consent may be remembered from a previous grant.
    params, _ = auth.code_flow_params(oauth_client, scope="openid email profile")
    assert auth.authorize(params).status_code == 302

    for scope in ("openid email profile", "openid email"):  # same or fewer scopes
        again, _ = auth.code_flow_params(oauth_client, scope=scope)
        response = client.get(authorize_url(again))
        assert response.status_code == 302, response.text[:300]
        assert "code" in query(response.headers["Location"])


def test_a_new_scope_asks_again_and_marks_what_is_new(app, client, auth, signed_in, oauth_client):
    params, _ = auth.code_flow_params(oauth_client, scope="openid email")
    assert auth.authorize(params).status_code == 302

    wider, _ = auth.code_flow_params(oauth_client, scope="openid email phone")
    page = client.get(authorize_url(wider))
    assert is_consent_page(page)
    new_items = [text for text, is_new in scope_items(page.text) if is_new]
    assert new_items == ["Your phone number"]

    response = client.post(
        authorize_url(wider), data={"csrf_token": csrf_token(page.text), "allow": "Allow"}
    )
    assert response.status_code == 302
    assert "code" in query(response.headers["Location"])
    assert stored_consent(app, signed_in, oauth_client).scopes == {"openid", "email", "phone"}


def test_prompt_consent_asks_even_when_consent_was_given(client, auth, signed_in, oauth_client):
    # OIDC Core §3.1.2.1 prompt=consent.
    params, _ = auth.code_flow_params(oauth_client, scope="openid")
    assert auth.authorize(params).status_code == 302
    again, _ = auth.code_flow_params(oauth_client, scope="openid", prompt="consent")
    assert is_consent_page(client.get(authorize_url(again)))


def test_first_party_client_skips_consent(app, client, auth, signed_in, factory):
    first_party = factory.client(name="Our Own App", first_party=True)
    params, _ = auth.code_flow_params(first_party, scope="openid email")
    response = client.get(authorize_url(params))
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).netloc == "rp.example"
    assert "code" in query(response.headers["Location"])


@pytest.mark.parametrize("token", [None, "forged-token", "wrong"])
def test_consent_post_without_a_valid_csrf_token_issues_no_code(
    app, client, auth, signed_in, oauth_client, token
):
    # OWASP CSRF Prevention: another site must not be able to approve on the user's behalf.
    params, _ = auth.code_flow_params(oauth_client, scope="openid email")
    url = authorize_url(params)
    page = client.get(url)
    assert is_consent_page(page)
    data = {"allow": "Allow"}
    if token == "wrong":  # a well-formed token signed with another key
        data["csrf_token"] = csrf_token(page.text)[:-4] + "AAAA"
    elif token:
        data["csrf_token"] = token
    response = client.post(url, data=data)
    assert "code" not in query(response.headers.get("Location", ""))
    assert is_consent_page(response)
    assert code_count(app) == 0
    assert stored_consent(app, signed_in, oauth_client) is None


def test_consent_token_of_another_browser_is_refused(
    app, client, auth, signed_in, oauth_client, factory
):
    # A CSRF token is bound to the session it was issued to.
    factory.user(username="mallory", email="mallory@example.com")
    attacker = app.test_client()
    Auth(attacker).login("mallory")
    params, _ = auth.code_flow_params(oauth_client, scope="openid")
    attacker_token = csrf_token(attacker.get(authorize_url(params)).text)
    response = client.post(
        authorize_url(params), data={"csrf_token": attacker_token, "allow": "Allow"}
    )
    assert "code" not in query(response.headers.get("Location", ""))
    assert stored_consent(app, signed_in, oauth_client) is None
