"""OAuth 2.0 Protected Resource Metadata (RFC 9728): UserInfo's document, the
resource_metadata challenge parameter, and the documents of registered resources."""

from __future__ import annotations

import json
import re

import pytest

from idp import db
from idp.cli import cli
from idp.models import Resource

from ..conftest import ISSUER

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def challenge_params(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer"
    return dict(re.findall(r'(\w+)="([^"]*)"', rest))


def test_userinfo_metadata_document(client):
    # RFC 9728 §3.2: a JSON object; §2: resource and the authorization servers.
    response = client.get(WELL_KNOWN)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc = response.get_json()
    # §3.3: resource MUST be the identifier the well-known URL was built from (the issuer).
    assert doc["resource"] == ISSUER
    assert doc["authorization_servers"] == [ISSUER]
    # RFC 6750 §2.1/§2.2 are accepted by UserInfo, §2.3 (query) is not.
    assert doc["bearer_methods_supported"] == ["header", "body"]
    assert "openid" in doc["scopes_supported"] and "email" in doc["scopes_supported"]
    assert doc["resource_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert doc["jwks_uri"] == ISSUER + "/jwks.json"
    assert doc["resource_documentation"].startswith(ISSUER + "/")
    # RFC 9728 §2: every listed authorization server has RFC 8414 metadata with that issuer.
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    assert meta["issuer"] in doc["authorization_servers"]


@pytest.mark.parametrize(
    "headers, data",
    [
        ({}, None),  # no credentials at all (RFC 6750 §3.1: no error code)
        ({"Authorization": "Bearer not-a-token"}, None),  # invalid_token
    ],
)
def test_userinfo_401_points_to_its_metadata(client, headers, data):
    # RFC 9728 §5.1: resource_metadata in the WWW-Authenticate challenge of a 401.
    response = client.get("/userinfo", headers=headers)
    assert response.status_code == 401
    params = challenge_params(response.headers["WWW-Authenticate"])
    assert params["resource_metadata"] == ISSUER + WELL_KNOWN
    if headers:
        assert params["error"] == "invalid_token"
    else:
        assert "error" not in params
    # §5.1/§3.3: the URL names a document whose resource is this resource.
    assert client.get(WELL_KNOWN).get_json()["resource"] == ISSUER


@pytest.fixture
def api(app):
    with app.app_context():
        row = Resource(
            identifier="https://api.example.com/orders", name="Orders API", scope="orders:read"
        )
        db.session().add(row)
        db.session().commit()
        return row.id


def test_cli_prints_the_document_of_a_registered_resource(runner, api):
    result = runner.invoke(cli, ["resources", "metadata", "https://api.example.com/orders"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    # RFC 9728 §2: the resource's own identifier, this server as its authorization server.
    assert doc == {
        "resource": "https://api.example.com/orders",
        "resource_name": "Orders API",
        "authorization_servers": [ISSUER],
        "scopes_supported": ["orders:read"],
        "bearer_methods_supported": ["header"],
    }
    # §3.1: the well-known string goes between the host and the path.
    assert "https://api.example.com/.well-known/oauth-protected-resource/orders" in result.stderr


def test_cli_unknown_resource_fails(runner, app):
    result = runner.invoke(cli, ["resources", "metadata", "https://nowhere.example/"])
    assert result.exit_code != 0
    assert "no resource" in result.output


def test_admin_download_is_the_same_document(admin_client, runner, api):
    page = admin_client.get(f"/admin/resources/{api}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "https://api.example.com/.well-known/oauth-protected-resource/orders" in html
    response = admin_client.get(f"/admin/resources/{api}/metadata.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    printed = runner.invoke(cli, ["resources", "metadata", "https://api.example.com/orders"])
    assert json.loads(response.get_data(as_text=True)) == json.loads(printed.stdout)


def test_admin_download_needs_an_admin(client, auth, user, api):
    auth.login()
    response = client.get(f"/admin/resources/{api}/metadata.json")
    assert response.status_code in (403, 404)
