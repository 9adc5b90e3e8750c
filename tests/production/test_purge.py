"""Purging expired rows (`idp purge` and automatically), keeping what must stay.

RFC 6749 §4.1.2 (codes are short-lived), §10.5; RFC 9700 §4.14.2 (a rotated refresh token
must still be recognised to revoke its family, so it stays until it expires).
"""

from __future__ import annotations

import json
import secrets
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from idp import db
from idp.cli import cli
from idp.models import (
    AuthorizationCode,
    Base,
    LogoutDelivery,
    SessionClient,
    Token,
    UserSession,
    secret_hash,
    utcnow,
)

DAY = timedelta(days=1)


@pytest.fixture
def world(app, user, oauth_client):
    """Rows on both sides of every purge rule; returns the ids of those that must stay."""
    now = utcnow()
    old = now - 2 * DAY  # past the default one-day retention
    with app.app_context():
        s = db.session()

        def code(expires_at):
            row = AuthorizationCode(
                code_hash=secret_hash(secrets.token_hex(8)),
                client_id=oauth_client.client_id,
                user_id=user.id,
                redirect_uri=oauth_client.redirect_uri,
                auth_time=0,
                expires_at=expires_at,
            )
            s.add(row)
            return row

        def token(access_expires_at, refresh_expires_at=None, **extra):
            row = Token(
                client_id=oauth_client.client_id,
                user_id=user.id,
                grant_type="authorization_code",
                access_token_hash=secret_hash(secrets.token_hex(8)),
                refresh_token_hash=secret_hash(secrets.token_hex(8))
                if refresh_expires_at
                else None,
                access_expires_at=access_expires_at,
                refresh_expires_at=refresh_expires_at,
                family_id=uuid.uuid4().hex,
                **extra,
            )
            s.add(row)
            return row

        def user_session(**extra):
            row = UserSession(sid=secrets.token_hex(8), user_id=user.id, auth_time=0, **extra)
            s.add(row)
            return row

        gone = [
            code(old),
            token(old),  # access expired long ago, no refresh token
            token(old, old),  # both expired
            token(now + DAY, now + DAY, revoked_at=old),  # revoked long ago
            user_session(ended_at=old, end_reason="logout"),
            user_session(created_at=old - 30 * DAY, last_seen_at=old - 30 * DAY),  # timed out
        ]
        stay = [
            code(now - timedelta(hours=1)),  # expired, but within the retention
            code(now + timedelta(minutes=1)),
            token(now + DAY),
            token(old, now + DAY),  # access expired, refresh alive
            token(old, now + DAY, refresh_used_at=old),  # rotated: kept for reuse detection
            token(now + DAY, now + DAY, revoked_at=now),  # revoked within the retention
            user_session(),
            user_session(ended_at=now - timedelta(hours=1), end_reason="logout"),
        ]
        s.flush()
        s.add(SessionClient(session_id=gone[4].id, client_id=oauth_client.client_id))
        s.add(SessionClient(session_id=stay[6].id, client_id=oauth_client.client_id))
        s.add_all(
            [
                LogoutDelivery(
                    client_id=oauth_client.client_id, uri="https://rp/bc", logout_token="t",
                    created_at=old, delivered_at=old,
                ),
                LogoutDelivery(
                    client_id=oauth_client.client_id, uri="https://rp/bc", logout_token="t",
                    created_at=now,
                ),
            ]
        )  # fmt: skip
        replay = Base.metadata.tables["jwt_replay"]  # client assertion jti (RFC 7523 §3)
        s.execute(insert(replay).values(key_hash="old", expires_at=old))
        s.execute(insert(replay).values(key_hash="live", expires_at=now + timedelta(minutes=5)))
        s.commit()
        return {(type(r).__name__, r.id) for r in stay}


def remaining(app) -> set[tuple[str, int]]:
    with app.app_context():
        s = db.session()
        return {
            (model.__name__, row_id)
            for model in (AuthorizationCode, Token, UserSession)
            for row_id in s.scalars(select(model.id))
        }


def count(app, model) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model))


def test_idp_purge_deletes_what_expired_and_keeps_the_rest(app, runner, world):
    result = runner.invoke(cli, ["purge", "--json"])
    assert result.exit_code == 0, result.output
    deleted = json.loads(result.output)["deleted"]
    assert deleted["authorization_codes"] == 1
    assert deleted["tokens"] == 3
    assert deleted["user_sessions"] == 2
    assert deleted["logout_deliveries"] == 1
    assert remaining(app) == world
    assert count(app, SessionClient) == 1  # the purged session's rows went with it
    assert count(app, LogoutDelivery) == 1
    assert deleted["jwt_replay"] == 1
    with app.app_context():
        replay = Base.metadata.tables["jwt_replay"]
        assert db.session().scalars(select(replay.c.key_hash)).all() == ["live"]
    # Running it again finds nothing more.
    again = json.loads(runner.invoke(cli, ["purge", "--json"]).output)["deleted"]
    assert set(again.values()) == {0}


@pytest.mark.config(PURGE_RETENTION=0)
def test_retention_is_configurable(app, runner, world):
    # With no retention the code that expired an hour ago goes too.
    deleted = json.loads(runner.invoke(cli, ["purge", "--json"]).output)["deleted"]
    assert deleted["authorization_codes"] == 2
    assert deleted["user_sessions"] == 3


def test_reused_rotated_refresh_token_still_revokes_its_family_after_a_purge(
    app, client, auth, user, oauth_client, runner
):
    # RFC 9700 §4.14.2: purging must not forget a rotated refresh token that is still valid.
    auth.login()
    tokens = auth.tokens(oauth_client)
    rotated = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200
    assert runner.invoke(cli, ["purge"]).exit_code == 0
    reused = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    newest = rotated.get_json()["refresh_token"]
    with app.app_context():
        row = db.session().scalar(
            select(Token).where(Token.refresh_token_hash == secret_hash(newest))
        )
        assert row.revoked_at is not None


@pytest.mark.config(PURGE_INTERVAL=3600)
def test_a_worker_purges_automatically_after_a_response_once_per_interval(app, client, world):
    state = app.extensions["idp.purge"]
    state["next"] = 0  # the interval has passed
    with client.get("/healthz") as response:  # closing the response runs the purge
        assert response.status_code == 200
    assert remaining(app) == world
    assert state["next"] > 0
    # Not again before the interval is over: new expired rows stay for now.
    with app.app_context():
        s = db.session()
        s.add(UserSession(sid="late", user_id=1, auth_time=0, ended_at=utcnow() - 2 * DAY))
        s.commit()
    with client.get("/healthz"):
        pass
    assert count(app, UserSession) == 3


@pytest.mark.config(PURGE_INTERVAL=0)
def test_automatic_purging_can_be_turned_off(app, client, world):
    app.extensions["idp.purge"]["next"] = 0
    with client.get("/healthz"):
        pass
    assert count(app, AuthorizationCode) == 3


def test_dead_account_links_are_purged_and_live_ones_stay(app, runner, user):
    # Issue #14: reset, verification and invitation links are single-use and expire; once
    # dead past the retention they are deleted, like codes.
    from idp.auth import links

    with app.app_context():
        live = links.issue("reset", "alice@example.com", 1800, user=user)
        links.issue("invite", "alice@example.com", -2 * 86400, user=user)  # long expired
        db.session().commit()
    deleted = json.loads(runner.invoke(cli, ["purge", "--json"]).output)["deleted"]
    assert deleted["account_links"] == 1
    with app.app_context():
        assert links.find("reset", live) is not None
