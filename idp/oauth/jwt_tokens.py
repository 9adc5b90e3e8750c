"""JWT Profile for OAuth 2.0 Access Tokens (RFC 9068), and the choice between it and opaque.

Every access token the server issues passes through ``shape`` (called by
``tokens.save_token``, whatever the grant): the target resources (RFC 8707) decide the
token's audience, lifetime and format; a JWT is then signed with the server's keys
(``typ: at+jwt``, §2.1) and verifiable with the published JWKS.

Either way only the SHA-256 of the token string is stored, so revocation, introspection,
UserInfo and the sign-out policy treat both formats alike; a JWT's ``jti`` is kept too.
A resource server that validates JWTs locally learns of a revocation only by introspecting.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app

from ..models import Client, Resource, Token, User, secret_hash
from . import keys, resources
from .acr import level
from .paths import PATHS
from .subjects import subject_for

TYP = "at+jwt"  # RFC 9068 §2.1
TOKEN_TYPE_JWT = "urn:ietf:params:oauth:token-type:jwt"  # RFC 8693 §3


def userinfo_url() -> str:
    return current_app._get_current_object().config["ISSUER"] + PATHS["userinfo_endpoint"]


def audience(client: Client, user: User | None, scope: str, target: list[Resource]) -> list[str]:
    """The ``aud`` of an access token (RFC 9068 §3, RFC 8707 §2).

    The target resources; with ``openid`` in the scope also the UserInfo endpoint, where
    the token is used too. Without either, the default resource is the client itself.
    """
    aud = [r.identifier for r in target]
    if user is not None and "openid" in (scope_to_list(scope) or []):
        aud.append(userinfo_url())
    return aud or [client.client_id]


def claims(row: Token, client: Client, user: User | None, scope: str) -> dict:
    """The claims of RFC 9068 §2.2 for the access token stored as ``row``."""
    aud = row.audience or [client.client_id]
    data = {
        "iss": current_app._get_current_object().config["ISSUER"],
        "exp": int(row.access_expires_at.timestamp()),
        "aud": aud[0] if len(aud) == 1 else aud,
        # §2.2: the resource owner's subject, or the client's id when no user is involved.
        "sub": subject_for(client, user) if user is not None else client.client_id,
        "client_id": client.client_id,
        "iat": int(row.issued_at.timestamp()),
        "jti": row.jti,
    }
    if scope:
        data["scope"] = scope  # §2.2.3
    if user is not None:
        # §2.2.1: how and when the user signed in, and the class that met (oauth.acr).
        if row.auth_time:
            data["auth_time"] = row.auth_time
        if row.amr:
            data["amr"] = list(row.amr)
            data["acr"] = row.acr or level(row.amr)
    if row.act:
        data["act"] = row.act  # RFC 8693 §4.1
    if row.jkt:
        data["cnf"] = {"jkt": row.jkt}  # RFC 9449 §6.1
    return data


def encode(data: dict) -> str:
    alg = current_app._get_current_object().config["ACCESS_TOKEN_SIGNING_ALG"]
    return keys.sign(data, alg, typ=TYP)


def shape(token: dict, request, row: Token) -> None:
    """Settle the access token in ``token`` (the response body) and ``row`` (storage).

    Reads what the grant put on the request: ``target_resources`` (the resources this token
    is for), ``granted_resources`` (what the grant covers, kept for refresh), and from token
    exchange ``act``, ``requested_token_type`` and ``token_context`` (row values).
    """
    client = request.client
    user = request.user
    for name, value in (getattr(request, "token_context", None) or {}).items():
        setattr(row, name, value)  # token exchange: family, session and sign-in of the subject
    target = getattr(request, "target_resources", None) or []
    lifetime = resources.lifetime(client, target)
    if lifetime:
        token["expires_in"] = lifetime  # the resource's lifetime, when it sets one
    row.access_expires_at = row.issued_at + timedelta(seconds=int(token["expires_in"]))
    scope = token.get("scope") or ""
    row.audience = audience(client, user, scope, target)
    granted = getattr(request, "granted_resources", None)
    row.resources = granted if granted is not None else [r.identifier for r in target] or None
    row.act = getattr(request, "act", None)
    wants_jwt = getattr(request, "requested_token_type", None) == TOKEN_TYPE_JWT
    if wants_jwt or resources.token_format(client, target) == "jwt":
        row.jti = uuid.uuid4().hex
        token["access_token"] = encode(claims(row, client, user, scope))
    row.access_token_hash = secret_hash(token["access_token"])
