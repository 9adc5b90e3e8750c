"""Client settings for signed request objects: dynamic registration (OIDC Registration §2
request_object_signing_alg, RFC 9101 §10.5 require_signed_request_object) and the admin form."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp import db
from idp.cli import cli
from idp.models import Client

from ..admin.conftest import admin, admin_client  # noqa: F401
from ..admin.support import post
from ..helpers import query
from ..registration.rp import REDIRECT_URI, Registrar
from .conftest import authorization_claims, authorize_url, public_jwks, request_object


@pytest.fixture
def app_config(app_config):
    # The admin UI here, signed in with the password alone (admin MFA: tests/mfa/).
    app_config["MFA_REQUIRED_FOR_ADMINS"] = False
    return app_config


@pytest.fixture
def registrar(client):
    return Registrar(client)


def stored_client(app, client_id: str) -> Client:
    with app.app_context():
        return db.session().scalar(select(Client).where(Client.client_id == client_id))


def refusal(response) -> str:
    body = response.get_json()
    assert response.status_code == 400, body
    assert body["error"] == "invalid_client_metadata"
    return body["error_description"]


@pytest.mark.config(REGISTRATION="open")
def test_registration_accepts_request_object_settings(app, client, registrar, rsa_key):
    info = registrar.registered(
        jwks=public_jwks(rsa_key),
        request_object_signing_alg="PS256",
        require_signed_request_object=True,
    )
    # RFC 7591 §3.2.1: the response repeats what was registered.
    assert info["request_object_signing_alg"] == "PS256"
    assert info["require_signed_request_object"] is True
    row = stored_client(app, info["client_id"])
    assert row.request_object_signing_alg == "PS256"
    assert row.require_signed_request_object is True
    # RFC 7592 §2.1: reading it back returns the same.
    read = registrar.read(info).get_json()
    assert read["require_signed_request_object"] is True
    # The client now must sign: plain parameters are refused (RFC 9101 §10.5).
    claims, _ = authorization_claims(
        type("C", (), {"client_id": info["client_id"], "redirect_uri": REDIRECT_URI})
    )
    response = client.get(authorize_url(**claims))
    assert query(response.headers["Location"])["error"] == "invalid_request"
    signer = type("C", (), {"client_id": info["client_id"], "key": rsa_key})
    response = client.get(
        authorize_url(client_id=info["client_id"], request=request_object(signer, claims))
    )
    assert response.status_code == 303


@pytest.mark.config(REGISTRATION="open")
def test_registration_defaults_to_not_required(registrar):
    info = registrar.registered()
    assert info["require_signed_request_object"] is False
    assert "request_object_signing_alg" not in info


@pytest.mark.config(REGISTRATION="open")
@pytest.mark.parametrize(
    "fields, field",
    [
        # OIDC Registration §2 / RFC 9101 §10.8: "none" is not offered, nor HMAC.
        ({"request_object_signing_alg": "none"}, "request_object_signing_alg"),
        ({"request_object_signing_alg": "HS256"}, "request_object_signing_alg"),
        ({"require_signed_request_object": "yes"}, "require_signed_request_object"),
        # Request objects are checked with the client's own keys.
        ({"request_object_signing_alg": "PS256"}, "request_object_signing_alg"),
        ({"require_signed_request_object": True}, "require_signed_request_object"),
        # Encrypted request objects are not supported.
        ({"request_object_encryption_alg": "RSA-OAEP"}, "request_object_encryption_alg"),
    ],
)
def test_registration_refuses_what_cannot_be_honoured(registrar, fields, field):
    assert refusal(registrar.register(**fields)).startswith(field + ":")


ADMIN_FORM = {
    "client_name": "Bank RP",
    "client_type": "confidential",
    "token_endpoint_auth_method": "client_secret_basic",
    "redirect_uris": "https://bank.example/cb",
    "grant_types": ["authorization_code"],
    "scopes": ["openid"],
}


def test_admin_form_sets_request_object_settings(app, admin_client, rsa_key):  # noqa: F811
    form = {
        **ADMIN_FORM,
        "request_object_signing_alg": "PS256",
        "require_signed_request_object": "y",
    }
    # The keys are needed to check request objects, whatever the authentication method.
    missing = post(admin_client, "/admin/clients/new", form)
    assert missing.status_code == 400 and "need the client" in missing.text
    form["jwks"] = json.dumps(public_jwks(rsa_key))
    response = post(admin_client, "/admin/clients/new", form)
    assert response.status_code == 200  # the secret, shown once
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_name == "Bank RP"))
    assert row.request_object_signing_alg == "PS256"
    assert row.require_signed_request_object is True
    assert row.client_metadata["jwks"] == public_jwks(rsa_key)
    page = admin_client.get(f"/admin/clients/{row.client_id}")
    assert "Signed request objects" in page.text and "PS256" in page.text
    edit = admin_client.get(f"/admin/clients/{row.client_id}/edit")
    assert 'value="PS256" selected' in edit.text or 'selected value="PS256"' in edit.text


def test_admin_form_refuses_keys_nobody_uses(admin_client, rsa_key):  # noqa: F811
    form = {**ADMIN_FORM, "jwks": json.dumps(public_jwks(rsa_key))}
    response = post(admin_client, "/admin/clients/new", form)
    assert response.status_code == 400
    assert "Only for private_key_jwt clients or signed request objects" in response.text


def test_cli_creates_a_client_that_must_sign(app, runner, tmp_path, rsa_key):
    # `idp clients create` offers the same two settings; the keys are required with them.
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(public_jwks(rsa_key)))
    base = ["clients", "create", "--name", "Bank CLI", "--redirect-uri", "https://bank.example/cb"]
    refused = runner.invoke(cli, [*base, "--require-signed-request-object"])
    assert refused.exit_code != 0 and "needs --jwks-uri or --jwks-file" in refused.output
    result = runner.invoke(
        cli,
        [
            *base,
            "--require-signed-request-object",
            "--request-object-alg",
            "PS256",
            "--jwks-file",
            str(path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["require_signed_request_object"] is True
    row = stored_client(app, created["client_id"])
    assert row.request_object_signing_alg == "PS256" and row.require_signed_request_object
    assert row.client_metadata["jwks"] == public_jwks(rsa_key)
    assert row.token_endpoint_auth_method == "client_secret_basic"
