"""A relying party's back-channel and front-channel logout endpoints on loopback.

A tiny ``http.server`` in a thread that records every request. Its answer can be scripted
(a list of status codes, a redirect) and it can be told to hold requests until released,
so tests can show that the identity provider never waits for it.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

WAIT_SECONDS = 10


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]


class Receiver:
    """Start with ``with Receiver() as rp:``; ``rp.url(path)`` is an address on it."""

    def __init__(self, host: str = "127.0.0.1"):
        self.requests: queue.Queue[Request] = queue.Queue()
        self.statuses: list[int] = []  # answers for the next requests; then 200
        self.redirect_to: str | None = None
        self.pages: dict[str, str] = {}  # HTML served at a path instead of the default page
        self.release = threading.Event()
        self.release.set()  # set: answer at once; clear: hold every request until set
        self.count = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, body: str):
                params = dict(parse_qsl(body or urlsplit(self.path).query))
                receiver.count += 1
                receiver.requests.put(
                    Request(self.command, urlsplit(self.path).path, params, dict(self.headers))
                )
                receiver.release.wait(WAIT_SECONDS)
                if receiver.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                page = receiver.pages.get(
                    urlsplit(self.path).path, "<!doctype html><title>RP</title><p>ok</p>"
                ).encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def do_GET(self):
                self._handle("")

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self._handle(self.rfile.read(length).decode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host = host
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.server.server_port}{path}"

    def wait(self, timeout: float = WAIT_SECONDS) -> Request:
        try:
            return self.requests.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("nothing reached the relying party") from None

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
