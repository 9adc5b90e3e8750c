"""Revocation (RFC 7009) and introspection (RFC 7662) endpoints on the tokens table.

Introspection also checks, on request, the DPoP proof (RFC 9449) a resource server received
with the token: this server's extension, docs/fapi.md "DPoP proofs at introspection".
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from authlib.consts import default_json_headers
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from flask import current_app

from .. import audit, db
from ..models import Token
from ..urls import https_or_loopback_http
from . import dpop, resources, tokens
from .cache import READING_CLIENT
from .client_auth import ALL_METHODS, CONFIDENTIAL_METHODS
from .subjects import subject_for

METHOD = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$")  # RFC 9110 §9.1: a token
MAX_URI = 2048


class RevocationEndpoint(_RevocationEndpoint):
    # Public clients may revoke their own tokens (RFC 7009 §2.1 leaves this to the server).
    CLIENT_AUTH_METHODS = ALL_METHODS

    def check_params(self, request, client):
        # §2.2: "An invalid token type hint value is ignored by the authorization server and
        # does not influence the revocation response" (Authlib would refuse it).
        if "token" not in request.form:
            raise InvalidRequestError()

    def query_token(self, token_string, token_type_hint):
        return tokens.find(token_string, token_type_hint)

    def revoke_token(self, token: Token, request):
        if token.presented_as == "refresh_token":
            # §2.1: revoking a refresh token also invalidates the grant's access tokens.
            tokens.revoke_family(token.family_id, reason="refresh token revoked by client")
        else:
            tokens.revoke(token)
            audit.record("token.revoked", target=token.client_id, token_id=token.id)
        db.session().commit()


class IntrospectionEndpoint(_IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def check_params(self, request, client):
        # §2.1: the hint only narrows the first look-up, and the search MUST go on over every
        # token type; an unknown hint is ignored as at revocation (Authlib answered 401).
        form = request.form
        if "token" not in form:
            raise InvalidRequestError()
        request.dpop_presented = None
        # The request a resource server received the token on (this server's extension);
        # without these parameters nothing more is done.
        if "dpop_proof" in form or "dpop_method" in form or "dpop_uri" in form:
            request.dpop_presented = presented_request(form)

    def authenticate_endpoint_client(self, request):
        # §2.1: the caller is only read, from its authentication to the answer (whose tokens
        # it may see): the cache's shared instance, not a copy per request.
        reading = READING_CLIENT.set(True)
        try:
            return super().authenticate_endpoint_client(request)
        finally:
            READING_CLIENT.reset(reading)

    def create_endpoint_response(self, request):
        client = self.authenticate_endpoint_client(request)
        token = self.authenticate_token(request, client)
        body = self.create_introspection_payload(token)
        if request.dpop_presented is not None and body["active"]:
            body = check_presented(body, token, client, request)
        return 200, body, default_json_headers

    def query_token(self, token_string, token_type_hint):
        return tokens.find_to_read(token_string)

    def check_permission(self, token: Token, client, request) -> bool:
        # A client may introspect the tokens issued to it, and a resource server the tokens
        # meant for its resource (RFC 7662 §2.1, RFC 8707); others learn only "inactive".
        return token.client_id == client.client_id or resources.introspects(client, token)

    def create_introspection_payload(self, token: Token | None):
        # RFC 7662 §2.2: revoked, expired, or its grant ended (a disabled client or user,
        # an ended session, a revoked consent): inactive, by the same rule as every endpoint.
        if token is None or not tokens.is_live(token):
            return {"active": False}
        if token.presented_as == "refresh_token":
            expires_at = token.refresh_expires_at
        else:
            expires_at = token.access_expires_at
        payload = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "token_type": "Bearer" if token.presented_as == "access_token" else "refresh_token",
            "exp": int(expires_at.timestamp()),
            "iat": int(token.issued_at.timestamp()),
            "iss": current_app._get_current_object().config["ISSUER"],
        }
        if token.user is not None:
            payload["sub"] = subject_for(token.client, token.user)  # what the client sees
            payload["username"] = token.user.username
        else:
            payload["sub"] = token.client_id  # RFC 9068 §2.2: no user, the client is the subject
        if token.presented_as == "access_token":
            # RFC 7662 §2.2 aud and jti (RFC 9068), RFC 8693 §4.1 act.
            if token.audience:
                payload["aud"] = token.audience[0] if len(token.audience) == 1 else token.audience
            if token.jti:
                payload["jti"] = token.jti
            if token.act:
                payload["act"] = token.act
            if token.jkt:  # RFC 9449 §6.2: a DPoP-bound token and its key
                payload["token_type"], payload["cnf"] = "DPoP", dpop.cnf(token)
        return payload


# --- DPoP proofs a resource server received (RFC 9449 §7; this server's extension) ---------


def presented_request(form) -> tuple[str, str, str]:
    """(dpop_proof, dpop_method, dpop_uri): the request a resource server received the token
    on. Method and URI are required with them; the URI is absolute, https (http only on a
    loopback host), without fragment. An absent dpop_proof is "no proof received"."""
    method, uri = form.get("dpop_method"), form.get("dpop_uri")
    if not method or not uri:
        raise InvalidRequestError("dpop_method and dpop_uri are required with dpop_proof.")
    if not METHOD.match(method):
        raise InvalidRequestError("dpop_method is not an HTTP method.")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if (
        parts is None
        or len(uri) > MAX_URI
        or not parts.hostname
        or "#" in uri
        or not https_or_loopback_http(parts)
    ):
        raise InvalidRequestError(
            "dpop_uri must be an absolute https URL (http only on loopback), without fragment."
        )
    return form.get("dpop_proof") or "", method, uri


def check_presented(body: dict, token, client, request) -> dict:
    """RFC 9449 §7 for a resource server: the token as it received it. A bound token needs a
    valid proof by its key (``dpop.check_presented``, shared with UserInfo); a bearer token
    no proof (§7.2 refuses the other mix); ``dpop_uri`` a URL of a resource the caller serves
    when the token is for registered resources. Else inactive (RFC 7662 §2.2: not usable for
    this request), with dpop_error: the §7.1 error code the resource server can answer with.
    """
    proof, method, uri = request.dpop_presented
    try:
        if token.presented_as != "access_token":
            raise dpop.ResourceError("invalid_token", "A refresh token is not used at resources.")
        if not resources.serves_at(client, token, uri):
            raise dpop.ResourceError("invalid_token", "The token is not meant for dpop_uri.")
        if proof:
            dpop.check_presented(
                proof, method, uri, request.form["token"], token, server_nonce=False
            )
        elif token.jkt:  # §7.2: a bound token is not a bearer token
            raise dpop.ResourceError("invalid_token", "This access token is DPoP-bound.")
    except dpop.ResourceError as error:
        return {
            "active": False,
            "dpop_error": error.error,
            "dpop_error_description": error.description,
        }
    return body
