"""Real-browser fixtures: the app on a loopback port, Chromium, and a relying party's callback.

Chromium comes from the operating system (Debian: ``apt-get install chromium``), not from
``playwright install``. Without it the browser tests are skipped, unless
IDP_REQUIRE_BROWSER=1 (CI), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import queue
import socket
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from werkzeug.serving import make_server

from ..helpers import serving_thread
from . import a11y

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    # One renderer process for every page of a worker's browser: each test's new context
    # spawned renderers, and on a slow host Chromium's CPU is most of a browser test's.
    # The pages are one site (the issuer) and the RP's loopback callback; a context's
    # cookies and storage stay its own, kept by the browser process.
    "--renderer-process-limit=1",
    "--disable-site-isolation-trials",
    "--disable-features=IsolateOrigins,site-per-process,Translate,OptimizationHints,"
    "MediaRouter,PaintHolding",
]
TIMEOUT_MS = 10_000


@pytest.fixture
def idp_socket():
    """A listening loopback socket; binding first means the issuer's port cannot be taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock
    sock.close()


@pytest.fixture
def app_config(app_config, idp_socket):
    """The shared test configuration, with the issuer at the loopback port the server uses."""
    port = idp_socket.getsockname()[1]
    return {**app_config, "ISSUER": f"http://127.0.0.1:{port}"}


def closing_bodies(app):
    """``app``, with each answer's body closed however its request ends.

    Werkzeug's development server skips the body's ``close()`` when the browser resets the
    connection while the server drains the request (``execute`` in werkzeug/serving.py:
    the read in its ``finally`` raises first). A static file's handle was then left to the
    garbage collector, and its ResourceWarning failed whichever test it landed in (seen
    once, for the favicon of a page the browser had already left). A generator's
    ``finally`` runs when the server drops it, so the file is closed either way.
    """

    def wsgi(environ, start_response):
        body = app(environ, start_response)

        def chunks():
            try:
                yield from body
            finally:
                if hasattr(body, "close"):
                    body.close()

        return chunks()

    return wsgi


@pytest.fixture
def live_server(app, idp_socket):
    """The app served by Werkzeug in a thread; yields the issuer URL."""
    port = idp_socket.getsockname()[1]
    server = make_server(
        "127.0.0.1", port, closing_bodies(app), threaded=True, fd=idp_socket.fileno()
    )
    thread = serving_thread(server, "idp-live-server")
    thread.start()
    a11y.ORIGINS.add(app.config["ISSUER"])  # its pages are checked with axe-core
    yield app.config["ISSUER"]
    a11y.ORIGINS.discard(app.config["ISSUER"])
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@dataclass
class Hit:
    """One request that reached the relying party's redirect URI."""

    method: str
    url: str
    params: dict[str, str]


class Callback:
    """A relying party's redirect URI on loopback that records what arrives (GET or POST)."""

    def __init__(self):
        hits: queue.Queue[Hit] = queue.Queue()

        class Handler(BaseHTTPRequestHandler):
            def _record(self, body: str):
                url = f"http://127.0.0.1:{self.server.server_port}{self.path}"
                params = dict(parse_qsl(body or urlsplit(self.path).query, keep_blank_values=True))
                hits.put(Hit(self.command, url, params))
                page = b"<!doctype html><title>RP</title><p>Signed in.</p>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_GET(self):
                if self.path.startswith("/callback"):
                    self._record("")
                else:
                    self.send_error(404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self._record(self.rfile.read(length).decode())

            def log_message(self, *args):
                pass

        self.hits = hits
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/callback"
        self.thread = serving_thread(self.server)

    def wait(self, timeout: float = TIMEOUT_MS / 1000) -> Hit:
        try:
            return self.hits.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"nothing arrived at {self.url}") from None


@pytest.fixture
def rp_callback():
    callback = Callback()
    callback.thread.start()
    yield callback
    callback.server.shutdown()
    callback.server.server_close()
    callback.thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        message = (
            f"{CHROMIUM} not found; install it with `apt-get install chromium` "
            "(Debian/Ubuntu) to run the browser tests"
        )
        if os.environ.get("IDP_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (IDP_REQUIRE_BROWSER=1 makes this a failure)", pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser profile (no cookies) per test; its last state is checked with axe."""
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    try:
        if not page.is_closed():
            a11y.check(page)
    finally:
        context.close()
