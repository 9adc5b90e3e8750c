"""The Authlib authorization server of one app: storage hooks, grants and endpoints.

Built per app and kept in ``app.extensions["idp.oauth"]``; never a module-level singleton.
"""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.rfc6749 import (
    InvalidClientError,
    InvalidRequestError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from flask import Flask, current_app

from ..models import Client
from . import client_auth, dpop, endpoints, jar, par, token_exchange, tokens
from .cache import registry
from .grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant
from .oidc import OpenIDCode, OpenIDRefresh
from .pkce import CodeChallenge

GRANT_TYPES = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    DEVICE_CODE_GRANT_TYPE,  # RFC 8628
    token_exchange.GRANT_TYPE,  # RFC 8693
)


def query_client(client_id: str) -> Client | None:
    """Disabled clients are treated as unknown everywhere (read through the worker's cache)."""
    if not client_id or len(client_id) > 64 or "\x00" in client_id:  # PostgreSQL refuses NUL
        return None
    return registry().client(client_id)


class AuthorizationServer(_AuthorizationServer):
    def load_config(self, config):
        self.register_token_generator("default", tokens.generate_bearer_token)
        self.scopes_supported = None  # each client's scope decides (Client.get_allowed_scope)

    def authenticate_client(self, request, methods, endpoint="token"):
        # Every endpoint that authenticates clients comes here (token, revocation,
        # introspection, PAR, device authorization), before any method is tried.
        client_auth.refuse_multiple_methods(request)
        try:
            client = super().authenticate_client(request, methods, endpoint)
        except ValueError as exc:
            # Authlib's Basic parsing raises on "Authorization: Basic" with no credentials;
            # RFC 6749 §5.2: that is invalid_client, not a server error (found by fuzzing).
            raise InvalidClientError(status_code=401) from exc
        if endpoint == "token":  # every grant, before anything is used up
            dpop.require_for(client)  # RFC 9449 §5.2 dpop_bound_access_tokens
        return client

    def get_authorization_grant(self, request):
        try:
            return super().get_authorization_grant(request)
        except UnsupportedResponseTypeError as exc:
            # RFC 6749 §4.1.2.1: a request without response_type is "missing a required
            # parameter" (invalid_request); Authlib calls that an unsupported one.
            if request.payload.response_type:
                raise
            raise InvalidRequestError(
                "Missing response_type.", redirect_uri=exc.redirect_uri
            ) from exc
        except ValueError as exc:
            # Authlib puts the raw response_type into the error description and raises
            # ValueError when it has characters RFC 6749 §5.2 forbids (found by schemathesis).
            raise UnsupportedResponseTypeError(None, "Unsupported response_type.") from exc


def build(app: Flask) -> AuthorizationServer:
    server = AuthorizationServer()
    server.init_app(app, query_client=query_client, save_token=tokens.save_token)
    server.register_grant(
        AuthorizationCodeGrant, [CodeChallenge(), OpenIDCode(require_nonce=False)]
    )
    server.register_grant(RefreshTokenGrant, [OpenIDRefresh()])
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(token_exchange.TokenExchangeGrant)  # RFC 8693
    client_auth.register(server)  # private_key_jwt, client_secret_jwt (RFC 7523)
    # RFC 8628's endpoint and grant: routes.init_app registers them (device.register), as
    # device.py also holds the user-code page, which sits above this module.
    par.register(server)  # RFC 9126: PAR endpoint, request_uri at /authorize
    jar.register(server)  # RFC 9101: request objects pushed to PAR (/authorize: authorize.py)
    server.register_endpoint(endpoints.RevocationEndpoint)
    server.register_endpoint(endpoints.IntrospectionEndpoint)
    return server


def server() -> AuthorizationServer:
    return current_app.extensions["idp.oauth"]
