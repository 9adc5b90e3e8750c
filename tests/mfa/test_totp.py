"""TOTP as a second factor: enrolment, sign-in, replay, time window, lockout.

RFC 6238 (TOTP) §4-§5.2, RFC 4226 §4 (160-bit secrets), RFC 8176 (amr), NIST SP 800-63B
§5.1.4 (single-factor OTP), §5.2.2 (rate limiting), §4.6 (notify on authenticator change).
"""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import select

from idp import db
from idp.auth import totp
from idp.models import AuditEvent, TOTPCredential, User, UserSession
from tests.helpers import csrf_token, run_python

from .conftest import code_at, enrol_in_account, page_secret, post_form, subjects


@pytest.fixture
def alice(user, auth):
    assert auth.login().status_code == 302
    return user


def stored_user(app, username="alice") -> User:
    with app.app_context():
        user = db.session().scalar(select(User).where(User.username == username))
        db.session().expunge(user)
        return user


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_enrolment_shows_a_qr_code_and_a_160_bit_secret_stored_encrypted(app, client, alice):
    page = client.get("/account/totp")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<svg role="img" aria-label="QR code"' in html  # inline SVG: nothing fetched
    secret = page_secret(html)
    assert len(secret) == 32  # RFC 4226 §4 R6: 160 bits = 32 base32 characters
    with app.app_context():
        row = db.session().scalar(select(TOTPCredential))
        assert secret not in row.secret_encrypted and row.confirmed_at is None
    # A reload shows the same secret: the person may have scanned it already.
    assert page_secret(client.get("/account/totp").get_data(as_text=True)) == secret


def test_the_qr_code_library_is_loaded_by_the_first_enrolment_page_only(tmp_path):
    # segno (and the XML code it loads) is ~0.7 MB of a worker; a person enrols once, so a
    # worker that has served sign-ins and account pages but no enrolment has not loaded it.
    code = f"""
        import sys
        from idp import create_app
        from idp.migrate import upgrade
        from tests.factories import PASSWORD, Factory
        app = create_app({{"DATABASE_URL": "sqlite:///{tmp_path}/idp.sqlite3",
                          "SECRET_KEY": "x", "ISSUER": "http://localhost",
                          "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False}})
        upgrade(app)
        Factory(app).user(username="alice", email="alice@example.com")
        client = app.test_client()
        client.get("/login")
        signed_in = client.post("/login", data={{"username": "alice", "password": PASSWORD}})
        assert signed_in.status_code == 302, signed_in.status_code
        assert client.get("/account/").status_code == 200
        print("segno" in sys.modules)
        assert '<svg role="img"' in client.get("/account/totp").get_data(as_text=True)
        print("segno" in sys.modules)
    """
    assert run_python(code).split() == ["False", "True"]


def test_enrolment_completes_only_after_a_valid_code(app, client, alice, mailbox):
    html = client.get("/account/totp").get_data(as_text=True)
    secret = page_secret(html)
    wrong = str((int(code_at(secret)) + 1) % 1_000_000).zfill(6)
    refused = client.post("/account/totp", data={"csrf_token": csrf_token(html), "code": wrong})
    assert refused.status_code == 400
    assert "<title>Error: " in refused.get_data(as_text=True)
    with app.app_context():
        assert not totp.has(db.session().get(User, alice.id))
    accepted = client.post(
        "/account/totp", data={"csrf_token": csrf_token(html), "code": code_at(secret)}
    )
    assert accepted.status_code == 200
    assert "Your recovery codes" in accepted.get_data(as_text=True)  # first factor: codes too
    with app.app_context():
        assert totp.has(db.session().get(User, alice.id))
    assert events(app, "mfa.factor_added")
    # NIST SP 800-63B §4.6: the user is told by email.
    assert "An authenticator app was added to your account" in subjects(app, mailbox)


def test_sign_in_asks_for_the_code_after_the_password(app, client, auth, alice):
    secret = enrol_in_account(client)
    auth.logout()
    response = auth.login(next_url="/account/")
    assert response.status_code == 302
    assert response.location.endswith("/login/totp")
    # Pending is not signed in: the account page still sends to /login.
    assert "/login" in client.get("/account/").location
    page = client.get("/login/totp")
    assert page.status_code == 200
    assert "Use a recovery code" in page.get_data(as_text=True)
    done = client.post(
        "/login/totp",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "code": code_at(secret, 1)},
    )
    assert done.status_code == 302 and done.location.endswith("/account/")
    assert client.get("/account/").status_code == 200
    with app.app_context():
        row = db.session().scalar(select(UserSession).where(UserSession.ended_at.is_(None)))
        # RFC 8176 §2: password + one-time password, two distinct factors: mfa.
        assert row.amr == ["pwd", "otp", "mfa"]
        assert [f["kind"] for f in row.factors] == ["pwd", "totp"]
    assert events(app, "mfa.success")


def test_a_replayed_code_is_refused(app, client, auth, alice):
    secret = enrol_in_account(client)
    auth.logout()
    auth.login()
    code = code_at(secret, 1)
    assert post_form(client, "/login/totp", code=code).status_code == 302
    auth.logout()
    auth.login()
    # RFC 6238 §5.2: the verifier MUST NOT accept the second attempt of the same OTP.
    refused = post_form(client, "/login/totp", code=code)
    assert refused.status_code == 401
    assert "That code is not right" in refused.get_data(as_text=True)
    assert "/login" in client.get("/account/").location


def test_an_older_code_than_the_last_accepted_is_refused(app, client, auth, alice):
    secret = enrol_in_account(client)  # accepted the current step
    auth.logout()
    auth.login()
    # The previous step is inside the ±1 window but before the last accepted step.
    assert post_form(client, "/login/totp", code=code_at(secret, -1)).status_code == 401


def test_the_window_is_one_step_either_side():
    # RFC 6238 §5.2: a window for clock drift; here ±1 step of 30 s.
    secret = pyotp.random_base32(32)
    now = 1_800_000_015.0
    step = int(now // 30)
    generator = pyotp.TOTP(secret)
    assert totp.matching_step(secret, generator.at(now), now) == step
    assert totp.matching_step(secret, generator.at(now - 30), now) == step - 1
    assert totp.matching_step(secret, generator.at(now + 30), now) == step + 1
    assert totp.matching_step(secret, generator.at(now - 60), now) is None
    assert totp.matching_step(secret, generator.at(now + 60), now) is None
    assert totp.matching_step(secret, "12345", now) is None


@pytest.mark.config(LOCKOUT_THRESHOLD=3, MFA_MAX_ATTEMPTS=10)
def test_wrong_codes_count_toward_the_lockout(app, client, auth, alice):
    secret = enrol_in_account(client)
    auth.logout()
    auth.login()
    wrong = str((int(code_at(secret, 1)) + 1) % 1_000_000).zfill(6)
    for _ in range(2):
        assert post_form(client, "/login/totp", code=wrong).status_code == 401
    # A correct password in between does not reset the count (it is only the first factor).
    auth.login()
    last = post_form(client, "/login/totp", code=wrong)
    assert last.status_code == 302 and "/login" in last.location  # locked: start again
    assert stored_user(app).locked_until is not None
    assert len(events(app, "mfa.failure")) == 3
    # NIST SP 800-63B §5.2.2: locked now, even with the password and the right code.
    refused = auth.login()
    assert refused.status_code == 401


@pytest.mark.config(MFA_MAX_ATTEMPTS=2)
def test_too_many_wrong_codes_end_the_pending_sign_in(app, client, auth, alice):
    secret = enrol_in_account(client)
    auth.logout()
    auth.login()
    wrong = str((int(code_at(secret, 1)) + 1) % 1_000_000).zfill(6)
    assert post_form(client, "/login/totp", code=wrong).status_code == 401
    assert "/login" in post_form(client, "/login/totp", code=wrong).location
    # Even the right code is no use now: the password must be entered again.
    assert client.get("/login/totp").status_code == 302


@pytest.mark.config(MFA_PENDING_LIFETIME=1)
def test_a_pending_sign_in_expires(app, client, auth, alice, monkeypatch):
    secret = enrol_in_account(client)
    auth.logout()
    auth.login()
    token = csrf_token(client.get("/login/totp").get_data(as_text=True))
    code = code_at(secret, 1)
    later = time.time() + 5
    monkeypatch.setattr(time, "time", lambda: later)
    response = client.post("/login/totp", data={"csrf_token": token, "code": code})
    assert response.status_code == 302 and "/login" in response.location
    assert "/login" in client.get("/account/").location


def test_removing_the_app_needs_the_password_and_emails(app, client, auth, alice, mailbox):
    enrol_in_account(client)
    page = client.get("/account/totp/remove")
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    wrong = client.post("/account/totp/remove", data={"csrf_token": token, "password": "nope"})
    assert wrong.status_code == 400
    with app.app_context():
        assert totp.has(db.session().get(User, alice.id))
    from tests.factories import PASSWORD

    ok = client.post("/account/totp/remove", data={"csrf_token": token, "password": PASSWORD})
    assert ok.status_code == 302
    with app.app_context():
        assert not totp.has(db.session().get(User, alice.id))
    assert "An authenticator app was removed from your account" in subjects(app, mailbox)
    # Signing in is back to the password alone.
    auth.logout()
    assert auth.login().location.endswith("/account/")


@pytest.mark.config(RATELIMIT_SECOND_FACTOR="2/hour", MFA_MAX_ATTEMPTS=10, LOCKOUT_THRESHOLD=0)
def test_second_factor_attempts_are_rate_limited(app, client, auth, alice):
    # NIST SP 800-63B §5.2.2: the verifier limits failed attempts; RFC 6585 §4: 429.
    secret = enrol_in_account(client)
    auth.logout()
    auth.login()
    wrong = str((int(code_at(secret, 1)) + 1) % 1_000_000).zfill(6)
    token = csrf_token(client.get("/login/totp").get_data(as_text=True))
    answers = [
        client.post("/login/totp", data={"csrf_token": token, "code": wrong}).status_code
        for _ in range(3)
    ]
    assert answers == [401, 401, 429]
