"""Destructive admin actions ask first: the detail page links to a confirmation page that
names what will happen and changes nothing; only its POST (with the CSRF token) acts."""

from __future__ import annotations

import re
from html import unescape

import pytest
from sqlalchemy import select

from idp import db
from idp.models import Client, Token, UserSession

from ..helpers import Auth
from .support import events, post, rows, text_of, user_row


@pytest.fixture
def alice(app, user, oauth_client):
    """Alice signed in with a live session and a token."""
    browser = app.test_client()
    auth = Auth(browser)
    auth.login()
    auth.tokens(oauth_client)
    return browser


def client_row(app, client_id: str) -> Client:
    with app.app_context():
        return db.session().scalar(select(Client).where(Client.client_id == client_id))


def form_action(html: str) -> str:
    [action] = re.findall(r'<form method="post" action="([^"]+)"', html)
    return action


USER_ACTIONS = [
    ("password/reset", "Reset the password of alice?", "Reset password",
     ["remove the password", "end alice's 1 live session(s)", "revoke 1 active token(s)"]),
    ("disable", "Disable alice?", "Disable alice",
     ["stop alice from signing in", "end alice's 1 live session(s)", "revoke 1 active token(s)"]),
    ("sessions/end-all", "End all sessions of alice?", "End all sessions",
     ["end alice's 1 live session(s)"]),
]  # fmt: skip


@pytest.mark.parametrize(("path", "heading", "button", "says"), USER_ACTIONS)
def test_a_user_action_asks_first_and_changes_nothing(
    app, admin_client, user, alice, path, heading, button, says
):
    url = f"/admin/users/{user.id}/{path}"
    detail = admin_client.get(f"/admin/users/{user.id}").get_data(as_text=True)
    assert f'href="{url}"' in detail  # a link to the question, not a one-click button
    assert f'action="{url}"' not in detail

    page = admin_client.get(url)
    html, text = page.get_data(as_text=True), unescape(text_of(page))
    assert page.status_code == 200
    assert f"<h1>{heading}</h1>" in html
    for consequence in says:
        assert consequence in text
    assert form_action(html) == url and 'name="csrf_token"' in html
    assert f">{button}</button>" in html
    assert f'href="/admin/users/{user.id}">Cancel</a>' in html
    # Nothing happened yet.
    alice_now = user_row(app, "alice")
    assert alice_now.password_hash and not alice_now.disabled
    assert [s.ended_at for s in rows(app, UserSession, UserSession.user_id == user.id)] == [None]
    assert events(app, "admin.user.password_reset") == events(app, "admin.user.disabled") == []


@pytest.mark.parametrize("path", [a[0] for a in USER_ACTIONS])
def test_a_user_action_still_needs_the_csrf_token(app, admin_client, user, alice, path):
    response = post(admin_client, f"/admin/users/{user.id}/{path}", csrf=False)
    assert response.status_code == 400
    assert not user_row(app, "alice").disabled
    assert user_row(app, "alice").password_hash


def test_confirming_a_user_action_does_it(app, admin_client, user, alice):
    assert post(admin_client, f"/admin/users/{user.id}/disable").status_code == 302
    assert user_row(app, "alice").disabled
    assert len(events(app, "admin.user.disabled")) == 1


def test_rotating_a_secret_asks_first(app, admin_client, oauth_client):
    url = f"/admin/clients/{oauth_client.client_id}/secret"
    detail = admin_client.get(f"/admin/clients/{oauth_client.client_id}").get_data(as_text=True)
    assert f'href="{url}"' in detail and f'action="{url}"' not in detail
    before = client_row(app, oauth_client.client_id).client_secret_hash
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "make the current secret stop working at once" in unescape(text_of(page))
    assert form_action(page.get_data(as_text=True)) == url
    assert client_row(app, oauth_client.client_id).client_secret_hash == before
    assert events(app, "admin.client.secret_rotated") == []


def test_rotating_asks_nothing_of_a_client_without_a_secret(admin_client, factory):
    public = factory.client(name="SPA", public=True, redirect_uris=["https://spa.example/cb"])
    assert admin_client.get(f"/admin/clients/{public.client_id}/secret").status_code == 400


def test_disabling_a_client_asks_first_and_counts_its_tokens(
    app, admin_client, oauth_client, alice
):
    url = f"/admin/clients/{oauth_client.client_id}/disable"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "stop its 1 active access token(s) from working" in unescape(text_of(page))
    assert not client_row(app, oauth_client.client_id).disabled
    assert all(t.revoked_at is None for t in rows(app, Token))
    assert post(admin_client, url).status_code == 302
    assert client_row(app, oauth_client.client_id).disabled
