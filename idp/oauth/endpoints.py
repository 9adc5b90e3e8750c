"""Revocation (RFC 7009) and introspection (RFC 7662) endpoints on the tokens table."""

from __future__ import annotations

from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from flask import current_app

from .. import audit, db
from ..models import Token
from . import dpop, resources, tokens
from .client_auth import ALL_METHODS, CONFIDENTIAL_METHODS
from .subjects import subject_for


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
        if "token" not in request.form:
            raise InvalidRequestError()

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
            "iss": current_app.config["ISSUER"],
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
