"""Client metadata rules: RFC 7591 §2 and OpenID Connect Dynamic Client Registration 1.0 §2.

Every refusal is ``invalid_redirect_uri`` or ``invalid_client_metadata`` (RFC 7591 §3.2.2)
with an error_description that starts with the field's name.
"""

from __future__ import annotations

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import select

from idp import db
from idp.models import Client

from .rp import REDIRECT_URI

pytestmark = pytest.mark.config(REGISTRATION="open")

EC_KEY = ECKey.generate_key("P-256")
PUBLIC_JWKS = {"keys": [EC_KEY.as_dict(private=False)]}
PRIVATE_JWKS = {"keys": [EC_KEY.as_dict(private=True)]}


def refused(registrar, error: str, field: str, **fields):
    response = registrar.register(**fields)
    body = response.get_json()
    assert response.status_code == 400, (fields, body)
    assert response.headers["Cache-Control"] == "no-store"
    assert body["error"] == error, (fields, body)
    assert body["error_description"].startswith(field + ":"), (fields, body)
    return body["error_description"]


# --- redirect_uris (RFC 7591 §2, RFC 6749 §3.1.2, RFC 8252 §7) ---


def test_invalid_redirect_uris_are_refused(registrar):
    # RFC 7591 §3.2.2: invalid_redirect_uri, with the reason.
    for uris, reason in [
        (["https://rp.example/cb#frag"], "fragment"),
        (["http://rp.example/cb"], "loopback"),
        (["myapp:/cb"], "reverse domain"),
        (["javascript:alert(1)"], "javascript"),
        (["/relative/cb"], "absolute"),
        ("https://rp.example/cb", "array"),
        ([42], "array"),
        ([], "required"),
    ]:
        description = refused(
            registrar, "invalid_redirect_uri", "redirect_uris", redirect_uris=uris
        )
        assert reason in description, (uris, description)


def test_redirect_uris_are_required_for_the_code_grant(registrar):
    # RFC 7591 §2: clients using flows with redirection MUST register redirect URIs.
    refused(registrar, "invalid_redirect_uri", "redirect_uris", redirect_uris=...)


def test_acceptable_redirect_uris(registrar):
    # RFC 8252 §7.1 (private-use scheme), §7.3 (loopback), RFC 6749 §3.1.2 (query allowed).
    uris = [
        "https://rp.example/cb?x=1",
        "http://127.0.0.1:8123/cb",
        "http://[::1]/cb",
        "http://localhost:3000/cb",
        "com.example.app:/oauth2redirect",
    ]
    assert registrar.registered(redirect_uris=uris)["redirect_uris"] == uris


def test_redirect_uris_need_not_be_sent_without_the_code_grant(registrar):
    info = registrar.registered(redirect_uris=..., grant_types=["client_credentials"])
    assert info["redirect_uris"] == []
    assert info["response_types"] == []


# --- token_endpoint_auth_method (RFC 7591 §2) ---


def test_unsupported_token_endpoint_auth_method(registrar):
    for method in ("tls_client_auth", "self_signed_tls_client_auth", "bogus", 7):
        description = refused(
            registrar,
            "invalid_client_metadata",
            "token_endpoint_auth_method",
            token_endpoint_auth_method=method,
        )
        assert "client_secret_basic" in description


def test_every_advertised_auth_method_registers(client, registrar):
    # The accepted values are exactly token_endpoint_auth_methods_supported.
    advertised = client.get("/.well-known/openid-configuration").get_json()
    for method in advertised["token_endpoint_auth_methods_supported"]:
        keys = {"jwks": PUBLIC_JWKS} if method == "private_key_jwt" else {}
        info = registrar.registered(token_endpoint_auth_method=method, **keys)
        assert info["token_endpoint_auth_method"] == method


def test_private_key_jwt_needs_registered_keys(app, registrar):
    # OIDC Core §9 / RFC 7523 §2.2: assertions are verified with the client's public keys,
    # and the client has no secret (RFC 7591 §3.2.1: client_secret only when one is used).
    refused(
        registrar,
        "invalid_client_metadata",
        "token_endpoint_auth_method",
        token_endpoint_auth_method="private_key_jwt",
    )
    info = registrar.registered(token_endpoint_auth_method="private_key_jwt", jwks=PUBLIC_JWKS)
    assert "client_secret" not in info and "client_secret_expires_at" not in info
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == info["client_id"]))
        assert row.client_secret_hash is None and not row.is_public


def test_client_secret_jwt_secret_is_kept_encrypted(app, registrar):
    # OIDC Core §9: the HMAC key is the secret itself, so besides the hash an encrypted copy
    # (never the plaintext) is stored.
    info = registrar.registered(token_endpoint_auth_method="client_secret_jwt")
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == info["client_id"]))
        assert row.check_client_secret(info["client_secret"])
        assert row.client_secret_encrypted and info["client_secret"] not in (
            row.client_secret_encrypted
        )


def test_token_endpoint_auth_signing_alg_cannot_be_pinned(registrar):
    refused(
        registrar,
        "invalid_client_metadata",
        "token_endpoint_auth_signing_alg",
        token_endpoint_auth_method="private_key_jwt",
        jwks=PUBLIC_JWKS,
        token_endpoint_auth_signing_alg="ES256",
    )


# --- grant_types and response_types (RFC 7591 §2.1) ---


def test_inconsistent_or_unsupported_grant_and_response_types(registrar):
    for fields, field in [
        ({"grant_types": ["implicit"], "response_types": ["token"]}, "grant_types"),
        ({"grant_types": ["password"]}, "grant_types"),
        ({"grant_types": []}, "grant_types"),
        ({"grant_types": "authorization_code"}, "grant_types"),
        ({"response_types": ["token"]}, "response_types"),
        ({"response_types": ["code id_token"]}, "response_types"),
        # code needs authorization_code, and authorization_code needs code (§2.1 table)
        ({"grant_types": ["client_credentials"], "response_types": ["code"]}, "response_types"),
        ({"grant_types": ["authorization_code"], "response_types": []}, "response_types"),
        ({"grant_types": ["refresh_token"]}, "grant_types"),
        (
            {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"},
            "grant_types",
        ),
    ]:
        refused(registrar, "invalid_client_metadata", field, **fields)


def test_every_advertised_grant_type_registers(client, registrar):
    # The accepted values are exactly grant_types_supported; a client without the code grant
    # needs no redirect URI and gets no response type (§2.1).
    advertised = client.get("/.well-known/openid-configuration").get_json()["grant_types_supported"]
    assert registrar.registered(grant_types=advertised)["grant_types"] == advertised
    for grant_type in set(advertised) - {"authorization_code", "refresh_token"}:
        info = registrar.registered(redirect_uris=..., grant_types=[grant_type])
        assert info["response_types"] == [] and info["redirect_uris"] == []


def test_consistent_grant_and_response_types(registrar):
    info = registrar.registered(
        grant_types=["authorization_code", "refresh_token"], response_types=["code"]
    )
    assert info["grant_types"] == ["authorization_code", "refresh_token"]
    assert info["response_types"] == ["code"]


# --- jwks / jwks_uri (RFC 7591 §2) ---


def test_jwks_and_jwks_uri_are_mutually_exclusive(registrar):
    # §2: "MUST NOT both be present in the same request or response".
    refused(
        registrar,
        "invalid_client_metadata",
        "jwks",
        jwks=PUBLIC_JWKS,
        jwks_uri="https://rp.example/jwks.json",
    )


def test_jwks_must_be_a_public_jwk_set(registrar):
    for jwks in (PRIVATE_JWKS, {"keys": []}, {"keys": [{"kty": "nope"}]}, "keys", {"keys": "x"}):
        refused(registrar, "invalid_client_metadata", "jwks", jwks=jwks)


def test_jwks_or_jwks_uri_alone_is_stored(registrar):
    assert registrar.registered(jwks=PUBLIC_JWKS)["jwks"] == PUBLIC_JWKS
    uri = "https://rp.example/jwks.json"
    assert registrar.registered(jwks_uri=uri)["jwks_uri"] == uri
    refused(registrar, "invalid_client_metadata", "jwks_uri", jwks_uri="http://rp.example/j")


# --- OIDC Registration §2: id_token_signed_response_alg and unsupported options ---


def test_id_token_signed_response_alg_must_be_offered(registrar):
    # OIDC Registration §2; the values are id_token_signing_alg_values_supported.
    for alg in ("none", "HS256", "RS512", ""):
        refused(
            registrar,
            "invalid_client_metadata",
            "id_token_signed_response_alg",
            id_token_signed_response_alg=alg,
        )


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_id_token_signed_response_alg_is_used(app, registrar, alg):
    info = registrar.registered(id_token_signed_response_alg=alg)
    assert info["id_token_signed_response_alg"] == alg
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == info["client_id"]))
        assert row.id_token_signed_response_alg == alg  # what oidc.signing_alg reads


def test_unimplemented_oidc_options_are_refused(client, registrar):
    # OIDC Registration §2: the server must honour what it registers; these it cannot,
    # so they are refused rather than silently dropped, and discovery does not offer them.
    for field, value in [
        ("userinfo_encrypted_response_alg", "RSA-OAEP"),
        ("id_token_encrypted_response_alg", "RSA-OAEP"),
        ("request_uris", ["https://rp.example/req"]),
        ("token_endpoint_auth_signing_alg", "RS256"),
        ("default_max_age", 300),
        ("default_acr_values", ["urn:mace:incommon:iap:silver"]),
    ]:
        refused(registrar, "invalid_client_metadata", field, **{field: value})
    advertised = client.get("/.well-known/openid-configuration").get_json()
    assert "userinfo_encryption_alg_values_supported" not in advertised


def test_subject_type_must_be_supported(registrar):
    # Issue 16: pairwise is supported now (tests/protocol16/test_pairwise.py).
    refused(registrar, "invalid_client_metadata", "subject_type", subject_type="secret")
    assert registrar.registered(subject_type="public")["subject_type"] == "public"


def test_application_type(registrar):
    # OIDC Registration §2: web (the default) or native.
    assert registrar.registered()["application_type"] == "web"
    native = registrar.registered(
        application_type="native", redirect_uris=["com.example.app:/cb", "http://127.0.0.1/cb"]
    )
    assert native["application_type"] == "native"
    refused(registrar, "invalid_client_metadata", "application_type", application_type="tv")


def test_require_auth_time_must_be_boolean(registrar):
    assert registrar.registered(require_auth_time=True)["require_auth_time"] is True
    refused(registrar, "invalid_client_metadata", "require_auth_time", require_auth_time="yes")


def test_initiate_login_uri_must_be_https(registrar):
    refused(
        registrar,
        "invalid_client_metadata",
        "initiate_login_uri",
        initiate_login_uri="http://rp.example/login",
    )


# --- logout metadata (RP-Initiated §3.1, Back-Channel §2.2, Front-Channel §2) ---


def test_post_logout_redirect_uris(registrar):
    uris = ["https://rp.example/bye", "http://127.0.0.1:9000/bye"]
    assert registrar.registered(post_logout_redirect_uris=uris)["post_logout_redirect_uris"] == (
        uris
    )
    for bad in (["https://rp.example/bye#x"], ["http://rp.example/bye"], "https://rp.example/"):
        refused(
            registrar,
            "invalid_client_metadata",
            "post_logout_redirect_uris",
            post_logout_redirect_uris=bad,
        )


def test_backchannel_logout_uri(app, registrar):
    info = registrar.registered(
        backchannel_logout_uri="https://rp.example/bc?tenant=1",
        backchannel_logout_session_required=True,
    )
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == info["client_id"]))
        assert row.backchannel_logout_uri == "https://rp.example/bc?tenant=1"
        assert row.backchannel_logout_session_required is True
    for bad in ("https://rp.example/bc#f", "http://rp.example/bc", "/bc", 5):
        refused(
            registrar,
            "invalid_client_metadata",
            "backchannel_logout_uri",
            backchannel_logout_uri=bad,
        )
    refused(
        registrar,
        "invalid_client_metadata",
        "backchannel_logout_session_required",
        backchannel_logout_uri="https://rp.example/bc",
        backchannel_logout_session_required="true",
    )


def test_frontchannel_logout_uri_must_match_a_redirect_uri_origin(registrar):
    # Front-Channel Logout §2: same scheme, host and port as a registered redirect URI.
    info = registrar.registered(
        frontchannel_logout_uri="https://rp.example/fc", frontchannel_logout_session_required=True
    )
    assert info["frontchannel_logout_uri"] == "https://rp.example/fc"
    assert info["frontchannel_logout_session_required"] is True
    for bad in ("https://other.example/fc", "https://rp.example:8443/fc", "https://rp.example/#f"):
        refused(
            registrar,
            "invalid_client_metadata",
            "frontchannel_logout_uri",
            frontchannel_logout_uri=bad,
        )


# --- human-facing metadata (RFC 7591 §2, §5) ---


@pytest.mark.parametrize("field", ["client_uri", "logo_uri", "policy_uri", "tos_uri"])
def test_displayed_urls_must_be_https_web_pages(registrar, field):
    # §5: URLs shown to the user come from a possibly malicious client.
    for value in (
        "http://rp.example/page",
        "javascript:alert(1)",
        "data:text/html,hi",
        "https://user@rp.example/",
        "https:///nohost",
        "https://rp.example/page#frag",
        ["https://rp.example/"],
    ):
        refused(registrar, "invalid_client_metadata", field, **{field: value})


def test_displayed_urls_are_registered(registrar):
    urls = {
        "client_uri": "https://rp.example/",
        "logo_uri": "https://rp.example/logo.png",
        "policy_uri": "https://rp.example/privacy",
        "tos_uri": "https://rp.example/terms",
    }
    info = registrar.registered(**urls)
    assert {k: info[k] for k in urls} == urls


def test_client_name_must_be_short_text(registrar):
    for name in ("", "   ", "x" * 256, "Evil\nApp", 12, ["App"]):
        refused(registrar, "invalid_client_metadata", "client_name", client_name=name)


def test_client_name_defaults_to_client_id(registrar):
    # §2: without client_name, the server MAY display the client_id instead.
    info = registrar.registered(client_name=...)
    assert info["client_name"] == info["client_id"]


def test_contacts_must_be_a_short_array_of_strings(registrar):
    for contacts in ("ops@rp.example", [1], ["a@rp.example"] * 11, [""]):
        refused(registrar, "invalid_client_metadata", "contacts", contacts=contacts)


def test_contacts_and_software_fields_are_registered(registrar):
    info = registrar.registered(
        contacts=["ops@rp.example"], software_id="4NRB1-0XZABZI9E6-5SM3R", software_version="2.1"
    )
    assert info["contacts"] == ["ops@rp.example"]
    assert info["software_id"] == "4NRB1-0XZABZI9E6-5SM3R"
    assert info["software_version"] == "2.1"


# --- scope (RFC 7591 §2) ---


def test_scope_must_be_among_scopes_supported(client, registrar):
    description = refused(registrar, "invalid_client_metadata", "scope", scope="openid admin")
    assert "admin" in description
    refused(registrar, "invalid_client_metadata", "scope", scope=["openid"])
    assert registrar.registered(scope="openid email")["scope"] == "openid email"


def test_scope_defaults_to_the_supported_scopes(client, registrar):
    # §2: if omitted, the server MAY register a default set of scopes.
    supported = client.get("/.well-known/openid-configuration").get_json()["scopes_supported"]
    assert registrar.registered()["scope"].split() == supported


# --- what is ignored (RFC 7591 §2, §2.3) ---


def test_unknown_fields_and_software_statement_are_ignored(registrar):
    # §2: unknown metadata MUST be ignored; §2.3: software statements are optional to support
    # and this server does not, so none of the statement's claims are applied.
    info = registrar.registered(
        favourite_colour="blue",
        software_statement="eyJhbGciOiJub25lIn0.eyJjbGllbnRfbmFtZSI6IkV2aWwifQ.",
    )
    assert "favourite_colour" not in info
    assert "software_statement" not in info
    assert info["client_name"] == "Self-Registered App"


def test_null_means_omitted(registrar):
    # RFC 7592 §2.2: null values are treated like omitted ones.
    info = registrar.registered(logo_uri=None, token_endpoint_auth_method=None)
    assert "logo_uri" not in info
    assert info["token_endpoint_auth_method"] == "client_secret_basic"


def test_error_description_is_plain_ascii(registrar):
    # RFC 6749 §5.2: error_description uses %x20-21 / %x23-5B / %x5D-7E only.
    description = refused(
        registrar,
        "invalid_redirect_uri",
        "redirect_uris",
        redirect_uris=['https://rp.example/"é\\#x'],
    )
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description)
    assert REDIRECT_URI not in description
