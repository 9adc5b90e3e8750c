"""Authentication Context Class References (OIDC Core §2 ``acr``, §3.1.2.1 ``acr_values``,
§5.5.1.1 the ``claims`` request for ``acr``) and step-up at the authorization endpoint.

This server's classes, weakest first (docs/architecture.md, "Multi-factor authentication"):

    urn:idp:acr:pwd  one factor: a password
    urn:idp:acr:mfa  two distinct factors (RFC 8176 "mfa"), e.g. password + TOTP
    urn:idp:acr:phr  phishing-resistant: a passkey (RFC 8176 "hwk"/"swk") was used

The class is computed from the session's amr (RFC 8176). A request that asks for more than
the session has gets the missing factor first (``auth.mfa.begin(need=...)``); an
*essential* acr that cannot be met ends with ``unmet_authentication_requirements``
(OpenID Connect Unmet Authentication Requirements 1.0 §3), never with a weaker token.
A client with "requires MFA" is an essential ``mfa`` on every request.
"""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2 import OAuth2Error
from flask import g

from ..auth import mfa
from ..models import Client, User
from . import claims_request

PWD = "urn:idp:acr:pwd"
MFA = "urn:idp:acr:mfa"
PHR = "urn:idp:acr:phr"
LEVELS = (PWD, MFA, PHR)  # weakest first
RANK = {value: i for i, value in enumerate(LEVELS)}
NEED = {MFA: "mfa", PHR: "phr"}  # what auth.mfa.begin must obtain


class UnmetAuthenticationRequirements(OAuth2Error):
    """OpenID Connect Unmet Authentication Requirements 1.0 §3."""

    error = "unmet_authentication_requirements"
    description = "The requested authentication context cannot be met."


def level(amr: list[str] | None) -> str:
    """The class of a sign-in by its RFC 8176 methods."""
    methods = list(amr or [])
    if {"hwk", "swk"} & set(methods):
        return PHR
    if "mfa" in methods or "mfa" in mfa.combine([], methods):
        return MFA
    return PWD


def satisfies(have: str, want: str) -> bool:
    return RANK.get(have, -1) >= RANK.get(want, len(LEVELS))


@dataclass
class Request:
    values: list[str]  # as requested, in the client's order of preference
    essential: bool


def requested(params) -> Request:
    """acr values from the ``claims`` parameter's id_token.acr (essential or not), else
    from ``acr_values`` (voluntary)."""
    values: list[str] = []
    essential = False
    acr_claim = claims_request.acr_request(claims_request.parse(params.get("claims")))
    if acr_claim:
        essential = acr_claim.get("essential") is True
        if isinstance(acr_claim.get("value"), str):
            values.append(acr_claim["value"])
        values.extend(v for v in acr_claim.get("values", []) if isinstance(v, str))
    if not values:
        values = (params.get("acr_values") or "").split()
    return Request(values, essential)


def weakest_known(values: list[str]) -> str | None:
    known = [v for v in values if v in RANK]
    return min(known, key=RANK.__getitem__) if known else None


def reachable(user: User, want: str, essential: bool) -> bool:
    """Whether the user can add what ``want`` needs: a factor they have, or (for an
    essential mfa) enrolling an authenticator app now."""
    if mfa.available(user, NEED[want]):
        return True
    return want == MFA and essential


def decide(user: User, amr: list[str], params, client: Client) -> str | None:
    """The auth.mfa ``need`` to obtain before going on, or None (then ``chosen()`` is the
    acr to report). Raises UnmetAuthenticationRequirements."""
    have = level(amr)
    wanted = requested(params)
    g.idp_acr = have
    if client.require_mfa and not satisfies(have, MFA):
        return NEED[MFA]  # always reachable: a factor the user has, or enrolment
    target = weakest_known(wanted.values)
    if target is None:
        if wanted.essential and wanted.values:
            raise UnmetAuthenticationRequirements()  # only values this server does not know
        return None
    if satisfies(have, target):
        # OIDC Core §5.5.1.1: the acr returned is one of the requested values the sign-in
        # meets, in the client's order of preference.
        g.idp_acr = next(v for v in wanted.values if v in RANK and satisfies(have, v))
        return None
    if reachable(user, target, wanted.essential):
        return NEED[target]
    if wanted.essential:
        raise UnmetAuthenticationRequirements()
    return None  # voluntary (acr_values): the real, weaker class is reported


def chosen(amr: list[str] | None) -> str:
    """The acr for the code issued in this request: decided by ``decide``, else the level."""
    return g.get("idp_acr") or level(amr)
