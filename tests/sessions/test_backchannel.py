"""Back-Channel Logout 1.0: logout tokens POSTed to relying parties outside the request.

A real relying party runs on loopback (receiver.Receiver) and validates what arrives the
way §2.6 tells it to, against the published JWKS.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from joserfc import jwt
from sqlalchemy import select, update

from idp import create_app, db
from idp.models import AuditEvent, LogoutDelivery, UserSession, utcnow
from idp.oauth import logout

from ..helpers import Auth
from .conftest import decode, find
from .receiver import Receiver

EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def receiver():
    with Receiver() as rp:
        yield rp


@pytest.fixture
def rp(factory, receiver):
    return factory.client(
        name="Back-channel RP",
        logout_metadata={
            "backchannel_logout_uri": receiver.url("/backchannel"),
            "backchannel_logout_session_required": True,
        },
    )


def deliveries(app) -> list[LogoutDelivery]:
    return find(app, select(LogoutDelivery).order_by(LogoutDelivery.id))


def events(app, name: str) -> list[AuditEvent]:
    return find(app, select(AuditEvent).where(AuditEvent.event == name))


def run_due(app) -> int:
    with app.app_context():
        return logout.deliver_due()


def make_due(app) -> None:
    """Move every pending retry to now (instead of waiting for its delay)."""
    with app.app_context():
        s = db.session()
        s.execute(update(LogoutDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        s.commit()


def validate_logout_token(client, token: str, client_id: str) -> dict:
    """What a relying party does with a logout token (Back-Channel Logout 1.0 §2.6)."""
    decoded = decode(client, token)  # signature by a key of the OP's JWKS
    assert decoded.header["typ"] == "logout+jwt"  # §2.4: explicit typing
    assert decoded.header["alg"] in ("RS256", "ES256")
    claims = decoded.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": "http://localhost"},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
    ).validate(claims)
    assert claims["exp"] - claims["iat"] <= 120  # §2.4: short-lived
    assert claims["events"] == {EVENT: {}}  # §2.4: the back-channel logout event, a JSON object
    assert "nonce" not in claims  # §2.4: a nonce is prohibited
    assert claims.get("sid") or claims.get("sub")  # §2.4: at least one of them
    return claims


def test_real_relying_party_receives_a_valid_logout_token(app, client, auth, user, rp, receiver):
    # Back-Channel Logout 1.0 §2.4-§2.6: the OP POSTs a signed logout token for the session
    # the RP's ID token named; the RP verifies it against the JWKS and finds the same sid.
    auth.login()
    id_token = auth.tokens(rp)["id_token"]
    sid = decode(client, id_token).claims["sid"]
    auth.logout()

    request = receiver.wait()
    assert request.method == "POST" and request.path == "/backchannel"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"  # §2.5
    claims = validate_logout_token(client, request.params["logout_token"], rp.client_id)
    assert claims["sid"] == sid  # backchannel_logout_session_required: sid is there
    assert claims["sub"] == user.sub

    logout.dispatcher(app).stop()  # waits for the thread to record the outcome
    (row,) = deliveries(app)
    assert row.delivered_at is not None and row.attempts == 1 and row.last_error is None
    assert events(app, "logout.backchannel_delivered")


def test_logout_is_not_delayed_by_a_slow_relying_party(app, client, auth, user, rp, receiver):
    # Back-Channel Logout 1.0 §2.7 and the issue: delivery runs outside the user's request.
    auth.login()
    auth.tokens(rp)
    receiver.release.clear()  # the RP holds every request until told otherwise
    response = auth.logout()
    assert response.status_code == 200 and "You are signed out" in response.text
    receiver.wait()  # the POST arrived and is still unanswered...
    (row,) = deliveries(app)
    assert row.delivered_at is None  # ...while the user already has the signed-out page
    receiver.release.set()
    logout.dispatcher(app).stop()
    assert deliveries(app)[0].delivered_at is not None


def test_only_clients_the_session_signed_into_are_told(app, client, auth, user, factory, rp):
    # Back-Channel Logout 1.0 §2.7: the RPs with a session at the OP for this user.
    never_used = factory.client(
        name="Never used", logout_metadata={"backchannel_logout_uri": "https://x.example/bc"}
    )
    no_uri = factory.client(name="No back-channel")
    auth.login()
    auth.tokens(rp)
    auth.tokens(no_uri)
    with app.app_context():
        logout.dispatcher(app).stop()  # keep the token in the table for inspection
    auth.logout()
    (row,) = deliveries(app)
    assert row.client_id == rp.client_id
    assert never_used.client_id not in {d.client_id for d in deliveries(app)}
    (ended,) = find(app, select(AuditEvent).where(AuditEvent.event == "session.ended"))
    assert ended.details["backchannel_queued"] == 1


@pytest.mark.config(LOGOUT_WORKER=False, ID_TOKEN_SIGNING_ALG="ES256")
def test_logout_token_is_signed_with_the_clients_id_token_algorithm(app, client, auth, user, rp):
    # Back-Channel Logout 1.0 §2.4: signed like an ID token for that RP.
    auth.login()
    auth.tokens(rp)
    auth.logout()
    (row,) = deliveries(app)
    assert decode(client, row.logout_token).header["alg"] == "ES256"
    validate_logout_token(client, row.logout_token, rp.client_id)


@pytest.mark.config(LOGOUT_WORKER=False)
def test_failed_delivery_is_retried_later_then_delivered(
    app, client, auth, user, rp, receiver, caplog
):
    # Back-Channel Logout 1.0 §2.8: a failed POST; the OP retries with a delay.
    auth.login()
    auth.tokens(rp)
    auth.logout()
    receiver.statuses = [503]
    with caplog.at_level(logging.WARNING, logger="idp.logout"):
        assert run_due(app) == 0
    assert "HTTP 503" in caplog.text  # failures are logged
    (row,) = deliveries(app)
    assert row.attempts == 1 and row.last_error == "HTTP 503" and row.delivered_at is None
    assert row.next_attempt_at > utcnow() + timedelta(seconds=5)  # a delay, not a busy loop
    assert run_due(app) == 0 and receiver.count == 1  # not due yet: not sent again

    make_due(app)
    assert run_due(app) == 1
    (row,) = deliveries(app)
    assert row.attempts == 2 and row.delivered_at is not None and receiver.count == 2
    # the same token both times (same jti): the RP can recognise a repeat
    first, second = receiver.wait(), receiver.wait()
    assert first.params["logout_token"] == second.params["logout_token"]


@pytest.mark.config(LOGOUT_WORKER=False, BACKCHANNEL_LOGOUT_ATTEMPTS=2)
def test_delivery_gives_up_after_the_bounded_number_of_attempts(
    app, client, auth, user, rp, receiver, caplog
):
    # The issue: bounded retries; failures are logged and audited, never raised to the user.
    auth.login()
    auth.tokens(rp)
    auth.logout()
    receiver.statuses = [500, 500, 500]
    run_due(app)
    make_due(app)
    with caplog.at_level(logging.WARNING, logger="idp.logout"):
        run_due(app)
    make_due(app)
    assert run_due(app) == 0
    assert receiver.count == 2
    (row,) = deliveries(app)
    assert row.gave_up_at is not None and row.delivered_at is None and row.attempts == 2
    assert "given up" in caplog.text
    (event,) = events(app, "logout.backchannel_failed")
    assert event.target == rp.client_id and event.details["error"] == "HTTP 500"


@pytest.mark.config(LOGOUT_WORKER=False)
def test_relying_party_refusal_is_not_retried(app, client, auth, user, rp, receiver):
    # Back-Channel Logout 1.0 §2.8: 400 means the RP refused this token; resending won't help.
    auth.login()
    auth.tokens(rp)
    auth.logout()
    receiver.statuses = [400]
    run_due(app)
    (row,) = deliveries(app)
    assert row.gave_up_at is not None and row.last_error == "HTTP 400"


@pytest.mark.config(LOGOUT_WORKER=False, BACKCHANNEL_LOGOUT_TIMEOUT=0.2)
def test_unanswered_delivery_times_out_and_is_retried(app, client, auth, user, rp, receiver):
    # The issue: each POST has a timeout, so a hung RP cannot hold the delivery thread.
    auth.login()
    auth.tokens(rp)
    auth.logout()
    receiver.release.clear()  # the RP never answers
    assert run_due(app) == 0
    (row,) = deliveries(app)
    assert row.last_error == "timed out" and row.attempts == 1 and row.gave_up_at is None


@pytest.mark.config(LOGOUT_WORKER=False)
def test_redirect_is_not_followed(app, client, auth, user, rp, factory):
    # Back-Channel Logout 1.0 §2.5: the token goes to the registered URI only.
    with Receiver() as elsewhere, Receiver() as redirecting:
        with app.app_context():
            s = db.session()
            row = s.get(type(rp.row), rp.row.id)
            row.backchannel_logout_uri = redirecting.url("/bc")
            s.commit()
        redirecting.redirect_to = elsewhere.url("/stolen")
        auth.login()
        auth.tokens(rp)
        auth.logout()
        run_due(app)
        assert redirecting.count == 1 and elsewhere.count == 0
        (delivery,) = deliveries(app)
        assert delivery.delivered_at is None and delivery.last_error == "HTTP 302"


@pytest.mark.config(LOGOUT_WORKER=False)
def test_token_that_expired_in_the_queue_is_not_sent(app, client, auth, user, rp, receiver):
    # Back-Channel Logout 1.0 §2.4: an expired logout token is useless; the OP stops trying.
    auth.login()
    auth.tokens(rp)
    auth.logout()
    with app.app_context():
        s = db.session()
        s.execute(update(LogoutDelivery).values(created_at=utcnow() - timedelta(minutes=5)))
        s.commit()
    run_due(app)
    assert receiver.count == 0
    (row,) = deliveries(app)
    assert row.gave_up_at is not None and "expired" in row.last_error


@pytest.mark.config(LOGOUT_WORKER=False)
def test_two_workers_never_send_the_same_delivery_twice(app, client, auth, user, rp, receiver):
    # The claim is a conditional UPDATE: exactly one worker wins each attempt.
    auth.login()
    auth.tokens(rp)
    auth.logout()
    receiver.release.clear()
    start = threading.Barrier(2)

    def worker():
        start.wait()
        run_due(app)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    receiver.wait()  # the winner is now waiting for the RP's answer
    loser_done = False
    for _ in range(100):
        if any(not t.is_alive() for t in threads):
            loser_done = True
            break
        for thread in threads:
            thread.join(0.05)
    receiver.release.set()
    for thread in threads:
        thread.join(10)
    assert loser_done and receiver.count == 1
    (row,) = deliveries(app)
    assert row.attempts == 1 and row.delivered_at is not None


def test_admin_style_end_all_notifies_every_session(app, client, auth, user, rp, receiver):
    # The issue: terminate/end_all (admin, sign out everywhere) carry every consequence.
    auth.login()
    auth.tokens(rp)
    other = Auth(app.test_client())
    other.login()
    other.tokens(rp)
    with app.test_request_context():
        from idp.auth import session as sessions

        ended = sessions.end_all(user.id, "ended by admin")
        db.session().commit()
    assert len(ended) == 2
    sids = {receiver.wait().params["logout_token"], receiver.wait().params["logout_token"]}
    claims = [validate_logout_token(client, t, rp.client_id) for t in sids]
    rows = find(app, select(UserSession).where(UserSession.user_id == user.id))
    assert {c["sid"] for c in claims} == {r.sid for r in rows}
    assert all(r.end_reason == "ended by admin" for r in rows)
    assert client.get("/account/").status_code == 302  # both browsers are signed out


def test_deliveries_a_dead_process_left_behind_are_picked_up_by_the_sweep(
    app, app_config, client, user, rp, receiver
):
    # docs/architecture.md: rows another process left behind (a CLI command, a worker that
    # died) are picked up by the request-driven sweep every SESSION_SWEEP_INTERVAL.
    # The process that dies: another app on the same database whose delivery thread never
    # runs. Two browsers sign out there, so two deliveries wait in the queue.
    dead = create_app({**app_config, "LOGOUT_WORKER": False})
    try:
        for _ in range(2):
            browser = Auth(dead.test_client())
            browser.login()
            browser.tokens(rp)
            browser.logout()
    finally:
        logout.dispatcher(dead).stop()
        db.engine(dead).dispose()
    never_tried, mid_delivery = deliveries(app)
    # The second was claimed by the dead worker, which died before the relying party answered:
    # its lease (next_attempt_at) ran out, and its attempt was counted.
    with app.app_context():
        s = db.session()
        s.execute(
            update(LogoutDelivery)
            .where(LogoutDelivery.id == mid_delivery.id)
            .values(attempts=1, next_attempt_at=utcnow() - timedelta(seconds=1))
        )
        s.commit()
    assert never_tried.attempts == 0 and never_tried.delivered_at is None

    worker = logout.dispatcher(app)
    assert client.get("/login").status_code == 200  # within the interval: no sweep yet
    assert worker._thread is None and receiver.count == 0
    worker.last_sweep -= app.config["SESSION_SWEEP_INTERVAL"]  # the interval has passed
    assert client.get("/login").status_code == 200  # any request runs the sweep
    tokens = {receiver.wait().params["logout_token"], receiver.wait().params["logout_token"]}
    assert tokens == {never_tried.logout_token, mid_delivery.logout_token}
    worker.stop()  # waits for the thread to record the outcome
    rows = {row.id: row for row in deliveries(app)}
    assert all(row.delivered_at is not None for row in rows.values())
    assert (rows[never_tried.id].attempts, rows[mid_delivery.id].attempts) == (1, 2)
    assert len(events(app, "logout.backchannel_delivered")) == 2
