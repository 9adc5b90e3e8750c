"""The UserInfo endpoint (OIDC Core §5.3) behind RFC 6750 bearer or RFC 9449 DPoP authentication."""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator as _BearerTokenValidator
from authlib.oauth2.rfc6750 import InsufficientScopeError, InvalidTokenError
from flask import Response, current_app, jsonify, request
from werkzeug.datastructures import Headers

from .. import db
from . import claims_request, dpop
from .claims import user_claims
from .keys import sign
from .resource_metadata import with_resource_metadata
from .tokens import find_to_read, is_live


class BearerTokenValidator(_BearerTokenValidator):
    def authenticate_token(self, token_string):
        row = find_to_read(token_string)
        return row if row is not None and row.presented_as == "access_token" else None

    def validate_token(self, token, scopes, request):
        super().validate_token(token, scopes, request)
        if token.user is None or not is_live(token):
            raise InvalidTokenError()


def bearer_token() -> str | None:
    """The access token from the Authorization header or, on POST, the form body (§2.1-2.2)."""
    current = request._get_current_object()  # one look-up through Flask's proxy
    header = current.environ.get("HTTP_AUTHORIZATION", "")  # headers.get("Authorization")
    in_body = (
        current.method == "POST"
        and current.mimetype == ("application/x-www-form-urlencoded")
        and "access_token" in current.form
    )
    if header:
        if in_body:
            # RFC 6750 §3.1: more than one method is invalid_request (400). Authlib refuses
            # non-ASCII in error descriptions, hence "section".
            raise InvalidRequestError("Send the token in one place only (RFC 6750 section 2)")
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or not value.strip():
            raise InvalidTokenError("Use the Bearer or DPoP authentication scheme")
        return value.strip()
    if in_body:
        return request.form["access_token"]
    return None


def userinfo():
    if not db.driver_path():  # PostgreSQL reads in autocommit on the driver (find_to_read)
        db.read_only()
    try:
        token_string = bearer_token()
        if token_string is None:
            # RFC 6750 §3.1: no credentials, no error code.
            challenge = 'Bearer realm="userinfo", ' + dpop.challenge()  # RFC 9449 §7.1
            return _error(401, [("WWW-Authenticate", challenge)], {})
        validator = BearerTokenValidator()
        token = validator.authenticate_token(token_string)
        dpop.at_resource("userinfo_endpoint", _scheme(), token_string, token)  # RFC 9449 §7
        validator.validate_token(token, ["openid"], request)
    except dpop.ResourceError as error:  # RFC 9449 §7.1: a DPoP challenge, DPoP-Nonce
        headers = [("WWW-Authenticate", error.challenge())]
        if error.nonce:
            headers.append(("DPoP-Nonce", error.nonce))
        body = {"error": error.error, "error_description": error.description}
        return _error(error.status, headers, body)
    except InvalidTokenError as error:
        if _scheme() == "dpop":  # RFC 9449 §7.1: answered in the scheme the client used
            challenge = dpop.ResourceError("invalid_token", "").challenge()
            return _error(401, [("WWW-Authenticate", challenge)], dict(error.get_body()))
        return _error(error.status_code, error.get_headers(), dict(error.get_body()))
    except (InsufficientScopeError, InvalidRequestError) as error:
        return _error(error.status_code, error.get_headers(), dict(error.get_body()))
    except OAuth2Error as error:  # pragma: no cover - every raise above is one of those
        return _error(401, error.get_headers(), dict(error.get_body()))
    # OIDC Core §5.5: the userinfo member's claims (consented one by one) with the scope's.
    extra = claims_request.released(token.claims_request, "userinfo")
    claims = user_claims(token.user, token.scope, token.client, extra)
    alg = token.client.userinfo_signed_response_alg
    if alg:
        response = Response(signed(claims, token.client, alg), mimetype="application/jwt")
        response.headers["Cache-Control"] = "no-store"
    else:
        response = _claims_response(claims)
    return dpop.add_nonce(response)


def _claims_response(claims: dict) -> Response:
    """The claims as ``jsonify`` writes them (the app's JSON settings, compact, a final
    newline), with Cache-Control: no-store; the constant headers are not validated again."""
    app = current_app._get_current_object()
    provider = app.json
    if provider.compact is False or (provider.compact is None and app.debug):
        response = jsonify(claims)  # indented: jsonify's own choice
        response.headers["Cache-Control"] = "no-store"
        return response
    data = (provider.dumps(claims, separators=(",", ":")) + "\n").encode()
    headers = Headers()
    headers._list = [
        ("Content-Type", provider.mimetype),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
    ]
    return Response([data], 200, headers)


def _scheme() -> str:
    """The authentication scheme the request used: "bearer" (header or body) or "dpop"."""
    environ = request._get_current_object().environ
    header = environ.get("HTTP_AUTHORIZATION", "")  # headers.get("Authorization")
    return header.partition(" ")[0].lower() or "bearer"


def signed(claims: dict, client, alg: str) -> str:
    """OIDC Core §5.3.2: a JWS of the claims with iss and aud (the client) added."""
    return sign({**claims, "iss": current_app.config["ISSUER"], "aud": client.client_id}, alg)


def _error(status: int, headers, body: dict):
    response = jsonify(body)
    response.status_code = status
    for name, value in headers:
        if name.lower() in ("www-authenticate", "dpop-nonce"):
            response.headers[name] = value
    if "WWW-Authenticate" not in response.headers and body.get("error"):
        # RFC 6750 §3: a refused request carries a Bearer challenge with the error code.
        response.headers["WWW-Authenticate"] = f'Bearer error="{body["error"]}"'
    if "WWW-Authenticate" in response.headers:
        # RFC 9728 §5.1: where to learn how to call this resource.
        challenge = response.headers["WWW-Authenticate"]
        response.headers["WWW-Authenticate"] = with_resource_metadata(challenge)
    response.headers["Cache-Control"] = "no-store"
    return response
