"""HTTP routes of the protocol endpoints; every path is named in discovery.PATHS."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import Blueprint, Flask, jsonify

from . import authorize as authorize_view
from . import discovery, keys
from .discovery import PATHS
from .server import build, server
from .userinfo import userinfo

bp = Blueprint("oauth", __name__)

DISCOVERY_MAX_AGE = 3600
JWKS_MAX_AGE = 300


def _json_error(error, status=400, headers=()):
    response = jsonify(dict(error.get_body()))
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    for name, value in headers:
        response.headers[name] = value
    return response


@bp.route(PATHS["authorization_endpoint"], methods=["GET", "POST"])
def authorize():
    return authorize_view.authorize()


@bp.route(PATHS["token_endpoint"], methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
def token():
    from flask import request

    # RFC 6749 §3.2: POST only, form-encoded; §3.1/§3.2: no parameter more than once.
    if request.method != "POST":
        return _json_error(
            InvalidRequestError("The token endpoint accepts POST only."), 405, [("Allow", "POST")]
        )
    if request.mimetype != "application/x-www-form-urlencoded":
        return _json_error(
            InvalidRequestError("Send parameters as application/x-www-form-urlencoded.")
        )
    for name in request.form:
        if len(request.form.getlist(name)) > 1:
            return _json_error(InvalidRequestError(f"Parameter '{name}' is repeated."))
    return server().create_token_response()


def _endpoint(name: str):
    from flask import request

    if request.mimetype != "application/x-www-form-urlencoded":
        return _json_error(
            InvalidRequestError("Send parameters as application/x-www-form-urlencoded.")
        )
    for param in request.form:
        if len(request.form.getlist(param)) > 1:
            return _json_error(InvalidRequestError(f"Parameter '{param}' is repeated."))
    return server().create_endpoint_response(name)


@bp.post(PATHS["revocation_endpoint"])
def revoke():
    return _endpoint("revocation")


@bp.post(PATHS["introspection_endpoint"])
def introspect():
    return _endpoint("introspection")


bp.add_url_rule(PATHS["userinfo_endpoint"], "userinfo", userinfo, methods=["GET", "POST"])


@bp.get(PATHS["jwks_uri"])
def jwks():
    response = jsonify(keys.store().jwks())
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
    return response


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def well_known():
    response = jsonify(discovery.metadata())
    response.headers["Cache-Control"] = f"public, max-age={DISCOVERY_MAX_AGE}"
    return response


def init_app(app: Flask) -> None:
    keys.init_app(app)
    app.extensions["idp.oauth"] = build(app)
    app.register_blueprint(bp)
    app.extensions["csrf"].exempt(bp)  # protocol endpoints; the consent form checks its own
