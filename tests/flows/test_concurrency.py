"""Exactly-once redemption under concurrency: codes (RFC 6749 §4.1.2), refresh tokens (§6).

Each thread gets its own Flask test client (the test client is not thread-safe; the app
is) and all of them are released together by a barrier, so the requests really overlap
in the database. Runs on SQLite and PostgreSQL (IDP_TEST_DATABASE_URL).
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from idp.models import AuditEvent, AuthorizationCode, Token, secret_hash

from ..helpers import Auth


def race(app, registered, data: dict, n: int) -> list:
    """POST the same token request from n threads at once; returns the n responses."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def worker(i: int) -> None:
        thread_auth = Auth(app.test_client())
        try:
            barrier.wait(timeout=10)
            results[i] = thread_auth.token(registered, dict(data))
        except BaseException as exc:  # reported by the assertion below
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    for result in results:
        assert not isinstance(result, BaseException), repr(result)
    return results


def outcome(responses) -> Counter:
    return Counter(
        "ok" if r.status_code == 200 else f"{r.status_code} {r.get_json().get('error')}"
        for r in responses
    )


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_code_redemptions_have_exactly_one_winner(
    db_session, app, auth, user, oauth_client, n
):
    # RFC 6749 §4.1.2: "The client MUST NOT use the authorization code more than once";
    # §10.5: codes are single-use. Only one of n simultaneous requests may get tokens.
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "code_verifier": verifier,
        "redirect_uri": oauth_client.redirect_uri,
    }
    responses = race(app, oauth_client, data, n)
    assert outcome(responses) == Counter({"ok": 1, "400 invalid_grant": n - 1})
    session = db_session
    session.expire_all()
    row = session.scalar(
        select(AuthorizationCode).where(AuthorizationCode.code_hash == secret_hash(code))
    )
    assert row.used_at is not None
    assert session.scalar(select(func.count(Token.id))) == 1
    assert (
        session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.event == "code.replayed"))
        == n - 1
    )
    # §4.1.2: the replays revoke the winner's tokens, even those stored after a replay came.
    assert session.scalars(select(Token.revoked_at)).all() != [None]


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_refreshes_have_exactly_one_winner(db_session, app, auth, user, oauth_client, n):
    # RFC 6749 §6 + RFC 9700 §4.14.2: a rotated refresh token is used once; simultaneous
    # uses must not yield two valid token sets.
    auth.login()
    tokens = auth.tokens(oauth_client)
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    responses = race(app, oauth_client, data, n)
    assert outcome(responses) == Counter({"ok": 1, "400 invalid_grant": n - 1})
    session = db_session
    session.expire_all()
    # The original issuance plus exactly one rotation.
    assert session.scalar(select(func.count(Token.id))) == 2
    old = session.scalar(
        select(Token).where(Token.refresh_token_hash == secret_hash(tokens["refresh_token"]))
    )
    assert old.refresh_used_at is not None
    # RFC 9700 §4.14.2: the losers are reuses, so the whole family is revoked, the winner's
    # new tokens included (also when they were stored after the reuse revoked the family).
    assert None not in session.scalars(select(Token.revoked_at)).all()
