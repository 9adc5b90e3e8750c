"""Admin UI fixtures: an admin signed in through the real login form, and helpers to post
the admin forms with the session's CSRF token."""

from __future__ import annotations

import pytest

from ..helpers import Auth


@pytest.fixture
def app_config(app_config):
    # These tests are about the admin UI, so admins sign in with the password alone here;
    # the MFA that admins need by default is tested in tests/mfa/test_policy.py.
    app_config["MFA_REQUIRED_FOR_ADMINS"] = False
    return app_config


@pytest.fixture
def admin(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


@pytest.fixture
def admin_client(app, admin):
    """A browser signed in as the admin."""
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser
