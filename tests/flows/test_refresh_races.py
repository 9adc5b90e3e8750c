"""Refresh rotation against what races it (RFC 6749 §6, RFC 9700 §4.14.2, issues 19 and 20).

On PostgreSQL a refresh reads its token and its grant's state, makes the new tokens, then
re-reads the grant's state under row locks, consumes the old token and stores the new one
in one autocommitted statement (tokens.find_to_refresh, tokens.rotate); on SQLite it
consumes, then stores and re-checks (tokens.settle). Each test forces the other action to
run at the worst moment of that request: after the checks and just before the old token is
consumed, or after the new row was written (on PostgreSQL committed with it, on SQLite
before its commit). The other action runs in its own thread, as a second worker would: on
SQLite it waits for the refresh's write lock. Whatever the order, no token of the answer may
stay usable.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from idp import db
from idp.models import Token, token_sql
from idp.oauth import grants, tokens

from ..helpers import Auth, basic_auth, csrf_token
from .test_revocation_races import (
    GRANT_ENDINGS,
    all_tokens,
    assert_dead,
    events,
    refresh,
    revoke_app,
    set_disabled,
    waiting_for_a_lock,
)

MOMENTS = ["before_consume", "before_commit"]


class Racer:
    """Runs ``action`` in a thread at one moment of the next token request, and waits until
    it has finished or is waiting for a lock that request holds."""

    def __init__(self, app, monkeypatch, moment: str, action):
        self.app, self.action, self.thread, self.result = app, action, None, None
        if moment == "before_consume":
            original = grants.RefreshTokenGrant.create_token_response

            def create_token_response(grant):
                self.start()
                return original(grant)

            monkeypatch.setattr(
                grants.RefreshTokenGrant, "create_token_response", create_token_response
            )
        else:  # the new row is written, not committed: after the driver's rotate or the INSERT

            def after(original):
                def racing(*args, **kwargs):
                    stored = original(*args, **kwargs)
                    self.start()
                    return stored

                return racing

            monkeypatch.setattr(token_sql, "rotate", after(token_sql.rotate))
            monkeypatch.setattr(tokens, "insert", after(tokens.insert))

    def start(self) -> None:
        if self.thread is not None:
            return

        def run():
            try:
                self.result = self.action()
            except BaseException as exc:  # reported by join()
                self.result = exc

        self.thread = threading.Thread(target=run)
        self.thread.start()
        # On SQLite a waiting writer cannot be seen: a second is long enough to reach it.
        postgres = db.engine(self.app).dialect.name == "postgresql"
        deadline = time.monotonic() + (10 if postgres else 1)
        while self.thread.is_alive() and time.monotonic() < deadline:
            if waiting_for_a_lock(self.app):
                return
            time.sleep(0.05)

    def join(self):
        assert self.thread is not None, "the racing action never ran"
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the racing action hung"
        assert not isinstance(self.result, BaseException), repr(self.result)
        return self.result


def refused(response) -> bool:
    return response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def refused_or_dead(app, oauth_client, response) -> None:
    """The race's two allowed outcomes: the refresh was refused (RFC 6749 §5.2
    invalid_grant), or it succeeded and the tokens it gave are already dead."""
    assert response.status_code == 200 or refused(response), response.get_data(as_text=True)
    if response.status_code == 200:
        assert_dead(app, oauth_client, response.get_json())


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_reuse_racing_a_rotation_revokes_the_family_with_the_new_tokens(
    app, auth, user, oauth_client, monkeypatch, moment
):
    # RFC 9700 §4.14.2: two uses of one refresh token: one may get new tokens, the other is
    # a reuse, and the whole family is revoked, the tokens stored while it ran included.
    auth.login()
    first = auth.tokens(oauth_client)
    racer = Racer(
        app, monkeypatch, moment, lambda: refresh(app, oauth_client, first["refresh_token"])
    )

    response = refresh(app, oauth_client, first["refresh_token"])

    other = racer.join()
    monkeypatch.undo()
    answers = sorted([response, other], key=lambda r: r.status_code)
    assert answers[0].status_code == 200 and refused(answers[1])
    assert_dead(app, oauth_client, answers[0].get_json())
    assert all(row.revoked_at is not None for row in all_tokens(app))
    assert len(all_tokens(app)) == 2  # the first issuance and one rotation, never two


@pytest.mark.parametrize("moment", MOMENTS)
def test_revoking_the_refresh_token_while_it_is_rotated_revokes_the_new_tokens(
    app, auth, user, oauth_client, monkeypatch, moment
):
    # RFC 7009 §2.1: revoking a refresh token revokes its family (revoke_family); a rotation
    # running at that moment yields nothing usable.
    auth.login()
    first = auth.tokens(oauth_client)

    def revoke():
        return app.test_client().post(
            "/revoke",
            data={"token": first["refresh_token"]},
            headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
        )

    racer = Racer(app, monkeypatch, moment, revoke)
    response = refresh(app, oauth_client, first["refresh_token"])
    assert racer.join().status_code == 200
    monkeypatch.undo()
    refused_or_dead(app, oauth_client, response)
    assert all(row.revoked_at is not None for row in all_tokens(app))


@pytest.mark.parametrize("moment", MOMENTS)
def test_a_sign_out_while_refreshing_revokes_the_new_tokens(
    app, client, auth, user, oauth_client, monkeypatch, moment
):
    # The sign-out policy (docs/architecture.md "Revocation"): a session's tokens end with
    # it, also those whose row a refresh was writing when the sign-out listed them.
    auth.login()
    first = auth.tokens(oauth_client)
    racer = Racer(app, monkeypatch, moment, lambda: auth.logout())

    response = refresh(app, oauth_client, first["refresh_token"])

    racer.join()
    monkeypatch.undo()
    refused_or_dead(app, oauth_client, response)
    assert all(row.revoked_at is not None for row in all_tokens(app))


@pytest.mark.parametrize("moment", MOMENTS)
def test_disabling_the_user_while_refreshing_revokes_the_new_tokens(
    app, auth, user, oauth_client, monkeypatch, moment
):
    auth.login()
    first = auth.tokens(oauth_client)
    racer = Racer(app, monkeypatch, moment, lambda: set_disabled(app, user.id, True))

    response = refresh(app, oauth_client, first["refresh_token"])

    racer.join()
    monkeypatch.undo()
    set_disabled(app, user.id, False)  # enabling the user again revives nothing
    refused_or_dead(app, oauth_client, response)


@pytest.mark.parametrize("moment", MOMENTS)
def test_revoking_access_while_refreshing_revokes_the_new_tokens(
    app, client, auth, user, oauth_client, monkeypatch, moment
):
    # Issue 19 §3: "revoke access" ends the client's whole grant, what is in flight included.
    auth.login()
    first = auth.tokens(oauth_client)
    page = client.get("/account/")
    token = csrf_token(page.get_data(as_text=True))

    def revoke_access():
        return client.post(
            f"/account/apps/{oauth_client.client_id}/revoke", data={"csrf_token": token}
        )

    racer = Racer(app, monkeypatch, moment, revoke_access)
    response = refresh(app, oauth_client, first["refresh_token"])
    assert racer.join().status_code == 302
    monkeypatch.undo()
    refused_or_dead(app, oauth_client, response)
    assert all(row.revoked_at is not None for row in all_tokens(app))


def test_an_ended_grant_is_refused_before_anything_is_consumed(
    app, client, auth, user, oauth_client
):
    # RFC 6749 §5.2: invalid_grant; the refused request writes nothing.
    auth.login()
    first = auth.tokens(oauth_client)
    revoke_app(client, oauth_client)
    response = refresh(app, oauth_client, first["refresh_token"])
    assert refused(response)
    assert [row.refresh_used_at for row in all_tokens(app)] == [None]
    assert events(app, "token.family_revoked") == []


def test_a_refused_scope_leaves_the_refresh_token_usable(app, auth, user, oauth_client):
    # RFC 6749 §6: a refresh asking for more than the grant is invalid_scope; the request
    # consumed nothing (on PostgreSQL its transaction is rolled back), so the client may
    # ask again.
    auth.login()
    first = auth.tokens(oauth_client)
    wider = Auth(app.test_client()).token(
        oauth_client,
        {
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "scope": "openid admin",
        },
    )
    assert wider.status_code == 400 and wider.get_json()["error"] == "invalid_scope"
    again = refresh(app, oauth_client, first["refresh_token"])
    assert again.status_code == 200
    with app.app_context():
        assert db.session().query(Token).count() == 2


def refresh_while(app, monkeypatch, registered, refresh_token: str, statement: str):
    """Refresh, with ``statement`` run and committed by another connection after the
    grant's checks and before the old token is consumed; the token response."""

    def change():
        with db.engine(app).begin() as conn:
            assert conn.execute(text(statement)).rowcount == 1

    racer = Racer(app, monkeypatch, "before_consume", change)
    response = refresh(app, registered, refresh_token)
    racer.join()
    monkeypatch.undo()
    return response


@pytest.mark.parametrize("ending", GRANT_ENDINGS)
def test_a_grant_ending_between_the_checks_and_the_rotation_gets_nothing(
    app, auth, user, oauth_client, monkeypatch, ending
):
    # RFC 6749 §5.2 invalid_grant: the grant ended after the refresh checked it and before
    # it stored its new tokens. On PostgreSQL the rotation re-reads the grant's state as it
    # consumes the token (token_sql.ROTATE), so nothing is consumed or stored; on SQLite the
    # re-check after the INSERT (tokens.settle) revokes what was stored.
    auth.login()
    first = auth.tokens(oauth_client)
    statement = GRANT_ENDINGS[ending]
    response = refresh_while(app, monkeypatch, oauth_client, first["refresh_token"], statement)
    refused_or_dead(app, oauth_client, response)
    if db.engine(app).dialect.name == "postgresql":
        assert refused(response)
        assert [row.refresh_used_at for row in all_tokens(app)] == [None]
        assert events(app, "token.family_revoked") == []


def test_an_offline_grant_survives_a_sign_out_during_its_rotation(
    app, auth, user, oauth_client, monkeypatch
):
    # OIDC Core §11 with SIGN_OUT_KEEPS_OFFLINE_ACCESS (the default): an offline_access
    # refresh token outlives the session, also when the session ends while it is rotated.
    auth.login()
    first = auth.tokens(oauth_client, scope="openid offline_access")
    statement = GRANT_ENDINGS["session ended"]
    response = refresh_while(app, monkeypatch, oauth_client, first["refresh_token"], statement)
    assert response.status_code == 200, response.get_json()
    assert refresh(app, oauth_client, response.get_json()["refresh_token"]).status_code == 200


def test_deleting_the_user_while_refreshing_answers_invalid_grant(
    app, auth, user, oauth_client, monkeypatch
):
    # RFC 6749 §5.2: the grant is gone with its user (tokens go by ON DELETE CASCADE); the
    # refresh that checked it a moment before is refused, not answered with an error page.
    # The row itself, as admin.users.remove_user deletes it last.
    auth.login()
    first = auth.tokens(oauth_client)
    statement = f"DELETE FROM users WHERE id = {int(user.id)}"
    response = refresh_while(app, monkeypatch, oauth_client, first["refresh_token"], statement)
    assert refused(response), response.get_data(as_text=True)
    assert all_tokens(app) == []
