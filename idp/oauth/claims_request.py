"""The ``claims`` request parameter (OpenID Connect Core 1.0 §5.5): individual claims for the
ID token and for UserInfo.

    claims={"id_token": {"email": {"essential": true}, "acr": {"values": [...]}},
            "userinfo": {"name": null, "sub": {"value": "..."}}}

``parse`` validates the parameter at the authorization endpoint (or PAR, or inside a request
object) and returns its normal form, which is what a code and its tokens keep; ``id_token_claims``
and ``userinfo_claims`` pick the requested claims from what the user consented to.

Rules of this server:

* Only claims of the scopes the user granted are released (``claims.user_claims``): the consent
  page speaks in scopes, so the parameter chooses *where* a consented claim goes (§5.5: e.g.
  ``email`` in the ID token) and never widens what the user agreed to. A requested claim the
  user has no value for, or did not consent to, is left out (§5.5: "not an error").
* ``essential`` does not make a missing claim an error (§5.5.1 leaves that to the OP): the
  authorization goes on, the claim is left out.
* ``value`` / ``values`` are honoured for ``sub`` (§3.1.2.2: only that user may be the
  answer; ``subject_mismatch``); for other claims they are hints and the user's real value is
  returned when released (§5.5.1 "the OP ... MAY" use them).
* ``acr`` is parsed and kept but not applied here: the authentication context work
  (``acr_values``, step-up) owns it (``acr_request`` hands it over).
* Members other than ``id_token`` and ``userinfo`` are ignored (§5.5: "not understood MUST be
  ignored"); a malformed parameter is ``invalid_request``.
"""

from __future__ import annotations

import json

from authlib.oauth2.rfc6749 import InvalidRequestError

from ..models import User
from .claims import user_claims

TARGETS = ("id_token", "userinfo")
# Claims this module never sets from a request: the ID token's protocol claims, and acr,
# which the authentication context code applies.
NOT_APPLIED = frozenset(
    {"iss", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "at_hash", "c_hash", "azp"}
    | {"sid", "amr", "acr", "jti", "cnf"}
)
MAX_LENGTH = 8 * 1024
MAX_CLAIMS = 64


def _invalid(reason: str) -> InvalidRequestError:
    return InvalidRequestError(f"claims: {reason} (OpenID Connect Core section 5.5).")


def _request(name: str, value) -> dict | None:
    """One claim's request: null, or an object with essential / value / values (§5.5.1)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid(f"the request for {name!r} must be null or an object")
    out: dict = {}
    if "essential" in value:
        if not isinstance(value["essential"], bool):
            raise _invalid(f"essential of {name!r} must be true or false")
        out["essential"] = value["essential"]
    if "value" in value and "values" in value:
        raise _invalid(f"{name!r} has both value and values")
    if "value" in value:
        if isinstance(value["value"], dict | list):
            raise _invalid(f"value of {name!r} must be a single value")
        out["value"] = value["value"]
    if "values" in value:
        values = value["values"]
        if not isinstance(values, list) or not values:
            raise _invalid(f"values of {name!r} must be a non-empty array")
        if any(isinstance(v, dict | list) for v in values):
            raise _invalid(f"values of {name!r} must hold single values")
        out["values"] = list(values)
    return out  # other members (e.g. "purpose", OIDC Identity Assurance) are ignored


def parse(value: str | None) -> dict | None:
    """The normal form {"id_token": {...}, "userinfo": {...}} of a claims parameter, or None.

    Raises invalid_request for anything §5.5 does not allow.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_LENGTH:
        raise _invalid("too long")
    try:
        document = json.loads(value)
    except (ValueError, RecursionError) as exc:
        raise _invalid("not JSON") from exc
    if not isinstance(document, dict):
        raise _invalid("must be a JSON object")
    parsed: dict = {}
    count = 0
    for target in TARGETS:
        if target not in document or document[target] is None:
            continue
        members = document[target]
        if not isinstance(members, dict):
            raise _invalid(f"{target} must be an object")
        count += len(members)
        if count > MAX_CLAIMS:
            raise _invalid("too many claims")
        parsed[target] = {name: _request(name, request) for name, request in members.items()}
    return parsed


def dumps(parsed: dict | None) -> str | None:
    """The stored form (what a code and the tokens issued from it keep)."""
    return json.dumps(parsed, separators=(",", ":"), sort_keys=True) if parsed else None


def _matches(request: dict | None, actual) -> bool:
    if not request:
        return True
    if "value" in request:
        return actual == request["value"]
    if "values" in request:
        return actual in request["values"]
    return True


def subject_mismatch(parsed: dict | None, sub: str) -> bool:
    """§3.1.2.2 / §5.5.1: a sub requested with a value the signed-in user does not have.

    The authorization endpoint then answers as if no one were signed in (login_required
    for prompt=none), never with another user's tokens.
    """
    for target in TARGETS:
        request = (parsed or {}).get(target, {}).get("sub")
        if not _matches(request, sub):
            return True
    return False


def _pick(parsed: dict | None, target: str, user: User, scope: str) -> dict:
    requested = (parsed or {}).get(target) or {}
    if not requested:
        return {}
    consented = user_claims(user, scope)
    return {
        name: consented[name] for name in requested if name not in NOT_APPLIED and name in consented
    }


def id_token_claims(parsed: dict | None, user: User, scope: str) -> dict:
    """The individually requested claims to add to the ID token (§5.5 "id_token").

    Today ``oidc.issue_id_token`` already puts every consented claim in the ID token, so this
    adds nothing yet; it matters once claims beyond the granted scopes can be consented to.
    """
    return _pick(parsed, "id_token", user, scope)


def userinfo_claims(parsed: dict | None, user: User, scope: str) -> dict:
    """The individually requested claims to add to the UserInfo response (§5.5 "userinfo").

    UserInfo already returns every claim of the granted scopes (§5.4), so this adds nothing
    today; it is the hook for claims that are released only on request.
    """
    return _pick(parsed, "userinfo", user, scope)


def acr_request(parsed: dict | None) -> dict | None:
    """The ``acr`` request of the ID token member, for the authentication context code."""
    return ((parsed or {}).get("id_token") or {}).get("acr")


def essential_claims(parsed: dict | None, target: str) -> list[str]:
    """Names requested as essential (§5.5.1), e.g. to tell the user on the consent page."""
    requested = (parsed or {}).get(target) or {}
    return [name for name, request in requested.items() if request and request.get("essential")]
