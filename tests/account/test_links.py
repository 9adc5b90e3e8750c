"""Single-use account links (idp.auth.links): hashed, purpose-bound, expiring, built from
ISSUER. The flows (reset, verify, invite, register) have their own tests."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import db
from idp.auth import links
from idp.models import AccountLink, User, secret_hash, utcnow


@pytest.fixture
def alice(app, user):
    return user


def issue(app, purpose="reset", ttl=1800, email="alice@example.com"):
    with app.app_context():
        u = db.session().scalar(select(User).where(User.username == "alice"))
        token = links.issue(purpose, email, ttl, user=u)
        db.session().commit()
        return token


def test_only_the_hash_is_stored(app, alice):
    token = issue(app)
    with app.app_context():
        row = db.session().scalar(select(AccountLink))
        assert row.token_hash == secret_hash(token)
        assert token not in (row.token_hash, row.email)
        assert len(token) >= 43  # 256 bits, base64url


def test_a_link_is_used_once(app, alice):
    token = issue(app)
    with app.app_context():
        assert links.find("reset", token) is not None
        assert links.consume("reset", token).email == "alice@example.com"
        db.session().commit()
    with app.app_context():
        assert links.consume("reset", token) is None
        assert links.find("reset", token) is None


def test_a_link_is_good_only_for_its_purpose(app, alice):
    token = issue(app, purpose="verify")
    with app.app_context():
        assert links.consume("reset", token) is None
        assert links.consume("verify", token) is not None


def test_an_expired_or_revoked_link_is_dead(app, alice):
    expired = issue(app, ttl=-1)
    revoked = issue(app)
    with app.app_context():
        assert links.consume("reset", expired) is None
        u = db.session().scalar(select(User).where(User.username == "alice"))
        assert links.revoke("reset", user_id=u.id) == 2
        db.session().commit()
        assert links.consume("reset", revoked) is None
        states = {r.state for r in db.session().scalars(select(AccountLink))}
        assert states == {"revoked"}


def test_state_names_what_the_admin_sees(app, alice):
    live = issue(app)
    with app.app_context():
        row = links.find("reset", live)
        assert row.state == "pending"
        row.expires_at = utcnow() - timedelta(seconds=1)
        assert row.state == "expired"


@pytest.mark.parametrize("token", ["", "x" * 500, "not-a-link"])
def test_garbage_finds_nothing(app, alice, token):
    with app.app_context():
        assert links.find("reset", token) is None
        assert links.consume("reset", token) is None


@pytest.mark.config(ISSUER="https://id.example.org/prefix")
def test_urls_come_from_the_issuer_not_the_host_header(app):
    # Link poisoning: a request with a forged Host must not put that host in the mail.
    with app.test_request_context("/", headers={"Host": "evil.example"}):
        url = links.external_url("account.index")
    assert url == "https://id.example.org/prefix/account/"
    with app.app_context():  # and outside any request (the CLI)
        assert links.external_url("account.index") == "https://id.example.org/prefix/account/"
