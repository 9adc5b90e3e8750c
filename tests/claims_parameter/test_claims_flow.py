"""The claims request parameter through /authorize, consent, the ID token and UserInfo.

OIDC Core 1.0 §5.5 (claims requested in addition to the scopes'), §5.5.1 (essential, value,
values), §5.5.1.1 (acr), §3.1.2.2 (sub by value), §3.1.2.4 (consent), §3.1.2.6 (errors);
RFC 6749 §4.1.2.1 (errors redirected with state); OIDC Discovery §3.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Consent
from idp.oauth.acr import PWD
from tests.helpers import csrf_token

from .conftest import (
    EMAIL_AND_NAME,
    SPEC_EXAMPLE,
    allow,
    code_of,
    consent_items,
    decode,
    error_of,
    get,
    params_with,
    tokens_for,
    userinfo,
)


def test_discovery_says_the_parameter_is_supported(client):
    # OIDC Discovery §3: advertised, and (these tests) it works.
    assert client.get("/.well-known/openid-configuration").get_json()["claims_parameter_supported"]


def test_claims_outside_the_scopes_are_shown_and_released_where_asked(
    client, auth, user, oauth_client
):
    # OIDC Core §5.5: claims requested by the parameter come in addition to the scope's
    # (here only openid); the id_token member goes into the ID token, userinfo into UserInfo.
    auth.login()
    params, verifier = params_with(auth, oauth_client, EMAIL_AND_NAME)
    items = consent_items(get(client, params))
    assert "Your email address" in items
    # §5.5.1 essential: said so to the user, who may still deny.
    assert "Your full name asked for as required" in items
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    id_token = decode(client, tokens["id_token"])
    assert id_token["name"] == "Alice Liddell"
    assert "email" not in id_token  # asked for UserInfo only
    answer = userinfo(client, tokens["access_token"]).get_json()
    assert answer["email"] == "alice@example.com"
    assert "name" not in answer  # asked for the ID token only
    assert answer["sub"] == id_token["sub"] == user.sub


def test_the_specification_example(client, auth, user, oauth_client):
    # OIDC Core §5.5's example request with scope=openid: the known userinfo claims are asked
    # for one by one; the unknown one is ignored; auth_time and acr go in the ID token.
    auth.login()
    params, verifier = params_with(auth, oauth_client, SPEC_EXAMPLE)
    items = consent_items(get(client, params))
    assert "Your given name asked for as required" in items
    assert "Your nickname" in items
    assert "Your email address asked for as required" in items
    assert "Whether your email address is verified asked for as required" in items
    assert "Your profile picture" in items
    assert not any("example.info" in item for item in items)
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    id_token = decode(client, tokens["id_token"])
    assert "auth_time" in id_token
    # §5.5.1.1: an acr this server does not know, not essential: the real class is reported.
    assert id_token["acr"] == PWD
    answer = userinfo(client, tokens["access_token"]).get_json()
    assert answer["email"] == "alice@example.com"
    assert "email_verified" in answer
    # §5.5: Alice has no given name, nickname or picture: left out, not an error, even
    # though given_name was essential (§5.5.1).
    assert set(answer) == {"sub", "email", "email_verified"}


def test_consent_is_remembered_for_the_same_claims(app, client, auth, user, oauth_client):
    # OIDC Core §3.1.2.4: consent once, then the same request needs no page.
    auth.login()
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME)
    code_of(allow(client, params))
    with app.app_context():
        consent = db.session().scalar(select(Consent).where(Consent.user_id == user.id))
        assert consent.scopes == {"openid"}
        assert consent.claim_names == {"email", "name"}
    params, verifier = params_with(auth, oauth_client, EMAIL_AND_NAME, prompt="none")
    tokens = tokens_for(client, auth, oauth_client, code_of(get(client, params)), verifier)
    assert decode(client, tokens["id_token"])["name"] == "Alice Liddell"
    # A subset of what was consented to needs no page either.
    params, _ = params_with(auth, oauth_client, {"userinfo": {"email": None}}, prompt="none")
    code_of(get(client, params))


def test_a_new_claim_asks_again(client, auth, user, oauth_client):
    auth.login()
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME)
    code_of(allow(client, params))
    more = {"userinfo": {"email": None, "phone_number": None}}
    # §3.1.2.6: prompt=none cannot show the page the new claim needs.
    params, _ = params_with(auth, oauth_client, more, prompt="none")
    assert error_of(get(client, params), oauth_client, params) == "consent_required"
    params, _ = params_with(auth, oauth_client, more)
    items = consent_items(get(client, params))
    assert "Your phone number new" in items
    assert "Your email address" in items  # consented before: no "new" tag


def test_prompt_consent_shows_the_claims_again(client, auth, user, oauth_client):
    auth.login()
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME)
    code_of(allow(client, params))
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME, prompt="consent")
    assert "Your email address" in consent_items(get(client, params))


def test_denied_claims_are_not_remembered(app, client, auth, user, oauth_client):
    auth.login()
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME)
    assert error_of(allow(client, params, "Deny"), oauth_client, params) == "access_denied"
    with app.app_context():
        assert db.session().scalar(select(Consent).where(Consent.user_id == user.id)) is None


def test_claims_of_scopes_granted_before_need_no_new_consent(client, auth, user, oauth_client):
    # The user agreed to "profile" (which releases name) earlier: asking for name alone
    # later is no new consent, and the ID token carries it.
    auth.login()
    auth.tokens(oauth_client, scope="openid profile")
    claims = {"id_token": {"name": None}}
    params, verifier = params_with(auth, oauth_client, claims, prompt="none")
    tokens = tokens_for(client, auth, oauth_client, code_of(get(client, params)), verifier)
    assert decode(client, tokens["id_token"])["name"] == "Alice Liddell"


def test_claims_the_scopes_release_are_not_asked_one_by_one(client, auth, user, oauth_client):
    # scope=openid email already releases email: the parameter only says where it goes.
    auth.login()
    params, verifier = params_with(
        auth, oauth_client, {"id_token": {"email": {"essential": True}}}, scope="openid email"
    )
    page = get(client, params)
    assert consent_items(page) == ["Sign you in and know who you are", "Your email address"]
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    assert decode(client, tokens["id_token"])["email"] == "alice@example.com"


def test_unknown_claim_names_are_ignored(client, auth, user, oauth_client):
    # §5.5: a claim the OP does not have is not an error; nothing to consent to for it.
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    claims = {
        "userinfo": {"http://example.info/claims/groups": None, "favourite_colour": None},
        "id_token": {"shoe_size": {"essential": True}},
    }
    params, verifier = params_with(auth, oauth_client, claims, prompt="none")
    tokens = tokens_for(client, auth, oauth_client, code_of(get(client, params)), verifier)
    assert set(userinfo(client, tokens["access_token"]).get_json()) == {"sub"}
    assert "shoe_size" not in decode(client, tokens["id_token"])


def test_protocol_claims_cannot_be_set_by_the_request(client, auth, user, oauth_client):
    # iss, aud, nonce... are the server's: a value asked for them changes nothing.
    auth.login()
    auth.tokens(oauth_client, scope="openid")
    claims = {"id_token": {"iss": {"value": "https://evil.example"}, "nonce": {"value": "x"}}}
    params, verifier = params_with(auth, oauth_client, claims, prompt="none")
    tokens = tokens_for(client, auth, oauth_client, code_of(get(client, params)), verifier)
    id_token = decode(client, tokens["id_token"])
    assert id_token["iss"] != "https://evil.example"
    assert id_token["nonce"] == params["nonce"]


def test_a_claim_the_user_has_no_value_for_is_left_out(client, auth, user, oauth_client):
    # §5.5: "not an error"; §5.5.1: essential does not change that here.
    auth.login()
    claims = {"userinfo": {"phone_number": {"essential": True}, "email": None}}
    params, verifier = params_with(auth, oauth_client, claims)
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    answer = userinfo(client, tokens["access_token"]).get_json()
    assert "phone_number" not in answer and answer["email"] == "alice@example.com"


def test_a_value_for_another_claim_is_a_hint_only(client, auth, user, oauth_client):
    # §5.5.1: value/values of an ordinary claim do not replace the user's real value.
    auth.login()
    claims = {"id_token": {"email": {"value": "someone@example.com"}}}
    params, verifier = params_with(auth, oauth_client, claims)
    tokens = tokens_for(client, auth, oauth_client, code_of(allow(client, params)), verifier)
    assert decode(client, tokens["id_token"])["email"] == "alice@example.com"


def test_other_members_are_ignored(client, auth, user, oauth_client):
    # §5.5: members that are not understood MUST be ignored.
    auth.login()
    claims = {"verified_claims": {"claims": {"given_name": None}}, "userinfo": {"email": None}}
    params, verifier = params_with(auth, oauth_client, claims)
    assert consent_items(get(client, params)) == [
        "Sign you in and know who you are",
        "Your email address",
    ]
    code_of(allow(client, params))


def test_first_party_clients_skip_the_consent_page(client, auth, user, factory):
    rp = factory.client(first_party=True, name="Own App")
    auth.login()
    params, verifier = params_with(auth, rp, EMAIL_AND_NAME)
    tokens = tokens_for(client, auth, rp, code_of(get(client, params)), verifier)
    assert decode(client, tokens["id_token"])["name"] == "Alice Liddell"
    assert userinfo(client, tokens["access_token"]).get_json()["email"] == "alice@example.com"


def test_the_consent_is_audited_with_its_claims(app, client, auth, user, oauth_client):
    auth.login()
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME)
    code_of(allow(client, params))
    with app.app_context():
        event = db.session().scalar(select(AuditEvent).where(AuditEvent.event == "consent.granted"))
        assert event.details["claims"] == "email name"


# --- malformed requests (OIDC Core §3.1.2.6, RFC 6749 §4.1.2.1) -----------------------------


@pytest.mark.parametrize(
    "value",
    [
        "{not json",
        "[]",
        '"text"',
        "null",
        json.dumps({"id_token": []}),
        json.dumps({"userinfo": "email"}),
        json.dumps({"userinfo": {"email": True}}),
        json.dumps({"userinfo": {"email": {"essential": "yes"}}}),
        json.dumps({"id_token": {"sub": {"value": "a", "values": ["a"]}}}),
        json.dumps({"id_token": {"sub": {"values": []}}}),
        json.dumps({"id_token": {"sub": {"values": "a"}}}),
        json.dumps({"id_token": {"sub": {"value": {"nested": 1}}}}),
        json.dumps({"userinfo": {f"c{i}": None for i in range(100)}}),
        json.dumps({"userinfo": {"email": {"purpose": "x" * 9000}}}),
        "[" * 5000 + "]" * 5000,
    ],
)
def test_a_malformed_parameter_is_invalid_request(client, auth, user, oauth_client, value):
    auth.login()
    params, _ = params_with(auth, oauth_client, value)
    assert error_of(get(client, params), oauth_client, params) == "invalid_request"


def test_a_malformed_parameter_is_refused_before_sign_in(client, auth, user, oauth_client):
    # The request is checked before the login page is shown, and answered at the client.
    params, _ = params_with(auth, oauth_client, "{not json")
    assert error_of(get(client, params), oauth_client, params) == "invalid_request"


def test_a_repeated_parameter_is_invalid_request(client, auth, user, oauth_client):
    # RFC 6749 §3.1: parameters must not be included more than once.
    auth.login()
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME)
    url = "/authorize?" + urlencode(params) + "&" + urlencode({"claims": "{}"})
    assert error_of(client.get(url), oauth_client, params) == "invalid_request"


def test_the_account_page_and_export_list_the_consented_claims(client, auth, user, oauth_client):
    # What the user agreed to stays visible where they can revoke it.
    auth.login()
    params, _ = params_with(auth, oauth_client, EMAIL_AND_NAME)
    code_of(allow(client, params))
    page = client.get("/account/").get_data(as_text=True)
    assert "Your email address" in page and "Your full name" in page
    token = csrf_token(page)
    export = json.loads(client.post("/account/data", data={"csrf_token": token}).data)
    (consent,) = export["consents"]
    assert consent["scopes"] == ["openid"] and consent["claims"] == ["email", "name"]
