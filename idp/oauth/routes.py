"""HTTP routes of the protocol endpoints; every path is named in paths.PATHS."""

from __future__ import annotations

import re

from authlib.oauth2.rfc6749 import InsecureTransportError, InvalidRequestError
from flask import Blueprint, Flask, abort, current_app, jsonify, request

from .. import db
from . import authorize as authorize_view
from . import (
    cache,
    client_auth,
    device,
    discovery,
    dpop,
    keys,
    logout,
    openapi,
    registration,
    resource_metadata,
    service_documentation,
    session_end,
)
from . import end_session as end_session_view
from .claims import CLAIM_DESCRIPTIONS, SCOPE_DESCRIPTIONS
from .paths import PATHS, registration_enabled
from .server import build, server
from .userinfo import userinfo

bp = Blueprint("oauth", __name__)
# Each route lists only the methods it serves: any other gets 405 with Allow and a JSON body
# (errors.http_error), and OPTIONS advertises no method that would only answer 405.

DISCOVERY_MAX_AGE = 3600
# Token request parameters that may repeat: RFC 8707 §2 resource, RFC 8693 §2.1 audience.
REPEATABLE = ("resource", "audience")
JWKS_MAX_AGE = 300


def _json_error(error):
    response = jsonify(dict(error.get_body()))
    response.status_code = 400
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(InsecureTransportError)
def _plain_http(_error):
    # RFC 6749 §3.2, §2.3.1, RFC 7662 §4: endpoints that take client credentials or tokens
    # require TLS. Authlib refuses plain http to a host that is not loopback before its own
    # error handling starts, so it surfaced as a 500; it is the request's fault (or a TLS
    # proxy's missing X-Forwarded-Proto), and the answer says so.
    current_app.logger.warning(
        "plain http refused", extra={"endpoint": request.endpoint, "host": request.host}
    )
    return _json_error(InvalidRequestError("This endpoint requires https."))


@bp.route(PATHS["authorization_endpoint"], methods=["GET", "POST"])
def authorize():
    return authorize_view.authorize()


@bp.post(PATHS["token_endpoint"])
def token():
    # RFC 6749 §3.2: POST only, form-encoded; §3.1/§3.2: no parameter more than once.
    return (
        _form_error(REPEATABLE)
        or _dpop_error("token_endpoint")
        or dpop.add_nonce(server().create_token_response())
    )


def _dpop_error(endpoint: str):
    """RFC 9449 §4.3: the request's DPoP proof, checked before anything else; an error or None."""
    try:
        dpop.from_request(endpoint)
    except dpop.DPoPError as error:
        return server().handle_error_response(None, error)
    return None


def _form_error(repeatable: tuple[str, ...] = ()):
    """invalid_request for a body that is not form-encoded or repeats a parameter, else None."""
    current = request._get_current_object()  # one look-up through Flask's proxy
    if current.mimetype != "application/x-www-form-urlencoded":
        return _json_error(
            InvalidRequestError("Send parameters as application/x-www-form-urlencoded.")
        )
    for name, values in current.form.lists():
        if len(values) > 1 and name not in repeatable:
            return _json_error(_repeated(name))
    return None


def _repeated(name: str) -> InvalidRequestError:
    # The name is echoed only when it is a plain token: RFC 6749 §5.2 limits
    # error_description to printable ASCII without quotes (found by fuzzing).
    if re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
        return InvalidRequestError(f"Parameter '{name}' is repeated.")
    return InvalidRequestError("A parameter is repeated.")


def _endpoint(name: str, repeatable: tuple[str, ...] = ()):
    return _form_error(repeatable) or server().create_endpoint_response(name)


@bp.post(PATHS["revocation_endpoint"])
def revoke():
    return _endpoint("revocation")


@bp.post(PATHS["introspection_endpoint"])
def introspect():
    if not db.driver_path():  # PostgreSQL reads in autocommit on the driver (tokens.find_to_read)
        db.read_only()
    return _endpoint("introspection")


@bp.post(PATHS["device_authorization_endpoint"])
def device_authorization():
    return _endpoint("device_authorization")  # RFC 8628 §3.1


@bp.post(PATHS["pushed_authorization_request_endpoint"])
def pushed_authorization_request():
    # RFC 9126 §2.3: POST only (405 otherwise); RFC 8707 §2: resource may repeat.
    return (
        _form_error(("resource",))
        or _dpop_error("pushed_authorization_request_endpoint")
        or dpop.add_nonce(server().create_endpoint_response("pushed_authorization"))
    )


bp.add_url_rule(PATHS["userinfo_endpoint"], "userinfo", userinfo, methods=["GET", "POST"])


def _json_body_error():
    """RFC 7591 §3.1 / RFC 7592 §2.2: the body is one JSON object."""
    if request.mimetype != "application/json":
        return _json_error(InvalidRequestError("Send the client metadata as application/json."))
    if not isinstance(request.get_json(silent=True), dict):
        return _json_error(InvalidRequestError("The body must be a JSON object."))
    return None


@bp.post(PATHS["registration_endpoint"])
def register():
    if not registration_enabled():
        abort(404)
    problem = _json_body_error()
    return problem or server().create_endpoint_response("client_registration")


@bp.route(PATHS["registration_endpoint"] + "/<client_id>", methods=["GET", "PUT", "DELETE"])
def client_configuration(client_id: str):
    if request.method == "PUT" and (problem := _json_body_error()):
        return problem
    return server().create_endpoint_response("client_configuration")


@bp.route(PATHS["end_session_endpoint"], methods=["GET", "POST"])
def end_session():
    return end_session_view.end_session()


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


@bp.get(resource_metadata.WELL_KNOWN)
def protected_resource_metadata():
    # RFC 9728 §3: UserInfo's metadata; its resource identifier is the issuer.
    response = jsonify(resource_metadata.userinfo_document())
    response.headers["Cache-Control"] = f"public, max-age={DISCOVERY_MAX_AGE}"
    return response


bp.add_url_rule(openapi.PATH, "openapi", openapi.view)  # OpenAPI 3.1 of these endpoints


def init_app(app: Flask) -> None:
    keys.init_app(app)
    cache.init_app(app)
    logout.init_app(app)
    session_end.init_app(app)  # auth.session's session_ended: revoke tokens, back-channel
    client_auth.init_app(app)
    app.extensions["idp.oauth"] = build(app)
    device.register(app.extensions["idp.oauth"])  # RFC 8628: endpoint and grant
    device.init_app(app)  # the user-code page: its own blueprint, CSRF-protected
    registration.init_app(app)
    app.register_blueprint(bp)
    app.register_blueprint(service_documentation.bp)  # discovery's service_documentation page
    app.jinja_env.globals["scope_text"] = lambda scope: SCOPE_DESCRIPTIONS.get(scope, scope)
    app.jinja_env.globals["claim_text"] = lambda claim: CLAIM_DESCRIPTIONS.get(claim, claim)
    app.extensions["csrf"].exempt(bp)  # protocol endpoints; the consent form checks its own
