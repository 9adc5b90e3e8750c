"""Password hashing with argon2id (RFC 9106; OWASP Password Storage Cheat Sheet)."""

from __future__ import annotations

import os

import pytest
from argon2 import PasswordHasher, Type, low_level
from argon2.exceptions import VerificationError

from idp import create_app
from idp.auth import passwords

PASSWORD = "correct horse battery staple"


def make_app(tmp_path, monkeypatch, **settings):
    for name in list(os.environ):
        if name.startswith("IDP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(tmp_path / "instance"))
    config = {
        "SECRET_KEY": "k",
        "ISSUER": "http://127.0.0.1:8000",
        "DATABASE_URL": f"sqlite:///{tmp_path}/idp.sqlite3",
    }
    config.update(settings)
    return create_app(config)


@pytest.fixture
def app(tmp_path, monkeypatch):
    """No database: hashing needs only the configuration."""
    app = make_app(tmp_path, monkeypatch)
    with app.app_context():
        yield app


def test_hash_is_argon2id_with_the_configured_parameters(app):
    # RFC 9106 §4 / OWASP: argon2id, v=0x13, m=19 MiB, t=2, p=1 by default.
    stored = passwords.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


def test_hash_follows_configured_parameters(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch, ARGON2_TIME_COST=3, ARGON2_MEMORY_COST=32768)
    with app.app_context():
        assert passwords.hash_password(PASSWORD).startswith("$argon2id$v=19$m=32768,t=3,p=1$")


def test_each_hash_has_its_own_salt(app):
    # RFC 9106 §3.1: a fresh random salt per password.
    assert passwords.hash_password(PASSWORD) != passwords.hash_password(PASSWORD)


def test_verify_accepts_the_right_password_only(app):
    stored = passwords.hash_password(PASSWORD)
    assert passwords.verify(stored, PASSWORD) is True
    assert passwords.verify(stored, PASSWORD + " ") is False
    assert passwords.verify(stored, PASSWORD.upper()) is False
    assert passwords.verify(stored, "") is False


def test_verify_handles_unicode_passwords(app):
    secret = "pässwörd 🔑 密码"
    stored = passwords.hash_password(secret)
    assert passwords.verify(stored, secret) is True
    assert passwords.verify(stored, "passwoerd 🔑 密码") is False


def test_verify_without_a_stored_hash_is_false(app):
    # A user with no password (or no user at all) never signs in with a password.
    assert passwords.verify(None, PASSWORD) is False
    assert passwords.verify("", PASSWORD) is False


def test_verify_with_a_malformed_stored_hash_is_false(app):
    assert passwords.verify("not-an-argon2-hash", PASSWORD) is False
    assert passwords.verify("$argon2id$v=19$m=19456,t=2,p=1$broken", PASSWORD) is False


def test_verify_without_a_stored_hash_still_costs_one_argon2_verification(app, monkeypatch):
    # Equal work whether or not the user exists (OWASP Authentication Cheat Sheet): one
    # verification of the dummy, by the implementation that verifies a real hash.
    calls = []
    real = passwords._verify_one

    def spy(stored, password):
        calls.append(stored)
        return real(stored, password)

    monkeypatch.setattr(passwords, "_verify_one", spy)
    assert passwords.verify(None, PASSWORD) is False
    dummy = app.extensions["idp.passwords.dummy"]
    assert calls == [dummy]
    assert passwords.sodium_verifies(dummy) is passwords.sodium_verifies(
        passwords.hash_password(PASSWORD)
    )


def argon2_cffi_says(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except VerificationError:
        return False


@pytest.mark.parametrize(
    ("time_cost", "memory_cost", "parallelism", "salt_len", "hash_len"),
    [
        (2, 19456, 1, 16, 32),  # the default (config.py)
        (1, 8, 1, 8, 16),  # RFC 9106 §3.1's least of each (of the tag: libsodium's 16 bytes)
        (3, 1024, 4, 16, 32),  # several lanes (argon2-cffi's own default p=4)
        (2, 256, 2, 32, 40),
    ],
)
def test_libsodium_and_argon2_cffi_agree_on_every_hash_libsodium_verifies(
    app, time_cost, memory_cost, parallelism, salt_len, hash_len
):
    # RFC 9106: one function, two implementations. The hashes libsodium verifies (those
    # hash_password writes) must give what argon2-cffi gives, for the right password, a wrong
    # one, and the raw form of a password whose NFKC form differs (NIST SP 800-63B §3.1.1.2).
    hasher = PasswordHasher(
        time_cost=time_cost,
        memory_cost=memory_cost,
        parallelism=parallelism,
        salt_len=salt_len,
        hash_len=hash_len,
    )
    for password in (PASSWORD, "ﬁne ｐａｓｓ", "nul\0inside"):
        stored = hasher.hash(password)
        assert passwords.sodium_verifies(stored)
        for typed, right in ((password, True), (password + "x", False), (password[:-1], False)):
            assert passwords._verify_one(stored, typed) is right
            assert argon2_cffi_says(hasher, stored, typed) is right


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(
            lambda pw: PasswordHasher(type=Type.I, memory_cost=1024, time_cost=2).hash(pw),
            id="argon2i",
        ),
        pytest.param(
            lambda pw: low_level.hash_secret(
                pw.encode(), b"saltsaltsalt", 2, 1024, 1, 32, Type.ID, version=16
            ).decode(),
            id="version 1.0 (0x10)",
        ),
        pytest.param(
            lambda pw: PasswordHasher(memory_cost=1024, salt_len=48, hash_len=64).hash(pw),
            id="longer than libsodium's 127 characters",
        ),
    ],
)
def test_hashes_outside_libsodiums_form_are_verified_by_argon2_cffi(app, monkeypatch, make):
    # Hashes imported from elsewhere keep working: libsodium refuses these forms (or, for
    # version 1.0, would refuse the right password), argon2-cffi verifies them.
    stored = make(PASSWORD)
    assert not passwords.sodium_verifies(stored)
    monkeypatch.setattr(passwords, "_sodium_verify", None)  # never reached
    assert passwords._verify_one(stored, PASSWORD) is True
    assert passwords._verify_one(stored, PASSWORD + "x") is False


def test_a_malformed_hash_in_libsodiums_form_is_a_wrong_password(app):
    # A damaged stored hash signs no one in and raises nothing (the sign-in page stays a page).
    stored = passwords.hash_password(PASSWORD)
    damaged = stored[:-4] + ("AAAA" if not stored.endswith("AAAA") else "BBBB")
    assert passwords.sodium_verifies(damaged)
    assert passwords._verify_one(damaged, PASSWORD) is False


def test_needs_rehash_is_false_for_a_hash_with_the_configured_parameters(app):
    assert passwords.needs_rehash(passwords.hash_password(PASSWORD)) is False


@pytest.mark.parametrize(
    "params",
    [
        {"memory_cost": 19456, "time_cost": 3, "parallelism": 1},
        {"memory_cost": 65536, "time_cost": 2, "parallelism": 1},
        {"memory_cost": 19456, "time_cost": 2, "parallelism": 2},
    ],
)
def test_needs_rehash_is_true_for_other_parameters(app, params):
    # OWASP Password Storage Cheat Sheet "Upgrading the work factor".
    assert passwords.needs_rehash(PasswordHasher(**params).hash(PASSWORD)) is True


def test_raising_the_configured_cost_makes_old_hashes_need_a_rehash(tmp_path, monkeypatch):
    old = PasswordHasher(memory_cost=19456, time_cost=2, parallelism=1).hash(PASSWORD)
    app = make_app(tmp_path, monkeypatch, ARGON2_TIME_COST=4)
    with app.app_context():
        assert passwords.needs_rehash(old) is True
        assert passwords.verify(old, PASSWORD) is True  # still accepted meanwhile


def test_length_limit_counts_utf8_bytes(app):
    passwords.check_length("x" * 1024)
    passwords.check_length("é" * 512)  # 1024 bytes
    with pytest.raises(passwords.PasswordTooLong):
        passwords.check_length("x" * 1025)
    with pytest.raises(passwords.PasswordTooLong):
        passwords.check_length("é" * 513)  # 513 characters, 1026 bytes


def test_too_long_passwords_are_neither_hashed_nor_verified(app, monkeypatch):
    class Refuse:
        def hash(self, *_):
            raise AssertionError("hashed")

        def verify(self, *_):
            raise AssertionError("verified")

    monkeypatch.setitem(app.extensions, "idp.passwords", Refuse())
    with pytest.raises(passwords.PasswordTooLong):
        passwords.hash_password("x" * 1025)
    with pytest.raises(passwords.PasswordTooLong):
        passwords.verify("$argon2id$anything", "x" * 1025)
