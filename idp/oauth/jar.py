"""JWT-Secured Authorization Requests, JAR (RFC 9101), at /authorize and the PAR endpoint.

    browser ──/authorize?client_id&request=JWS──► authorization_request()
              verified (below), then stored exactly as a pushed request (RFC 9126 table) and
              the browser is sent on, 303, to /authorize?client_id&request_uri=urn:...; from
              there the one PAR code path runs on the request object's parameters only
              (§6.3), and sign-in and consent come back to that request_uri, so the request
              object itself is never presented twice (its jti is single-use)
    client  ──POST /par with request=JWS──► pushed_params(): what is pushed is the request
              object's parameters (RFC 9126 §3); its request_uri is JAR "by reference" (§5.2)
    any other request_uri (a URL to fetch) ──► request_uri_not_supported (§7)

A request object is accepted only if (RFC 9101 §6, §10; FAPI 2.0 Security Profile §5.3.2):
a JWS (encrypted request objects are not supported); ``alg`` the client's registered
``request_object_signing_alg`` or any asymmetric one the server lists, never ``none`` (§10.8
and the HMAC algorithms are not accepted: the server keeps no client secret to check them
by); ``typ`` absent, ``JWT`` or ``oauth-authz-req+jwt`` (§4, §10.8); signed with a key of the
client's ``jwks`` / ``jwks_uri`` (as for private_key_jwt); ``iss`` = the client, ``aud`` =
the issuer, ``client_id`` (if present) = the client; ``exp`` present and at most
``REQUEST_OBJECT_MAX_LIFETIME`` ahead; ``nbf`` (if present) not in the future and at most that
far back; ``jti`` present and never seen before (the replay store of client_auth: the
``jwt_replay`` table or Redis, shared by every worker); no ``request`` / ``request_uri`` inside.
The ``client_id`` and ``response_type`` sent next to it must equal the object's (§5).

Errors go back to the client's redirect URI only when that URI is trusted: the client exists
and the redirect_uri sent next to the request (or its only registered one) is registered
(RFC 6749 §4.1.2.1); otherwise the user sees the error page.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc9101.errors import (
    InvalidRequestObjectError,
    RequestUriNotSupportedError,
)
from flask import current_app, redirect, render_template, request, url_for
from joserfc import jwt
from joserfc.errors import JoseError

from .. import audit, db
from ..models import Client, PushedAuthorizationRequest, secret_hash, utcnow
from . import par
from .client_auth import LEEWAY, SIGNATURE_ALGORITHMS, client_keys, first_use
from .responses import deliver

# request_object_signing_alg_values_supported (OIDC Discovery §3): asymmetric only.
SIGNING_ALG_VALUES = list(SIGNATURE_ALGORITHMS)
TYPES = (None, "JWT", "oauth-authz-req+jwt")  # §4: typ SHOULD be oauth-authz-req+jwt
# JWT claims of the request object that are not authorization request parameters.
JWT_CLAIMS = ("iss", "aud", "exp", "nbf", "iat", "jti", "sub")
MAX_LENGTH = 32 * 1024


def signed_required(client: Client) -> bool:
    """§10.5: must this client send every authorization request as a request object?"""
    return bool(current_app.config["REQUIRE_SIGNED_REQUEST_OBJECT"]) or bool(
        client.require_signed_request_object
    )


def refused(description: str) -> InvalidRequestObjectError:
    return InvalidRequestObjectError(description=description)


# --- verification --------------------------------------------------------------------------


def _header(value: str) -> dict:
    """The protected header of a compact JWS, unverified (to name the problem precisely)."""
    try:
        segment = value.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise refused("The request object is not a JWT.") from exc
    if not isinstance(header, dict):
        raise refused("The request object is not a JWT.")
    return header


def _key_resolver(client: Client):
    def pick(guest):
        kid = guest.headers().get("kid")
        for refresh in (False, True):  # unknown kid: the client may have rotated its keys
            try:
                return client_keys(client, refresh=refresh).get_by_kid(kid)
            except (JoseError, ValueError):
                continue
            except InvalidClientError as exc:
                raise refused(exc.description) from exc
        raise refused("No registered key of the client matches the request object.")

    return pick


def _number(claims: dict, name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise refused(f"The request object's {name} is not a number.")
    return value


def _check_claims(claims: dict, client: Client) -> None:
    issuer = current_app.config["ISSUER"]
    max_lifetime = int(current_app.config["REQUEST_OBJECT_MAX_LIFETIME"])
    now = time.time()
    if claims.get("iss") != client.client_id:
        raise refused("The request object's iss must be the client_id.")
    aud = claims.get("aud")
    if not (aud == issuer or (isinstance(aud, list) and issuer in aud)):
        raise refused("The request object's aud must be the issuer.")
    if "client_id" in claims and claims["client_id"] != client.client_id:
        raise refused("The request object's client_id is not this client.")
    exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
    if exp is None:
        raise refused("The request object has no exp.")
    if exp <= now - LEEWAY:
        raise refused("The request object has expired.")
    # Short-lived only: the jti is remembered until exp, so exp bounds the replay store.
    if exp > now + max_lifetime + LEEWAY:
        raise refused("The request object lives too long.")
    if nbf is not None:
        if nbf > now + LEEWAY:
            raise refused("The request object is not valid yet (nbf).")
        if nbf < now - max_lifetime - LEEWAY or exp - nbf > max_lifetime:
            # FAPI 2.0: nbf no longer than 60 minutes in the past, exp - nbf at most 60.
            raise refused("The request object's nbf is too old.")
    if iat is not None and iat > now + LEEWAY:
        raise refused("The request object is issued in the future.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 255:
        raise refused("The request object has no jti.")
    if "request" in claims or "request_uri" in claims:
        # §4: request and request_uri MUST NOT be included in request objects.
        raise refused("A request object must not contain request or request_uri.")


def _replayed(client: Client, claims: dict) -> bool:
    expires_at = datetime.fromtimestamp(claims["exp"] + LEEWAY, UTC)
    # Its own namespace: a request object's jti never collides with a client assertion's.
    return not first_use(client.client_id, "request_object\0" + claims["jti"], expires_at)


def _as_lists(claims: dict) -> dict[str, list[str]]:
    """Authorization parameters as the pushed-request table keeps them: {name: [values]}."""
    lists: dict[str, list[str]] = {}
    for name, value in claims.items():
        if name in JWT_CLAIMS:
            continue
        if isinstance(value, str):
            lists[name] = [value]
        elif isinstance(value, bool):
            lists[name] = ["true" if value else "false"]
        elif isinstance(value, int | float):
            lists[name] = [str(value)]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            lists[name] = list(value)  # e.g. several resource values (RFC 8707)
        else:
            # OIDC Core §5.5: claims is a JSON object, sent as its JSON text.
            lists[name] = [json.dumps(value, separators=(",", ":"))]
    return lists


def verify(value: str, client: Client, sent: dict[str, list[str]]) -> dict[str, list[str]]:
    """The authorization parameters of a request object, once every check has passed."""
    if not isinstance(value, str) or not value or len(value) > MAX_LENGTH:
        raise refused("The request object is missing or too large.")
    if value.count(".") == 4:
        raise refused("Encrypted request objects are not supported; sign it only.")
    if value.count(".") != 2:
        raise refused("The request object is not a JWT.")
    header = _header(value)
    alg = header.get("alg")
    if alg == "none":
        raise refused("Unsigned request objects (alg none) are not accepted.")
    allowed = (
        [client.request_object_signing_alg]
        if client.request_object_signing_alg
        else SIGNING_ALG_VALUES
    )
    if alg not in allowed:
        raise refused("The request object's alg must be one of " + ", ".join(allowed) + ".")
    if header.get("typ") not in TYPES:
        raise refused("The request object's typ must be oauth-authz-req+jwt.")
    try:
        token = jwt.decode(value, _key_resolver(client), algorithms=allowed)
    except JoseError as exc:
        raise refused("The request object's signature is not valid.") from exc
    claims = token.claims
    _check_claims(claims, client)
    # §5: client_id and response_type sent outside the request object must be the same.
    for name in ("client_id", "response_type"):
        outside = sent.get(name)
        if outside and name in claims and outside != [claims[name]]:
            raise InvalidRequestError(f"'{name}' differs from the request object's {name}.")
    if _replayed(client, claims):
        audit.record("request_object.replayed", target=client.client_id)
        db.session().commit()
        raise refused("This request object was already used.")
    params = _as_lists(claims)
    params["client_id"] = [client.client_id]
    return params


def _record_refusal(client_id: str, error: OAuth2Error, endpoint: str) -> None:
    audit.record(
        "request_object.refused",
        target=client_id,
        endpoint=endpoint,
        error=error.error,
        description=error.get_error_description(),
    )
    db.session().commit()


def _query_client(client_id: str) -> Client | None:
    return current_app.extensions["idp.oauth"].query_client(client_id)


# --- the PAR endpoint (RFC 9126 §3) --------------------------------------------------------


def pushed_params(lists: dict[str, list[str]], client: Client) -> dict[str, list[str]]:
    """What a PAR request pushes: its request object's parameters, if it sends one."""
    if "request" not in lists and not signed_required(client):
        return lists
    try:
        if "request" not in lists:
            raise InvalidRequestError(
                "This client must send a signed request object (RFC 9101 section 10.5)."
            )
        if len(lists["request"]) > 1:
            raise InvalidRequestError("Parameter 'request' is repeated")
        return verify(lists["request"][0], client, lists)
    except OAuth2Error as error:
        _record_refusal(client.client_id, error, "par")
        raise


# --- the authorization endpoint (§5, §6) ---------------------------------------------------


def _store(params: dict[str, list[str]], client: Client) -> str:
    """Keep a verified request object's parameters as a pushed request (par.py reads it)."""
    request_uri = par.REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    session = db.session()
    session.add(
        PushedAuthorizationRequest(
            request_uri_hash=secret_hash(request_uri),
            client_id=client.client_id,
            params=params,
            created_at=now,
            expires_at=now + timedelta(seconds=int(current_app.config["PAR_LIFETIME"])),
        )
    )
    audit.record("request_object.accepted", target=client.client_id, endpoint="authorize")
    session.commit()
    return request_uri


def _error_response(error: OAuth2Error, client: Client | None):
    """To the client when its redirect URI is trusted (RFC 6749 §4.1.2.1), else a page."""
    values = request.values
    redirect_uri = values.get("redirect_uri") or (client and client.get_default_redirect_uri())
    if client is not None and redirect_uri and client.check_redirect_uri(redirect_uri):
        body = list(error.get_body())
        if values.get("state"):
            body.append(("state", values["state"]))
        mode = "form_post" if values.get("response_mode") == "form_post" else "query"
        return deliver(redirect_uri, body, mode)
    return (
        render_template(
            "oauth/error.html", error=error.error, description=error.get_error_description()
        ),
        error.status_code or 400,
    )


def authorization_request():
    """None to go on with the request as it is; else the response that replaces it.

    A request object is verified and continued as a pushed request; a request_uri other than
    PAR's is refused; a client that must sign its requests may not send plain parameters.
    """
    values = request.values
    has_request, request_uri = "request" in values, values.get("request_uri")
    if not has_request and request_uri is None:
        client = _query_client(values.get("client_id") or "")
        if client is None or not signed_required(client):
            return None  # Authlib's grant reports an unknown client
        error: OAuth2Error = InvalidRequestError(
            "This client must send a signed request object (RFC 9101 section 10.5)."
        )
        _record_refusal(client.client_id, error, "authorize")
        return _error_response(error, client)
    if not has_request:
        if request_uri.startswith(par.REQUEST_URI_PREFIX):
            return None  # PAR's (par.PushedAuthorization resolves it)
        client = _query_client(values.get("client_id") or "")
        # §5.2: this server does not fetch request objects from URLs (SSRF, §10.4).
        return _error_response(
            RequestUriNotSupportedError(description="Only request_uri values from PAR."), client
        )
    client = _query_client(values.get("client_id") or "")
    if client is None:
        # §5: client_id is required next to request, and must name a client.
        return _error_response(
            InvalidClientError(description="The client does not exist on this server."), None
        )
    try:
        if request_uri is not None:
            raise InvalidRequestError("Send request or request_uri, not both.")
        if len(values.getlist("request")) > 1:
            raise InvalidRequestError("Parameter 'request' is repeated")
        if par.required(client):
            raise InvalidRequestError(
                "This client must push its authorization requests to the PAR endpoint."
            )
        sent = {name: values.getlist(name) for name in ("client_id", "response_type")}
        params = verify(values["request"], client, sent)
    except OAuth2Error as error:
        _record_refusal(client.client_id, error, "authorize")
        return _error_response(error, client)
    pushed_uri = _store(params, client)
    target = url_for("oauth.authorize", client_id=client.client_id, request_uri=pushed_uri)
    return redirect(target, 303)


def _push_hook(server, lists: dict[str, list[str]], client: Client) -> None:
    replaced = pushed_params(lists, client)
    if replaced is not lists:
        lists.clear()
        lists.update(replaced)


def register(server) -> None:
    """PAR hands what is pushed to this module through a server hook (par.py sits below)."""
    server.register_hook("before_push_authorization_request", _push_hook)
