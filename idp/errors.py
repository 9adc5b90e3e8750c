"""Friendly error pages for the UI; protocol endpoints answer JSON themselves."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, make_response, render_template, request
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import BadRequest, HTTPException, InternalServerError, TooManyRequests

log = logging.getLogger("idp")

JSON_PATHS = (
    "/token",
    "/revoke",
    "/introspect",
    "/userinfo",
    "/jwks.json",
    "/.well-known/",
    "/openapi.json",
    "/register",
    "/device_authorization",
    "/par",
    "/healthz",
    "/readyz",
)


def wants_json() -> bool:
    return request.path.startswith(JSON_PATHS)


def http_error(error: HTTPException):
    # The exception's own headers are kept: a 405 MUST list the methods in Allow
    # (RFC 9110 §15.5.6; found by schemathesis).
    headers = [(name, value) for name, value in error.get_headers() if name != "Content-Type"]
    if wants_json():
        response = jsonify(error="invalid_request", error_description=error.description)
        response.status_code = error.code or 400
        response.headers.extend(headers)
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template("errors/http.html", error=error), error.code, headers


def server_error(error: Exception):
    # The traceback goes to the log, never to the client.
    log.exception("unhandled error on %s %s", request.method, request.path)
    if wants_json():
        response = jsonify(error="server_error", error_description="Internal error.")
        response.status_code = 500
        return response
    return render_template("errors/http.html", error=InternalServerError()), 500


def too_many_requests(error: TooManyRequests):
    """RFC 6585 §4: 429 with Retry-After; JSON shaped like RFC 6749 §5.2 on protocol paths."""
    from .limits import retry_after

    seconds = retry_after(error)
    if wants_json():
        response = jsonify(
            error="temporarily_unavailable",
            error_description=f"Too many requests. Try again in {seconds} seconds.",
        )
        response.headers["Cache-Control"] = "no-store"
    else:
        response = make_response(render_template("errors/429.html", seconds=seconds))
    response.status_code = 429
    response.headers["Retry-After"] = str(seconds)
    return response


# A database that cannot be reached (refused, dropped, pool exhausted): 503 and a retry hint,
# no traceback. The transaction was not committed, so nothing half-written remains; the pool
# pre-pings connections, so the next request after the database is back succeeds.
DATABASE_DOWN = (OperationalError, InterfaceError, PoolTimeoutError)
RETRY_AFTER_DATABASE = 5


def database_unavailable(error: Exception):
    log.error("database unavailable on %s %s: %s", request.method, request.path,
              type(getattr(error, "orig", None) or error).__name__)  # fmt: skip
    if wants_json():
        response = jsonify(
            error="temporarily_unavailable",
            error_description="The service is temporarily unavailable. Try again shortly.",
        )
        response.headers["Cache-Control"] = "no-store"
    else:
        # Rendered without context processors: Flask-Login's would query the database.
        page = current_app.jinja_env.get_template("errors/503.html").render()
        response = make_response(page)
    response.status_code = 503
    response.headers["Retry-After"] = str(RETRY_AFTER_DATABASE)
    return response


def refuse_nul_bytes() -> None:
    """NUL is valid in no OAuth parameter (RFC 6749 Appendix A) and PostgreSQL text cannot
    hold it: refuse it up front with 400 rather than fail in the database (found by fuzzing).
    """
    pairs = list(request.args.items(multi=True))
    if request.mimetype == "application/x-www-form-urlencoded":
        pairs += list(request.form.items(multi=True))
    if (
        "\x00" in request.path
        or any("\x00" in key or "\x00" in value for key, value in pairs)
        or (request.is_json and b"\\u0000" in request.get_data())
    ):
        raise BadRequest("Requests must not contain NUL characters.")


def init_app(app: Flask) -> None:
    app.before_request(refuse_nul_bytes)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(TooManyRequests, too_many_requests)
    for error_class in DATABASE_DOWN:
        app.register_error_handler(error_class, database_unavailable)
    app.register_error_handler(Exception, server_error)
