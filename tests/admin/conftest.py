"""Admin UI fixtures: an admin signed in through the real login form, and helpers to post
the admin forms with the session's CSRF token."""

from __future__ import annotations

import pytest

from ..factories import Factory
from ..helpers import Auth


class IsolatedFactory(Factory):
    """Rows made in their own app context: conftest's factory keeps one app context open
    for the whole test, which every test-client request would then share (flask.g: the
    database session, the signed-in user)."""

    def user(self, *args, **kwargs):
        with self.app.app_context():
            return super().user(*args, **kwargs)

    def client(self, *args, **kwargs):
        with self.app.app_context():
            return super().client(*args, **kwargs)


@pytest.fixture
def factory(app):
    return IsolatedFactory(app)


@pytest.fixture
def admin(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


@pytest.fixture
def admin_client(app, admin):
    """A browser signed in as the admin."""
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser
