"""The ``claims`` request parameter (OpenID Connect Core 1.0 §5.5): individual claims for the
ID token and for UserInfo.

    claims={"id_token": {"email": {"essential": true}, "acr": {"values": [...]}},
            "userinfo": {"name": null, "sub": {"value": "..."}}}

``parse`` validates the parameter at the authorization endpoint (or PAR, or inside a request
object: the code grant's validation, so all three) and returns its normal form, which is
what a code and the tokens issued from it keep (``dumps``); ``released`` names the claims the
ID token or UserInfo adds to those of the scopes.

Rules of this server:

* Claims requested by the parameter are requested *in addition to* the scopes' claims
  (§5.5). One outside the scopes the user granted is shown on the consent page by itself,
  in plain words, and released only once the user consented to it (``Consent.claims``
  remembers it, like the scopes). ``names`` picks what the ID token (``id_token`` member)
  and UserInfo (``userinfo`` member) add to the scopes' claims.
* Only claims this server has (``claims.KNOWN_CLAIMS``) are released; other names are
  ignored, as are the ID token's protocol claims (``NOT_APPLIED``).
* A requested claim the user has no value for is left out (§5.5: "not an error").
* ``essential`` does not make a missing claim an error (§5.5.1 leaves that to the OP): the
  authorization goes on, the claim is left out. The consent page says it was asked as
  required.
* ``value`` / ``values`` are honoured for ``sub`` (§3.1.2.2: only that user may be the
  answer; ``subject_mismatch`` against the sub the client sees, pairwise or public); for
  other claims they are hints and the user's real value is returned when released (§5.5.1
  "the OP ... MAY" use them).
* ``acr`` is parsed and kept but not applied here: the authentication context work
  (``oauth.acr``: ``acr_values``, step-up) owns it (``acr_request`` hands it over).
* Members other than ``id_token`` and ``userinfo`` are ignored (§5.5: "not understood MUST be
  ignored"); a malformed parameter is ``invalid_request``.
"""

from __future__ import annotations

import json

from authlib.oauth2.rfc6749 import InvalidRequestError

from .claims import KNOWN_CLAIMS, scope_claims

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


def loads(stored: str | None) -> dict | None:
    """The normal form back from what a code or token keeps (written by ``dumps``)."""
    return json.loads(stored) if stored else None


def names(parsed: dict | None, target: str) -> list[str]:
    """The claims ``target`` (id_token or userinfo) asks for by themselves that this server
    can release: known claims, not the ID token's protocol claims, not sub (always there)."""
    requested = (parsed or {}).get(target) or {}
    return [
        name
        for name in requested
        if name in KNOWN_CLAIMS and name not in NOT_APPLIED and name != "sub"
    ]


def released(stored: str | None, target: str) -> list[str]:
    """``names`` of a stored request: what the ID token or UserInfo adds to the scopes'."""
    return names(loads(stored), target) if stored else []


def beyond_scopes(parsed: dict | None, scopes) -> list[str]:
    """The requested claims (either member) the scopes do not release: what the user is
    asked to consent to one by one, in the order requested."""
    covered = scope_claims(scopes)
    found = [n for target in TARGETS for n in names(parsed, target) if n not in covered]
    return list(dict.fromkeys(found))


def acr_request(parsed: dict | None) -> dict | None:
    """The ``acr`` request of the ID token member, for the authentication context code."""
    return ((parsed or {}).get("id_token") or {}).get("acr")


def essential_claims(parsed: dict | None, target: str | None = None) -> list[str]:
    """Names requested as essential (§5.5.1) by ``target`` or by either member, to tell the
    user on the consent page."""
    found = []
    for member in [target] if target else TARGETS:
        requested = (parsed or {}).get(member) or {}
        found += [name for name, ask in requested.items() if ask and ask.get("essential")]
    return list(dict.fromkeys(found))
