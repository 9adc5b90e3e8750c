"""Helpers of the claims request parameter tests (OIDC Core §5.5): the authorization request
with a claims parameter, the consent page as a person reads it, the tokens' claims."""

from __future__ import annotations

import json
import re
from html import unescape
from urllib.parse import urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from ..helpers import csrf_token, query

# OIDC Core §5.5's example claims request, as the specification prints it.
SPEC_EXAMPLE = {
    "userinfo": {
        "given_name": {"essential": True},
        "nickname": None,
        "email": {"essential": True},
        "email_verified": {"essential": True},
        "picture": None,
        "http://example.info/claims/groups": None,
    },
    "id_token": {
        "auth_time": {"essential": True},
        "acr": {"values": ["urn:mace:incommon:iap:silver"]},
    },
}
# The example: scope=openid and two claims outside it, one essential.
EMAIL_AND_NAME = {"userinfo": {"email": None}, "id_token": {"name": {"essential": True}}}


def params_with(auth, rp, claims, scope="openid", **extra) -> tuple[dict, str]:
    text = claims if isinstance(claims, str) else json.dumps(claims)
    return auth.code_flow_params(rp, scope=scope, claims=text, **extra)


def get(http, params: dict):
    return http.get("/authorize?" + urlencode(params))


def consent_items(response) -> list[str]:
    """The lines of the consent page's lists, as read (tags included)."""
    assert response.status_code == 200, response.status_code
    page = response.get_data(as_text=True)
    assert 'name="allow"' in page
    items = re.findall(r"<li>(.*?)</li>", page, re.S)
    return [unescape(re.sub(r"<[^>]+>", "", item)).strip() for item in items]


def allow(http, params: dict, consent: str = "Allow"):
    url = "/authorize?" + urlencode(params)
    page = http.get(url)
    assert page.status_code == 200, page.status_code
    field = "allow" if consent == "Allow" else "deny"
    return http.post(
        url, data={"csrf_token": csrf_token(page.get_data(as_text=True)), field: consent}
    )


def code_of(response) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    result = query(response.headers["Location"])
    assert "code" in result, result
    return result["code"]


def error_of(response, rp, params: dict) -> str:
    """An authorization error at the client's redirect URI with its state (RFC 6749 §4.1.2.1)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert response.headers["Location"].startswith(rp.redirect_uri + "?")
    result = query(response.headers["Location"])
    assert "code" not in result
    assert result["state"] == params["state"]
    return result["error"]


def at_login(response) -> bool:
    return response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/login"


def decode(http, token: str) -> dict:
    keys = KeySet.import_key_set(http.get("/jwks.json").get_json())
    return jwt.decode(token, keys, algorithms=["RS256", "ES256", "PS256"]).claims


def tokens_for(http, auth, rp, code: str, verifier: str) -> dict:
    response = auth.exchange(rp, code, verifier)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def userinfo(http, access_token: str):
    return http.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
