"""Progressive account lockout that never reveals whether an account exists.

OWASP Authentication Cheat Sheet ("Account Lockout", "Authentication and Error Messages");
NIST SP 800-63B §5.2.2 (limit failed attempts). Rate limits are off here so that only the
lockout is at work.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import db
from idp.auth import passwords
from idp.metrics import LOGIN_FAILURES
from idp.models import AuditEvent, User, utcnow

from ..factories import PASSWORD
from ..helpers import Auth, csrf_token

WRONG = "not the password at all"
SETTINGS = {
    "RATELIMIT_ENABLED": False,
    "LOCKOUT_THRESHOLD": 3,
    "LOCKOUT_BASE_SECONDS": 60,
    "LOCKOUT_MAX_SECONDS": 300,
}


@pytest.fixture
def app_config(app_config):
    return {**SETTINGS, **app_config}  # a test's own config marker still wins


def stored(app, username="alice") -> User:
    with app.app_context():
        return db.session().scalar(select(User).where(User.username == username))


def set_lock(app, username: str, **values) -> None:
    with app.app_context():
        session = db.session()
        row = session.scalar(select(User).where(User.username == username))
        for name, value in values.items():
            setattr(row, name, value)
        session.commit()


def answer(response) -> tuple[int, str]:
    text = response.get_data(as_text=True)
    start = text.find('id="login-error">')
    return response.status_code, text[start : text.find("<", start + 17)] if start >= 0 else ""


@pytest.fixture
def alice(app):
    from ..factories import Factory

    with app.app_context():
        return Factory(app).user(username="alice", email="alice@example.com").sub


def test_account_locks_after_consecutive_failures_and_refuses_the_right_password(
    app, browser, alice
):
    for _ in range(3):
        assert browser.login("alice", WRONG).status_code == 401
    row = stored(app)
    assert row.failed_logins == 3
    assert timedelta(seconds=55) < row.locked_until - utcnow() <= timedelta(seconds=60)
    locked = browser.login("alice", PASSWORD)
    assert locked.status_code == 401
    assert "Location" not in locked.headers
    with app.app_context():
        events = db.session().scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        (lock_event,) = [e for e in events if e.event == "login.locked"]
        assert lock_event.actor == alice and lock_event.details["seconds"] == 60
        assert events[-1].event == "login.failure" and events[-1].details["reason"] == "locked"


def test_locked_account_answers_exactly_like_an_unknown_one(app, browser, alice):
    # The same status and message, attempt by attempt, for an account that exists (and gets
    # locked) and for a name that does not: lockout tells an attacker nothing.
    real = [answer(browser.login("alice", WRONG)) for _ in range(3)]
    real.append(answer(browser.login("alice", PASSWORD)))  # locked now
    ghost = [answer(browser.login("nobody", WRONG)) for _ in range(3)]
    ghost.append(answer(browser.login("nobody", PASSWORD)))
    assert real == ghost
    assert real[0][0] == 401 and "Incorrect username or password." in real[0][1]


def test_locked_sign_in_costs_one_password_verification(app, browser, alice, monkeypatch):
    # Equal work whether locked or not, so timing does not reveal the lock either.
    set_lock(app, "alice", failed_logins=3, locked_until=utcnow() + timedelta(minutes=1))
    calls = []
    verify_one = passwords._verify_one

    def spy(stored, password):
        calls.append(stored)
        return verify_one(stored, password)

    monkeypatch.setattr(passwords, "_verify_one", spy)
    assert browser.login("alice", PASSWORD).status_code == 401
    assert calls == [stored(app).password_hash]  # one verification of her hash, no more


def test_lock_grows_with_each_failure_after_it_expires(app, browser, alice):
    set_lock(app, "alice", failed_logins=3, locked_until=utcnow() - timedelta(seconds=1))
    assert browser.login("alice", WRONG).status_code == 401
    row = stored(app)
    assert row.failed_logins == 4
    assert timedelta(seconds=115) < row.locked_until - utcnow() <= timedelta(seconds=120)
    set_lock(app, "alice", failed_logins=9, locked_until=utcnow() - timedelta(seconds=1))
    assert browser.login("alice", WRONG).status_code == 401
    assert stored(app).locked_until - utcnow() <= timedelta(seconds=300)  # the ceiling


def test_failures_while_locked_do_not_extend_the_lock(app, browser, alice):
    until = utcnow() + timedelta(seconds=30)
    set_lock(app, "alice", failed_logins=3, locked_until=until)
    assert browser.login("alice", WRONG).status_code == 401
    row = stored(app)
    assert row.failed_logins == 3
    assert abs((row.locked_until - until).total_seconds()) < 1


def test_expired_lock_lets_the_right_password_in_and_resets_the_count(app, browser, alice):
    set_lock(app, "alice", failed_logins=4, locked_until=utcnow() - timedelta(seconds=1))
    assert browser.login("alice", PASSWORD).status_code == 302
    row = stored(app)
    assert row.failed_logins == 0 and row.locked_until is None


def test_an_admin_unlocking_the_account_in_the_admin_ui_lifts_the_lock(
    app, client, browser, alice, factory
):
    # The lock is reached by failing, and lifted by the admin UI's "unlock" button (the
    # route, its CSRF form and its audit event), not by writing the columns.
    for _ in range(SETTINGS["LOCKOUT_THRESHOLD"]):
        assert browser.login("alice", WRONG).status_code == 401
    assert stored(app).locked_until is not None
    assert browser.login("alice", PASSWORD).status_code == 401
    factory.user(username="root", email="root@example.com", is_admin=True)
    app.config["MFA_REQUIRED_FOR_ADMINS"] = False  # the admin's own sign-in is not the point
    admin = app.test_client()
    assert Auth(admin).login("root").status_code == 302
    user_page = f"/admin/users/{stored(app).id}"
    page = admin.get(user_page).get_data(as_text=True)
    assert f'action="{user_page}/unlock"' in page
    unlocked = admin.post(f"{user_page}/unlock", data={"csrf_token": csrf_token(page)})
    assert unlocked.status_code == 302
    row = stored(app)
    assert row.failed_logins == 0 and row.locked_until is None
    with app.app_context():
        (event,) = (
            db.session()
            .scalars(select(AuditEvent).where(AuditEvent.event == "admin.user.unlocked"))
            .all()
        )
    assert event.target == alice
    assert browser.login("alice", PASSWORD).status_code == 302


def test_success_before_the_threshold_resets_the_count(app, browser, alice):
    assert browser.login("alice", WRONG).status_code == 401
    assert browser.login("alice", WRONG).status_code == 401
    assert browser.login("alice", PASSWORD).status_code == 302
    assert stored(app).failed_logins == 0


@pytest.mark.config(LOCKOUT_THRESHOLD=0)
def test_lockout_can_be_turned_off(app, browser, alice):
    for _ in range(5):
        assert browser.login("alice", WRONG).status_code == 401
    assert stored(app).locked_until is None
    assert browser.login("alice", PASSWORD).status_code == 302


def test_failed_sign_ins_are_counted_in_metrics(browser, alice):
    before = LOGIN_FAILURES.labels(reason="bad_credentials")._value.get()
    locked_before = LOGIN_FAILURES.labels(reason="locked")._value.get()
    for _ in range(3):
        browser.login("alice", WRONG)
    browser.login("alice", PASSWORD)
    assert LOGIN_FAILURES.labels(reason="bad_credentials")._value.get() == before + 3
    assert LOGIN_FAILURES.labels(reason="locked")._value.get() == locked_before + 1
