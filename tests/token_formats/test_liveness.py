"""The one liveness rule at the endpoints that take an ID token or a resource's token
(issue 19 §5, §6): the client enabled, the user active, the session live, the consent there.
"""

from __future__ import annotations

import pytest

from ..helpers import basic_auth, csrf_token
from .conftest import INVENTORY, introspect, make_resource, set_client
from .test_resource_indicators import code_for, redeem
from .test_token_exchange import ID, exchange, orders_api, user_tokens  # noqa: F401

REPORTS = "https://api.example/reports"


@pytest.fixture
def id_token_exchange(app, oauth_client, orders_api, user_tokens):  # noqa: F811
    """The orders API may exchange the RP's ID tokens; returns a function doing it."""
    set_client(
        app,
        orders_api.client_id,
        token_exchange_policy={
            "audiences": [INVENTORY],
            "subject_clients": [oauth_client.client_id],
            "subject_token_types": ["id_token"],
        },
    )
    return lambda: exchange(
        app.test_client(), orders_api, user_tokens["id_token"], ID, audience=INVENTORY
    )


def test_id_token_exchange_ends_with_the_session(auth, id_token_exchange):
    # Issue 19 §5: a token exchanged from an ID token would carry the ended session's sid;
    # once the session ended the subject_token is no longer valid (RFC 8693 §2.2.2).
    assert id_token_exchange().status_code == 200
    auth.logout()
    response = id_token_exchange()
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_id_token_exchange_ends_with_revoked_access(client, oauth_client, id_token_exchange):
    # Issue 19 §5: "revoke access" removes the consent the ID token was issued under.
    assert id_token_exchange().status_code == 200
    page = client.get("/account/")
    revoked = client.post(
        f"/account/apps/{oauth_client.client_id}/revoke",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert revoked.status_code == 302
    response = id_token_exchange()
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_a_disabled_clients_token_introspects_inactive_at_its_resource(
    app, client, auth, user, oauth_client, service, apis
):
    # RFC 7662 §2.2: a token whose client is disabled is not active; the resource server
    # allowed to introspect it must hear so (UserInfo already refused it).
    make_resource(
        app, REPORTS, ["reports:read"], [oauth_client], introspection_client_id=service.client_id
    )
    auth.login()
    code, verifier = code_for(auth, oauth_client, "reports:read", [REPORTS])
    token = redeem(client, oauth_client, code, verifier, [REPORTS]).get_json()["access_token"]
    assert introspect(client, service, token).get_json()["active"] is True
    set_client(app, oauth_client.client_id, disabled=True)
    assert introspect(client, service, token).get_json() == {"active": False}


def test_revoking_the_subject_grant_while_exchanging_revokes_the_new_token(
    app,
    client,
    oauth_client,
    orders_api,  # noqa: F811
    user_tokens,  # noqa: F811
    monkeypatch,
):
    # RFC 7009 §2.1 + RFC 8693: the exchanged token joins the subject's family; a family
    # revoked after the exchange checked its subject but before the INSERT takes it too.
    from idp.oauth import tokens

    original, pending = tokens.insert, [True]

    def racing(session, row):
        if pending:
            pending.pop()
            revoked = app.test_client().post(
                "/revoke",
                data={"token": user_tokens["refresh_token"]},
                headers=basic_auth(oauth_client.client_id, oauth_client.client_secret),
            )
            assert revoked.status_code == 200
        return original(session, row)

    monkeypatch.setattr(tokens, "insert", racing)
    response = exchange(client, orders_api, user_tokens["access_token"], audience=INVENTORY)
    assert response.status_code == 200
    monkeypatch.undo()
    exchanged = response.get_json()["access_token"]
    assert introspect(client, orders_api, exchanged).get_json() == {"active": False}
