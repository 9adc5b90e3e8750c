"""Scopes and the standard claims they release (OpenID Connect Core 1.0 §5.1, §5.4)."""

from __future__ import annotations

from collections.abc import Iterable

from authlib.oauth2.rfc6749.util import scope_to_list

from ..models import Client, User
from .subjects import subject_for

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": (
        "name",
        "family_name",
        "given_name",
        "middle_name",
        "nickname",
        "preferred_username",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "address": ("address",),
    "phone": ("phone_number", "phone_number_verified"),
    # Not an OIDC standard scope: the names of the user's groups (admin UI, issue 3).
    "groups": ("groups",),
}

# Plain words for the consent page.
SCOPE_DESCRIPTIONS: dict[str, str] = {
    "openid": "Sign you in and know who you are",
    "profile": "Your name and basic profile (picture, locale, time zone)",
    "email": "Your email address",
    "address": "Your postal address",
    "phone": "Your phone number",
    "groups": "The groups you belong to",
    "offline_access": "Stay connected when you are not using it (refresh tokens)",
}

# Plain words for one claim asked for by itself (the claims parameter, OIDC Core §5.5).
CLAIM_DESCRIPTIONS: dict[str, str] = {
    "sub": "Your account identifier",
    "name": "Your full name",
    "given_name": "Your given name",
    "family_name": "Your family name",
    "middle_name": "Your middle name",
    "nickname": "Your nickname",
    "preferred_username": "Your username",
    "profile": "The address of your profile page",
    "picture": "Your profile picture",
    "website": "Your website",
    "gender": "Your gender",
    "birthdate": "Your date of birth",
    "zoneinfo": "Your time zone",
    "locale": "Your language and region",
    "updated_at": "When you last changed your profile",
    "email": "Your email address",
    "email_verified": "Whether your email address is verified",
    "address": "Your postal address",
    "phone_number": "Your phone number",
    "phone_number_verified": "Whether your phone number is verified",
    "groups": "The groups you belong to",
}

OIDC_SCOPES = ("openid", "profile", "email", "address", "phone", "groups", "offline_access")

CLAIMS_SUPPORTED = sorted({c for claims in SCOPE_CLAIMS.values() for c in claims})
KNOWN_CLAIMS = frozenset(CLAIMS_SUPPORTED)


def scope_claims(scopes: Iterable[str]) -> set[str]:
    """The names of the claims these scopes release (§5.4)."""
    return {c for s in scopes for c in SCOPE_CLAIMS.get(s, ())}


def user_claims(
    user: User, scope: str | None, client: Client | None = None, extra: Iterable[str] = ()
) -> dict:
    """The claims the granted scope releases, and the ``extra`` ones consented to one by one
    (the claims parameter, OIDC Core §5.5), leaving out those the user has no value for;
    ``sub`` as ``client`` sees it (public or pairwise, OIDC Core §8)."""
    sub = subject_for(client, user)
    values = {
        "sub": sub,
        "preferred_username": user.username,
        "updated_at": int(user.updated_at.timestamp()) if user.updated_at else None,
    }
    wanted = [c for s in scope_to_list(scope) or [] for c in SCOPE_CLAIMS.get(s, ())]
    wanted += [c for c in extra if c in KNOWN_CLAIMS and c not in wanted]
    claims = {}
    for name in wanted:
        if name == "groups":  # loaded only when the scope asks for it
            value = [group.name for group in user.groups] or None
        else:
            value = values[name] if name in values else getattr(user, name, None)
        if value is not None and value != "":
            claims[name] = value
    for flag, base in (("email_verified", "email"), ("phone_number_verified", "phone_number")):
        if base not in claims:
            claims.pop(flag, None)
    claims["sub"] = sub
    return claims
