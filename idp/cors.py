"""CORS (Fetch Standard §3.2) for the endpoints a browser-based client calls itself.

Single-page apps fetch discovery, the JWKS, the OpenAPI description, the token, userinfo,
revocation and introspection endpoints cross-origin (OAuth 2.0 for Browser-Based Applications
§6.3). Those answers carry ``Access-Control-Allow-Origin`` only for an origin that is the
origin of a redirect URI of an enabled registered client; any other origin gets no CORS
header, so its browser withholds the answer. The authorization endpoint and every page of the
UI never allow CORS: they are navigated to, never fetched, and must not be readable by another
site. No endpoint allows credentials (cookies): these endpoints authenticate with client
credentials or bearer tokens.
"""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from sqlalchemy import select

from . import db
from .models import Client
from .serve import add_vary

# endpoint -> the methods a cross-origin caller may use
CORS_ENDPOINTS = {
    "oauth.well_known": "GET",
    "oauth.jwks": "GET",
    "oauth.protected_resource_metadata": "GET",  # RFC 9728 §3
    "oauth.openapi": "GET",
    "oauth.token": "POST",
    "oauth.userinfo": "GET, POST",
    "oauth.revoke": "POST",
    "oauth.introspect": "POST",
}
ALLOW_HEADERS = "Authorization, Content-Type, DPoP"
EXPOSE_HEADERS = "WWW-Authenticate, Retry-After, X-Request-Id, DPoP-Nonce"
PREFLIGHT_MAX_AGE = 600
# Registered origins are read from the clients table at most this often per worker.
ORIGINS_CACHE_SECONDS = 10


def origin_of(uri: str) -> str | None:
    """The web origin (RFC 6454 §4) of an http(s) URI; None for custom schemes (native apps)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default else "")


class RegisteredOrigins:
    """The origins of every enabled client's redirect URIs, cached briefly per worker."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loaded_at = -1e9
        self._origins: frozenset[str] = frozenset()

    def get(self) -> frozenset[str]:
        if time.monotonic() - self._loaded_at > ORIGINS_CACHE_SECONDS:
            with self._lock:
                rows = db.session().scalars(
                    select(Client.redirect_uris).where(Client.disabled.is_(False))
                )
                self._origins = frozenset(
                    origin for uris in rows for uri in (uris or []) if (origin := origin_of(uri))
                )
                self._loaded_at = time.monotonic()
        return self._origins

    def invalidate(self) -> None:
        self._loaded_at = -1e9


def _allowed(origin: str | None, registered: RegisteredOrigins) -> str | None:
    """The request's Origin if CORS may expose this answer to it, else None."""
    if not origin:
        return None
    if origin_of(origin) != origin:  # "null", paths, odd forms: never allowed
        return None
    return origin if origin in registered.get() else None


def add_headers(response: Response) -> Response:
    req = request._get_current_object()
    endpoint = req.endpoint
    if endpoint not in CORS_ENDPOINTS:
        return response
    add_vary(response, "Origin")
    origin = req.environ.get("HTTP_ORIGIN")
    if not origin:  # a same-origin or non-browser caller: nothing more to decide
        return response
    try:
        origin = _allowed(origin, current_app.extensions["idp.cors"])
    except Exception:  # the database is down: the request fails anyway, without CORS
        return response
    if origin is None:
        return response
    headers = response.headers
    headers["Access-Control-Allow-Origin"] = origin
    headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    if req.method == "OPTIONS":  # preflight (Fetch §4.8)
        headers["Access-Control-Allow-Methods"] = CORS_ENDPOINTS[endpoint]
        headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
        headers["Access-Control-Max-Age"] = str(PREFLIGHT_MAX_AGE)
    return response


def init_app(app: Flask) -> None:
    app.extensions["idp.cors"] = RegisteredOrigins()
    app.after_request(add_headers)
