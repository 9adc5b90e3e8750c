"""OAuth 2.0 Token Exchange (RFC 8693) at the token endpoint: delegation, policy, errors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from idp import db
from idp.models import Resource, Token, secret_hash, utcnow
from idp.oauth.oidc import sign

from ..helpers import basic_auth
from .conftest import (
    INVENTORY,
    ORDERS,
    audit_events,
    decode,
    introspect,
    is_jwt,
    make_resource,
    set_client,
    stored_token,
    token_request,
)
from .test_resource_indicators import code_for, redeem

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"
ID = "urn:ietf:params:oauth:token-type:id_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"


@pytest.fixture
def orders_api(app, factory, oauth_client, apis):
    """The orders API's own client: it may exchange the RP's tokens for inventory tokens."""
    api = factory.client(
        name="Orders API", grant_types=("client_credentials", GRANT), redirect_uris=(), scope=""
    )
    set_client(
        app,
        api.client_id,
        token_exchange_policy={
            "audiences": [INVENTORY],
            "subject_clients": [oauth_client.client_id],
            "subject_token_types": ["access_token"],
        },
    )
    return api


@pytest.fixture
def user_tokens(client, auth, user, oauth_client, apis):
    """The user granted the RP orders and inventory; this token is for orders only."""
    auth.login()
    scope = "openid offline_access orders:read inventory:read"
    code, verifier = code_for(auth, oauth_client, scope, [ORDERS, INVENTORY])
    response = redeem(client, oauth_client, code, verifier, [ORDERS])
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def exchange(client, registered, subject_token, subject_type=ACCESS, **extra):
    data = MultiDict(
        [("grant_type", GRANT), ("subject_token", subject_token)]
        + ([("subject_token_type", subject_type)] if subject_type else [])
        + [(k, v) for k, v in extra.items() if not isinstance(v, list)]
        + [(k, item) for k, v in extra.items() if isinstance(v, list) for item in v]
    )
    return client.post(
        "/token", data=data, headers=basic_auth(registered.client_id, registered.client_secret)
    )


def error_of(response) -> str:
    assert response.status_code == 400, (response.status_code, response.get_json())
    return response.get_json()["error"]


def test_exchange_access_token_for_a_downstream_api(app, client, user, orders_api, user_tokens):
    # RFC 8693 §2.1-2.2.1: the orders API trades the user's token for one to inventory.
    response = exchange(client, orders_api, user_tokens["access_token"], audience=INVENTORY)
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["issued_token_type"] == ACCESS and body["token_type"] == "Bearer"
    assert body["scope"] == "inventory:read"  # granted by the user, offered by the target
    assert body["expires_in"] > 0 and "refresh_token" not in body
    decoded = decode(client, body["access_token"])
    assert decoded.header["typ"] == "at+jwt"
    claims = decoded.claims
    assert claims["aud"] == INVENTORY and claims["sub"] == user.sub
    assert claims["client_id"] == orders_api.client_id and "act" not in claims
    assert claims["auth_time"] == decode(client, user_tokens["access_token"]).claims["auth_time"]
    row = stored_token(app, body["access_token"])
    subject = stored_token(app, user_tokens["access_token"])
    assert row.grant_type == GRANT and row.user_id == subject.user_id
    assert row.family_id == subject.family_id and row.sid == subject.sid
    [event] = audit_events(app, "token.exchanged")
    assert event.actor == user.sub and event.target == orders_api.client_id
    assert event.details["audience"] == [INVENTORY]


def test_resource_parameter_names_the_target_too(client, orders_api, user_tokens):
    # RFC 8693 §2.1: resource (an absolute URI) or audience name the target service.
    response = exchange(client, orders_api, user_tokens["access_token"], resource=INVENTORY)
    assert response.status_code == 200, response.get_json()
    assert decode(client, response.get_json()["access_token"]).claims["aud"] == INVENTORY


def test_actor_token_adds_the_act_claim(app, client, user, orders_api, user_tokens):
    # RFC 8693 §1.1 / §4.1: delegation; the issued token says who acts for the subject.
    actor = token_request(client, orders_api, grant_type="client_credentials").get_json()
    response = exchange(
        client,
        orders_api,
        user_tokens["access_token"],
        audience=INVENTORY,
        actor_token=actor["access_token"],
        actor_token_type=ACCESS,
    )
    assert response.status_code == 200, response.get_json()
    token = response.get_json()["access_token"]
    claims = decode(client, token).claims
    assert claims["sub"] == user.sub
    assert claims["act"] == {"sub": orders_api.client_id, "client_id": orders_api.client_id}
    # RFC 8693 §4.1 / RFC 7662: introspection reports the actor too.
    inventory_view = introspect(client, orders_api, token).get_json()
    assert inventory_view["act"] == claims["act"]


def test_exchanged_token_exchanged_again_nests_the_earlier_actor(
    app, client, factory, user, orders_api, user_tokens
):
    # RFC 8693 §4.1: a chain of delegation nests the prior actor inside act.
    make_resource(app, "https://api.example/warehouse", ["warehouse:read"], [])
    inventory_api = factory.client(
        name="Inventory API", grant_types=("client_credentials", GRANT), redirect_uris=()
    )
    set_client(
        app,
        inventory_api.client_id,
        token_exchange_policy={
            "audiences": ["https://api.example/warehouse", INVENTORY],
            "subject_clients": [orders_api.client_id],
            "subject_token_types": ["access_token"],
        },
    )
    first_actor = token_request(client, orders_api, grant_type="client_credentials").get_json()
    first = exchange(
        client,
        orders_api,
        user_tokens["access_token"],
        audience=INVENTORY,
        actor_token=first_actor["access_token"],
        actor_token_type=ACCESS,
    ).get_json()
    second_actor = token_request(client, inventory_api, grant_type="client_credentials")
    second = exchange(
        client,
        inventory_api,
        first["access_token"],
        audience=INVENTORY,
        actor_token=second_actor.get_json()["access_token"],
        actor_token_type=ACCESS,
    )
    assert second.status_code == 200, second.get_json()
    act = decode(client, second.get_json()["access_token"]).claims["act"]
    assert act["sub"] == inventory_api.client_id
    assert act["act"]["sub"] == orders_api.client_id
    # The user never granted warehouse scopes: nothing to offer there.
    refused = exchange(
        client, inventory_api, first["access_token"], audience="https://api.example/warehouse"
    )
    assert error_of(refused) == "invalid_scope"


def test_id_token_subject_when_the_policy_allows_it(app, client, user, orders_api, user_tokens):
    # RFC 8693 §3: urn:ietf:params:oauth:token-type:id_token as subject_token_type.
    refused = exchange(client, orders_api, user_tokens["id_token"], ID, audience=INVENTORY)
    assert error_of(refused) == "invalid_request"  # §2.2.2: unacceptable by policy
    set_client(
        app,
        orders_api.client_id,
        token_exchange_policy={
            "audiences": [INVENTORY],
            "subject_clients": ["*"],
            "subject_token_types": ["access_token", "id_token"],
        },
    )
    response = exchange(client, orders_api, user_tokens["id_token"], ID, audience=INVENTORY)
    assert response.status_code == 200, response.get_json()
    claims = decode(client, response.get_json()["access_token"]).claims
    assert claims["sub"] == user.sub and claims["scope"] == "inventory:read"


def test_access_token_presented_as_id_token_is_invalid_request(
    app, client, orders_api, user_tokens
):
    # RFC 8693 §2.2.2 + RFC 9068 §2.1: an at+jwt is not an ID token, whatever the type says.
    set_client(
        app,
        orders_api.client_id,
        token_exchange_policy={
            "audiences": [INVENTORY],
            "subject_clients": ["*"],
            "subject_token_types": ["id_token"],
        },
    )
    response = exchange(client, orders_api, user_tokens["access_token"], ID, audience=INVENTORY)
    assert error_of(response) == "invalid_request"


def test_scope_narrowing_and_widening(client, orders_api, user_tokens):
    # RFC 8693 §2.1 scope: a narrower scope is granted; one the user never granted is
    # invalid_scope (RFC 6749 §5.2).
    ok = exchange(
        client, orders_api, user_tokens["access_token"], audience=INVENTORY, scope="inventory:read"
    )
    assert ok.status_code == 200 and ok.get_json()["scope"] == "inventory:read"
    wider = exchange(
        client,
        orders_api,
        user_tokens["access_token"],
        audience=INVENTORY,
        scope="inventory:read inventory:write",
    )
    assert error_of(wider) == "invalid_scope"
    token = user_tokens["access_token"]
    oidc = exchange(client, orders_api, token, audience=INVENTORY, scope="openid")
    assert error_of(oidc) == "invalid_scope"


def test_target_outside_the_policy_or_unknown_is_invalid_target(client, orders_api, user_tokens):
    # RFC 8693 §2.2.2: unwilling to issue a token for the target -> invalid_target.
    for audience in (ORDERS, "https://api.example/unknown", "inventory"):
        response = exchange(client, orders_api, user_tokens["access_token"], audience=audience)
        assert error_of(response) == "invalid_target", audience
    none = exchange(client, orders_api, user_tokens["access_token"])
    assert error_of(none) == "invalid_target"
    two = exchange(client, orders_api, user_tokens["access_token"], audience=[INVENTORY, ORDERS])
    assert error_of(two) == "invalid_target"


@pytest.mark.parametrize("problem", ["garbage", "revoked", "expired"])
def test_invalid_subject_token_is_invalid_request(app, client, orders_api, user_tokens, problem):
    # RFC 8693 §2.2.2: an invalid subject_token -> invalid_request.
    token = user_tokens["access_token"]
    if problem == "garbage":
        token = "not-a-token"
    else:
        with app.app_context():
            session = db.session()
            row = session.scalar(select(Token).where(Token.access_token_hash == secret_hash(token)))
            if problem == "revoked":
                row.revoked_at = utcnow()
            else:
                row.access_expires_at = utcnow() - timedelta(seconds=1)
            session.commit()
    response = exchange(client, orders_api, token, audience=INVENTORY)
    assert error_of(response) == "invalid_request"


def test_subject_token_of_a_client_outside_the_policy_is_invalid_request(
    app, client, auth, user, factory, orders_api, apis
):
    # RFC 8693 §2.2.2: a subject_token unacceptable by policy -> invalid_request.
    other = factory.client(name="Other RP")
    auth.login()
    tokens = auth.tokens(other, scope="openid")
    response = exchange(client, orders_api, tokens["access_token"], audience=INVENTORY)
    assert error_of(response) == "invalid_request"


def test_client_credentials_token_is_no_subject(client, orders_api, service, user_tokens):
    # RFC 8693 §2.2.2: this server exchanges tokens of users only.
    set_client_tokens = token_request(client, service, grant_type="client_credentials").get_json()
    response = exchange(client, orders_api, set_client_tokens["access_token"], audience=INVENTORY)
    assert error_of(response) == "invalid_request"


def test_missing_or_unsupported_parameters_are_invalid_request(client, orders_api, user_tokens):
    # RFC 8693 §2.1 / §2.2.2: subject_token_type is required; actor_token_type comes with
    # actor_token; unsupported token types are invalid_request.
    token = user_tokens["access_token"]
    assert error_of(exchange(client, orders_api, token, None, audience=INVENTORY)) == (
        "invalid_request"
    )
    unsupported = exchange(
        client, orders_api, token, "urn:ietf:params:oauth:token-type:saml2", audience=INVENTORY
    )
    assert error_of(unsupported) == "invalid_request"
    lone_actor = exchange(client, orders_api, token, audience=INVENTORY, actor_token=token)
    assert error_of(lone_actor) == "invalid_request"
    wanted = exchange(
        client,
        orders_api,
        token,
        audience=INVENTORY,
        requested_token_type="urn:ietf:params:oauth:token-type:refresh_token",
    )
    assert error_of(wanted) == "invalid_request"


def test_actor_token_of_another_client_is_invalid_request(client, orders_api, service, user_tokens):
    # RFC 8693 §2.2.2: the actor must be the calling client (or someone signed in to it).
    other_actor = token_request(client, service, grant_type="client_credentials").get_json()
    response = exchange(
        client,
        orders_api,
        user_tokens["access_token"],
        audience=INVENTORY,
        actor_token=other_actor["access_token"],
        actor_token_type=ACCESS,
    )
    assert error_of(response) == "invalid_request"


def test_requested_token_type_jwt(app, client, orders_api, user_tokens):
    # RFC 8693 §3: the jwt token type; refused where the target takes opaque tokens.
    token = user_tokens["access_token"]
    response = exchange(client, orders_api, token, audience=INVENTORY, requested_token_type=JWT)
    assert response.status_code == 200 and response.get_json()["issued_token_type"] == JWT
    assert is_jwt(response.get_json()["access_token"])
    with app.app_context():
        session = db.session()
        session.scalar(
            select(Resource).where(Resource.identifier == INVENTORY)
        ).token_format = "opaque"
        session.commit()
    refused = exchange(client, orders_api, token, audience=INVENTORY, requested_token_type=JWT)
    assert error_of(refused) == "invalid_request"
    opaque = exchange(client, orders_api, user_tokens["access_token"], audience=INVENTORY)
    assert opaque.status_code == 200 and not is_jwt(opaque.get_json()["access_token"])


def test_client_without_policy_is_unauthorized_client(app, client, factory, apis, user_tokens):
    # RFC 6749 §5.2: the client is not allowed this grant type.
    bare = factory.client(name="Bare", grant_types=(GRANT,), redirect_uris=())
    response = exchange(client, bare, user_tokens["access_token"], audience=INVENTORY)
    assert error_of(response) == "unauthorized_client"


def test_public_client_cannot_exchange(app, client, public_client, user_tokens):
    # RFC 8693 §2.1 + RFC 6749 §3.2.1: the client authenticates; a public one cannot.
    set_client(
        app,
        public_client.client_id,
        grant_types=["authorization_code", GRANT],
        token_exchange_policy={"audiences": [INVENTORY], "subject_clients": ["*"]},
    )
    response = client.post(
        "/token",
        data={
            "grant_type": GRANT,
            "client_id": public_client.client_id,
            "subject_token": user_tokens["access_token"],
            "subject_token_type": ACCESS,
            "audience": INVENTORY,
        },
    )
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


def test_revoking_the_subject_grant_revokes_the_exchanged_token(
    client, oauth_client, orders_api, user_tokens
):
    # RFC 7009 §2.1: revoking the refresh token ends the grant, and the tokens derived from
    # it by exchange share its family.
    exchanged = exchange(
        client, orders_api, user_tokens["access_token"], audience=INVENTORY
    ).get_json()
    assert introspect(client, orders_api, exchanged["access_token"]).get_json()["active"] is True
    client.post(
        "/revoke",
        data={"token": user_tokens["refresh_token"]},
        headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
    )
    assert introspect(client, orders_api, exchanged["access_token"]).get_json() == {"active": False}


def test_expired_id_token_subject_is_invalid_request(app, client, user, orders_api, user_tokens):
    # RFC 8693 §2.2.2: an expired ID token is an invalid subject_token (OIDC Core §2 exp).
    set_client(
        app,
        orders_api.client_id,
        token_exchange_policy={
            "audiences": [INVENTORY],
            "subject_clients": ["*"],
            "subject_token_types": ["id_token"],
        },
    )
    claims = decode(client, user_tokens["id_token"]).claims
    with app.test_request_context():
        expired = sign(
            {**claims, "iat": claims["iat"] - 7200, "exp": claims["iat"] - 3600}, "RS256"
        )
    response = exchange(client, orders_api, expired, ID, audience=INVENTORY)
    assert error_of(response) == "invalid_request"
