"""Resource Indicators for OAuth 2.0 (RFC 8707): which APIs a request's tokens are for.

    authorize  resource=URI... (or, without it, the one resource its scopes name, RFC 9068 §3)
               -> checked, stored with the code; resource scopes of other APIs are dropped
    token      resource=URI... must be among the grant's resources (§2.2) -> the access
               token's aud; resource scopes outside those resources are left out
    refresh    the refresh token keeps the grant's resources and scope; each refresh may pick
               fewer resources and gets a token scoped down to them (§2.2)
    errors     malformed, unknown or not allowed for the client -> invalid_target (§2)

A scope registered to no resource (``openid``, ``profile``... or a client's own scopes) is
not a resource scope and is never narrowed away.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidScopeError
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app
from sqlalchemy import select

from .. import db
from ..models import Client, Resource
from .cache import Target, registry
from .dpop import normalise_uri


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2 (and RFC 8693 §2.2.2): the resource is invalid, unknown or not allowed."""

    error = "invalid_target"


def invalid_indicator(value: str) -> str | None:
    """Why ``value`` is not a resource indicator (§2: an absolute URI without a fragment)."""
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. "http://[": a 500 before (found by fuzzing)
        return "is not a valid URI"
    if not parts.scheme or not (parts.netloc or parts.path):
        return "must be an absolute URI"
    if "#" in value:
        return "must not contain a fragment"
    return None


def indicators(request, name: str = "resource") -> list[str]:
    """The distinct ``resource`` values of a request, each checked for form (§2)."""
    values = list(dict.fromkeys(request.payload.datalist.get(name) or []))
    for value in values:
        if invalid_indicator(value):
            raise InvalidTargetError(f"{name} {invalid_indicator(value)}")
    return values


def find(identifiers: list[str]) -> dict[str, Target]:
    if not identifiers:
        return {}
    targets = registry().catalogue().targets
    return {i: targets[i] for i in identifiers if i in targets}


def allowed(client: Client, identifiers: list[str]) -> list[Target]:
    """The resources named, each registered and open to this client, else invalid_target."""
    found = find(identifiers)
    for identifier in identifiers:
        resource = found.get(identifier)
        if resource is None or not resource.allows_client(client.client_id):
            raise InvalidTargetError("The resource is unknown or not allowed for this client.")
    return [found[i] for i in identifiers]


def registered_scopes() -> frozenset[str]:
    """Every scope that belongs to some resource."""
    return registry().catalogue().registered_scopes


def within(scopes: list[str], resources: list[Target]) -> list[str]:
    """The scopes fit for tokens to ``resources``: theirs, and those of no resource."""
    theirs = {s for r in resources for s in r.scopes}
    registered = registered_scopes() if scopes else frozenset()
    return [s for s in scopes if s in theirs or s not in registered]


def narrow(scope: str | None, resources: list[Target]) -> str | None:
    if scope is None:
        return None
    return " ".join(within(scope_to_list(scope) or [], resources))


def infer(client: Client, scopes: list[str]) -> list[Target]:
    """RFC 9068 §3: without ``resource``, the one resource the requested scopes belong to.

    Scopes of several resources are refused with invalid_scope (§3), so that every token
    still has one clear audience; name the resources with ``resource`` instead (RFC 8707).
    """
    wanted = set(scopes)
    if not wanted:
        return []
    mine = registry().catalogue().by_client.get(client.client_id, ())
    owners = [r for r in mine if wanted & set(r.scopes)]
    if len(owners) > 1:
        raise InvalidScopeError(
            "The scopes belong to different resources; name them with the resource parameter."
        )
    return owners


def for_authorization(request, client: Client) -> list[Target]:
    """The resources of an authorization request; narrows ``request.scope`` to them."""
    explicit = allowed(client, indicators(request))
    scopes = scope_to_list(request.scope) or []
    target = explicit or infer(client, scopes)
    request.scope = " ".join(within(scopes, target))
    return target


def for_token_request(request, client: Client, granted: list[str] | None) -> list[Target]:
    """The resources a token request targets, with what the grant covers (RFC 8707 §2.2).

    ``granted`` is the grant's list (code, refresh token), or None for grants that carry none
    (client credentials): then the request's ``resource`` values count, or else the one
    resource its scopes belong to (RFC 9068 §3).
    """
    names = indicators(request)
    if granted is None and not names:  # the usual client credentials request
        return list(_inferred(client, request.payload.scope))
    requested = allowed(client, names)
    scope = scope_to_list(request.payload.scope) or []
    if granted is not None:
        if any(r.identifier not in granted for r in requested):
            raise InvalidTargetError("The resource was not part of this grant.")
        if not requested:
            found = find(granted)  # a resource deleted or closed to the client since drops out
            requested = [
                found[i] for i in granted if i in found and found[i].allows_client(client.client_id)
            ]
    elif not requested:
        requested = infer(client, scope)
    return _checked(client, scope, requested)


def _checked(client: Client, scope: list[str], requested: list[Target]) -> list[Target]:
    """``requested``, once every scope belongs to it and it needs one token format."""
    if scope and len(within(scope, requested)) != len(scope):
        raise InvalidScopeError("The scope does not belong to the requested resource.")
    token_format(client, requested)  # refuses resources that need different formats
    return requested


# (client_id, scope) -> (catalogue, resources): what a request without ``resource`` and
# without a grant targets, for as long as the catalogue it was read from is current.
# Refusals are not kept. Bounded: the scope is the (authenticated) client's choice.
_INFERRED: dict[tuple[str, str | None], tuple[object, tuple[Target, ...]]] = {}
MAX_INFERRED = 1024


def _inferred(client: Client, scope_string: str | None) -> tuple[Target, ...]:
    """``for_token_request`` without indicators or grant: the one resource the scopes belong
    to (RFC 9068 §3), checked as there; per worker, per catalogue."""
    catalogue = registry().catalogue()
    key = (client.client_id, scope_string)
    found = _INFERRED.get(key)
    if found is not None and found[0] is catalogue:
        return found[1]
    scope = scope_to_list(scope_string) or []
    requested = _checked(client, scope, infer(client, scope))
    if len(_INFERRED) >= MAX_INFERRED:
        _INFERRED.clear()
    _INFERRED[key] = (catalogue, tuple(requested))
    return tuple(requested)


def token_format(client: Client, resources: list[Target]) -> str:
    """The format, jwt or opaque: the resources' choice, else the client's, else the server's."""
    formats = {r.token_format for r in resources if r.token_format}
    if len(formats) > 1:
        # One token serves every audience; it cannot be both a JWT and an opaque string.
        raise InvalidTargetError("These resources need different token formats; ask separately.")
    if formats:
        return formats.pop()
    config = current_app._get_current_object().config
    return client.access_token_format or config["ACCESS_TOKEN_FORMAT"]


def lifetime(client: Client, resources: list[Target]) -> int | None:
    """Seconds: the shortest lifetime set on the resources, else None (client or server)."""
    set_on = [r.access_token_lifetime for r in resources if r.access_token_lifetime]
    return min(set_on) if set_on else None


def introspects(client: Client, token) -> bool:
    """Whether ``client`` is the resource server of one of the token's audiences."""
    audience = token.audience or []
    if not audience or token.presented_as != "access_token":
        return False
    targets = find(list(audience)).values()
    return any(r.introspection_client_id == client.client_id for r in targets)


def under(uri: str, identifier: str) -> bool:
    """Whether ``uri`` is the resource ``identifier`` or a URL below it (both normalised:
    scheme and host case, default port, no query or fragment)."""
    base = normalise_uri(identifier)
    target = normalise_uri(uri)
    return target == base or target.startswith(base if base.endswith("/") else base + "/")


def serves_at(client: Client, token, uri: str) -> bool:
    """Whether a request to ``uri`` may carry ``token`` at a resource ``client`` serves.

    A token for registered resources (its audience, RFC 8707): ``uri`` lies under one of
    them whose introspection client is ``client``. A token for none of them (the client
    itself, UserInfo): any ``uri``.
    """
    targets = find(list(token.audience or [])).values()
    if not targets:
        return True
    return any(
        r.introspection_client_id == client.client_id and under(uri, r.identifier) for r in targets
    )


# --- registration (CLI and admin UI) -----------------------------------------------------


def definition_problem(
    identifier: str, name: str, scopes: list[str], token_format: str | None, lifetime: int | None
) -> str | None:
    """Why a resource definition cannot be saved, or None."""
    from .claims import OIDC_SCOPES

    if invalid_indicator(identifier):
        return f"identifier {invalid_indicator(identifier)} (RFC 8707 section 2)"
    if len(identifier) > 512:
        return "identifier is too long (512 characters at most)"
    if not name.strip():
        return "name is required"
    if not scopes:
        return "at least one scope is required"
    for scope in scopes:
        if scope in OIDC_SCOPES:
            return f"scope {scope} belongs to OpenID Connect, not to a resource"
        if not all(0x21 <= ord(c) <= 0x7E and c not in '"\\' for c in scope):
            return f"scope {scope!r} has characters RFC 6749 section 3.3 does not allow"
    if token_format not in (None, "jwt", "opaque"):
        return "token format must be jwt or opaque"
    if lifetime is not None and lifetime <= 0:
        return "lifetime must be a positive number of seconds"
    return None


def save(
    resource: Resource,
    *,
    identifier: str,
    name: str,
    scopes: list[str],
    token_format: str | None,
    lifetime: int | None,
    client_ids: list[str],
    introspection_client_id: str | None,
) -> str | None:
    """Fill ``resource`` (new or existing) and add it to the session; a problem, or None."""
    scopes = [s for value in scopes for s in value.split()]
    problem = definition_problem(identifier, name, scopes, token_format, lifetime)
    if problem:
        return problem
    session = db.session()
    clash = session.scalar(
        select(Resource.id).where(Resource.identifier == identifier, Resource.id != resource.id)
        if resource.id
        else select(Resource.id).where(Resource.identifier == identifier)
    )
    if clash is not None:
        return "a resource with this identifier already exists"
    wanted = set(client_ids) | ({introspection_client_id} if introspection_client_id else set())
    clients = {
        c.client_id: c for c in session.scalars(select(Client).where(Client.client_id.in_(wanted)))
    }
    missing = sorted(wanted - clients.keys())
    if missing:
        return "no client " + ", ".join(missing)
    resource.identifier = identifier
    resource.name = name.strip()
    resource.scope = " ".join(dict.fromkeys(scopes))
    resource.token_format = token_format
    resource.access_token_lifetime = lifetime
    resource.introspection_client_id = introspection_client_id
    resource.clients = [clients[c] for c in dict.fromkeys(client_ids)]
    session.add(resource)
    return None


def describe(resource: Resource) -> dict:
    return {
        "identifier": resource.identifier,
        "name": resource.name,
        "scopes": resource.scopes,
        "token_format": resource.token_format,
        "access_token_lifetime": resource.access_token_lifetime,
        "clients": [c.client_id for c in resource.clients],
        "introspection_client_id": resource.introspection_client_id,
        "created_at": resource.created_at.isoformat() if resource.created_at else None,
    }
