"""Password hashing with argon2id (RFC 9106; OWASP Password Storage Cheat Sheet)."""

from __future__ import annotations

import os

import pytest
from argon2 import PasswordHasher

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
    # Equal work whether or not the user exists (OWASP Authentication Cheat Sheet).
    calls = []
    real = app.extensions["idp.passwords"]

    class Spy:
        def verify(self, stored, password):
            calls.append(stored)
            return real.verify(stored, password)

    monkeypatch.setitem(app.extensions, "idp.passwords", Spy())
    assert passwords.verify(None, PASSWORD) is False
    assert calls == [app.extensions["idp.passwords.dummy"]]


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


class _Wheel:
    def __init__(self, text: str | None):
        self.text = text

    def read_text(self, name: str) -> str | None:
        assert name == "WHEEL"
        return self.text


@pytest.mark.parametrize(
    ("machine", "wheel", "portable"),
    [
        # PyPI's wheel: built for every x86-64 CPU (docs/deploy.md, "Sizing").
        ("x86_64", "Tag: cp310-abi3-manylinux_2_28_x86_64\n", True),
        ("AMD64", "Tag: cp310-abi3-manylinux_2_28_x86_64\n", True),
        ("x86_64", "Tag: cp310-abi3-musllinux_1_2_x86_64\n", True),  # Alpine's
        # Built on this machine (pip tags it for the platform), or a CPU the advice is not for.
        ("x86_64", "Tag: cp311-abi3-linux_x86_64\n", False),
        ("aarch64", "Tag: cp310-abi3-manylinux_2_28_aarch64\n", False),
        ("x86_64", None, False),  # no WHEEL file: installed some other way
    ],
)
def test_portable_build_tells_pypis_wheel_on_x86_64_from_a_build_for_the_cpu(
    monkeypatch, machine, wheel, portable
):
    monkeypatch.setattr(passwords.platform, "machine", lambda: machine)
    monkeypatch.setattr(passwords.metadata, "distribution", lambda name: _Wheel(wheel))
    assert passwords.portable_build() is portable


def test_portable_build_without_the_bindings_installed_is_false(monkeypatch):
    def missing(name):
        raise passwords.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(passwords.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(passwords.metadata, "distribution", missing)
    assert passwords.portable_build() is False
