"""Server-side sessions: a row per sign-in, the cookie only points at it, lifetimes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from idp import db
from idp.auth import session as sessions
from idp.models import AuditEvent, LogoutDelivery, Token, UserSession, utcnow
from idp.oauth import logout

from ..helpers import Auth
from .conftest import decode, find

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"


def rows(app, user) -> list[UserSession]:
    return find(
        app, select(UserSession).where(UserSession.user_id == user.id).order_by(UserSession.id)
    )


def signed_in(client) -> bool:
    return client.get("/account/").status_code == 200


def shift(app, sid: str, **ages: timedelta) -> None:
    """Move a session's timestamps into the past (instead of waiting)."""
    with app.app_context():
        s = db.session()
        s.execute(
            update(UserSession)
            .where(UserSession.sid == sid)
            .values({name: utcnow() - age for name, age in ages.items()})
        )
        s.commit()


@pytest.fixture
def backchannel_rp(factory):
    return factory.client(
        name="BC RP", logout_metadata={"backchannel_logout_uri": "https://rp.example/bc"}
    )


def test_sign_in_creates_a_session_row_with_its_details(app, client, auth, user):
    # The issue: id, user, created, last seen, authentication time, methods, user agent, IP.
    client.environ_base["HTTP_USER_AGENT"] = FIREFOX
    auth.login()
    (row,) = rows(app, user)
    assert row.user_id == user.id and len(row.sid) >= 32
    assert row.amr == ["pwd"] and row.auth_time > 0
    assert row.user_agent == FIREFOX and row.ip == "127.0.0.1"
    assert row.created_at <= row.last_seen_at and row.ended_at is None


def test_cookie_copied_before_sign_out_does_not_work_after_it(app, client, auth, user):
    # The cookie only points at the row: once the row ends, a replayed old cookie is nothing.
    auth.login()
    name = app.config["SESSION_COOKIE_NAME"]
    copied = client.get_cookie(name).value
    with client.session_transaction() as cookie:
        assert cookie["sid"] == rows(app, user)[0].sid
    auth.logout()
    client.set_cookie(name, copied)
    assert not signed_in(client)


def test_ending_the_row_ends_the_session_in_every_worker(app, client, auth, user):
    # The issue: the row is the session; another worker (here: a direct UPDATE) ending it
    # signs the browser out on its next request.
    auth.login()
    assert signed_in(client)
    with app.app_context():
        s = db.session()
        s.execute(update(UserSession).values(ended_at=utcnow(), end_reason="elsewhere"))
        s.commit()
    assert not signed_in(client)


def test_idle_session_ends_with_every_consequence(app, client, auth, user, backchannel_rp):
    # The issue: SESSION_IDLE_LIFETIME; a timed-out session ends like a sign-out.
    auth.login()
    tokens = auth.tokens(backchannel_rp, scope="openid")
    (row,) = rows(app, user)
    logout.dispatcher(app).stop()
    shift(app, row.sid, last_seen_at=timedelta(seconds=app.config["SESSION_IDLE_LIFETIME"] + 1))
    assert not signed_in(client)
    (row,) = rows(app, user)
    assert row.ended_at is not None and row.end_reason == "expired"
    (token,) = find(app, select(Token))
    assert token.revoked_at is not None
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert client.get("/userinfo", headers=bearer).status_code == 401
    assert len(find(app, select(LogoutDelivery))) == 1


def test_absolute_lifetime_ends_even_an_active_session(app, client, auth, user):
    # The issue: SESSION_ABSOLUTE_LIFETIME counts from sign-in, whatever the activity.
    auth.login()
    (row,) = rows(app, user)
    absolute = timedelta(seconds=app.config["SESSION_ABSOLUTE_LIFETIME"] + 1)
    shift(app, row.sid, created_at=absolute)
    assert not signed_in(client)
    assert rows(app, user)[0].end_reason == "expired"


@pytest.mark.config(SESSION_IDLE_LIFETIME=600)
def test_activity_moves_last_seen_forward(app, client, auth, user):
    # The idle lifetime counts from the last request, not from sign-in.
    auth.login()
    (row,) = rows(app, user)
    shift(app, row.sid, last_seen_at=timedelta(seconds=500))
    assert signed_in(client)
    (row,) = rows(app, user)
    assert utcnow() - row.last_seen_at < timedelta(seconds=60)
    shift(app, row.sid, last_seen_at=timedelta(seconds=500))
    assert signed_in(client)  # 500 + 500 s since sign-in, but never 600 s idle


@pytest.mark.config(LOGOUT_WORKER=False)
def test_sweep_ends_timed_out_sessions_of_absent_browsers(app, client, auth, user, backchannel_rp):
    # The issue: sessions end at their lifetime even when the browser never comes back;
    # their relying parties are told.
    auth.login()
    auth.tokens(backchannel_rp, scope="openid")
    other = Auth(app.test_client())
    other.login()
    stale, fresh = rows(app, user)
    shift(app, stale.sid, last_seen_at=timedelta(days=2))
    with app.app_context():
        assert sessions.expire_timed_out() == 1
    stale, fresh = rows(app, user)
    assert stale.end_reason == "expired" and fresh.ended_at is None
    (delivery,) = find(app, select(LogoutDelivery))
    assert delivery.client_id == backchannel_rp.client_id


@pytest.mark.config(SESSION_SWEEP_INTERVAL=0.001)
def test_request_traffic_starts_the_sweep_in_the_background(app, client, auth, user):
    # The sweep runs in the delivery thread, started by ordinary requests now and then.
    other = Auth(app.test_client())
    other.login()
    (row,) = rows(app, user)
    shift(app, row.sid, created_at=timedelta(days=30))
    assert client.get("/jwks.json").status_code == 200  # any request, any browser
    logout.dispatcher(app).stop()  # joins the thread the request started
    assert rows(app, user)[0].end_reason == "expired"


def test_signing_in_again_keeps_the_session_and_refreshes_auth_time(app, client, auth, user):
    # OIDC Core §2 auth_time: re-authentication (prompt=login, max_age) updates it; the sid
    # stays, so relying parties keep their session.
    auth.login()
    (first,) = rows(app, user)
    shift(app, first.sid, last_seen_at=timedelta(seconds=1))
    with app.app_context():
        s = db.session()
        s.execute(update(UserSession).values(auth_time=UserSession.auth_time - 1000))
        s.commit()
    auth.login()
    (again,) = rows(app, user)
    assert again.sid == first.sid and again.auth_time >= first.auth_time


def test_signing_in_as_someone_else_ends_the_previous_session(app, client, auth, user, factory):
    # The previous user is no longer signed in here, so that session ends (and is told).
    bob = factory.user(username="bob", email="bob@example.com")
    auth.login()
    auth.login(username="bob")
    (alices,) = rows(app, user)
    assert alices.ended_at is not None and alices.end_reason == "replaced by another sign-in"
    assert len(rows(app, bob)) == 1


def test_sid_of_id_tokens_stays_the_same_across_refresh(app, client, auth, user, oauth_client):
    # OIDC Core §12.2 with Back-Channel Logout 1.0 §2.1: the refreshed ID token has the sid.
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid offline_access")
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).get_json()
    first = decode(client, tokens["id_token"]).claims
    second = decode(client, refreshed["id_token"]).claims
    assert first["sid"] == second["sid"] == rows(app, user)[0].sid


def test_logout_page_ends_the_server_session(app, client, auth, user):
    # /logout ends the row (not only the cookie) and records it.
    auth.login()
    response = auth.logout()
    assert response.status_code == 200 and "You are signed out" in response.text
    (row,) = rows(app, user)
    assert row.ended_at is not None and row.end_reason == "logout"
    names = {e.event for e in find(app, select(AuditEvent))}
    assert {"logout", "session.ended"} <= names
