"""Pushed authorization requests (RFC 9126), in the shape of Authlib's endpoints and extensions.

    client ──POST /par (authenticated like at /token, §2)──► PushedAuthorizationEndpoint
              validated as an authorization request would be (§2.1), stored (hash of the
              request_uri, the parameters, the client) ──► 201 {request_uri, expires_in} (§2.2)
    browser ──GET /authorize?client_id&request_uri──► PushedAuthorization (server hook, §4)
              unknown, expired, used or another client's request_uri → invalid_request_uri;
              other authorization parameters must repeat the pushed values or be left out;
              the pushed parameters replace the request's payload, so every later check
              (Authlib's grant, PKCE, nonce, prompts) runs on exactly what was pushed
    authorization response (code, denial or error) ──► used_at set by a conditional UPDATE:
              one response per pushed request (§4 "one-time use")

A request_uri must be used within ``PAR_LIFETIME`` (60 s). Once the browser has presented it,
the sign-in and consent that follow may take up to ``INTERACTION_LIFETIME``; reloading a page
meanwhile is allowed (§4 permits it), and prompt=login / max_age count as honoured by a
sign-in after the browser arrived. ``require_pushed_authorization_requests`` (server setting,
§5, or client metadata, §6) refuses authorization requests without a pushed request_uri.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from authlib.consts import default_json_headers
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.requests import OAuth2Payload
from authlib.oauth2.rfc9101.errors import InvalidRequestUriError, RequestNotSupportedError
from flask import current_app, g
from flask import request as flask_request
from flask import session as flask_session
from sqlalchemy import select, update
from werkzeug.datastructures import MultiDict

from .. import audit, db
from ..models import Client, PushedAuthorizationRequest, secret_hash, utcnow
from . import dpop, prompts
from .client_auth import ALL_METHODS

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
INTERACTION_LIFETIME = 600  # seconds a presented request_uri lives on for sign-in and consent
# Client authentication parameters: not part of the authorization request (§2.1).
CLIENT_AUTH_PARAMS = ("client_secret", "client_assertion", "client_assertion_type")
# Authorization request parameters that may appear next to request_uri only with the pushed
# value (RFC 9101 §5 lets clients repeat them; a different value would be a second request).
AUTHORIZATION_PARAMS = (
    "response_type",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "response_mode",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "id_token_hint",
    "resource",
    "claims",
    "acr_values",
    "ui_locales",
    "display",
    "request",
    "authorization_details",
    "dpop_jkt",  # RFC 9449 §10
)
# Parameters that may not repeat in a pushed request (RFC 6749 §3.1); resource may (RFC 8707).
SINGLE = tuple(p for p in AUTHORIZATION_PARAMS if p != "resource") + ("client_id",)


def required(client: Client) -> bool:
    """§5/§6: must this client start every authorization with a pushed request?"""
    return bool(current_app.config["REQUIRE_PUSHED_AUTHORIZATION_REQUESTS"]) or (
        client.require_pushed_authorization_requests
    )


class PushedPayload(OAuth2Payload):
    """The stored parameters ({name: [values]}) as Authlib's request payload."""

    def __init__(self, lists: dict[str, list[str]]):
        self._datalist = {name: list(values) for name, values in lists.items()}
        self._data = MultiDict([(n, v) for n, values in lists.items() for v in values])

    @property
    def data(self):
        return self._data

    @property
    def datalist(self):
        return self._datalist


class PushedOAuth2Request(OAuth2Request):
    """The pushed parameters, validated as an authorization request at the PAR endpoint."""

    pushed = True

    def __init__(self, lists: dict[str, list[str]]):
        super().__init__("GET", flask_request.url, headers=flask_request.headers)
        self.payload = PushedPayload(lists)

    @property
    def args(self):
        return self.payload.data

    @property
    def form(self):
        return self.payload.data


# --- the PAR endpoint (§2) ----------------------------------------------------------------


class PushedAuthorizationEndpoint:
    ENDPOINT_NAME = "pushed_authorization"
    CLIENT_AUTH_METHODS = ALL_METHODS

    def __init__(self, server):
        self.server = server

    def __call__(self, request):
        return self.create_endpoint_response(request)

    def create_endpoint_request(self, request):
        return self.server.create_oauth2_request(request)

    def create_endpoint_response(self, request):
        client = self.server.authenticate_client(
            request, self.CLIENT_AUTH_METHODS, self.ENDPOINT_NAME
        )
        form = request.form
        lists = {name: form.getlist(name) for name in form if name not in CLIENT_AUTH_PARAMS}
        if lists.get("client_id", [client.client_id]) != [client.client_id]:
            raise InvalidRequestError("client_id does not match the authenticated client.")
        lists["client_id"] = [client.client_id]
        if "request_uri" in lists:
            raise InvalidRequestError("request_uri must not be pushed (RFC 9126 section 2.1).")
        # RFC 9126 §3: a request object replaces the pushed parameters (jar.py, RFC 9101).
        self.server.execute_hook("before_push_authorization_request", lists, client)
        if "request" in lists:
            raise RequestNotSupportedError()
        dpop.bind_pushed(lists)  # RFC 9449 §10.1: a proof here binds the code to its key
        self.validate(lists, client)

        request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
        lifetime = int(current_app.config["PAR_LIFETIME"])
        now = utcnow()
        session = db.session()
        session.add(
            PushedAuthorizationRequest(
                request_uri_hash=secret_hash(request_uri),
                client_id=client.client_id,
                params=lists,
                created_at=now,
                expires_at=now + timedelta(seconds=lifetime),
            )
        )
        audit.record("par.pushed", target=client.client_id, scope=form.get("scope", ""))
        session.commit()
        return 201, {"request_uri": request_uri, "expires_in": lifetime}, default_json_headers

    def validate(self, lists: dict[str, list[str]], client: Client) -> None:
        """§2.1: the pushed request is checked as the authorization endpoint would check it."""
        pushed = PushedOAuth2Request(lists)
        try:
            for name in SINGLE:
                if len(lists.get(name, [])) > 1:
                    raise InvalidRequestError(f"Parameter '{name}' is repeated")
            grant = self.server.get_authorization_grant(pushed)
            grant.validate_authorization_request()
            data = pushed.payload.data
            prompts.requested_prompts(data)
            prompts.max_age(data)
            prompts.id_token_hint_subject(data, client)
        except OAuth2Error as error:
            # §2.3: errors go to the client in this response, never to a redirect URI.
            error.redirect_uri = None
            error.state = None
            raise


# --- the authorization endpoint (§4) ------------------------------------------------------


def find(request_uri: str) -> PushedAuthorizationRequest | None:
    if not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 200:
        return None
    return db.session().scalar(
        select(PushedAuthorizationRequest).where(
            PushedAuthorizationRequest.request_uri_hash == secret_hash(request_uri)
        )
    )


def usable(row: PushedAuthorizationRequest | None, client: Client) -> bool:
    return (
        row is not None
        and row.client_id == client.client_id  # bound to the client that pushed it
        and row.used_at is None
        and not row.is_expired()
    )


def _claim(row: PushedAuthorizationRequest) -> None:
    """First arrival of the browser: from now the request lives for the sign-in."""
    if row.claimed_at is not None:
        return
    now = utcnow()
    session = db.session()
    session.execute(
        update(PushedAuthorizationRequest)
        .where(
            PushedAuthorizationRequest.id == row.id,
            PushedAuthorizationRequest.claimed_at.is_(None),
        )
        .values(claimed_at=now, expires_at=now + timedelta(seconds=INTERACTION_LIFETIME))
    )
    session.commit()
    session.refresh(row)


class PushedAuthorization:
    """Authorization server extension: resolves request_uri before the grant is chosen."""

    def __call__(self, server):
        server.register_hook("before_get_authorization_grant", self.resolve)

    def resolve(self, server, request) -> None:
        if getattr(request, "pushed", False):
            return  # the PAR endpoint validating what is being pushed
        data = request.payload.data
        client = server.query_client(data.get("client_id") or "")
        request_uri = data.get("request_uri")
        if request_uri is None:
            if client is not None and required(client):
                raise InvalidRequestError(
                    "This client must push its authorization requests to the PAR endpoint."
                )
            return
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        row = find(request_uri)
        if not usable(row, client):
            raise InvalidRequestUriError("The request_uri is unknown, expired or used.")
        for name in AUTHORIZATION_PARAMS:
            sent = data.getlist(name) if hasattr(data, "getlist") else []
            if sent and sent != row.params.get(name):
                raise InvalidRequestError(
                    f"'{name}' must be sent in the pushed request, not next to request_uri."
                )
        _claim(row)
        g.pushed_authorization_request = row
        request.payload = PushedPayload(row.params)


def current() -> PushedAuthorizationRequest | None:
    """The pushed request this authorization request resolved to, if any."""
    return g.get("pushed_authorization_request")


def authorization_params(params: dict[str, str], user) -> dict[str, str]:
    """The parameters the authorization endpoint acts on: the pushed ones for a request_uri."""
    row = current()
    if row is None:
        return params
    pushed = {name: values[0] for name, values in row.params.items() if values}
    if user is not None:
        # Signed in after the browser brought this request: prompt=login and max_age are
        # honoured (the plain flow drops them from the URL it returns to; here is no URL).
        # Compared to the instant, not the second: a sign-in earlier in the same second
        # as the arrival is not a new one (OIDC Core §3.1.2.1).
        signed_in_at = flask_session.get("signed_in_at")
        if (
            row.claimed_at is not None
            and signed_in_at is not None
            and signed_in_at >= row.claimed_at.timestamp()
        ):
            pushed.pop("max_age", None)
            remaining = [p for p in pushed.pop("prompt", "").split() if p != "login"]
            if remaining:
                pushed["prompt"] = " ".join(remaining)
    return pushed


def link_params(params: dict[str, str]) -> dict[str, str]:
    """What the way back to /authorize (after sign-in, on the consent form) carries."""
    row = current()
    if row is None:
        return params
    return {"client_id": row.client_id, "request_uri": flask_request.values["request_uri"]}


def redirect_uri_of(args: dict[str, str], client: Client) -> str | None:
    """The redirect URI of the pushed request an /authorize URL names (for the login page)."""
    row = find(args.get("request_uri") or "")
    if not usable(row, client):
        return None
    return (row.params.get("redirect_uri") or [None])[0]


def consume() -> OAuth2Error | None:
    """Use the pushed request up; an error if another response already did (§4)."""
    row = current()
    if row is None:
        return None
    session = db.session()
    won = session.execute(
        update(PushedAuthorizationRequest)
        .where(
            PushedAuthorizationRequest.id == row.id,
            PushedAuthorizationRequest.used_at.is_(None),
        )
        .values(used_at=utcnow())
    ).rowcount
    session.commit()
    g.pop("pushed_authorization_request", None)
    if won != 1:
        return InvalidRequestUriError("The request_uri was already used.")
    return None


def register(server) -> None:
    server.register_endpoint(PushedAuthorizationEndpoint)
    server.register_extension(PushedAuthorization())
