"""Outbound request tests: a small HTTP server on loopback that records what reaches it.

Each test states what outbound requests may reach with ``OUTBOUND_ALLOWED_NETWORKS``: the
shared test issuer is http://localhost, for which the unset default allows loopback.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ..helpers import Auth


class Target:
    """``with Target() as t:`` serves ``t.body`` (JSON) at every path; ``t.seen`` lists
    (method, path, Host header) of every request; ``t.redirect_to`` answers 302 instead."""

    def __init__(self, host: str = "127.0.0.1"):
        self.body: object = []
        self.redirect_to: str | None = None
        self.seen: list[tuple[str, str, str]] = []
        target = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                target.seen.append((self.command, self.path, self.headers.get("Host", "")))
                if target.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", target.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = json.dumps(target.body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str = "/", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target():
    with Target() as t:
        yield t


@pytest.fixture
def admin_client(app, factory):
    """A browser signed in as an admin (tests using it set MFA_REQUIRED_FOR_ADMINS=False)."""
    factory.user(username="root", email="root@example.com", is_admin=True)
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser
