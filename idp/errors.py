"""Friendly error pages for the UI; protocol endpoints answer JSON themselves."""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    NotFound,
    TooManyRequests,
)

from . import db
from .models.base import MAX_ID

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
    "/login/passkey",  # passwordless sign-in's script endpoints (account.passkeys)
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


def csrf_refused(error: CSRFError):
    """Flask-WTF refused a form (missing, forged or expired token): 400 with a page that says
    so, ``data-refusal="csrf"``, so it is never mistaken for a form's validation error."""
    if wants_json():  # protocol endpoints are exempt; a JSON answer in case one is not
        return http_error(error)
    log.info("form refused by the CSRF check", extra={"reason": error.description})
    return render_template("errors/csrf.html", error="csrf"), 400  # title: "Error: …"


def server_error(error: Exception):
    # The traceback goes to the log, never to the client.
    log.exception("unhandled error on %s %s", request.method, request.path)
    # A failed statement leaves the transaction unusable, and the page reads the signed-in
    # user again: without this rollback the error page itself failed (found by fuzzing).
    db.session().rollback()
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


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def check_nul_bytes(req, mimetype: str) -> None:
    """NUL is valid in no OAuth parameter (RFC 6749 Appendix A) and PostgreSQL text cannot
    hold it: refuse it up front with 400 rather than fail in the database (found by fuzzing).
    """
    # The query string decodes to a NUL only from "%00" or a raw NUL (UTF-8 has no other
    # form of it): without either, its arguments need not be parsed and looked through.
    query = req.environ.get("QUERY_STRING", "")
    pairs = list(req.args.items(multi=True)) if "%00" in query or "\x00" in query else []
    if mimetype in FORMS:
        pairs += list(req.form.items(multi=True))
    # A multipart part whose Content-Disposition a CR or LF broke has no name (None), and
    # Flask-WTF's CSRF check failed on it: a 500 on every form (found by fuzzing).
    if any(not isinstance(key, str) or not isinstance(value, str) for key, value in pairs):
        raise BadRequest("Every form field needs a name.")
    if (
        "\x00" in req.path
        or any("\x00" in key or "\x00" in value for key, value in pairs)
        or (is_json(mimetype) and b"\\u0000" in req.get_data())
    ):
        raise BadRequest("Requests must not contain NUL characters.")


def is_json(mimetype: str) -> bool:
    """Werkzeug's ``Request.is_json``, from a mimetype already parsed."""
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def check_json_depth(req) -> None:
    """json.loads raises RecursionError, not ValueError, on deeply nested input, and JSON
    bodies are read by Flask-WTF's forms and the registration endpoint: parse once, up front
    (the result is cached), and refuse with 400 what cannot be parsed (found by fuzzing)."""
    try:
        req.get_json(silent=True)
    except RecursionError:
        raise BadRequest("The JSON body is nested too deeply.") from None


def refuse_malformed() -> None:
    """Both refusals above as one hook, in their order, with the Content-Type parsed once;
    a request without a body (no Content-Type) has no JSON and no form to look at."""
    req = request._get_current_object()
    mimetype = req.mimetype if "CONTENT_TYPE" in req.environ else ""
    if mimetype and is_json(mimetype):
        check_json_depth(req)
    check_nul_bytes(req, mimetype)


def refuse_ids_out_of_range(endpoint: str | None, values: dict | None) -> None:
    """An id in the URL (``<int:...>``) beyond any primary key names nothing: 404 before the
    database sees it (PostgreSQL would answer with an error; found by fuzzing)."""
    if values and any(isinstance(v, int) and v > MAX_ID for v in values.values()):
        raise NotFound()


def init_app(app: Flask) -> None:
    app.url_value_preprocessor(refuse_ids_out_of_range)
    # First of the checks (before CSRFProtect's, which reads the form fields by name).
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_malformed)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(TooManyRequests, too_many_requests)
    app.register_error_handler(CSRFError, csrf_refused)
    for error_class in DATABASE_DOWN:
        app.register_error_handler(error_class, database_unavailable)
    app.register_error_handler(Exception, server_error)
