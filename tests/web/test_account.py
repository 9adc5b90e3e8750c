"""The account page: who am I, which applications I authorized, and revoking one."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Consent, Token

from ..helpers import Auth, csrf_refused, csrf_token, query


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def revoke(client, client_id: str, with_csrf: bool = True):
    # The session's CSRF token, from a page that always has a form.
    page = client.get("/logout")
    data = {"csrf_token": csrf_token(page.text)} if with_csrf else {}
    return client.post(f"/account/apps/{client_id}/revoke", data=data)


def consents(app, user_id: int) -> list[Consent]:
    with app.app_context():
        return list(db.session().scalars(select(Consent).where(Consent.user_id == user_id)))


def test_account_page_requires_sign_in(client):
    response = client.get("/account/")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    assert query(location)["next"] == "/account/"


def test_sign_in_from_the_account_redirect_comes_back_to_the_account(client, auth, user):
    nxt = query(client.get("/account/").headers["Location"])["next"]
    response = auth.login(next_url=nxt)
    assert urlsplit(response.headers["Location"]).path == "/account/"


def test_account_page_shows_the_user_and_the_authorized_applications(
    client, auth, user, oauth_client, factory
):
    other = factory.client(name="Never Used App")
    auth.login()
    page = client.get("/account/")
    assert page.status_code == 200
    assert "alice" in page.text and "alice@example.com" in page.text
    assert "None yet." in page.text
    assert "Test App" not in page.text

    auth.tokens(oauth_client, scope="openid email")
    page = client.get("/account/")
    assert "Test App" in page.text
    assert f"/account/apps/{oauth_client.client_id}/revoke" in page.text
    assert "Never Used App" not in page.text
    assert other.client_id not in page.text


def test_revoke_removes_consent_and_the_applications_tokens(
    app, client, auth, user, oauth_client, factory
):
    # RFC 7009 §2.2 semantics from the user's side: once access is removed, the client's
    # access and refresh tokens for this user stop working (RFC 6750 §3.1 invalid_token).
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid email offline_access")
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200

    # Another user's grant to the same client must survive.
    factory.user(username="bob", email="bob@example.com")
    bob_browser = app.test_client()
    bob = Auth(bob_browser)
    assert bob.login("bob").status_code == 302
    bob_tokens = bob.tokens(oauth_client, scope="openid")

    response = revoke(client, oauth_client.client_id)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/account/"
    assert "Access removed" in client.get("/account/").text

    assert consents(app, user.id) == []
    info = client.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert info.status_code == 401
    assert "invalid_token" in info.headers.get("WWW-Authenticate", "")
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 400
    assert refreshed.get_json()["error"] == "invalid_grant"
    with app.app_context():
        rows = db.session().scalars(select(Token).where(Token.user_id == user.id)).all()
        assert rows and all(row.revoked_at is not None for row in rows)
        event = db.session().scalar(select(AuditEvent).where(AuditEvent.event == "consent.revoked"))
    assert event.actor == user.sub
    assert event.target == oauth_client.client_id

    assert client.get("/userinfo", headers=bearer(bob_tokens["access_token"])).status_code == 200

    # The next authorization asks for consent again.
    params, _ = auth.code_flow_params(oauth_client, scope="openid")
    again = client.get("/authorize", query_string=params)
    assert again.status_code == 200 and 'name="allow"' in again.text


def test_revoke_without_csrf_token_changes_nothing(app, client, auth, user, oauth_client):
    # OWASP CSRF Prevention Cheat Sheet: state-changing POSTs need a token.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    response = revoke(client, oauth_client.client_id, with_csrf=False)
    assert csrf_refused(response)
    assert len(consents(app, user.id)) == 1
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 200


def test_revoke_is_post_only(client, auth, user, oauth_client):
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    assert client.get(f"/account/apps/{oauth_client.client_id}/revoke").status_code == 405


def test_revoking_an_application_never_authorized_is_not_found(
    app, client, auth, user, oauth_client, factory
):
    other = factory.client(name="Other App")
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    assert revoke(client, other.client_id).status_code == 404
    assert revoke(client, "no-such-client").status_code == 404
    assert len(consents(app, user.id)) == 1  # the real consent is untouched
    with app.app_context():
        revoked = db.session().scalars(
            select(AuditEvent).where(AuditEvent.event == "consent.revoked")
        )
        assert revoked.all() == []


def test_revoking_another_users_application_is_not_found(
    app, client, auth, user, oauth_client, factory
):
    # A user can only remove their own grants.
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    factory.user(username="bob", email="bob@example.com")
    bob_browser = app.test_client()
    assert Auth(bob_browser).login("bob").status_code == 302
    assert revoke(bob_browser, oauth_client.client_id).status_code == 404
    assert len(consents(app, user.id)) == 1
