"""DPoP-bound tokens: every grant, cnf (RFC 9449 §6), refresh binding (§5), dpop_jkt (§10),
clients that require DPoP (§5.2), and storage of the binding."""

from __future__ import annotations

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, AuthorizationCode, Token

from ..grants.test_par import auth_params, authorize_with, consent, push
from ..helpers import basic_auth, query
from .conftest import PAR_URL, set_column, set_metadata


def token_request(auth, rp, data, prover=None, **proof):
    headers = basic_auth(rp.client_id, rp.client_secret) if rp.client_secret else {}
    if not rp.client_secret:
        data = {"client_id": rp.client_id, **data}
    if prover is not None:
        headers["DPoP"] = prover.proof(**proof)
    return auth.client.post("/token", data=data, headers=headers)


def code_exchange(auth, rp, prover=None, scope="openid profile offline_access", **extra):
    code, verifier, _ = auth.get_code(rp, scope, **extra)
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": rp.redirect_uri}  # fmt: skip
    return token_request(auth, rp, data, prover)


def refresh(auth, rp, refresh_token, prover=None):
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return token_request(auth, rp, data, prover)


def stored_tokens(app) -> list[Token]:
    with app.app_context():
        return list(db.session().scalars(select(Token).order_by(Token.id)))


def introspect(client, rp, token):
    headers = basic_auth(rp.client_id, rp.client_secret)
    return client.post("/introspect", data={"token": token}, headers=headers).get_json()


# --- the code flow ------------------------------------------------------------------------


def test_code_flow_with_dpop_binds_opaque_token(app, client, auth, user, oauth_client, prover):
    # RFC 9449 §5: token_type DPoP; the binding is stored (jkt) and introspected (§6.2).
    auth.login()
    response = code_exchange(auth, oauth_client, prover)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "DPoP"
    assert [row.jkt for row in stored_tokens(app)] == [prover.jkt]
    info = introspect(client, oauth_client, body["access_token"])
    assert info["cnf"] == {"jkt": prover.jkt} and info["token_type"] == "DPoP"
    # A refresh token is not "DPoP" itself; introspected it says refresh_token, no cnf.
    info = introspect(client, oauth_client, body["refresh_token"])
    assert info["token_type"] == "refresh_token" and "cnf" not in info


def test_jwt_access_token_carries_cnf_jkt(app, client, auth, user, oauth_client, prover):
    # RFC 9449 §6.1: {"cnf": {"jkt": <RFC 7638 thumbprint>}} in a JWT access token.
    set_column(app, oauth_client.client_id, access_token_format="jwt")
    auth.login()
    body = code_exchange(auth, oauth_client, prover).get_json()
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    claims = jwt.decode(body["access_token"], jwks).claims
    assert claims["cnf"] == {"jkt": prover.jkt}
    bearer = code_exchange(auth, oauth_client).get_json()
    assert "cnf" not in jwt.decode(bearer["access_token"], jwks).claims


def test_public_client_refresh_token_is_bound_to_the_key(
    app, auth, user, public_client, prover, other_prover
):
    # RFC 9449 §5: a public client's refresh token is bound; another key or none: invalid_grant.
    auth.login()
    body = code_exchange(auth, public_client, prover).get_json()
    for attempt in (refresh(auth, public_client, body["refresh_token"], other_prover),
                    refresh(auth, public_client, body["refresh_token"])):  # fmt: skip
        assert attempt.status_code == 400 and attempt.get_json()["error"] == "invalid_grant"
    again = refresh(auth, public_client, body["refresh_token"], prover)
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["token_type"] == "DPoP"
    assert stored_tokens(app)[-1].jkt == prover.jkt


def test_confidential_client_refresh_may_use_a_new_key(
    app, auth, user, oauth_client, prover, other_prover
):
    # RFC 9449 §5: a confidential client's refresh token is bound by client authentication;
    # the new access token is bound to the key of the refresh request.
    auth.login()
    body = code_exchange(auth, oauth_client, prover).get_json()
    again = refresh(auth, oauth_client, body["refresh_token"], other_prover)
    assert again.status_code == 200, again.get_json()
    assert stored_tokens(app)[-1].jkt == other_prover.jkt


def test_code_of_a_bearer_flow_still_works_without_dpop(auth, user, oauth_client):
    auth.login()
    assert code_exchange(auth, oauth_client).get_json()["token_type"] == "Bearer"


# --- dpop_jkt (§10) -----------------------------------------------------------------------


def test_dpop_jkt_binds_the_code(app, auth, user, public_client, prover, other_prover):
    # RFC 9449 §10: the code is redeemed only with a proof by the key named in dpop_jkt.
    auth.login()
    code, verifier, _ = auth.get_code(public_client, "openid", dpop_jkt=prover.jkt)
    with app.app_context():
        assert db.session().scalar(select(AuthorizationCode.dpop_jkt)) == prover.jkt
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": public_client.redirect_uri}  # fmt: skip
    for wrong in (other_prover, None):
        response = token_request(auth, public_client, data, wrong)
        assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    response = token_request(auth, public_client, data, prover)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["token_type"] == "DPoP"


def test_malformed_dpop_jkt_is_refused_at_authorize(auth, user, public_client):
    auth.login()
    params, _ = auth.code_flow_params(public_client, "openid", dpop_jkt="not a thumbprint")
    response = auth.authorize(params)
    assert response.status_code == 302
    assert query(response.headers["Location"])["error"] == "invalid_request"


def test_proof_at_par_binds_the_code(app, client, auth, user, oauth_client, prover, other_prover):
    # RFC 9449 §10.1: a DPoP proof at the PAR endpoint binds the code to its key.
    params, verifier = auth_params(oauth_client)
    headers = {**basic_auth(oauth_client.client_id, oauth_client.client_secret),
               "DPoP": prover.proof(htu=PAR_URL)}  # fmt: skip
    pushed = push(client, oauth_client, params, headers)
    assert pushed.status_code == 201, pushed.get_json()
    auth.login()
    response = authorize_with(client, oauth_client.client_id, pushed.get_json()["request_uri"])
    if response.status_code == 200:
        response, _ = consent(client, response)
    code = query(response.headers["Location"])["code"]
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": oauth_client.redirect_uri}  # fmt: skip
    wrong = token_request(auth, oauth_client, data, other_prover)
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    right = token_request(auth, oauth_client, data, prover)
    assert right.status_code == 200 and right.get_json()["token_type"] == "DPoP"


def test_par_dpop_jkt_must_match_the_proof(client, oauth_client, prover, other_prover):
    # RFC 9449 §10.1: dpop_jkt and a proof together must name the same key.
    params, _ = auth_params(oauth_client, dpop_jkt=other_prover.jkt)
    headers = {**basic_auth(oauth_client.client_id, oauth_client.client_secret),
               "DPoP": prover.proof(htu=PAR_URL)}  # fmt: skip
    response = push(client, oauth_client, params, headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_dpop_proof"


def test_invalid_proof_at_par_is_refused(client, oauth_client, prover):
    params, _ = auth_params(oauth_client)
    headers = {
        **basic_auth(oauth_client.client_id, oauth_client.client_secret),
        "DPoP": prover.proof(),
    }  # htu is the token endpoint, not /par
    response = push(client, oauth_client, params, headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_dpop_proof"


# --- clients that require DPoP (§5.2) -----------------------------------------------------


def test_client_requiring_dpop_must_send_a_proof(app, auth, user, oauth_client, prover):
    # RFC 9449 §5.2 dpop_bound_access_tokens: token requests without a proof are refused,
    # before the code is used up.
    set_metadata(app, oauth_client.client_id, dpop_bound_access_tokens=True)
    auth.login()
    code, verifier, _ = auth.get_code(oauth_client, "openid offline_access")
    data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": oauth_client.redirect_uri}  # fmt: skip
    refused = token_request(auth, oauth_client, data)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    body = token_request(auth, oauth_client, data, prover).get_json()
    assert body["token_type"] == "DPoP"
    # Refresh too.
    refused = refresh(auth, oauth_client, body["refresh_token"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    assert refresh(auth, oauth_client, body["refresh_token"], prover).status_code == 200


def test_client_requiring_dpop_at_client_credentials(app, client, factory, prover):
    service = factory.client(
        name="Svc", grant_types=("client_credentials",), redirect_uris=(), scope="api.read"
    )
    set_metadata(app, service.client_id, dpop_bound_access_tokens=True)
    headers = basic_auth(service.client_id, service.client_secret)
    data = {"grant_type": "client_credentials"}
    assert client.post("/token", data=data, headers=headers).status_code == 400
    headers["DPoP"] = prover.proof()
    response = client.post("/token", data=data, headers=headers)
    assert response.status_code == 200 and response.get_json()["token_type"] == "DPoP"


def test_no_audit_of_proofs_leaks_the_token(app, auth, user, oauth_client, prover):
    auth.login()
    body = code_exchange(auth, oauth_client, prover).get_json()
    with app.app_context():
        details = [str(e.details) for e in db.session().scalars(select(AuditEvent))]
    assert not any(body["access_token"] in d for d in details)


@pytest.mark.parametrize("value", [True, False])
def test_dynamic_registration_accepts_dpop_bound_access_tokens(app, client, value):
    # RFC 9449 §5.2 client metadata, registered (RFC 7591) and returned as registered.
    app.config["REGISTRATION"] = "open"
    response = client.post(
        "/register",
        json={
            "redirect_uris": ["https://rp.example/cb"],
            "dpop_bound_access_tokens": value,
            "token_endpoint_auth_method": "none",
        },  # fmt: skip
    )
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["dpop_bound_access_tokens"] is value


def test_dynamic_registration_refuses_a_non_boolean(app, client):
    app.config["REGISTRATION"] = "open"
    response = client.post(
        "/register",
        json={"redirect_uris": ["https://rp.example/cb"], "dpop_bound_access_tokens": "yes"},
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_client_metadata"


# --- the other grants: device code (RFC 8628), token exchange (RFC 8693) ------------------


def test_device_grant_issues_dpop_bound_tokens(app, client, auth, user, factory, prover):
    from ..grants.conftest import DEVICE_GRANT, device_authorization
    from ..grants.test_device import enter_code

    device = factory.client(name="TV", grant_types=(DEVICE_GRANT,), redirect_uris=())
    started = device_authorization(client, device).get_json()
    auth.login()
    enter_code(client, started["user_code"])
    response = client.post(
        "/token",
        data={"grant_type": DEVICE_GRANT, "device_code": started["device_code"]},
        headers={**basic_auth(device.client_id, device.client_secret), **prover.headers()},
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["token_type"] == "DPoP"
    assert stored_tokens(app)[-1].jkt == prover.jkt
