"""Admin UI fixtures: an admin signed in through the real login form, and helpers to post
the admin forms with the session's CSRF token."""

from __future__ import annotations

import pytest

from ..helpers import Auth


@pytest.fixture
def admin(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


@pytest.fixture
def admin_client(app, admin):
    """A browser signed in as the admin."""
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser
