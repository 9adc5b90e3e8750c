"""Revocation that covers what is in flight (issues 19 and 20), with forced interleavings.

Each test makes the racing request happen at the worst moment by monkeypatching the point
where a token request is about to store its tokens (``tokens.insert``) or has just
validated its code: the other action (a replay, a sign-out, disabling the user, revoking
the application) runs there, in the same thread, through its ordinary code path. One test
leaves a revocation's transaction open there and commits it from another thread once the
token request waits for its locks. The same races run naturally on two real workers in
tests/production/test_workers.py.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import select, text

from idp import db
from idp.admin.users import sign_out_everywhere
from idp.models import AuditEvent, AuthorizationCode, Consent, Token, User, secret_hash
from idp.oauth import grants, tokens

from ..helpers import Auth, basic_auth, csrf_token


def during_insert(monkeypatch, action) -> None:
    """Run action() once, just before a token request INSERTs its token row."""
    original = tokens.insert
    pending = [action]

    def racing(session, row):
        if pending:
            pending.pop()()
        return original(session, row)

    monkeypatch.setattr(tokens, "insert", racing)


def after_validation(monkeypatch, action) -> None:
    """Run action() once, after the code was validated and before it is consumed."""
    original = grants.AuthorizationCodeGrant.validate_token_request
    pending = [action]

    def racing(self):
        original(self)
        if pending:
            pending.pop()()

    monkeypatch.setattr(grants.AuthorizationCodeGrant, "validate_token_request", racing)


def waiting_for_a_lock(app) -> bool:
    """Whether a connection to the test database waits for a row lock (PostgreSQL only:
    SQLite's busy timeout cannot be seen from outside)."""
    engine = db.engine(app)
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        return bool(
            conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND datname = current_database()"
                )
            )
        )


# The first half of a revocation (tokens.revoke_grants' callers change the state first, then
# revoke the rows): the grant's state changed, its tokens not yet revoked. The first word
# names the check of tokens.settle that sees it.
GRANT_ENDINGS = {
    "user disabled": "UPDATE users SET disabled = true",
    "session ended": "UPDATE user_sessions SET ended_at = CURRENT_TIMESTAMP",
    "consent deleted": "DELETE FROM consents",
    "code revoked": "UPDATE authorization_codes SET expires_at = used_at",
}


def redeem_data(code: str, verifier: str, registered) -> dict:
    return {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": registered.redirect_uri,
    }


def introspect(app, registered, token: str) -> dict:
    response = app.test_client().post(
        "/introspect",
        data={"token": token},
        headers=basic_auth(registered.client_id, registered.client_secret),
    )
    assert response.status_code == 200
    return response.get_json()


def refresh(app, registered, refresh_token: str):
    return Auth(app.test_client()).token(
        registered, {"grant_type": "refresh_token", "refresh_token": refresh_token}
    )


def all_tokens(app) -> list[Token]:
    with app.app_context():
        rows = list(db.session().scalars(select(Token)))
        db.session().expunge_all()
        return rows


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))
        db.session().expunge_all()
        return rows


def assert_dead(app, registered, body: dict) -> None:
    """The tokens of a token response no longer work anywhere."""
    assert introspect(app, registered, body["access_token"]) == {"active": False}
    assert introspect(app, registered, body["refresh_token"]) == {"active": False}
    again = refresh(app, registered, body["refresh_token"])
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    userinfo = app.test_client().get(
        "/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert userinfo.status_code == 401


# --- issue 20: the code-replay race ------------------------------------------------------


def test_a_replay_while_the_winner_stores_its_tokens_revokes_them(
    app, auth, user, oauth_client, monkeypatch
):
    # RFC 6749 §4.1.2 (RFC 9700 §4.2.4): a code used twice revokes every token issued from
    # it. The replay arrives after the winner consumed the code and before its INSERT.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    data = redeem_data(code, verifier, oauth_client)
    replays = []
    during_insert(
        monkeypatch, lambda: replays.append(Auth(app.test_client()).token(oauth_client, data))
    )

    winner = auth.token(oauth_client, data)

    assert winner.status_code == 200
    [replay] = replays
    assert replay.status_code == 400 and replay.get_json()["error"] == "invalid_grant"
    monkeypatch.undo()
    assert_dead(app, oauth_client, winner.get_json())
    assert [row.revoked_at is not None for row in all_tokens(app)] == [True]
    assert len(events(app, "code.replayed")) == 1
    [meanwhile] = events(app, "token.revoked_meanwhile")
    assert meanwhile.details["ended"] == ["code"]


@pytest.mark.parametrize("ending", GRANT_ENDINGS)
def test_a_revocation_committed_after_the_tokens_are_stored_is_waited_for(
    app, auth, user, oauth_client, monkeypatch, ending
):
    # RFC 6749 §4.1.2, RFC 9700 §4.14.2: a revocation wrote the grant's state and revoked
    # its tokens just before this request stored its own, and commits only after. The
    # re-read after the INSERT (tokens.settle) must wait for that commit (FOR SHARE) and
    # then revoke what it stored: read without waiting, it would see the grant still live.
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the INSERT would wait for the commit")
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    revocation = db.engine(app).connect()
    transaction = revocation.begin()
    waited, committer = [], []

    def commit_once_waited_for():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not waited:
            if waiting_for_a_lock(app):
                waited.append(True)
            time.sleep(0.02)
        transaction.commit()
        revocation.close()

    def first_half():
        assert revocation.execute(text(GRANT_ENDINGS[ending])).rowcount == 1
        revocation.execute(text("UPDATE tokens SET revoked_at = now() WHERE revoked_at IS NULL"))
        committer.append(threading.Thread(target=commit_once_waited_for))
        committer[0].start()

    during_insert(monkeypatch, first_half)
    response = Auth(app.test_client()).token(
        oauth_client, redeem_data(code, verifier, oauth_client)
    )
    committer[0].join(timeout=30)

    assert response.status_code == 200
    assert waited == [True], "the re-read did not wait for the revocation's commit"
    monkeypatch.undo()
    assert_dead(app, oauth_client, response.get_json())
    [meanwhile] = events(app, "token.revoked_meanwhile")
    assert meanwhile.details["ended"] == [ending.split()[0]]


# --- issue 19 §1: sign-out racing a code redemption --------------------------------------


@pytest.fixture(params=["logout", "end_session"])
def sign_out(request, app, client, auth, oauth_client):
    """Signing out of the browser, through POST /logout or RP-Initiated Logout."""
    auth.login()
    if request.param == "logout":
        return lambda: auth.logout()
    id_token = auth.tokens(oauth_client)["id_token"]

    def end_session():
        response = client.get("/end_session", query_string={"id_token_hint": id_token})
        assert response.status_code == 200  # the hint names this session: no question

    return end_session


def test_a_sign_out_before_the_code_is_consumed_makes_it_expired(
    app, auth, user, oauth_client, sign_out, monkeypatch
):
    # RFC 6749 §4.1.3: an expired code is refused. Sign-out expires the session's codes; a
    # redemption that had already validated the code must not consume it afterwards.
    code, verifier, _ = auth.get_code(oauth_client)
    after_validation(monkeypatch, sign_out)
    before = len(all_tokens(app))

    response = Auth(app.test_client()).token(
        oauth_client, redeem_data(code, verifier, oauth_client)
    )

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert len(all_tokens(app)) == before
    with app.app_context():
        row = db.session().scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == secret_hash(code))
        )
        assert row.used_at is None


def test_a_sign_out_while_tokens_are_stored_revokes_them(
    app, auth, user, oauth_client, sign_out, monkeypatch
):
    # OIDC sign-out policy (docs/architecture.md): a session's tokens end with it, also a
    # token whose row did not exist yet when the sign-out listed the session's tokens.
    code, verifier, _ = auth.get_code(oauth_client)
    during_insert(monkeypatch, sign_out)

    response = Auth(app.test_client()).token(
        oauth_client, redeem_data(code, verifier, oauth_client)
    )

    assert response.status_code == 200
    monkeypatch.undo()
    assert_dead(app, oauth_client, response.get_json())
    assert events(app, "token.revoked_meanwhile")[-1].details["ended"] == ["session"]


# --- issue 19 §2: disabling a user racing a redemption -----------------------------------


def set_disabled(app, user_id: int, disabled: bool) -> None:
    with app.app_context():
        session = db.session()
        row = session.get(User, user_id)
        row.disabled = disabled
        if disabled:
            sign_out_everywhere(row, "user disabled")
        session.commit()


def test_disabling_the_user_while_tokens_are_stored_revokes_them_for_good(
    app, auth, user, oauth_client, monkeypatch
):
    # RFC 7009 §2.1 semantics of the admin action: every token of the user ends, and
    # enabling the user again does not bring one back.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    during_insert(monkeypatch, lambda: set_disabled(app, user.id, True))

    response = Auth(app.test_client()).token(
        oauth_client, redeem_data(code, verifier, oauth_client)
    )

    assert response.status_code == 200
    monkeypatch.undo()
    set_disabled(app, user.id, False)
    assert_dead(app, oauth_client, response.get_json())


# --- issue 19 §3: "revoke access" and what is not yet redeemed -----------------------------


def revoke_app(client, registered):
    page = client.get("/account/")
    token = csrf_token(page.get_data(as_text=True))
    response = client.post(
        f"/account/apps/{registered.client_id}/revoke", data={"csrf_token": token}
    )
    assert response.status_code == 302
    return response


def test_revoking_access_expires_an_unredeemed_code(app, client, auth, user, oauth_client):
    # The account page promises "The application's tokens no longer work": a code issued
    # before the revocation must not yield tokens after it (RFC 6749 §4.1.3: expired).
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    revoke_app(client, oauth_client)

    response = auth.exchange(oauth_client, code, verifier)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"
    assert all_tokens(app) == []


def test_revoking_access_while_tokens_are_stored_revokes_them(
    app, client, auth, user, oauth_client, monkeypatch
):
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    during_insert(monkeypatch, lambda: revoke_app(client, oauth_client))

    response = Auth(app.test_client()).token(
        oauth_client, redeem_data(code, verifier, oauth_client)
    )

    assert response.status_code == 200
    monkeypatch.undo()
    assert_dead(app, oauth_client, response.get_json())
    assert events(app, "token.revoked_meanwhile")[-1].details["ended"] == ["consent"]


def test_tokens_of_a_revoked_consent_stay_revoked_after_a_new_consent(
    app, client, auth, user, oauth_client
):
    # The liveness rule reads the consent, but revocation also marks the rows: consenting
    # again starts a new grant and does not revive the old one.
    auth.login()
    old = auth.tokens(oauth_client)
    revoke_app(client, oauth_client)
    auth.tokens(oauth_client)
    assert_dead(app, oauth_client, old)


# --- issue 19 §7: two first consents at once ------------------------------------------------


def consent_form(app, registered) -> tuple:
    """A second browser tab of a signed-in user on the consent page: (client, url, token)."""
    http = app.test_client()
    Auth(http).login()
    params, _ = Auth(http).code_flow_params(registered)
    url = "/authorize?" + urlencode(params)
    page = http.get(url)
    assert b'name="allow"' in page.data
    return http, url, csrf_token(page.get_data(as_text=True))


def test_two_first_consents_at_once_both_get_a_code(app, user, oauth_client, monkeypatch):
    # Issue 19 §7: tab A has read "no consent yet" and is about to store its consent when
    # tab B stores one; A must merge into B's row, not fail on the unique (user, client).
    from idp.oauth import authorize

    tab_a, tab_b = consent_form(app, oauth_client), consent_form(app, oauth_client)
    paused, resume = threading.Event(), threading.Event()
    original = authorize.audit.record

    def record(event, **kwargs):
        if event == "consent.granted" and threading.current_thread().name == "tab-a":
            paused.set()
            # Wait for B; B may itself wait for A's row lock, hence only a short wait.
            resume.wait(timeout=2)
        return original(event, **kwargs)

    monkeypatch.setattr(authorize.audit, "record", record)
    answers = {}

    def post(name, tab):
        http, url, token = tab
        answers[name] = http.post(url, data={"csrf_token": token, "allow": "Allow"})

    thread = threading.Thread(target=post, args=("a", tab_a), name="tab-a")
    thread.start()
    assert paused.wait(timeout=10)
    post("b", tab_b)
    resume.set()
    thread.join(timeout=30)

    assert answers["a"].status_code == 302, answers["a"].get_data(as_text=True)[:300]
    assert answers["b"].status_code == 302
    assert "code=" in answers["a"].headers["Location"]
    with app.app_context():
        [consent] = db.session().scalars(select(Consent)).all()
        assert consent.scopes == {"openid", "profile", "email"}


def test_concurrent_first_consents_have_no_error(app, user, oauth_client):
    # The same race, natural: n tabs answer the consent page at once.
    tabs = [consent_form(app, oauth_client) for _ in range(4)]
    barrier = threading.Barrier(len(tabs))
    answers = [None] * len(tabs)

    def post(i):
        http, url, token = tabs[i]
        barrier.wait(timeout=10)
        answers[i] = http.post(url, data={"csrf_token": token, "allow": "Allow"})

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(tabs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [a.status_code for a in answers] == [302] * len(tabs)
