"""One password policy wherever a password is set (admin, CLI, change, reset), and NFKC
before hashing with a rollout for hashes made before it (NIST SP 800-63B rev. 4 §3.1.1.2:
"the verifier SHOULD apply the Normalization Process for Stabilized Strings using either
the NFKC or NFKD normalization")."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from idp import db
from idp.auth import passwords
from idp.auth.login import authenticate
from idp.cli import cli
from idp.models import AuditEvent, User

from ..helpers import Auth, csrf_token

LIGATURE = "ﬁrst ﬂoor oﬃce key"  # U+FB01, U+FB02, U+FB03: "first floor office key" in NFKC
FULL_WIDTH = "ｍｙ　ｃｏｄｅ　１９８４　ｎｏｗ"  # full-width letters, digits and ideographic spaces


def store_hash(app, value: str, username="alice") -> None:
    with app.app_context():
        db.session().execute(
            update(User).where(User.username == username).values(password_hash=value)
        )
        db.session().commit()


def stored_hash(app, username="alice") -> str:
    with app.app_context():
        return db.session().scalar(select(User.password_hash).where(User.username == username))


# --- NFKC ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "other_keyboard"),
    [(LIGATURE, "first floor office key"), (FULL_WIDTH, "my code 1984 now")],
)
def test_a_password_is_one_password_however_it_is_typed(app, typed, other_keyboard):
    with app.app_context():
        hashed = passwords.hash_password(typed)
        assert passwords.match(hashed, typed) == passwords.NFKC
        assert passwords.match(hashed, other_keyboard) == passwords.NFKC
        assert passwords.match(hashed, "first floor office kay") is None
        # What is hashed is the NFKC form (verified without any fallback).
        assert PasswordHasher().verify(hashed, other_keyboard)


def test_a_hash_of_the_raw_form_still_signs_in_and_is_replaced_by_the_nfkc_hash(app, user):
    # Rollout: hashes made before normalisation hold what the user typed.
    legacy = PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash(LIGATURE)
    store_hash(app, legacy)
    with app.app_context():
        assert authenticate("alice", LIGATURE) is not None
        db.session().commit()
    upgraded = stored_hash(app)
    assert upgraded != legacy
    with app.app_context():
        assert passwords.match(upgraded, LIGATURE) == passwords.NFKC
        assert passwords.match(upgraded, "first floor office key") == passwords.NFKC
        event = db.session().scalar(
            select(AuditEvent).where(AuditEvent.event == "password.rehashed")
        )
        assert event.details["nfkc"] is True


def test_a_miss_costs_the_same_whether_or_not_the_user_exists(app, user, monkeypatch):
    # The number of argon2 verifications depends on the typed password only.
    calls = []
    original = passwords._verify_one
    monkeypatch.setattr(passwords, "_verify_one", lambda h, p: calls.append(p) or original(h, p))
    with app.app_context():
        counts = {}
        for identifier in ("alice", "nobody"):
            for password in (LIGATURE, "plain ascii guess"):
                calls.clear()
                assert authenticate(identifier, password) is None
                counts[identifier, password] = len(calls)
        db.session().rollback()
    assert counts["alice", LIGATURE] == counts["nobody", LIGATURE] == 2
    assert counts["alice", "plain ascii guess"] == counts["nobody", "plain ascii guess"] == 1


def test_sign_in_works_with_either_form_through_the_form(app, client, user):
    store_hash(app, passwords_hash(app, LIGATURE))
    assert Auth(app.test_client()).login(password="first floor office key").status_code == 302
    assert Auth(app.test_client()).login(password=LIGATURE).status_code == 302


def passwords_hash(app, value):
    with app.app_context():
        return passwords.hash_password(value)


@pytest.mark.config(PASSWORD_MAX_BYTES=256)
def test_64_characters_always_fit(app):
    # §3.1.1.2: at least 64 characters SHALL be allowed; 4-byte characters included.
    from idp.auth.policy import check_password

    with app.app_context():
        assert check_password("🔑🌊🍋🎻" * 16) == []
        assert passwords.hash_password("🔑🌊🍋🎻" * 16)


# --- every place that sets a password -------------------------------------------------------


@pytest.fixture
def admin_client(app, factory):
    factory.user(username="root", email="root@example.com", is_admin=True)
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser


def post_form(browser, path, data):
    token = csrf_token(browser.get(path).get_data(as_text=True))
    return browser.post(path, data={"csrf_token": token, **data})


def test_the_admin_cannot_create_a_user_with_a_refused_password(app, admin_client):
    response = post_form(
        admin_client,
        "/admin/users/new",
        {"username": "bobby", "email": "bob@example.com", "password": "bobby-the-great"},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Don&#39;t use your username in your password." in page
    response = post_form(
        admin_client, "/admin/users/new", {"username": "bob", "password": "password1"}
    )
    assert "one of the most common passwords" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session().scalar(select(User).where(User.username == "bob")) is None


def test_the_admin_cannot_set_a_refused_password(app, admin_client, user):
    before = stored_hash(app)
    path = f"/admin/users/{user.id}/password"
    response = post_form(
        admin_client, path, {"password": "liddell-forever", "confirm": "liddell-forever"}
    )
    assert response.status_code == 400
    assert "Don&#39;t use your name in your password." in response.get_data(as_text=True)
    assert stored_hash(app) == before
    ok = post_form(
        admin_client, path, {"password": "quiet harbour lamps", "confirm": "quiet harbour lamps"}
    )
    assert ok.status_code == 302


@pytest.mark.config(PASSWORD_MIN_LENGTH=15)
def test_the_configured_minimum_applies_and_is_shown(app, admin_client):
    page = admin_client.get("/admin/users/new").get_data(as_text=True)
    assert "At least 15 characters." in page
    response = post_form(
        admin_client, "/admin/users/new", {"username": "bob", "password": "quiet harbour"}
    )
    assert "Use at least 15 characters." in response.get_data(as_text=True)


def test_the_cli_refuses_a_refused_password(app, runner):
    result = runner.invoke(
        cli,
        ["users", "create", "--username", "carol", "--email", "carol@example.com",
         "--password-stdin"],
        input="carol1234\n",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "Don't use your username in your password." in result.output
    with app.app_context():
        assert db.session().scalar(select(User).where(User.username == "carol")) is None
