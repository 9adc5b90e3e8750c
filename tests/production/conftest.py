"""Fixtures of the production tests (issue 7): each test states its configuration change.

Rate limits are on in every test here unless a test turns them off, so that what is tested
is what a deployment runs.
"""

from __future__ import annotations

import pytest

from ..helpers import csrf_token


class Browser:
    """Sign-in attempts from a chosen client address (REMOTE_ADDR)."""

    def __init__(self, client):
        self.client = client

    def login(self, username: str, password: str, ip: str = "127.0.0.1"):
        environ = {"REMOTE_ADDR": ip}
        page = self.client.get("/login", environ_base=environ)
        data = {
            "csrf_token": csrf_token(page.get_data(as_text=True)),
            "username": username,
            "password": password,
            "next": "",
        }
        return self.client.post("/login", data=data, environ_base=environ)


@pytest.fixture
def browser(client):
    return Browser(client)
