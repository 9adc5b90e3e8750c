"""Every place the server calls a client's URL refuses private addresses the spec-shaped way.

Registration: invalid_client_metadata (RFC 7591 §3.2.2); the admin UI: a form error; client
authentication: invalid_client (RFC 6749 §5.2); a request object: invalid_request_object
(RFC 9101 §6.3); back-channel logout: one audited failure, no retries. Never a 500.
"""

from __future__ import annotations

import pytest
from joserfc.jwk import RSAKey
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Client, LogoutDelivery
from idp.oauth import logout

from ..admin.support import post, rows
from ..grants.conftest import assertion, client_assertion_form, make_client, public_jwks
from ..jar.conftest import JARClient, authorization_claims, authorize_url, request_object
from ..registration.rp import Registrar

NO_NETWORKS = pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=[], REGISTRATION="open")


@pytest.fixture(scope="module")
def rsa_key():
    return RSAKey.generate_key(2048, parameters={"kid": "outbound-key"}, private=True)


def refusal(response, error: str) -> str:
    assert response.status_code in (400, 401), response.get_data(as_text=True)
    body = response.get_json()
    assert body["error"] == error
    return body["error_description"]


# --- dynamic registration (RFC 7591 §3.2.2) ----------------------------------------------------


@NO_NETWORKS
def test_registration_refuses_a_jwks_uri_on_a_private_address(app, client):
    response = Registrar(client).register(
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri="https://169.254.169.254/latest/meta-data/jwks",
    )
    description = refusal(response, "invalid_client_metadata")
    assert description == (
        "jwks_uri: resolves to a link-local address, which this server does not call"
    )


@NO_NETWORKS
def test_registration_refuses_a_backchannel_logout_uri_on_a_private_address(app, client):
    response = Registrar(client).register(backchannel_logout_uri="https://10.0.0.7/logout")
    assert refusal(response, "invalid_client_metadata").startswith(
        "backchannel_logout_uri: resolves to a private address"
    )


@NO_NETWORKS
def test_registration_never_fetches_a_sector_identifier_uri_on_loopback(app, client, target):
    # OIDC Core §8.1: the sector URI is fetched at registration; a name resolving to
    # loopback is refused before any request.
    target.body = ["https://rp.example/cb"]
    response = Registrar(client).register(
        subject_type="pairwise", sector_identifier_uri=target.url("/sector", host="localhost")
    )
    assert refusal(response, "invalid_client_metadata").startswith(
        "sector_identifier_uri: resolves to a loopback address"
    )
    assert target.seen == []
    with app.app_context():
        assert db.session().scalars(select(Client)).all() == []


@pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=["127.0.0.0/8", "::1/128"], REGISTRATION="open")
def test_an_allowed_network_lets_registration_fetch_the_sector_uri(app, client, target):
    target.body = ["https://rp.example/cb"]
    response = Registrar(client).register(
        subject_type="pairwise", sector_identifier_uri=target.url("/sector")
    )
    assert response.status_code == 201, response.get_json()
    assert [path for _, path, _ in target.seen] == ["/sector"]


# --- client authentication and request objects -------------------------------------------------


@NO_NETWORKS
def test_private_key_jwt_with_a_jwks_uri_on_loopback_is_invalid_client(
    app, client, target, rsa_key
):
    # Registered before the rule (or by an operator): the fetch is refused at use, RFC 7523
    # §3 / RFC 6749 §5.2 invalid_client, and nothing is fetched.
    target.body = public_jwks(rsa_key)
    registered = make_client(
        app, auth_method="private_key_jwt", metadata={"jwks_uri": target.url("/jwks.json")}
    )
    token = assertion(registered.client_id, rsa_key)
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", **client_assertion_form(token)},
    )
    description = refusal(response, "invalid_client")
    assert "resolves to a loopback address" in description
    assert target.seen == []


@NO_NETWORKS
def test_a_request_object_with_keys_on_a_private_address_is_refused(app, client, target, rsa_key):
    # RFC 9101 §6.3: the keys cannot be fetched, so the request object cannot be verified.
    target.body = public_jwks(rsa_key)
    registered = make_client(
        app,
        auth_method="client_secret_basic",
        metadata={"jwks_uri": target.url("/jwks.json")},
        redirect_uris=["https://rp.example/cb"],
    )
    jar = JARClient(
        registered.client_id, registered.client_secret, rsa_key, "https://rp.example/cb"
    )
    claims, _ = authorization_claims(jar)
    response = client.get(
        authorize_url(client_id=jar.client_id, request=request_object(jar, claims))
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert (
        location.startswith("https://rp.example/cb?") and "error=invalid_request_object" in location
    )
    assert target.seen == []


# --- back-channel logout: an audited failure, no retry storm -----------------------------------


@NO_NETWORKS
def test_backchannel_logout_to_a_private_address_gives_up_at_once(app, target):
    registered = make_client(app, auth_method="client_secret_basic")
    with app.app_context():
        session = db.session()
        session.add(
            LogoutDelivery(
                client_id=registered.client_id, uri=target.url("/bc"), logout_token="token"
            )
        )
        session.commit()
        assert logout.deliver_due() == 0
    with app.app_context():
        session = db.session()
        (row,) = session.scalars(select(LogoutDelivery)).all()
        assert row.attempts == 1 and row.gave_up_at is not None and row.delivered_at is None
        assert row.last_error.startswith("address refused: resolves to a loopback address")
        (event,) = session.scalars(
            select(AuditEvent).where(AuditEvent.event == "logout.backchannel_failed")
        ).all()
        assert event.target == registered.client_id
        assert logout.deliver_due() == 0  # given up: nothing is due again
    assert target.seen == []


# --- the admin UI ---------------------------------------------------------------------------


FORM = {
    "client_name": "Internal API",
    "client_type": "confidential",
    "token_endpoint_auth_method": "private_key_jwt",
    "redirect_uris": "https://internal.example/cb",
    "grant_types": ["authorization_code"],
    "scopes": ["openid"],
}


@pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=[], MFA_REQUIRED_FOR_ADMINS=False)
def test_the_admin_form_shows_a_refused_address_as_a_field_error(app, admin_client, target):
    target.body = ["https://internal.example/cb"]
    response = post(
        admin_client,
        "/admin/clients/new",
        {
            **FORM,
            "jwks_uri": "http://127.0.0.1:9/jwks.json",
            "backchannel_logout_uri": "https://[fd00::5]/logout",
            "subject_type": "pairwise",
            "sector_identifier_uri": target.url("/sector", host="localhost"),
        },
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "The URL resolves to a loopback address, which this server does not call" in page
    assert "resolves to a private address, which this server does not call" in page
    assert (
        "The sector identifier URI resolves to a loopback address, which this server does not "
        "call (OIDC Core section 8.1)" in page.replace("§", "section ")
    )
    assert rows(app, Client) == [] and target.seen == []
