"""Passkey tests: a software authenticator; mail is queued in the database and read there
(delivery has its own tests in tests/mail)."""

from __future__ import annotations

import pytest

from .authenticator import SoftAuthenticator


@pytest.fixture(autouse=True)
def instance(tmp_path, monkeypatch):
    """An instance folder of the test's own (the development outbox is written there)."""
    folder = tmp_path / "instance"
    folder.mkdir()
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(folder))
    return folder


@pytest.fixture
def app_config(app_config):
    """Mail stays queued in the database, where the tests read it (no sender thread)."""
    return {**app_config, "MAIL_WORKER": False}


@pytest.fixture
def authenticator():
    return SoftAuthenticator()


@pytest.fixture
def bob(factory):
    return factory.user(username="bob", email="bob@example.com")
