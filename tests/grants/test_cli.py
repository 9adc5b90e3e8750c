"""`idp clients create` for the device grant (RFC 8628), JWT client authentication (RFC 7523,
RFC 7591 §2 jwks / jwks_uri) and pushed authorization requests (RFC 9126 §6); and purging."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import db
from idp.cli import cli
from idp.models import Client, DeviceCode, PushedAuthorizationRequest, utcnow

from ..helpers import basic_auth
from .conftest import DEVICE_GRANT, assertion, client_credentials, public_jwks, secret_key


def create(runner, *args):
    return runner.invoke(cli, ["clients", "create", "--name", "Box", "--json", *args])


def stored(app, client_id: str) -> Client:
    with app.app_context():
        return db.session().scalar(select(Client).where(Client.client_id == client_id))


def test_device_client_is_created(app, runner, client):
    # RFC 8628 §3.1: a public device client needs no redirect URI.
    result = create(runner, "--public", "--grant-type", DEVICE_GRANT)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["grant_types"] == [DEVICE_GRANT] and data["client_secret"] is None
    response = client.post(
        "/device_authorization", data={"client_id": data["client_id"], "scope": "openid"}
    )
    assert response.status_code == 200


def test_private_key_jwt_client_from_a_jwks_file(app, runner, client, tmp_path, rsa_key):
    # RFC 7591 §2 jwks: the keys are stored; no secret is issued for private_key_jwt.
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(public_jwks(rsa_key)))
    result = create(
        runner,
        "--grant-type",
        "client_credentials",
        "--scope",
        "api.read",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(path),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["client_secret"] is None and data["token_endpoint_auth_method"] == "private_key_jwt"
    row = stored(app, data["client_id"])
    assert row.client_metadata["jwks"] == public_jwks(rsa_key) and row.client_secret_hash is None
    assert client_credentials(client, assertion(data["client_id"], rsa_key)).status_code == 200


def test_private_key_jwt_client_with_a_jwks_uri(app, runner):
    # RFC 7591 §2 jwks_uri (https; http only on loopback for development).
    result = create(
        runner,
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
        "--jwks-uri",
        "https://rp.example/jwks.json",
    )
    assert result.exit_code == 0, result.output
    row = stored(app, json.loads(result.output)["client_id"])
    assert row.client_metadata == {"jwks_uri": "https://rp.example/jwks.json"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--auth-method", "private_key_jwt"], "needs --jwks-uri or --jwks-file"),
        (["--jwks-uri", "https://rp.example/jwks.json"], "need --auth-method private_key_jwt"),
        (
            ["--auth-method", "private_key_jwt", "--jwks-uri", "http://rp.example/jwks.json"],
            "https",
        ),
    ],
    ids=["no-keys", "keys-without-method", "http-uri"],
)
def test_key_options_are_checked(runner, args, message):
    result = create(runner, "--grant-type", "client_credentials", *args)
    assert result.exit_code != 0
    assert message in result.output


def test_private_keys_in_the_jwks_file_are_refused(runner, tmp_path, rsa_key):
    # Only public keys are registered (RFC 7591 §2: the client's public keys).
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.as_dict(private=True)]}))
    result = create(
        runner,
        "--grant-type",
        "client_credentials",
        "--auth-method",
        "private_key_jwt",
        "--jwks-file",
        str(path),
    )
    assert result.exit_code != 0 and "public keys only" in result.output


def test_client_secret_jwt_client_gets_a_secret_it_can_sign_with(app, runner, client):
    # OIDC Core §9: the secret shown once is the HMAC key; it is stored encrypted too.
    result = create(
        runner,
        "--grant-type",
        "client_credentials",
        "--scope",
        "api.read",
        "--auth-method",
        "client_secret_jwt",
    )
    data = json.loads(result.output)
    row = stored(app, data["client_id"])
    assert row.client_secret_encrypted and data["client_secret"] not in row.client_secret_encrypted
    token = assertion(data["client_id"], secret_key(data["client_secret"]), alg="HS256")
    assert client_credentials(client, token).status_code == 200
    # and Basic authentication is not its method
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(data["client_id"], data["client_secret"]),
    )
    assert response.status_code == 401


def test_require_par_is_stored_per_client(app, runner):
    # RFC 9126 §6 require_pushed_authorization_requests.
    result = create(runner, "--redirect-uri", "https://rp.example/cb", "--require-par")
    data = json.loads(result.output)
    assert data["require_pushed_authorization_requests"] is True
    assert stored(app, data["client_id"]).require_pushed_authorization_requests is True


def test_purge_deletes_expired_device_codes_and_pushed_requests(app, runner, device_client):
    # Both are short-lived; purge keeps the tables from growing (idp purge).
    old = utcnow() - timedelta(days=2)
    with app.app_context():
        session = db.session()
        session.add(
            DeviceCode(
                device_code_hash="a" * 64,
                user_code_hash="b" * 64,
                client_id=device_client.client_id,
                scope="",
                interval=5,
                expires_at=old,
            )
        )
        session.add(
            PushedAuthorizationRequest(
                request_uri_hash="c" * 64,
                client_id=device_client.client_id,
                params={},
                expires_at=old,
            )
        )
        session.commit()
    deleted = json.loads(runner.invoke(cli, ["purge", "--json"]).output)["deleted"]
    assert deleted["device_codes"] == 1
    assert deleted["pushed_authorization_requests"] == 1
