"""Why the authorization endpoint must show login or consent (OIDC Core §3.1.2.1-§3.1.2.4).

Each reason is a named check, so a view reads as a list of decisions and a test can name
the rule it exercises.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from authlib.oauth2.rfc6749 import InvalidRequestError
from sqlalchemy import select

from .. import db
from ..models import Client, Consent, User
from .claims import scope_claims


def requested_prompts(params) -> set[str]:
    prompts = set((params.get("prompt") or "").split())
    unknown = prompts - {"none", "login", "consent", "select_account"}
    if unknown:
        shown = " ".join(sorted(unknown))
        # Echoed only when plain: RFC 6749 §5.2 limits error_description to printable ASCII
        # without quotes, and Authlib raises ValueError otherwise (found by schemathesis).
        if not re.fullmatch(r"[A-Za-z0-9_. -]{1,64}", shown):
            raise InvalidRequestError("Unsupported prompt value")
        raise InvalidRequestError(f"Unsupported prompt value: {shown}")
    if "none" in prompts and len(prompts) > 1:
        raise InvalidRequestError("prompt=none cannot be combined with other values")
    return prompts


def max_age(params) -> int | None:
    value = params.get("max_age")
    if value in (None, ""):
        return None
    if not value.isdigit() or len(value) > 10:
        raise InvalidRequestError("max_age must be a non-negative integer")
    return int(value)


def id_token_hint_subject(params, client: Client) -> str | None:
    """The sub of a valid id_token_hint this server issued (expiry is not checked, §3.1.2.1)."""
    hint = params.get("id_token_hint")
    if not hint:
        return None
    from .oidc import audiences, decode_id_token

    claims = decode_id_token(hint)  # an access or logout token is no ID token (RFC 8725)
    if claims is None:
        raise InvalidRequestError("id_token_hint is not an ID token this server issued")
    if client.client_id not in audiences(claims):
        raise InvalidRequestError("id_token_hint was not issued to this client")
    return claims.get("sub")


def login_reasons(
    user: User | None,
    prompts: set[str],
    max_age_s: int | None,
    auth_time: int,
    hint_sub: str | None,
) -> list[str]:
    if user is None:
        return ["no_session"]
    reasons = []
    if "login" in prompts:
        reasons.append("prompt_login")
    if max_age_s is not None and time.time() - auth_time > max_age_s:
        reasons.append("max_age_exceeded")
    if hint_sub is not None and hint_sub != user.sub:
        reasons.append("id_token_hint_other_user")
    return reasons


def consent_of(user: User, client: Client) -> Consent | None:
    return db.session().scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client.client_id)
    )


def granted_claims(consent: Consent | None) -> set[str]:
    """The claims the user already agreed to release: those of the granted scopes and those
    consented to one by one (OIDC Core §5.5)."""
    if consent is None:
        return set()
    return scope_claims(consent.scopes) | consent.claim_names


def consent_reasons(
    user: User,
    client: Client,
    scopes: list[str],
    prompts: set[str],
    claims: Sequence[str] = (),
) -> list[str]:
    """``claims``: the individually requested claims beyond ``scopes`` (OIDC Core §5.5)."""
    reasons = []
    if "consent" in prompts:
        reasons.append("prompt_consent")
    if client.first_party:
        return reasons
    consent = consent_of(user, client)
    if set(scopes) - (consent.scopes if consent else set()):
        reasons.append("new_scopes")
    if set(claims) - granted_claims(consent):
        reasons.append("new_claims")
    return reasons
