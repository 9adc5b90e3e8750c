"""Resource indicators (RFC 8707) with JWT access tokens (RFC 9068 §3): aud, scope, errors."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from idp import db
from idp.models import AuthorizationCode

from ..helpers import basic_auth, csrf_token, query
from .conftest import (
    INVENTORY,
    ORDERS,
    USERINFO,
    decode,
    introspect,
    make_resource,
    stored_token,
    token_request,
)


def authorize(auth, registered, scope: str, resources=(), **extra):
    """Sign-in authorization request with repeated ``resource`` parameters (RFC 8707 §2)."""
    params, verifier = auth.code_flow_params(registered, scope, **extra)
    url = "/authorize?" + urlencode(list(params.items()) + [("resource", r) for r in resources])
    response = auth.client.get(url)
    if response.status_code == 200 and b'name="allow"' in response.data:
        token = csrf_token(response.get_data(as_text=True))
        response = auth.client.post(url, data={"csrf_token": token, "allow": "Allow"})
    return response, verifier, params


def code_for(auth, registered, scope, resources=()):
    response, verifier, _ = authorize(auth, registered, scope, resources)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return query(response.headers["Location"])["code"], verifier


def redeem(client, registered, code, verifier, resources=()):
    data = MultiDict(
        [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", registered.redirect_uri),
        ]
        + [("resource", r) for r in resources]
    )
    return client.post(
        "/token", data=data, headers=basic_auth(registered.client_id, registered.client_secret)
    )


def refresh(client, registered, refresh_token, resources=(), **extra):
    data = MultiDict(
        [("grant_type", "refresh_token"), ("refresh_token", refresh_token)]
        + [("resource", r) for r in resources]
        + list(extra.items())
    )
    return client.post(
        "/token", data=data, headers=basic_auth(registered.client_id, registered.client_secret)
    )


def stored_code_resources(app) -> list:
    with app.app_context():
        return db.session().scalars(select(AuthorizationCode.resources)).all()


def test_resource_at_authorization_becomes_the_token_audience(
    app, client, auth, user, oauth_client, apis
):
    # RFC 8707 §2.1 + RFC 9068 §3: the requested resource is the aud; the resource's scopes
    # are requestable though the client's own scope does not list them.
    auth.login()
    code, verifier = code_for(auth, oauth_client, "openid orders:read", [ORDERS])
    assert stored_code_resources(app) == [[ORDERS]]
    body = redeem(client, oauth_client, code, verifier).get_json()
    claims = decode(client, body["access_token"]).claims
    assert claims["aud"] == [ORDERS, USERINFO]  # openid: UserInfo accepts it too
    assert claims["scope"] == body["scope"] == "openid orders:read"
    row = stored_token(app, body["access_token"])
    assert row.audience == [ORDERS, USERINFO] and row.resources == [ORDERS]


def test_unknown_resource_at_authorization_is_invalid_target(
    client, auth, user, oauth_client, apis
):
    # RFC 8707 §2: an unknown resource -> invalid_target, returned to the redirect URI with
    # state and iss (RFC 9207).
    auth.login()
    response, _, params = authorize(auth, oauth_client, "openid", ["https://api.example/unknown"])
    assert response.status_code == 302
    result = query(response.headers["Location"])
    assert result["error"] == "invalid_target"
    assert result["state"] == params["state"] and result["iss"] == "http://localhost"


def test_resource_with_fragment_or_relative_is_invalid_target(client, auth, user, oauth_client):
    # RFC 8707 §2: an absolute URI, and it MUST NOT include a fragment component.
    auth.login()
    for bad in ("https://api.example/orders#x", "/orders", "https://[api.example/"):
        response, _, _ = authorize(auth, oauth_client, "openid", [bad])
        assert query(response.headers["Location"])["error"] == "invalid_target", bad


def test_resource_the_client_may_not_request_is_invalid_target(
    app, client, auth, user, oauth_client, service, factory
):
    # RFC 8707 §2: a resource not allowed for this client -> invalid_target, at both endpoints.
    other = factory.client(name="Other")
    make_resource(app, ORDERS, ["orders:read"], [other])
    auth.login()
    response, _, _ = authorize(auth, oauth_client, "openid orders:read", [ORDERS])
    assert query(response.headers["Location"])["error"] == "invalid_target"
    refused = token_request(client, service, grant_type="client_credentials", resource=ORDERS)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_target"


def test_resource_scope_without_permission_is_not_granted(app, client, auth, user, factory):
    # RFC 6749 §3.3: a client listing a resource's scope itself does not get it without the
    # right to request the resource; the other scopes are still granted.
    rp = factory.client(scope="openid orders:read")
    make_resource(app, ORDERS, ["orders:read"], [])
    auth.login()
    code, verifier = code_for(auth, rp, "openid orders:read")
    body = redeem(client, rp, code, verifier).get_json()
    assert body["scope"] == "openid"
    assert decode(client, body["access_token"]).claims["aud"] == USERINFO


def test_scopes_name_the_resource_when_no_resource_is_sent(client, auth, user, oauth_client, apis):
    # RFC 9068 §3: without resource, the scope infers the default resource indicator.
    auth.login()
    code, verifier = code_for(auth, oauth_client, "orders:read")
    body = redeem(client, oauth_client, code, verifier).get_json()
    claims = decode(client, body["access_token"]).claims
    assert claims["aud"] == ORDERS and claims["scope"] == "orders:read"


def test_scopes_of_two_resources_without_resource_is_invalid_scope(
    client, auth, user, oauth_client, apis
):
    # RFC 9068 §3: scopes that refer to different resources -> invalid_scope.
    auth.login()
    response, _, _ = authorize(auth, oauth_client, "orders:read inventory:read")
    assert query(response.headers["Location"])["error"] == "invalid_scope"


def test_scopes_of_other_resources_are_dropped_when_resource_is_named(
    client, auth, user, oauth_client, apis
):
    # RFC 8707 §2.1 / RFC 6749 §3.3: the grant covers the named resource's scopes only.
    auth.login()
    code, verifier = code_for(auth, oauth_client, "orders:read inventory:read", [ORDERS])
    body = redeem(client, oauth_client, code, verifier).get_json()
    assert body["scope"] == "orders:read"


def test_token_request_for_a_resource_outside_the_grant_is_invalid_target(
    client, auth, user, oauth_client, apis
):
    # RFC 8707 §2.2: the resource at the token endpoint must be one the grant was for; the
    # code is not used up by the refused request.
    auth.login()
    code, verifier = code_for(auth, oauth_client, "openid orders:read", [ORDERS])
    refused = redeem(client, oauth_client, code, verifier, [INVENTORY])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_target"
    assert redeem(client, oauth_client, code, verifier, [ORDERS]).status_code == 200


def test_grant_for_two_resources_gives_tokens_scoped_down_to_one(
    app, client, auth, user, oauth_client, apis
):
    # RFC 8707 §2.2: one authorization for several resources; each token request picks one
    # and gets a token with that aud and that resource's scopes; the refresh token keeps
    # the whole grant, so a later refresh can pick another resource.
    auth.login()
    scope = "openid offline_access orders:read inventory:read"
    code, verifier = code_for(auth, oauth_client, scope, [ORDERS, INVENTORY])
    first = redeem(client, oauth_client, code, verifier, [ORDERS]).get_json()
    claims = decode(client, first["access_token"]).claims
    assert claims["aud"] == [ORDERS, USERINFO]
    assert set(first["scope"].split()) == {"openid", "offline_access", "orders:read"}

    second = refresh(client, oauth_client, first["refresh_token"], [INVENTORY]).get_json()
    claims = decode(client, second["access_token"]).claims
    assert claims["aud"] == [INVENTORY, USERINFO]
    assert "inventory:read" in claims["scope"] and "orders:read" not in claims["scope"]
    row = stored_token(app, second["access_token"])
    assert row.resources == [ORDERS, INVENTORY]
    assert set(row.granted_scope.split()) == set(scope.split())

    both = refresh(client, oauth_client, second["refresh_token"]).get_json()
    assert decode(client, both["access_token"]).claims["aud"] == [ORDERS, INVENTORY, USERINFO]
    assert set(both["scope"].split()) == set(scope.split())


def test_refresh_for_a_resource_outside_the_grant_is_invalid_target(
    client, auth, user, oauth_client, apis
):
    # RFC 8707 §2.2: a refresh may narrow the resources, never widen them.
    auth.login()
    code, verifier = code_for(auth, oauth_client, "openid offline_access orders:read", [ORDERS])
    tokens = redeem(client, oauth_client, code, verifier).get_json()
    refused = refresh(client, oauth_client, tokens["refresh_token"], [INVENTORY])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_target"
    # The refused request did not rotate the refresh token away.
    assert refresh(client, oauth_client, tokens["refresh_token"]).status_code == 200


def test_refresh_scope_not_of_the_named_resource_is_invalid_scope(
    client, auth, user, oauth_client, apis
):
    # RFC 8707 §2.2 + RFC 6749 §6: the scope asked for must fit the resource asked for.
    auth.login()
    scope = "offline_access orders:read inventory:read"
    code, verifier = code_for(auth, oauth_client, scope, [ORDERS, INVENTORY])
    tokens = redeem(client, oauth_client, code, verifier).get_json()
    refused = refresh(
        client, oauth_client, tokens["refresh_token"], [ORDERS], scope="inventory:read"
    )
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_scope"


def test_client_credentials_with_resources(app, client, service, apis):
    # RFC 8707 §2: resource at the token endpoint (repeatable); without scope the default is
    # the resource's scopes (RFC 6749 §3.3).
    body = token_request(client, service, grant_type="client_credentials", resource=ORDERS)
    assert body.status_code == 200, body.get_json()
    claims = decode(client, body.get_json()["access_token"]).claims
    assert claims["aud"] == ORDERS and claims["sub"] == service.client_id
    assert claims["scope"] == "orders:read orders:write"
    narrowed = token_request(
        client, service, grant_type="client_credentials", resource=ORDERS, scope="orders:read"
    ).get_json()
    assert narrowed["scope"] == "orders:read"
    inferred = token_request(
        client, service, grant_type="client_credentials", scope="orders:write"
    ).get_json()
    assert decode(client, inferred["access_token"]).claims["aud"] == ORDERS


def test_client_credentials_repeated_resources_are_all_audiences(app, client, service, apis):
    # RFC 8707 §2: the parameter may be repeated to name several resources.
    make_resource(app, "https://api.example/billing", ["billing:read"], [service])
    data = MultiDict(
        [
            ("grant_type", "client_credentials"),
            ("resource", ORDERS),
            ("resource", "https://api.example/billing"),
            ("scope", "orders:read billing:read"),
        ]
    )
    response = client.post(
        "/token", data=data, headers=basic_auth(service.client_id, service.client_secret)
    )
    assert response.status_code == 200, response.get_json()
    claims = decode(client, response.get_json()["access_token"]).claims
    assert claims["aud"] == [ORDERS, "https://api.example/billing"]


def test_client_credentials_scope_of_another_resource_is_invalid_scope(client, service, apis):
    # RFC 6749 §5.2 invalid_scope: inventory:read is not a scope of the named resource.
    response = token_request(
        client, service, grant_type="client_credentials", resource=ORDERS, scope="inventory:read"
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"


@pytest.mark.parametrize("resource", ["http://[", "https://[::1/x", "/orders"])
def test_malformed_resource_is_invalid_target_at_token_and_par(client, service, oauth_client,
                                                               resource):  # fmt: skip
    # RFC 8707 §2: not an absolute URI -> invalid_target; urlsplit's ValueError on an
    # unclosed IPv6 bracket was a 500 (found by fuzzing).
    response = token_request(client, service, grant_type="client_credentials", resource=resource)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_target"
    pushed = client.post(
        "/par",
        data={"response_type": "code", "redirect_uri": oauth_client.redirect_uri,
              "scope": "openid", "resource": resource},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )  # fmt: skip
    assert pushed.status_code == 400 and pushed.get_json()["error"] == "invalid_target"


def test_unknown_resource_at_token_endpoint_is_invalid_target(client, service, apis):
    # RFC 8707 §2.
    response = token_request(
        client, service, grant_type="client_credentials", resource="https://nowhere.example/"
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_target"


def test_resource_lifetime_decides_the_token_lifetime(app, client, service):
    # Issue 4: a resource sets the access token lifetime of its tokens.
    make_resource(app, ORDERS, ["orders:read"], [service], lifetime=300)
    body = token_request(client, service, grant_type="client_credentials", resource=ORDERS)
    body = body.get_json()
    claims = decode(client, body["access_token"]).claims
    assert body["expires_in"] == 300 and claims["exp"] - claims["iat"] == 300


def test_resources_with_different_token_formats_are_invalid_target(app, client, service):
    # RFC 8707 §2: the server cannot issue one token fit for both -> invalid_target.
    make_resource(app, ORDERS, ["orders:read"], [service], token_format="jwt")
    make_resource(app, INVENTORY, ["inventory:read"], [service], token_format="opaque")
    data = MultiDict(
        [("grant_type", "client_credentials"), ("resource", ORDERS), ("resource", INVENTORY)]
    )
    response = client.post(
        "/token", data=data, headers=basic_auth(service.client_id, service.client_secret)
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_target"


def test_resource_server_introspects_the_opaque_tokens_for_its_resource(
    app, client, service, factory
):
    # RFC 7662 §2.1: the resource server authenticates (as its introspection client) and
    # learns about tokens meant for its resource; other clients learn only "inactive".
    api = factory.client(name="Orders API", grant_types=("client_credentials",), redirect_uris=())
    stranger = factory.client(name="Stranger")
    make_resource(
        app,
        ORDERS,
        ["orders:read"],
        [service],
        token_format="opaque",
        introspection_client_id=api.client_id,
    )
    token = token_request(
        client, service, grant_type="client_credentials", resource=ORDERS
    ).get_json()["access_token"]
    assert token.count(".") == 0  # opaque
    body = introspect(client, api, token).get_json()
    assert body["active"] is True and body["aud"] == ORDERS
    assert body["client_id"] == service.client_id and body["scope"] == "orders:read"
    assert introspect(client, stranger, token).get_json() == {"active": False}
