"""Friendly error pages for the UI; protocol endpoints answer JSON themselves."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger("idp")

JSON_PATHS = ("/token", "/revoke", "/introspect", "/userinfo", "/jwks.json", "/.well-known/")


def wants_json() -> bool:
    return request.path.startswith(JSON_PATHS)


def http_error(error: HTTPException):
    if wants_json():
        response = jsonify(error="invalid_request", error_description=error.description)
        response.status_code = error.code or 400
        response.headers["Cache-Control"] = "no-store"
        return response
    return render_template("errors/http.html", error=error), error.code


def server_error(error: Exception):
    # The traceback goes to the log, never to the client.
    log.exception("unhandled error on %s %s", request.method, request.path)
    if wants_json():
        response = jsonify(error="server_error", error_description="Internal error.")
        response.status_code = 500
        return response
    return render_template("errors/http.html", error=InternalServerError()), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, server_error)
