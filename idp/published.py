"""Discovery (OIDC Discovery 1.0 §4, RFC 8414 §3) and the JWKS (RFC 7517 §5) from prepared bytes.

These documents are the same for every relying party and are fetched far more often than
they change, so a plain GET of them is answered before Flask runs, from the exact bytes and
headers the Flask view produced (security headers, Cache-Control and Vary included):

    GET /.well-known/...   no query, no Origin   -> prepared answer (+ a fresh X-Request-Id,
    GET /jwks.json                                  the access line and the metrics)
    anything else (HEAD, query, Origin -> CORS)  -> Flask, as always

The discovery document depends only on configuration and is prepared once. The JWKS is
prepared again whenever the key store would re-read the keys (KEY_CACHE_SECONDS), and at
once after a rotation in this worker (``KeyStore.version``), so it is never staler than
the keys the token endpoint signs with. An answer other than 200 (say 503 while the
database is down) is passed on and not kept.
"""

from __future__ import annotations

import time

from flask import Flask

from . import logs, metrics

DOCUMENTS = {
    "/.well-known/openid-configuration": "oauth.well_known",
    "/.well-known/oauth-authorization-server": "oauth.well_known",
    "/jwks.json": "oauth.jwks",
}
KEY_DEPENDENT = {"/jwks.json"}


class Prepared:
    __slots__ = ("status", "headers", "body", "keys_version")

    def __init__(self, status, headers, body, keys_version):
        self.status, self.headers, self.body = status, headers, body
        self.keys_version = keys_version


class PublishedDocuments:
    """WSGI middleware in front of the Flask app (inside ProxyFix: remote_addr is the client)."""

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app
        self.metrics = bool(app.config["METRICS_ENABLED"])
        self.prepared: dict[str, Prepared] = {}

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        if (
            path not in DOCUMENTS
            or environ.get("REQUEST_METHOD") != "GET"
            or environ.get("QUERY_STRING")
            or "HTTP_ORIGIN" in environ
        ):
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        answer = self.prepared.get(path)
        if answer is None or not self._current(path, answer):
            return self._prepare(path, environ, start_response)
        request_id = logs.request_id_for(environ.get("HTTP_X_REQUEST_ID"))
        start_response(answer.status, [*answer.headers, (logs.REQUEST_ID_HEADER, request_id)])
        seconds = time.perf_counter() - started
        endpoint = DOCUMENTS[path]
        if self.metrics:
            metrics.record(endpoint, "GET", 200, seconds)
        logs.access("GET", path, 200, round(seconds * 1000, 2), endpoint,
                    environ.get("REMOTE_ADDR"), request_id)  # fmt: skip
        return [answer.body]

    def _current(self, path: str, answer: Prepared) -> bool:
        if path not in KEY_DEPENDENT:
            return True
        store = self.app.extensions["idp.keys"]
        return answer.keys_version == store.version and time.monotonic() < store.fresh_until()

    def _prepare(self, path, environ, start_response):
        """Let Flask answer this request, and keep the answer if it is a 200."""
        captured = []

        def capture(status, headers, exc_info=None):
            captured[:] = [status, headers]
            return start_response(status, headers, exc_info)

        chunks = self.wsgi_app(environ, capture)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        status, headers = captured
        if status.startswith("200 "):
            kept = [(k, v) for k, v in headers if k.lower() != logs.REQUEST_ID_HEADER.lower()]
            version = self.app.extensions["idp.keys"].version
            self.prepared[path] = Prepared(status, kept, body, version)
        return [body]


def init_app(app: Flask) -> None:
    app.wsgi_app = PublishedDocuments(app, app.wsgi_app)
    app.extensions["idp.published"] = app.wsgi_app
