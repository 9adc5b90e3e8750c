"""The registration endpoint (RFC 7591 §3): who may register, and what the response carries."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuditEvent, Client, RegistrationToken, secret_hash, utcnow

from ..helpers import allowed_methods
from .rp import REDIRECT_URI, metadata


def stored_client(app, client_id) -> Client:
    with app.app_context():
        return db.session().scalar(select(Client).where(Client.client_id == client_id))


# --- REGISTRATION = "off" (the default) ---


def test_registration_is_off_by_default(client, registrar):
    # RFC 7591 §3: registration is the operator's choice; off means no endpoint at all.
    response = registrar.register()
    assert response.status_code == 404
    assert response.is_json
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert "registration_endpoint" not in meta


@pytest.mark.config(REGISTRATION="open")
def test_discovery_advertises_registration_endpoint_when_on(client):
    # RFC 8414 §2 / OIDC Discovery §3: registration_endpoint, when the server offers it.
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        assert client.get(path).get_json()["registration_endpoint"] == "http://localhost/register"


# --- REGISTRATION = "open" ---


@pytest.mark.config(REGISTRATION="open")
def test_open_registration_of_a_confidential_client(app, registrar):
    # RFC 7591 §3.2.1: client_id, client_secret, client_id_issued_at, client_secret_expires_at,
    # plus the registered metadata; RFC 7592 §3: registration_access_token and _client_uri.
    response = registrar.register()
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    info = response.get_json()
    assert info["client_id"] and info["client_secret"]
    assert info["client_secret_expires_at"] == 0
    assert abs(info["client_id_issued_at"] - utcnow().timestamp()) < 60
    assert info["registration_access_token"]
    assert info["registration_client_uri"] == f"http://localhost/register/{info['client_id']}"
    assert info["redirect_uris"] == [REDIRECT_URI]
    assert info["client_name"] == "Self-Registered App"
    assert info["token_endpoint_auth_method"] == "client_secret_basic"  # §2 default
    assert info["grant_types"] == ["authorization_code"]  # §2 default
    assert info["response_types"] == ["code"]  # §2 default

    row = stored_client(app, info["client_id"])
    assert row.dynamically_registered is True
    assert row.first_party is False
    assert row.check_client_secret(info["client_secret"])


@pytest.mark.config(REGISTRATION="open")
def test_public_client_gets_no_secret(app, registrar):
    # RFC 7591 §3.2.1: client_secret (and its expiry) only when a secret is issued.
    info = registrar.registered(token_endpoint_auth_method="none")
    assert "client_secret" not in info
    assert "client_secret_expires_at" not in info
    assert info["token_endpoint_auth_method"] == "none"
    assert stored_client(app, info["client_id"]).client_secret_hash is None


@pytest.mark.config(REGISTRATION="open")
def test_secrets_are_stored_only_as_hashes(app, registrar):
    # RFC 7591 §3.2.1 issues the secrets once; a database leak must not reveal them.
    info = registrar.registered()
    row = stored_client(app, info["client_id"])
    assert row.client_secret_hash == secret_hash(info["client_secret"])
    assert row.registration_access_token_hash == secret_hash(info["registration_access_token"])
    stored = repr(
        {c.name: getattr(row, c.key) for c in Client.__table__.columns if hasattr(row, c.key)}
    )
    assert info["client_secret"] not in stored
    assert info["registration_access_token"] not in stored


@pytest.mark.config(REGISTRATION="open")
def test_registration_is_audited_without_secrets(app, registrar):
    info = registrar.registered()
    with app.app_context():
        event = db.session().scalar(
            select(AuditEvent).where(AuditEvent.event == "client.registered")
        )
    assert event.target == info["client_id"]
    assert info["client_secret"] not in repr(event.details)
    assert info["registration_access_token"] not in repr(event.details)


@pytest.mark.config(REGISTRATION="open")
def test_each_registration_is_a_new_client(registrar):
    # RFC 7591 §3.2.1: client_id is issued by the server and unique.
    first, second = registrar.registered(), registrar.registered()
    assert first["client_id"] != second["client_id"]
    assert first["registration_access_token"] != second["registration_access_token"]


@pytest.mark.config(REGISTRATION="open")
def test_client_cannot_choose_its_credentials(app, registrar):
    # RFC 7591 §3.2.1: client_id and client_secret are issued by the server, never chosen.
    info = registrar.registered(
        client_id="chosen-id",
        client_secret="chosen-secret",
        registration_access_token="chosen-token",
        client_id_issued_at=1,
    )
    assert info["client_id"] != "chosen-id"
    assert info["client_secret"] != "chosen-secret"
    assert info["registration_access_token"] != "chosen-token"
    assert info["client_id_issued_at"] != 1
    assert not stored_client(app, info["client_id"]).check_client_secret("chosen-secret")


@pytest.mark.config(REGISTRATION="open")
def test_request_must_be_a_json_object(client):
    # RFC 7591 §3.1: the metadata is sent as an application/json object.
    form = client.post("/register", data={"redirect_uris": REDIRECT_URI})
    assert form.status_code == 400 and form.get_json()["error"] == "invalid_request"
    array = client.post("/register", json=[metadata()])
    assert array.status_code == 400 and array.get_json()["error"] == "invalid_request"
    broken = client.post("/register", data="{", content_type="application/json")
    assert broken.status_code == 400 and broken.get_json()["error"] == "invalid_request"
    # Nested deeper than the JSON parser goes: RecursionError, a 500 before (found while fuzzing).
    deep = client.post("/register", data="[" * 5000 + "]" * 5000, content_type="application/json")
    assert deep.status_code == 400 and deep.get_json()["error"] == "invalid_request"


@pytest.mark.config(REGISTRATION="open")
def test_registration_endpoint_accepts_post_only(client):
    # RFC 7591 §3: "MUST accept HTTP POST messages".
    response = client.get("/register")
    assert response.status_code == 405
    assert allowed_methods(response) == {"POST"}
    assert response.get_json()["error"] == "invalid_request"


# --- REGISTRATION = "token": initial access tokens (RFC 7591 §3) ---


@pytest.mark.config(REGISTRATION="token")
def test_token_mode_refuses_requests_without_a_token(registrar):
    # RFC 7591 §3 + RFC 6750 §3.1: 401 with a Bearer challenge and no error code.
    response = registrar.register()
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in response.headers["WWW-Authenticate"]


@pytest.mark.config(REGISTRATION="token")
def test_token_mode_refuses_an_unknown_token(registrar):
    # RFC 6750 §3.1: invalid_token, 401.
    response = registrar.register(token="not-a-token")
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


@pytest.mark.config(REGISTRATION="token")
def test_token_mode_refuses_another_auth_scheme(registrar, make_initial_token):
    _, token = make_initial_token()
    response = registrar.client.post(
        "/register", json=metadata(), headers={"Authorization": f"Basic {token}"}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


@pytest.mark.config(REGISTRATION="token")
def test_initial_access_token_registers_and_counts_a_use(app, registrar, make_initial_token):
    # RFC 7591 §3: the initial access token authorizes the registration.
    token_id, token = make_initial_token(max_uses=5)
    info = registrar.registered(token=token)
    assert stored_client(app, info["client_id"]).dynamically_registered
    with app.app_context():
        row = db.session().get(RegistrationToken, token_id)
        assert row.uses == 1
        assert row.token_hash == secret_hash(token)
        event = db.session().scalar(
            select(AuditEvent).where(AuditEvent.event == "client.registered")
        )
        assert event.details["initial_access_token"] == token_id


@pytest.mark.config(REGISTRATION="token")
def test_initial_access_token_max_uses(registrar, make_initial_token):
    # RFC 7591 §3: the operator limits how many clients one token may register.
    _, token = make_initial_token(max_uses=2)
    assert registrar.register(token=token).status_code == 201
    assert registrar.register(token=token).status_code == 201
    third = registrar.register(token=token)
    assert third.status_code == 401
    assert third.get_json()["error"] == "invalid_token"


@pytest.mark.config(REGISTRATION="token")
def test_invalid_metadata_does_not_use_up_the_token(app, registrar, make_initial_token):
    token_id, token = make_initial_token(max_uses=1)
    assert (
        registrar.register(token=token, redirect_uris=["http://rp.example/cb"]).status_code == 400
    )
    assert registrar.register(token=token).status_code == 201
    with app.app_context():
        assert db.session().get(RegistrationToken, token_id).uses == 1


@pytest.mark.config(REGISTRATION="token")
def test_expired_initial_access_token_is_refused(app, registrar, make_initial_token):
    token_id, token = make_initial_token(expires_in=3600)
    with app.app_context():
        session = db.session()
        session.get(RegistrationToken, token_id).expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    response = registrar.register(token=token)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


@pytest.mark.config(REGISTRATION="token")
def test_revoked_initial_access_token_is_refused(app, registrar, make_initial_token):
    token_id, token = make_initial_token()
    with app.app_context():
        session = db.session()
        session.get(RegistrationToken, token_id).revoked_at = utcnow()
        session.commit()
    assert registrar.register(token=token).status_code == 401


@pytest.mark.config(REGISTRATION="open")
def test_registered_client_can_be_disabled(app, registrar, auth, user):
    # Disabled clients are unknown to the authorization endpoint (query_client).
    info = registrar.registered(token_endpoint_auth_method="none")
    with app.app_context():
        session = db.session()
        session.scalar(select(Client).where(Client.client_id == info["client_id"])).disabled = True
        session.commit()
    auth.login()
    response = auth.client.get(
        "/authorize",
        query_string={
            "response_type": "code",
            "client_id": info["client_id"],
            "redirect_uri": REDIRECT_URI,
            "scope": "openid",
            "code_challenge": "x" * 43,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code in (400, 401)
    assert "Location" not in response.headers


@pytest.mark.config(REGISTRATION="token")
def test_last_use_of_a_token_goes_to_one_registration(
    app, registrar, make_initial_token, monkeypatch
):
    # RFC 7591 §3: max_uses holds under concurrency. Another registration takes the last use
    # between this request's token check and its save; the save's conditional UPDATE sees it.
    from idp.oauth.registration import ClientRegistrationEndpoint

    token_id, token = make_initial_token(max_uses=1)
    original = ClientRegistrationEndpoint.extract_client_metadata

    def racing(self, request):
        result = original(self, request)
        session = db.session()
        session.get(RegistrationToken, token_id).uses = 1  # the concurrent winner
        session.commit()
        return result

    monkeypatch.setattr(ClientRegistrationEndpoint, "extract_client_metadata", racing)
    response = registrar.register(token=token)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Client)) == 0
        assert db.session().get(RegistrationToken, token_id).uses == 1


@pytest.mark.config(REGISTRATION="token")
def test_simultaneous_registrations_take_the_last_use_once(app, make_initial_token):
    # RFC 7591 §3: the same race, natural: n requests with a one-use token at once.
    from .rp import Registrar

    _, token = make_initial_token(max_uses=1)
    n = 4
    barrier = threading.Barrier(n)
    answers: list = [None] * n

    def register(i):
        registrar = Registrar(app.test_client())
        barrier.wait(timeout=10)
        answers[i] = registrar.register(token=token)

    threads = [threading.Thread(target=register, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(a.status_code for a in answers) == [201] + [401] * (n - 1)
    with app.app_context():
        assert db.session().scalar(select(func.count()).select_from(Client)) == 1


def test_unknown_registration_mode_stops_start_up(app_config):
    # A typo must not silently leave registration open or off.
    from idp import create_app
    from idp.config import ConfigError

    with pytest.raises(ConfigError, match="IDP_REGISTRATION"):
        create_app({**app_config, "REGISTRATION": "yes"})
