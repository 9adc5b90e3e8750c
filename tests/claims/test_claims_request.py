"""The claims request parameter (OIDC Core §5.5): parsing and picking individual claims.
The flows through /authorize, PAR, JAR, the ID token and UserInfo: tests/claims_parameter."""

from __future__ import annotations

import json

import pytest
from authlib.oauth2.rfc6749 import InvalidRequestError

from idp.oauth import claims_request

# OIDC Core §5.5's example, as the spec prints it.
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


def test_the_specification_example_parses():
    parsed = claims_request.parse(json.dumps(SPEC_EXAMPLE))
    assert parsed["userinfo"]["nickname"] is None
    assert parsed["userinfo"]["email"] == {"essential": True}
    assert claims_request.essential_claims(parsed, "userinfo") == [
        "given_name",
        "email",
        "email_verified",
    ]
    # acr is handed to the authentication context code untouched.
    assert claims_request.acr_request(parsed) == {"values": ["urn:mace:incommon:iap:silver"]}
    # The stored form parses back to the same.
    assert claims_request.parse(claims_request.dumps(parsed)) == parsed


def test_absent_or_empty_is_no_request():
    assert claims_request.parse(None) is None
    assert claims_request.parse("") is None
    assert claims_request.dumps(None) is None


def test_unknown_members_are_ignored():
    # §5.5: members that are not understood MUST be ignored.
    parsed = claims_request.parse(json.dumps({"verified_claims": {}, "userinfo": {"name": None}}))
    assert parsed == {"userinfo": {"name": None}}
    parsed = claims_request.parse(json.dumps({"id_token": {"email": {"purpose": "x"}}}))
    assert parsed == {"id_token": {"email": {}}}


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[]",
        '"text"',
        json.dumps({"id_token": []}),
        json.dumps({"userinfo": {"email": True}}),
        json.dumps({"userinfo": {"email": {"essential": "yes"}}}),
        json.dumps({"id_token": {"sub": {"value": "a", "values": ["a"]}}}),
        json.dumps({"id_token": {"sub": {"values": []}}}),
        json.dumps({"id_token": {"sub": {"value": {"nested": 1}}}}),
        json.dumps({"userinfo": {f"c{i}": None for i in range(100)}}),
        "[" * 5000 + "]" * 5000,
    ],
)
def test_malformed_parameters_are_invalid_request(value):
    # §5.5: the parameter is a JSON object of id_token / userinfo objects of claim requests.
    with pytest.raises(InvalidRequestError):
        claims_request.parse(value)


def test_sub_with_another_value_is_a_mismatch():
    # §3.1.2.2: only the user the sub value names may be the answer.
    parsed = claims_request.parse(json.dumps({"id_token": {"sub": {"value": "248289761001"}}}))
    assert claims_request.subject_mismatch(parsed, "someone-else")
    assert not claims_request.subject_mismatch(parsed, "248289761001")
    assert not claims_request.subject_mismatch(None, "anyone")


def test_requested_claims_come_in_addition_to_the_scopes():
    # OIDC Core §5.5: claims asked for by the parameter are requested in addition to the
    # scope's; protocol claims (nonce, acr), sub and names this server lacks are not picked.
    parsed = claims_request.parse(
        json.dumps(
            {
                "id_token": {
                    "email": {"essential": True},
                    "name": None,
                    "phone_number": None,
                    "nonce": None,
                    "acr": {"essential": True},
                    "sub": None,
                    "http://example.info/claims/groups": None,
                },
                "userinfo": {"address": None, "name": None},
            }
        )
    )
    assert claims_request.names(parsed, "id_token") == ["email", "name", "phone_number"]
    assert claims_request.released(claims_request.dumps(parsed), "userinfo") == [
        "address",
        "name",
    ]
    # What the consent page asks for one by one: what the scopes do not already release.
    assert claims_request.beyond_scopes(parsed, ["openid", "email"]) == [
        "name",
        "phone_number",
        "address",
    ]
    assert claims_request.beyond_scopes(parsed, ["openid", "profile", "email", "phone"]) == [
        "address"
    ]
    assert claims_request.essential_claims(parsed) == ["email", "acr"]
