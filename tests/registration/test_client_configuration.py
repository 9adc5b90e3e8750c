"""The client configuration endpoint (RFC 7592 §2): read, update, delete one's registration."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuditEvent, AuthorizationCode, Client, Consent, Token, secret_hash

from ..factories import RegisteredClient
from ..helpers import allowed_methods, basic_auth
from .rp import REDIRECT_URI

pytestmark = pytest.mark.config(REGISTRATION="open")

SERVER_FIELDS = ("registration_access_token", "registration_client_uri", "client_secret")


def stored(app, client_id) -> Client | None:
    with app.app_context():
        return db.session().scalar(select(Client).where(Client.client_id == client_id))


def as_update(info: dict, **changes) -> dict:
    """The body of an update: the registered metadata, less what only the server sets."""
    body = {
        k: v
        for k, v in info.items()
        if k not in SERVER_FIELDS + ("client_secret_expires_at", "client_id_issued_at")
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def events(app, name) -> list[AuditEvent]:
    with app.app_context():
        return db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)).all()


# --- read (§2.1) ---


def test_read_returns_what_registration_returned(registrar):
    # RFC 7592 §2.1 / §3: the same client information, with the registration credentials.
    info = registrar.registered(logo_uri="https://rp.example/logo.png", contacts=["a@rp.example"])
    response = registrar.read(info)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    read = response.get_json()
    expected = {k: v for k, v in info.items() if k != "client_secret"}
    assert read == expected
    # The secret is stored hashed, so it is returned only when issued.
    assert "client_secret" not in read


def test_read_needs_the_registration_access_token(registrar):
    # RFC 7592 §2 + RFC 6750 §3.1: no token, 401 with a Bearer challenge.
    info = registrar.registered()
    response = registrar.client.get(registrar.path(info))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_wrong_token_is_invalid_token(registrar):
    info = registrar.registered()
    response = registrar.read(info, token="guess")
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_token_is_bound_to_its_client(registrar):
    # RFC 7592 §1.2: a registration access token is good for one client only.
    first, second = registrar.registered(), registrar.registered()
    response = registrar.read(second, token=first["registration_access_token"])
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


def test_other_credentials_do_not_open_the_configuration_endpoint(registrar):
    # The client secret is for the token endpoint; only the registration token manages.
    info = registrar.registered()
    response = registrar.read(info, token=info["client_secret"])
    assert response.status_code == 401


def test_unknown_client_is_401_like_a_wrong_token(registrar):
    # RFC 7592 §2.1: an unknown client gets 401 (not 404, which would reveal client_ids).
    info = registrar.registered()
    info["registration_client_uri"] = "http://localhost/register/does-not-exist"
    assert registrar.read(info).status_code == 401


def test_statically_registered_clients_cannot_be_managed(registrar, oauth_client):
    # A client created by an administrator has no registration access token.
    info = {"registration_client_uri": f"http://localhost/register/{oauth_client.client_id}"}
    assert registrar.read(info, token="anything").status_code == 401


def test_disabled_client_may_not_manage_its_registration(app, registrar):
    # RFC 7592 §2.1: no permission -> 403; an admin's decision to disable stands.
    info = registrar.registered()
    with app.app_context():
        session = db.session()
        session.scalar(select(Client).where(Client.client_id == info["client_id"])).disabled = True
        session.commit()
    assert registrar.read(info).status_code == 403
    update = registrar.update(info, as_update(info, client_name="Renamed"))
    assert update.status_code == 403
    assert registrar.delete(info).status_code == 403
    assert stored(app, info["client_id"]).client_name == "Self-Registered App"


def test_configuration_endpoint_methods(registrar):
    info = registrar.registered()
    response = registrar.client.post(
        registrar.path(info), json={}, headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 405
    assert allowed_methods(response) == {"GET", "PUT", "DELETE"}


# --- update (§2.2) ---


def test_update_replaces_the_whole_registration(app, registrar):
    # RFC 7592 §2.2: omitted fields are removed or return to their defaults.
    info = registrar.registered(
        logo_uri="https://rp.example/logo.png",
        policy_uri="https://rp.example/privacy",
        contacts=["ops@rp.example"],
        grant_types=["authorization_code", "refresh_token"],
        id_token_signed_response_alg="ES256",
        post_logout_redirect_uris=["https://rp.example/bye"],
        backchannel_logout_uri="https://rp.example/bc",
    )
    body = {
        "client_id": info["client_id"],
        "redirect_uris": ["https://rp.example/new-cb"],
        "client_name": "Renamed",
    }
    response = registrar.update(info, body)
    assert response.status_code == 200, response.get_json()
    updated = response.get_json()
    assert updated["client_name"] == "Renamed"
    assert updated["redirect_uris"] == ["https://rp.example/new-cb"]
    for gone in (
        "logo_uri",
        "policy_uri",
        "contacts",
        "id_token_signed_response_alg",
        "backchannel_logout_uri",
    ):
        assert gone not in updated
    assert updated["grant_types"] == ["authorization_code"]
    assert updated["post_logout_redirect_uris"] == []
    row = stored(app, info["client_id"])
    assert row.redirect_uris == ["https://rp.example/new-cb"]
    assert row.grant_types == ["authorization_code"]
    assert row.id_token_signed_response_alg is None
    assert row.backchannel_logout_uri is None
    assert "logo_uri" not in row.client_metadata
    assert row.dynamically_registered and not row.first_party


def test_update_response_matches_a_later_read(registrar):
    info = registrar.registered()
    updated = registrar.update(info, as_update(info, client_name="Renamed")).get_json()
    assert registrar.read(updated).get_json() == updated


def test_update_must_carry_the_clients_own_client_id(registrar):
    # RFC 7592 §2.2: client_id MUST be included and MUST be the current one.
    info, other = registrar.registered(), registrar.registered()
    for client_id in (..., other["client_id"]):
        response = registrar.update(info, as_update(info, client_id=client_id))
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"
        assert "client_id" in response.get_json()["error_description"]


def test_update_must_not_send_server_fields(app, registrar):
    # RFC 7592 §2.2: these MUST NOT be included in the request.
    info = registrar.registered()
    for field in (
        "registration_access_token",
        "registration_client_uri",
        "client_secret_expires_at",
        "client_id_issued_at",
    ):
        response = registrar.update(info, as_update(info, **{field: info[field]}))
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_request"
        assert field in response.get_json()["error_description"]
    assert stored(app, info["client_id"]).registration_access_token_hash == secret_hash(
        info["registration_access_token"]
    )


def test_update_client_secret_must_match_and_cannot_be_chosen(app, registrar):
    # RFC 7592 §2.2: a client_secret in the request MUST match the issued one; the client
    # may not set its own.
    info = registrar.registered()
    wrong = registrar.update(info, as_update(info, client_secret="my-own-secret"))
    assert wrong.status_code == 400
    assert "client_secret" in wrong.get_json()["error_description"]
    same = registrar.update(info, as_update(info, client_secret=info["client_secret"]))
    assert same.status_code == 200
    assert "client_secret" not in same.get_json()  # unchanged, so not issued again
    assert stored(app, info["client_id"]).check_client_secret(info["client_secret"])


def test_invalid_update_changes_nothing(app, registrar):
    # RFC 7592 §2.2: invalid metadata gets the RFC 7591 §3.2.2 errors.
    info = registrar.registered()
    bad_uri = registrar.update(info, as_update(info, redirect_uris=["http://evil.example/cb"]))
    assert bad_uri.status_code == 400
    assert bad_uri.get_json()["error"] == "invalid_redirect_uri"
    bad_meta = registrar.update(info, as_update(info, grant_types=["password"]))
    assert bad_meta.get_json()["error"] == "invalid_client_metadata"
    row = stored(app, info["client_id"])
    assert row.redirect_uris == [REDIRECT_URI]
    assert row.registration_access_token_hash == secret_hash(info["registration_access_token"])


def test_update_rotates_the_registration_access_token(app, registrar):
    # RFC 7592 §2.2 / §3: a new token may be issued; the old one stops working at once.
    info = registrar.registered()
    updated = registrar.update(info, as_update(info)).get_json()
    new_token = updated["registration_access_token"]
    assert new_token != info["registration_access_token"]
    assert registrar.read(info).status_code == 401
    assert registrar.read(info, token=new_token).status_code == 200
    row = stored(app, info["client_id"])
    assert row.registration_access_token_hash == secret_hash(new_token)
    (event,) = events(app, "client.updated")
    assert event.details["registration_access_token_rotated"] is True
    assert new_token not in repr(event.details)


@pytest.mark.config(REGISTRATION="open", REGISTRATION_ACCESS_TOKEN_ROTATION=False)
def test_update_keeps_the_token_when_rotation_is_off(registrar):
    info = registrar.registered()
    updated = registrar.update(info, as_update(info)).get_json()
    assert updated["registration_access_token"] == info["registration_access_token"]
    assert registrar.read(info).status_code == 200


def test_becoming_confidential_issues_a_secret(app, registrar):
    # RFC 7592 §2.2: the server issues the new secret; it is returned once.
    info = registrar.registered(token_endpoint_auth_method="none")
    updated = registrar.update(
        info, as_update(info, token_endpoint_auth_method="client_secret_basic")
    ).get_json()
    assert updated["client_secret"]
    assert updated["client_secret_expires_at"] == 0
    assert stored(app, info["client_id"]).check_client_secret(updated["client_secret"])
    assert "client_secret" not in registrar.read(updated).get_json()


def test_becoming_public_withdraws_the_secret_and_its_tokens(app, registrar, auth, user):
    info = registrar.registered(grant_types=["authorization_code", "refresh_token"])
    rp = RegisteredClient(info["client_id"], info["client_secret"], REDIRECT_URI, None)
    auth.login()
    tokens = auth.tokens(rp)
    updated = registrar.update(
        info, as_update(info, token_endpoint_auth_method="none", client_secret=...)
    )
    assert updated.status_code == 200
    assert "client_secret" not in updated.get_json()
    assert stored(app, info["client_id"]).client_secret_hash is None
    # The refresh token was issued to an authenticated client; it must not outlive that.
    refreshed = auth.client.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": info["client_id"],
        },
    )
    assert refreshed.status_code == 400
    assert refreshed.get_json()["error"] == "invalid_grant"


# --- delete (§2.3) ---


def test_delete_removes_the_client_and_everything_issued_to_it(app, registrar, auth, user):
    # RFC 7592 §2.3: 204; the client_id, secret and registration token stop working, and
    # the client's grants and tokens are revoked.
    info = registrar.registered(grant_types=["authorization_code", "refresh_token"])
    rp = RegisteredClient(info["client_id"], info["client_secret"], REDIRECT_URI, None)
    auth.login()
    tokens = auth.tokens(rp)
    auth.get_code(rp)  # one code left unredeemed

    response = registrar.delete(info)
    assert response.status_code == 204
    assert response.data == b""
    assert response.headers["Cache-Control"] == "no-store"

    with app.app_context():
        session = db.session()
        for model in (Token, AuthorizationCode, Consent):
            count = session.scalar(
                select(func.count()).select_from(model).where(model.client_id == info["client_id"])
            )
            assert count == 0, model
    assert stored(app, info["client_id"]) is None
    (event,) = events(app, "client.deleted")
    assert event.target == info["client_id"]
    assert event.details["tokens"] == 1 and event.details["codes"] == 2
    assert event.details["consents"] == 1

    userinfo = auth.client.get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert userinfo.status_code == 401
    refreshed = auth.client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        headers=basic_auth(info["client_id"], info["client_secret"]),
    )
    assert refreshed.status_code == 401
    assert refreshed.get_json()["error"] == "invalid_client"
    # RFC 7592 §2.3: afterwards the registration token is invalid too.
    assert registrar.read(info).status_code == 401
    assert registrar.delete(info).status_code == 401


def test_turning_registration_off_keeps_existing_clients_manageable(app, registrar):
    # REGISTRATION=off closes POST /register; clients registered before keep their RFC 7592
    # management (and an administrator can still disable them).
    info = registrar.registered()
    app.config["REGISTRATION"] = "off"
    assert registrar.register().status_code == 404
    assert registrar.read(info).status_code == 200


def test_switching_between_secret_methods(app, registrar):
    # RFC 7592 §2.2: the server decides when a new secret is needed and issues it once.
    from joserfc.jwk import ECKey

    info = registrar.registered(token_endpoint_auth_method="client_secret_basic")
    # client_secret_jwt needs the secret itself as HMAC key, which a hash cannot give back.
    to_jwt = registrar.update(
        info, as_update(info, token_endpoint_auth_method="client_secret_jwt")
    ).get_json()
    new_secret = to_jwt["client_secret"]
    row = stored(app, info["client_id"])
    assert row.check_client_secret(new_secret) and not row.check_client_secret(
        info["client_secret"]
    )
    assert row.client_secret_encrypted
    # Back to a hashed-only method: the same secret, the encrypted copy dropped.
    to_post = registrar.update(
        to_jwt, as_update(to_jwt, token_endpoint_auth_method="client_secret_post")
    ).get_json()
    assert "client_secret" not in to_post
    row = stored(app, info["client_id"])
    assert row.check_client_secret(new_secret) and row.client_secret_encrypted is None
    # private_key_jwt uses the client's keys: the secret is withdrawn.
    jwks = {"keys": [ECKey.generate_key("P-256").as_dict(private=False)]}
    to_keys = registrar.update(
        to_post, as_update(to_post, token_endpoint_auth_method="private_key_jwt", jwks=jwks)
    ).get_json()
    assert "client_secret" not in to_keys and "client_secret_expires_at" not in to_keys
    assert stored(app, info["client_id"]).client_secret_hash is None
    events_ = [e.details["secret"] for e in events(app, "client.updated")]
    assert events_ == ["issued", None, "removed"]
