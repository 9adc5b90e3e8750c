"""The client credentials grant (RFC 6749 §4.4): a confidential client acting for itself."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp.models import Token, secret_hash

from ..helpers import basic_auth

API_SCOPE = "api.read api.write"


@pytest.fixture
def service(factory):
    return factory.client(
        name="Service", grant_types=("client_credentials",), redirect_uris=(), scope=API_SCOPE
    )


def client_credentials(client, registered, **data):
    return client.post(
        "/token",
        data={"grant_type": "client_credentials", **data},
        headers=basic_auth(registered.client_id, registered.client_secret),
    )


def test_confidential_client_gets_access_token_without_refresh_token(db_session, client, service):
    # RFC 6749 §4.4.3: an access token is returned; "A refresh token SHOULD NOT be included".
    response = client_credentials(client, service)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"] and body["expires_in"] > 0
    assert "refresh_token" not in body
    assert "id_token" not in body
    row = db_session.scalar(
        select(Token).where(Token.access_token_hash == secret_hash(body["access_token"]))
    )
    assert row.user_id is None and row.refresh_token_hash is None
    assert row.client_id == service.client_id


def test_registered_api_scope_is_granted(client, service):
    # RFC 6749 §4.4.2 / §3.3: the client may request scopes registered for it.
    response = client_credentials(client, service, scope="api.read")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope"] == "api.read"
    both = client_credentials(client, service, scope=API_SCOPE)
    assert both.status_code == 200, both.get_json()
    assert set(both.get_json()["scope"].split()) == {"api.read", "api.write"}


def test_client_secret_post_client_can_use_client_credentials(client, factory):
    # RFC 6749 §2.3.1 + §4.4.2: the grant authenticates the client by any registered method.
    service = factory.client(
        grant_types=("client_credentials",), scope=API_SCOPE, auth_method="client_secret_post"
    )
    response = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "api.write",
            "client_id": service.client_id,
            "client_secret": service.client_secret,
        },
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["scope"] == "api.write"


@pytest.mark.parametrize("scope", ["openid", "profile", "api.read openid", "offline_access"])
def test_user_scopes_are_refused(client, factory, scope):
    # RFC 6749 §4.4 / §5.2: there is no end user, so user-identity scopes are invalid_scope
    # even when registered on the client.
    service = factory.client(
        grant_types=("client_credentials",), scope=f"{API_SCOPE} openid profile offline_access"
    )
    response = client_credentials(client, service, scope=scope)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == "invalid_scope"
    assert response.headers["Cache-Control"] == "no-store"


def test_unregistered_scope_is_refused(client, service):
    # RFC 6749 §3.3 / §5.2: a scope the client is not registered for -> invalid_scope.
    response = client_credentials(client, service, scope="api.admin")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"


def test_wrong_secret_is_invalid_client(client, service):
    # RFC 6749 §4.4.2: the client MUST authenticate; §5.2: 401 + WWW-Authenticate for Basic.
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(service.client_id, "wrong"),
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_public_client_cannot_use_client_credentials(db_session, client, factory):
    # RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
    # clients."
    spa = factory.client(public=True, grant_types=("authorization_code", "client_credentials"))
    response = client.post(
        "/token", data={"grant_type": "client_credentials", "client_id": spa.client_id}
    )
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"
    assert db_session.scalar(select(Token.id)) is None


def test_plain_http_to_a_public_host_gets_no_token(db_session, client, service):
    # RFC 6749 §3.2: the token endpoint requires TLS (Authlib's transport check; plain http
    # only on loopback). Its verdict is remembered per scheme and host: an https request to
    # the same host first must not let a plain one through.
    headers = basic_auth(service.client_id, service.client_secret)
    data = {"grant_type": "client_credentials"}
    secure = client.post("/token", data=data, headers=headers, base_url="https://idp.example")
    assert secure.status_code == 200, secure.get_json()
    issued = db_session.query(Token).count()
    for _ in range(2):
        plain = client.post("/token", data=data, headers=headers, base_url="http://idp.example")
        assert plain.status_code != 200
        assert "access_token" not in (plain.get_json() or {})
    assert db_session.query(Token).count() == issued


@pytest.mark.parametrize(
    "path", ["/token", "/introspect", "/revoke", "/par", "/device_authorization"]
)
def test_plain_http_is_a_client_error_not_a_server_error(db_session, client, service, path):
    # RFC 6749 §3.2 and §2.3.1, RFC 7662 §4: these endpoints require TLS. Plain http to a
    # host that is not loopback (a TLS proxy without X-Forwarded-Proto, say) is refused with
    # RFC 6749 §5.2's invalid_request, never a 500 that hides what the operator must fix.
    headers = basic_auth(service.client_id, service.client_secret)
    data = {"grant_type": "client_credentials", "token": "x", "client_id": service.client_id}
    answer = client.post(path, data=data, headers=headers, base_url="http://idp.example")
    assert answer.status_code == 400
    assert answer.get_json()["error"] == "invalid_request"
    assert "https" in answer.get_json()["error_description"]
    assert answer.headers["Cache-Control"] == "no-store"
    assert db_session.query(Token).count() == 0
