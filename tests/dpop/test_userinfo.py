"""DPoP at UserInfo, this server's protected resource (RFC 9449 §7, §7.1, §7.2, §9)."""

from __future__ import annotations

import pytest

from idp.oauth import dpop

from .conftest import USERINFO_URL
from .test_binding import code_exchange


@pytest.fixture
def bound(auth, user, oauth_client, prover) -> str:
    auth.login()
    body = code_exchange(auth, oauth_client, prover).get_json()
    assert body["token_type"] == "DPoP"
    return body["access_token"]


def call(client, token, prover=None, scheme="DPoP", method="GET", **proof):
    headers = {"Authorization": f"{scheme} {token}"}
    if prover is not None:
        proof.setdefault("access_token", token)
        headers["DPoP"] = prover.proof(method, USERINFO_URL, **proof)
    return client.open("/userinfo", method=method, headers=headers)


def challenged(response, error):
    # §7.1: 401 with a DPoP challenge naming the error and the accepted algorithms.
    assert response.status_code == 401, response.get_json()
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ")
    assert f'error="{error}"' in challenge
    assert 'algs="' in challenge and "ES256" in challenge
    return response


def test_bound_token_with_its_proof_gets_userinfo(client, bound, prover):
    # §7: Authorization: DPoP <token> with a proof by the bound key naming the token (ath).
    response = call(client, bound, prover)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["sub"]
    assert call(client, bound, prover, method="POST").status_code == 200


def test_bound_token_presented_as_bearer_is_refused(client, bound, prover):
    # §7.2: a DPoP-bound token is not a bearer token, with or without a proof.
    challenged(call(client, bound, scheme="Bearer"), "invalid_token")
    challenged(call(client, bound, prover, scheme="Bearer"), "invalid_token")


def test_missing_proof_is_refused(client, bound):
    challenged(call(client, bound), "invalid_dpop_proof")


def test_missing_ath_is_refused(client, bound, prover):
    # §4.3 item 12 / §7: ath is required with an access token.
    challenged(call(client, bound, prover, ath=None), "invalid_dpop_proof")


def test_wrong_ath_is_refused(client, bound, prover):
    challenged(call(client, bound, prover, ath=dpop.ath("another token")), "invalid_dpop_proof")


def test_proof_by_another_key_is_refused(client, bound, other_prover):
    # §4.3 item 12: the proof's key is the one the token is bound to.
    challenged(call(client, bound, other_prover), "invalid_token")


def test_wrong_htm_and_htu_are_refused(client, bound, prover):
    headers = {"Authorization": f"DPoP {bound}",
               "DPoP": prover.proof("POST", USERINFO_URL, access_token=bound)}  # fmt: skip
    challenged(client.get("/userinfo", headers=headers), "invalid_dpop_proof")
    headers["DPoP"] = prover.proof("GET", "http://localhost/token", access_token=bound)
    challenged(client.get("/userinfo", headers=headers), "invalid_dpop_proof")


def test_replayed_proof_is_refused(client, bound, prover):
    proof = prover.proof("GET", USERINFO_URL, access_token=bound)
    headers = {"Authorization": f"DPoP {bound}", "DPoP": proof}
    assert client.get("/userinfo", headers=headers).status_code == 200
    challenged(client.get("/userinfo", headers=headers), "invalid_dpop_proof")


def test_bearer_token_presented_with_dpop_scheme_is_refused(client, auth, user, oauth_client,
                                                            prover):  # fmt: skip
    auth.login()
    bearer = code_exchange(auth, oauth_client).get_json()["access_token"]
    challenged(call(client, bearer, prover), "invalid_token")
    assert call(client, bearer, scheme="Bearer").status_code == 200  # still a bearer token


def test_unknown_token_with_dpop_scheme_is_invalid_token(client, prover):
    challenged(call(client, "no-such-token", prover), "invalid_token")


def test_no_credentials_offers_both_schemes(client):
    # RFC 6750 §3 and RFC 9449 §7.1: each scheme's challenge, no error code.
    response = client.get("/userinfo")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert "Bearer" in challenge and "DPoP algs=" in challenge and "error=" not in challenge


@pytest.mark.config(DPOP_REQUIRE_NONCE=True)
def test_resource_nonce(client, auth, user, oauth_client, prover):
    # §9: use_dpop_nonce as a 401 DPoP challenge with a DPoP-Nonce header.
    auth.login()
    first = code_exchange(auth, oauth_client, prover)
    assert first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    code, verifier, _ = auth.get_code(oauth_client, "openid")
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": oauth_client.redirect_uri,
        },  # fmt: skip
        headers={
            "Authorization": first.request.headers["Authorization"],
            "DPoP": prover.proof(nonce=nonce),
        },  # fmt: skip
    )
    token = response.get_json()["access_token"]
    refused = challenged(call(client, token, prover), "use_dpop_nonce")
    nonce = refused.headers["DPoP-Nonce"]
    ok = call(client, token, prover, nonce=nonce)
    assert ok.status_code == 200, ok.get_json()
    assert ok.headers["DPoP-Nonce"]
