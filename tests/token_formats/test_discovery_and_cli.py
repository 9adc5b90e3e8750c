"""Discovery of the new grant, and the CLI that registers resources and client policies."""

from __future__ import annotations

import json

from sqlalchemy import select

from idp import db
from idp.cli import cli
from idp.models import AuditEvent, Client, Resource

from .conftest import INVENTORY, ORDERS, decode, token_request

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"


def run(runner, *args):
    return runner.invoke(cli, list(args))


def stored_client(app, client_id) -> Client:
    with app.app_context():
        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == client_id))
        session.expunge_all()
        return row


def test_discovery_lists_token_exchange_and_signing_algorithms(client):
    # RFC 8414 §2 grant_types_supported (RFC 8693 §2.1 grant type); OIDC Discovery §3.
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    assert GRANT in meta["grant_types_supported"]
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(
        meta["grant_types_supported"]
    )
    assert meta["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    assert client.get("/.well-known/openid-configuration").get_json() == meta


def test_cli_creates_and_lists_resources(app, runner, client, oauth_client, service):
    # Issue 4: the CLI registers resources (RFC 8707) with scopes, format, lifetime, clients.
    result = run(
        runner,
        "resources", "create", "--identifier", ORDERS, "--name", "Orders",
        "--scope", "orders:read", "--scope", "orders:write", "--token-format", "opaque",
        "--lifetime", "10m", "--client", service.client_id, "--client", oauth_client.client_id,
        "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["scopes"] == ["orders:read", "orders:write"]
    assert created["token_format"] == "opaque" and created["access_token_lifetime"] == 600
    assert set(created["clients"]) == {service.client_id, oauth_client.client_id}
    listed = json.loads(run(runner, "resources", "list", "--json").output)
    assert [r["identifier"] for r in listed] == [ORDERS]
    assert ORDERS in run(runner, "resources", "list").output
    with app.app_context():
        assert db.session().scalar(select(AuditEvent).where(AuditEvent.event == "resource.created"))
    # What was registered is what the token endpoint does.
    body = token_request(client, service, grant_type="client_credentials", resource=ORDERS)
    assert body.get_json()["expires_in"] == 600 and "." not in body.get_json()["access_token"]


def test_cli_refuses_bad_resource_definitions(runner, service):
    # RFC 8707 §2: an absolute URI without fragment; OIDC scopes are not resource scopes.
    cases = [
        (["--identifier", "orders", "--scope", "orders:read"], "absolute URI"),
        (["--identifier", ORDERS + "#x", "--scope", "orders:read"], "fragment"),
        (["--identifier", ORDERS, "--scope", "openid"], "OpenID Connect"),
        (["--identifier", ORDERS, "--scope", "a", "--client", "nobody"], "no client nobody"),
    ]
    for args, message in cases:
        result = run(runner, "resources", "create", "--name", "Orders", *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
    assert run(runner, "resources", "create", "--name", "O", "--identifier", ORDERS,
               "--scope", "a").exit_code == 0  # fmt: skip
    again = run(runner, "resources", "create", "--name", "O", "--identifier", ORDERS,
                "--scope", "b")  # fmt: skip
    assert again.exit_code != 0 and "already exists" in again.output


def test_cli_updates_and_deletes_resources(app, runner, service, oauth_client):
    run(runner, "resources", "create", "--identifier", ORDERS, "--name", "Orders",
        "--scope", "orders:read", "--client", service.client_id)  # fmt: skip
    result = run(
        runner, "resources", "update", ORDERS, "--scope", "orders:read orders:write",
        "--add-client", oauth_client.client_id, "--remove-client", service.client_id,
        "--token-format", "jwt", "--lifetime", "120", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    updated = json.loads(result.output)
    assert updated["scopes"] == ["orders:read", "orders:write"]
    assert updated["clients"] == [oauth_client.client_id]
    assert updated["token_format"] == "jwt" and updated["access_token_lifetime"] == 120
    assert run(runner, "resources", "delete", ORDERS).exit_code == 0
    with app.app_context():
        assert db.session().scalar(select(Resource)) is None
    assert run(runner, "resources", "delete", ORDERS).exit_code != 0


def test_cli_sets_token_format_and_exchange_policy(app, runner, client, service, oauth_client):
    # Issue 4: per-client token format and token exchange policy from the CLI.
    run(runner, "resources", "create", "--identifier", INVENTORY, "--name", "Inventory",
        "--scope", "inventory:read")  # fmt: skip
    result = run(
        runner, "clients", "policy", service.client_id, "--token-format", "opaque",
        "--exchange-audience", INVENTORY, "--exchange-subject-client", oauth_client.client_id,
        "--exchange-token-type", "access_token", "--exchange-token-type", "id_token", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    row = stored_client(app, service.client_id)
    assert row.access_token_format == "opaque"
    assert row.token_exchange_policy == {
        "audiences": [INVENTORY],
        "subject_clients": [oauth_client.client_id],
        "subject_token_types": ["access_token", "id_token"],
    }
    assert GRANT in row.grant_types
    assert (
        "."
        not in token_request(client, service, grant_type="client_credentials").get_json()[
            "access_token"
        ]
    )
    shown = run(runner, "clients", "policy", service.client_id)
    assert "opaque" in shown.output and INVENTORY in shown.output

    run(runner, "clients", "policy", service.client_id, "--token-format", "default",
        "--no-token-exchange")  # fmt: skip
    row = stored_client(app, service.client_id)
    assert row.access_token_format is None and row.token_exchange_policy is None
    assert GRANT not in row.grant_types
    token = token_request(client, service, grant_type="client_credentials").get_json()
    assert decode(client, token["access_token"]).header["typ"] == "at+jwt"


def test_cli_refuses_bad_policies(runner, service, public_client, oauth_client):
    unknown = run(runner, "clients", "policy", service.client_id,
                  "--exchange-audience", "https://nowhere.example/",
                  "--exchange-subject-client", "*")  # fmt: skip
    assert unknown.exit_code != 0 and "no resource" in unknown.output
    run(runner, "resources", "create", "--identifier", INVENTORY, "--name", "Inventory",
        "--scope", "inventory:read")  # fmt: skip
    public = run(runner, "clients", "policy", public_client.client_id,
                 "--exchange-audience", INVENTORY, "--exchange-subject-client", "*")  # fmt: skip
    assert public.exit_code != 0 and "public clients" in public.output
    no_subject = run(runner, "clients", "policy", service.client_id,
                     "--exchange-audience", INVENTORY)  # fmt: skip
    assert no_subject.exit_code != 0
    assert run(runner, "clients", "policy", "nobody").exit_code != 0
