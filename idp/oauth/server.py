"""The Authlib authorization server of one app: storage hooks, grants and endpoints.

Built per app and kept in ``app.extensions["idp.oauth"]``; never a module-level singleton.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from authlib.consts import default_json_headers
from authlib.integrations.flask_oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2.rfc6749 import (
    InsecureTransportError,
    InvalidClientError,
    InvalidRequestError,
    UnsupportedResponseTypeError,
)
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE
from flask import Flask, Response, current_app
from flask import request as flask_request
from werkzeug.datastructures import Headers

from ..models import Client
from . import client_auth, dpop, endpoints, jar, par, token_exchange, tokens
from .cache import READING_CLIENT, registry
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
    """Disabled clients are treated as unknown everywhere (read through the worker's cache).
    A copy of its own for the caller, except while an endpoint that only reads its client
    authenticates it (``cache.READING_CLIENT``): the cache's shared instance."""
    if not client_id or len(client_id) > 64 or "\x00" in client_id:  # PostgreSQL refuses NUL
        return None
    cache = registry()
    return cache.shared(client_id) if READING_CLIENT.get() else cache.client(client_id)


# --- the request as Authlib reads it ------------------------------------------------------
#
# Authlib's Flask request read every parameter through Flask's context proxy (the form's
# ``values`` a dozen times per token request), rebuilt ``request.url`` through Werkzeug's
# IRI decoding only to check its scheme, and counted the headers. Here the same attributes
# are set once from the request object itself; every Authlib check still runs.


class _once:  # noqa: N801 - used as a decorator, like functools.cached_property
    """A value computed on first read and kept on the instance, which then answers every
    later read itself. functools.cached_property without its lock: a request object belongs
    to one thread."""

    def __init__(self, func):
        self.func = func
        self.name = func.__name__

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.func(obj)
        return value


class OAuth2Payload(FlaskOAuth2Payload):
    """The request's parameters as Werkzeug's ``values`` gives them (the query string and,
    except on GET, the form), read once; the names grants ask for repeatedly, once each."""

    def __init__(self, request):
        self._request = request  # the request object, not Flask's proxy

    @_once
    def data(self):
        request = self._request
        args = request.args
        if request.method == "GET":
            return args  # Werkzeug's values: the query string only
        form = request.form
        if not args:
            return form  # values = args + form, and args is empty
        return form and request.values or args

    @_once
    def datalist(self):
        return defaultdict(list, self.data.lists())

    @_once
    def grant_type(self) -> str:
        return self.data.get("grant_type")

    @_once
    def scope(self) -> str:
        return self.data.get("scope")

    @_once
    def client_id(self) -> str:
        return self.data.get("client_id")


# (scheme, host) pairs Authlib's InsecureTransportError.check has passed on its own (without
# AUTHLIB_INSECURE_TRANSPORT): the verdict depends on nothing else. Bounded: the Host header
# is the client's choice.
_SECURE_ORIGINS: set[tuple[str, str]] = set()
MAX_SECURE_ORIGINS = 64


class OAuth2Request(FlaskOAuth2Request):
    """Authlib's request of a Flask request, built without the proxy and the URL rebuild."""

    def __init__(self, request):  # Authlib's __init__, attribute for attribute
        scheme, host = request.scheme, request.host  # host: Werkzeug's trusted-host check
        self.method = request.method
        # Only Authlib's transport check reads it: the URL as requested, not IRI-decoded.
        self.uri = f"{scheme}://{host}{request.root_path}{request.path}"
        if (scheme, host) not in _SECURE_ORIGINS:
            InsecureTransportError.check(self.uri)
            if not os.getenv("AUTHLIB_INSECURE_TRANSPORT"):
                if len(_SECURE_ORIGINS) >= MAX_SECURE_ORIGINS:
                    _SECURE_ORIGINS.clear()
                _SECURE_ORIGINS.add((scheme, host))
        self.headers = request.headers
        self._body = None
        self.payload = OAuth2Payload(request)
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None
        self._request = request

    @_once
    def args(self):
        return self._request.args

    @_once
    def form(self):
        return self._request.form


class AuthorizationServer(_AuthorizationServer):
    def load_config(self, config):
        self.register_token_generator("default", tokens.generate_bearer_token)
        self.scopes_supported = None  # each client's scope decides (Client.get_allowed_scope)
        self._json = None  # the app's JSON settings, as an encoder (json_encoder)

    def create_oauth2_request(self, request):
        return OAuth2Request(flask_request._get_current_object())

    def json_encoder(self) -> json.JSONEncoder:
        """Flask's JSON provider settings (sorted keys, ASCII, its default), built once."""
        if self._json is None:
            provider = current_app.json
            self._json = json.JSONEncoder(
                default=provider.default,
                ensure_ascii=provider.ensure_ascii,
                sort_keys=provider.sort_keys,
            )
        return self._json

    def handle_response(self, status_code, payload, headers):
        if headers != default_json_headers or not isinstance(payload, dict):
            return super().handle_response(status_code, payload, headers)
        # The usual answer (token, introspection): the same bytes and headers as Authlib's
        # Response(json.dumps(payload), headers=...), with the constant headers not
        # validated again on every response.
        return json_response(status_code, self.json_encoder().encode(payload))

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


_JSON_HEADERS = tuple(default_json_headers)  # Content-Type, Cache-Control, Pragma


def json_response(status: int, body: str) -> Response:
    """A JSON answer with Authlib's token-response headers (RFC 6749 §5.1: no-store)."""
    data = body.encode()
    headers = Headers()
    headers._list = [*_JSON_HEADERS, ("Content-Length", str(len(data)))]
    return Response([data], status, headers)


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
    return current_app._get_current_object().extensions["idp.oauth"]
