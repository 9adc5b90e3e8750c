"""Provider metadata: OpenID Connect Discovery 1.0 §3/§4 and RFC 8414 §2/§3."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata

ISSUER = "http://localhost"
OIDC_PATH = "/.well-known/openid-configuration"
RFC8414_PATH = "/.well-known/oauth-authorization-server"


@pytest.fixture(params=[OIDC_PATH, RFC8414_PATH])
def metadata(request, client) -> dict:
    response = client.get(request.param)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def endpoint_urls(doc: dict) -> dict[str, str]:
    return {k: v for k, v in doc.items() if k.endswith("_endpoint") or k == "jwks_uri"}


def test_both_well_known_documents_are_served_and_agree(client):
    # OIDC Discovery §4 and RFC 8414 §3: the same server, the same metadata.
    oidc = client.get(OIDC_PATH)
    oauth = client.get(RFC8414_PATH)
    assert oidc.status_code == oauth.status_code == 200
    assert oidc.get_json() == oauth.get_json()


def test_issuer_is_the_configured_identifier(metadata):
    # OIDC Discovery §3 / RFC 8414 §3.3: issuer MUST be identical to the issuer identifier.
    assert metadata["issuer"] == ISSUER


def test_issuer_does_not_follow_host_header(client):
    # RFC 8414 §3.3 / OIDC Discovery §4.3: a spoofed Host must not change the issuer.
    doc = client.get(OIDC_PATH, headers={"Host": "evil.example"}).get_json()
    assert doc["issuer"] == ISSUER
    assert all(url.startswith(ISSUER + "/") for url in endpoint_urls(doc).values())


def test_required_endpoints_are_present_and_under_issuer(metadata):
    # OIDC Discovery §3: authorization, token, userinfo endpoints and jwks_uri;
    # RFC 8414 §2: revocation and introspection endpoints when supported.
    urls = endpoint_urls(metadata)
    for name in (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "revocation_endpoint",
        "introspection_endpoint",
    ):
        assert name in urls
    for name, url in urls.items():
        assert url.startswith(ISSUER + "/"), name


def test_every_advertised_endpoint_answers(client, metadata):
    # OIDC Discovery §3: the metadata describes endpoints that exist at those URLs.
    for name, url in endpoint_urls(metadata).items():
        path = url[len(ISSUER) :]
        response = client.get(path)
        if response.status_code == 405:
            response = client.post(path, data={})
        assert response.status_code != 404, name
        assert response.status_code < 500, name


def test_advertised_capabilities(metadata):
    # OIDC Discovery §3 and RFC 8414 §2: what the server actually supports.
    assert metadata["response_types_supported"] == ["code"]
    assert set(metadata["grant_types_supported"]) >= {"authorization_code", "refresh_token"}
    assert "implicit" not in metadata["grant_types_supported"]
    assert "password" not in metadata["grant_types_supported"]
    # RFC 7636 §4.2 with RFC 9700 §2.1.1: only S256.
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) >= {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert {"RS256", "ES256"} <= set(metadata["id_token_signing_alg_values_supported"])
    assert "none" not in metadata["id_token_signing_alg_values_supported"]
    assert set(metadata["response_modes_supported"]) == {"query", "form_post"}
    assert "openid" in metadata["scopes_supported"]
    assert metadata["subject_types_supported"] == ["public", "pairwise"]  # OIDC Core §8
    # RFC 9207 §3: iss is added to authorization responses.
    assert metadata["authorization_response_iss_parameter_supported"] is True
    # OIDC Discovery §3: request_uri is not supported (its default would be true); signed
    # request objects by value are (RFC 9101, tests/jar).
    assert metadata["request_uri_parameter_supported"] is False
    assert metadata["request_parameter_supported"] is True


def test_introspection_auth_methods_exclude_none(metadata):
    # RFC 7662 §2.1 / RFC 8414 §2: introspection requires client authentication.
    methods = metadata["introspection_endpoint_auth_methods_supported"]
    assert methods and "none" not in methods


@pytest.mark.config(ISSUER="https://idp.example")
def test_document_passes_authlib_openid_provider_validation(client):
    # OIDC Discovery §3 REQUIRED/RECOMMENDED members, checked by an independent implementation.
    doc = client.get(OIDC_PATH).get_json()
    assert doc["issuer"] == "https://idp.example"
    OpenIDProviderMetadata(doc).validate()


@pytest.mark.config(ISSUER="https://idp.example")
def test_document_passes_authlib_rfc8414_validation(client):
    # RFC 8414 §2 metadata rules (https issuer, no query/fragment, endpoint URLs...).
    doc = client.get(RFC8414_PATH).get_json()
    AuthorizationServerMetadata(doc).validate()


def test_metadata_is_publicly_cacheable(client):
    # OIDC Discovery §4.2 / RFC 8414 §3.2: a plain JSON document; caching keeps load off.
    for path in (OIDC_PATH, RFC8414_PATH):
        cache = client.get(path).headers["Cache-Control"]
        assert "public" in cache
        match = re.search(r"max-age=(\d+)", cache)
        assert match and int(match.group(1)) > 0
        assert "no-store" not in cache


def test_service_documentation_tells_relying_parties_the_redirect_uri_rule(client):
    # RFC 8414 §2 service_documentation: what a developer needs beyond the metadata. The
    # loopback port rule (RFC 8252 §7.3) has no metadata field, so the page says it (issue 12).
    metadata = client.get("/.well-known/openid-configuration").get_json()
    url = metadata["service_documentation"]
    assert url == metadata["issuer"] + "/relying-parties"
    page = client.get(urlsplit(url).path)
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "RFC 8252 §7.3" in text and "127.0.0.0/8" in text and "[::1]" in text
    assert "<code>localhost</code> gets no such exception" in text
    for method in metadata["token_endpoint_auth_methods_supported"]:
        assert f"<code>{method}</code>" in text
