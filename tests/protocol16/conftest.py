"""Fixtures of the issue 16 tests (RFC 9728, signed UserInfo, pairwise subjects)."""

from __future__ import annotations

import http.server

import pytest
from sqlalchemy import select

from idp import db
from idp.models import Client
from tests.admin.conftest import admin, admin_client  # noqa: F401
from tests.helpers import serving_thread


def configure(app, client_id: str, **columns) -> None:
    """Set client columns (subject_type, userinfo_signed_response_alg...) as the admin would."""
    with app.app_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == client_id))
        for name, value in columns.items():
            setattr(row, name, value)
        session.commit()


class SectorServer:
    """A relying party's web server on loopback, answering each path with a set body."""

    def __init__(self):
        self.answers: dict[str, tuple[int, bytes]] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                status, body = server.answers.get(self.path, (404, b"not found"))
                self.send_response(status)
                if status in (301, 302):
                    self.send_header("Location", body.decode())
                    body = b""
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = serving_thread(self.httpd)
        self.thread.start()

    def serve(self, path: str, body: bytes, status: int = 200) -> str:
        self.answers[path] = (status, body)
        return self.base + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sector_server():
    server = SectorServer()
    yield server
    server.close()


@pytest.fixture
def app_config(app_config):
    # The admin UI here is signed in with the password alone (admin MFA: tests/mfa/).
    app_config["MFA_REQUIRED_FOR_ADMINS"] = False
    return app_config
