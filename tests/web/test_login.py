"""The sign-in and sign-out pages: /login and /logout."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from idp import db
from idp.auth import passwords
from idp.models import AuditEvent, User

from ..factories import PASSWORD
from ..helpers import csrf_refused, csrf_token, query

WRONG = "Tr0ub4dor&3-not-the-password"


class HasherSpy:
    """Wraps the app's argon2 PasswordHasher (which has __slots__) and counts its hashes
    and, through ``passwords._verify_one``, every verification (libsodium's or its own)."""

    def __init__(self, real: PasswordHasher):
        self.real = real
        self.calls: list[str] = []

    def hash(self, *args, **kwargs):
        self.calls.append("hash")
        return self.real.hash(*args, **kwargs)

    def verify(self, *args, **kwargs):
        return self.real.verify(*args, **kwargs)

    def check_needs_rehash(self, *args, **kwargs):
        return self.real.check_needs_rehash(*args, **kwargs)


@pytest.fixture
def hasher_spy(app, monkeypatch) -> HasherSpy:
    spy = HasherSpy(app.extensions["idp.passwords"])
    monkeypatch.setitem(app.extensions, "idp.passwords", spy)
    verify_one = passwords._verify_one

    def verified(stored: str, text: str) -> bool:
        spy.calls.append("verify")
        return verify_one(stored, text)

    monkeypatch.setattr(passwords, "_verify_one", verified)
    return spy


def error_text(response) -> str | None:
    match = re.search(r'<p class="error"[^>]*>(.*?)</p>', response.get_data(as_text=True), re.S)
    return match.group(1).strip() if match else None


def signed_in(client) -> bool:
    return client.get("/account/").status_code == 200


def audit_events(app, event: str | None = None) -> list[AuditEvent]:
    with app.app_context():
        stmt = select(AuditEvent).order_by(AuditEvent.id)
        if event:
            stmt = stmt.where(AuditEvent.event == event)
        return list(db.session().scalars(stmt))


def stored_hash(app, username: str) -> str:
    with app.app_context():
        return db.session().scalar(select(User.password_hash).where(User.username == username))


# --- signing in -------------------------------------------------------------------------


def test_username_and_password_sign_in(client, auth, user):
    response = auth.login("alice", PASSWORD)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/account/"
    assert signed_in(client)


@pytest.mark.parametrize("identifier", ["alice@example.com", "ALICE@Example.COM", " alice "])
def test_email_or_username_sign_in_and_email_is_case_insensitive(client, auth, user, identifier):
    # Email addresses are matched case-insensitively (RFC 5321 §2.4 in practice).
    response = auth.login(identifier, PASSWORD)
    assert response.status_code == 302
    assert signed_in(client)


def test_failed_login_gives_the_same_answer_whatever_the_reason(client, auth, factory, user):
    # OWASP Authentication Cheat Sheet "Authentication and Error Messages": the response must
    # not reveal whether the account exists, the password is wrong, or the account is disabled.
    factory.user(username="bob", email="bob@example.com", disabled=True)
    answers = []
    for username, password in [
        ("nobody", PASSWORD),  # no such user
        ("alice", WRONG),  # wrong password
        ("bob", PASSWORD),  # right password, disabled account
        ("bob", WRONG),  # wrong password, disabled account
    ]:
        response = auth.login(username, password)
        answers.append((response.status_code, error_text(response)))
        assert not signed_in(client)
    assert answers[0] == (401, "Incorrect username or password.")
    assert all(answer == answers[0] for answer in answers), answers


def test_disabled_account_cannot_sign_in_even_with_the_right_password(client, auth, factory):
    factory.user(username="bob", disabled=True)
    response = auth.login("bob", PASSWORD)
    assert response.status_code == 401
    assert not signed_in(client)


def test_login_is_audited_without_the_password(app, auth, user):
    # OWASP Logging Cheat Sheet: authentication successes and failures are logged,
    # passwords never are.
    assert auth.login("alice", WRONG).status_code == 401
    assert auth.login("nobody", WRONG).status_code == 401
    assert auth.login("alice", PASSWORD).status_code == 302

    failures = audit_events(app, "login.failure")
    assert [e.actor for e in failures] == ["alice", "nobody"]
    successes = audit_events(app, "login.success")
    assert [e.actor for e in successes] == [user.sub]
    assert successes[0].ip == "127.0.0.1"

    for event in audit_events(app):
        text = repr((event.event, event.actor, event.target, event.ip, event.details))
        assert WRONG not in text and PASSWORD not in text


def test_password_over_1024_bytes_is_refused_without_hashing(app, client, auth, user, hasher_spy):
    # OWASP Password Storage Cheat Sheet: cap input length so argon2 cannot be used for DoS.
    # 513 two-byte characters = 1026 bytes: the limit counts UTF-8 bytes, not characters.
    too_long = "é" * 513
    response = auth.login("alice", too_long)
    assert response.status_code == 401
    assert error_text(response) == "Incorrect username or password."
    assert hasher_spy.calls == []
    assert not signed_in(client)
    (event,) = audit_events(app, "login.failure")
    assert event.details.get("reason") == "password too long"
    assert too_long not in repr(event.details)


def test_password_of_exactly_1024_bytes_is_checked(auth, user, hasher_spy):
    response = auth.login("alice", "x" * 1024)
    assert response.status_code == 401
    assert hasher_spy.calls == ["verify"]


@pytest.mark.parametrize("username", ["nobody", "alice"])
def test_unknown_user_costs_one_argon2_verification_like_a_wrong_password(
    auth, user, hasher_spy, username
):
    # OWASP Authentication Cheat Sheet: equal work for unknown users and wrong passwords,
    # so response time does not reveal which usernames exist.
    assert auth.login(username, WRONG).status_code == 401
    assert hasher_spy.calls == ["verify"]


OLD_PASSWORD = "an old password from before the upgrade"


@pytest.mark.config(ARGON2_TIME_COST=3)
def test_outdated_hash_is_rehashed_at_next_login(app, client, auth):
    # OWASP Password Storage Cheat Sheet "Upgrading the work factor": rehash on login.
    old_hash = PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash(OLD_PASSWORD)
    with app.app_context():
        session = db.session()
        session.add(User(username="carol", password_hash=old_hash))
        session.commit()
        sub = session.scalar(select(User.sub).where(User.username == "carol"))

    assert auth.login("carol", OLD_PASSWORD).status_code == 302
    new_hash = stored_hash(app, "carol")
    assert new_hash != old_hash
    assert new_hash.startswith("$argon2id$v=19$m=19456,t=3,p=1$")
    assert PasswordHasher().verify(new_hash, OLD_PASSWORD)
    (event,) = audit_events(app, "password.rehashed")
    assert event.actor == sub

    # The new hash works and is not rehashed again.
    auth.logout()
    assert auth.login("carol", OLD_PASSWORD).status_code == 302
    assert stored_hash(app, "carol") == new_hash
    assert len(audit_events(app, "password.rehashed")) == 1


def test_current_hash_is_not_rehashed(app, auth, user):
    before = stored_hash(app, "alice")
    assert auth.login().status_code == 302
    assert stored_hash(app, "alice") == before
    assert audit_events(app, "password.rehashed") == []


def test_failed_login_does_not_rehash(app, auth):
    old_hash = PasswordHasher(memory_cost=19456, time_cost=3, parallelism=1).hash(OLD_PASSWORD)
    with app.app_context():
        db.session().add(User(username="carol", password_hash=old_hash))
        db.session().commit()
    assert auth.login("carol", WRONG).status_code == 401
    assert stored_hash(app, "carol") == old_hash


# --- where the user lands after signing in ----------------------------------------------


def test_next_is_followed_when_it_is_a_same_site_path(auth, user):
    target = "/authorize?client_id=abc&scope=openid"
    response = auth.login(next_url=target)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.netloc in ("", "localhost")
    assert f"{location.path}?{location.query}" == target


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(document.cookie)",
        "/\t/evil.example",
        "http:evil.example",
        "evil.example",
        "http://[evil.example",  # urlsplit raises on it: the page was a 500 (fuzzing)
        "//[::1",
    ],
)
def test_next_never_redirects_off_site(auth, user, target):
    # RFC 9700 §4.11 / OWASP Unvalidated Redirects: no open redirector after login.
    response = auth.login(next_url=target)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.netloc in ("", "localhost")
    assert location.path == "/account/"


def test_login_post_without_csrf_token_is_refused(app, client, user):
    # OWASP CSRF Prevention Cheat Sheet ("login CSRF"): the sign-in form needs a token too.
    client.get("/login")
    response = client.post("/login", data={"username": "alice", "password": PASSWORD})
    assert csrf_refused(response)
    assert not signed_in(client)
    assert audit_events(app, "login.success") == []


def test_login_post_with_a_wrong_csrf_token_is_refused(app, client, user):
    client.get("/login")
    response = client.post(
        "/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"}
    )
    assert csrf_refused(response)
    assert not signed_in(client)


def test_login_hint_prefills_the_username(client):
    # OIDC Core §3.1.2.1 login_hint.
    page = client.get("/login?" + urlencode({"login_hint": "alice@example.com"}))
    assert page.status_code == 200
    assert re.search(r'<input[^>]*name="username"[^>]*value="alice@example.com"', page.text)


def test_login_hint_from_the_authorization_request_reaches_the_login_page(
    client, auth, oauth_client
):
    # OIDC Core §3.1.2.1: the RP's login_hint is passed on to the sign-in page.
    params, _ = auth.code_flow_params(oauth_client, login_hint="alice@example.com")
    response = client.get("/authorize?" + urlencode(params))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    assert query(location)["login_hint"] == "alice@example.com"
    page = client.get(location)
    assert re.search(r'<input[^>]*name="username"[^>]*value="alice@example.com"', page.text)


def test_login_hint_is_escaped(client):
    page = client.get("/login?" + urlencode({"login_hint": '"><script>x()</script>'}))
    assert "<script>x()" not in page.text


# --- signing out --------------------------------------------------------------------------


def test_logout_get_shows_a_confirmation_form_and_keeps_the_session(client, auth, user):
    # OIDC RP-Initiated Logout 1.0 §2: the OP may ask the user to confirm; a GET alone
    # (e.g. an <img> on another site) must not sign the user out.
    auth.login()
    page = client.get("/logout")
    assert page.status_code == 200
    assert re.search(r'<form method="post" action="/logout">', page.text)
    assert csrf_token(page.text)
    assert signed_in(client)


def test_logout_post_with_csrf_token_ends_the_session(app, client, auth, user):
    auth.login()
    response = auth.logout()
    assert response.status_code == 200
    assert "You are signed out" in response.text
    account = client.get("/account/")
    assert account.status_code == 302
    assert urlsplit(account.headers["Location"]).path == "/login"
    (event,) = audit_events(app, "logout")
    assert event.actor == user.sub


def test_logout_post_without_csrf_token_keeps_the_session(app, client, auth, user):
    # OWASP CSRF Prevention Cheat Sheet: state-changing requests need a token.
    auth.login()
    response = client.post("/logout")
    assert csrf_refused(response)
    assert signed_in(client)
    assert audit_events(app, "logout") == []
