"""`idp registration-tokens` (RFC 7591 §3 initial access tokens) and `idp clients list`."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from idp import db
from idp.cli import cli
from idp.models import AuditEvent, Client, RegistrationToken, secret_hash, utcnow


def invoke(runner, *args):
    result = runner.invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.config(REGISTRATION="token")
def test_created_token_is_printed_once_and_stored_hashed(app, runner, registrar):
    # RFC 7591 §3: the operator hands the token out of band; the server keeps a hash only.
    data = json.loads(
        invoke(
            runner, "registration-tokens", "create", "--expires", "7d", "--max-uses", "3", "--json"
        )
    )
    with app.app_context():
        row = db.session().get(RegistrationToken, data["id"])
        assert row.token_hash == secret_hash(data["token"])
        assert row.max_uses == 3
        assert timedelta(days=6.99) < row.expires_at - utcnow() <= timedelta(days=7)
        event = db.session().scalar(
            select(AuditEvent).where(AuditEvent.event == "registration_token.created")
        )
        assert data["token"] not in repr(event.details)
    assert registrar.register(token=data["token"]).status_code == 201
    listing = json.loads(invoke(runner, "registration-tokens", "list", "--json"))
    assert listing == [
        {
            "id": data["id"],
            "description": "",
            "status": "active",
            "uses": 1,
            "max_uses": 3,
            "created_at": listing[0]["created_at"],
            "expires_at": data["expires_at"],
        }
    ]
    assert data["token"] not in invoke(runner, "registration-tokens", "list")


@pytest.mark.config(REGISTRATION="token")
def test_revoked_token_no_longer_registers(app, runner, registrar):
    data = json.loads(invoke(runner, "registration-tokens", "create", "--json"))
    assert "revoked" in invoke(runner, "registration-tokens", "revoke", str(data["id"]))
    assert registrar.register(token=data["token"]).status_code == 401
    listing = json.loads(invoke(runner, "registration-tokens", "list", "--json"))
    assert listing[0]["status"] == "revoked"


def test_bad_expiry_is_refused(runner):
    for value in ("0", "-1", "soon", "5w"):
        result = runner.invoke(cli, ["registration-tokens", "create", "--expires", value])
        assert result.exit_code != 0, value


def test_used_up_and_expired_tokens_are_listed_as_such(app, runner, make_initial_token):
    used_id, _ = make_initial_token(max_uses=1)
    old_id, _ = make_initial_token(expires_in=60)
    with app.app_context():
        session = db.session()
        session.get(RegistrationToken, used_id).uses = 1
        session.get(RegistrationToken, old_id).expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    listing = json.loads(invoke(runner, "registration-tokens", "list", "--json"))
    assert {row["id"]: row["status"] for row in listing} == {
        used_id: "used up",
        old_id: "expired",
    }


@pytest.mark.config(REGISTRATION="open")
def test_clients_list_marks_dynamically_registered_clients(app, runner, registrar, oauth_client):
    info = registrar.registered(client_name="Self Service")
    listing = json.loads(invoke(runner, "clients", "list", "--json"))
    by_id = {row["client_id"]: row for row in listing}
    assert by_id[info["client_id"]]["dynamically_registered"] is True
    assert by_id[oauth_client.client_id]["dynamically_registered"] is False
    text = invoke(runner, "clients", "list")
    line = next(x for x in text.splitlines() if info["client_id"] in x)
    assert "dynamic" in line and "Self Service" in line


@pytest.mark.config(REGISTRATION="open")
def test_clients_disable_stops_a_registered_client(app, runner, registrar):
    info = registrar.registered()
    invoke(runner, "clients", "disable", info["client_id"])
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == info["client_id"]))
        assert row.disabled
    assert registrar.read(info).status_code == 403
    listing = json.loads(invoke(runner, "clients", "list", "--json"))
    assert listing[0]["disabled"] is True
    invoke(runner, "clients", "enable", info["client_id"])
    assert registrar.read(info).status_code == 200
