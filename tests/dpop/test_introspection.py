"""DPoP proofs a resource server received, checked by introspection (RFC 9449 §4.3, §7;
RFC 7662 §2). This server's extension: ``dpop_proof``, ``dpop_method``, ``dpop_uri``
(docs/fapi.md, "DPoP proofs at introspection")."""

from __future__ import annotations

import base64
import json
import time

import pytest

from idp.oauth import dpop

from ..helpers import basic_auth
from ..token_formats.conftest import make_resource
from .conftest import USERINFO_URL, client_credentials
from .test_binding import code_exchange

PAYMENTS = "https://api.example/payments"
CALL_URL = PAYMENTS + "/invoices/7"


@pytest.fixture
def payments_api(factory):
    """The resource server of the payments API: it introspects the tokens meant for it."""
    return factory.client(
        name="Payments API", grant_types=("client_credentials",), redirect_uris=(), scope=""
    )


@pytest.fixture
def payments(app, service, payments_api):
    make_resource(
        app, PAYMENTS, ["payments:read"], [service], introspection_client_id=payments_api.client_id
    )


@pytest.fixture
def bound(client, service, payments, prover) -> str:
    """A DPoP-bound access token (§5) of the service for the payments API."""
    response = client_credentials(
        client, service, prover.headers(), scope="payments:read", resource=PAYMENTS
    )
    body = response.get_json()
    assert body["token_type"] == "DPoP", body
    return body["access_token"]


@pytest.fixture
def bearer(client, service, payments) -> str:
    body = client_credentials(client, service, scope="payments:read", resource=PAYMENTS).get_json()
    assert body["token_type"] == "Bearer", body
    return body["access_token"]


def introspect(client, caller, token, proof=None, method="GET", uri=CALL_URL, **extra):
    data = {"token": token, "dpop_method": method, "dpop_uri": uri, **extra}
    if proof is not None:
        data["dpop_proof"] = proof
    data = {k: v for k, v in data.items() if v is not None}
    headers = basic_auth(caller.client_id, caller.client_secret)
    return client.post("/introspect", data=data, headers=headers)


def refused(response, error="invalid_dpop_proof"):
    # RFC 7662 §2.2: the token is not usable for this request, so it is not active; the
    # §7.1 error code the resource server can put in its own DPoP challenge.
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["active"] is False, body
    assert body["dpop_error"] == error, body
    assert set(body) == {"active", "dpop_error", "dpop_error_description"}
    return body


def test_valid_proof_gives_the_active_answer(client, bound, prover, payments_api):
    # §7: a proof by the bound key, for the method and URL the resource received, with ath.
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    response = introspect(client, payments_api, bound, proof, uri=CALL_URL + "?page=2")
    body = response.get_json()
    assert response.status_code == 200
    assert body["active"] is True, body
    assert body["token_type"] == "DPoP" and body["cnf"] == {"jkt": prover.jkt}  # §6.2
    assert "dpop_error" not in body
    assert response.headers["Cache-Control"] == "no-store"


def test_without_the_parameters_introspection_is_unchanged(client, bound, prover, payments_api):
    headers = basic_auth(payments_api.client_id, payments_api.client_secret)
    body = client.post("/introspect", data={"token": bound}, headers=headers).get_json()
    assert body["active"] is True and body["cnf"] == {"jkt": prover.jkt}


def test_htu_is_normalised(client, bound, prover, payments_api):
    # §4.3 item 9: scheme and host case, default port; no query or fragment compared.
    proof = prover.proof("POST", "HTTPS://API.example:443/payments/invoices/7", access_token=bound)
    body = introspect(client, payments_api, bound, proof, method="POST").get_json()
    assert body["active"] is True, body


def _unsigned(prover, alg):
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": prover.key.as_dict(private=False)}
    claims = {"jti": "x", "htm": "GET", "htu": CALL_URL, "iat": int(time.time())}

    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def _tampered(proof):
    head, payload, signature = proof.split(".")
    return f"{head}.{payload}.{signature[:-4]}AAAA"


# Each a proof that breaks one check of RFC 9449 §4.3 (item numbers).
BROKEN = {
    "not a JWT (item 2)": lambda p, at: "not.a-jwt",
    "typ (item 4)": lambda p, at: p.proof("GET", CALL_URL, access_token=at, header={"typ": "JWT"}),
    "alg none (item 5)": lambda p, at: _unsigned(p, "none"),
    "alg HS256 (item 5)": lambda p, at: _unsigned(p, "HS256"),
    "private jwk (item 7)": lambda p, at: p.proof(
        "GET", CALL_URL, access_token=at, header={"jwk": p.key.as_dict(private=True)}
    ),
    "signature (item 6)": lambda p, at: _tampered(p.proof("GET", CALL_URL, access_token=at)),
    "no jti (item 3)": lambda p, at: p.proof("GET", CALL_URL, access_token=at, jti=None),
    "no iat (item 3)": lambda p, at: p.proof("GET", CALL_URL, access_token=at, iat=None),
    "htm (item 8)": lambda p, at: p.proof("POST", CALL_URL, access_token=at),
    "htu (item 9)": lambda p, at: p.proof("GET", PAYMENTS + "/invoices/8", access_token=at),
    "malformed htu (item 9)": lambda p, at: p.proof("GET", "https://[", access_token=at),
    "htu with a bad port (item 9)": lambda p, at: p.proof(
        "GET", "https://api.example:99999/payments/invoices/7", access_token=at
    ),
    "iat too old (item 11)": lambda p, at: p.proof(
        "GET", CALL_URL, access_token=at, iat=int(time.time()) - 3600
    ),
    "iat in the future (item 11)": lambda p, at: p.proof(
        "GET", CALL_URL, access_token=at, iat=int(time.time()) + 3600
    ),
    "no ath (item 12)": lambda p, at: p.proof("GET", CALL_URL),
    "wrong ath (item 12)": lambda p, at: p.proof(
        "GET", CALL_URL, access_token=at, ath=dpop.ath("another token")
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_each_proof_check_refuses(client, bound, prover, payments_api, case):
    refused(introspect(client, payments_api, bound, BROKEN[case](prover, bound)))
    # The token itself is untouched: with a good proof it is active.
    good = prover.proof("GET", CALL_URL, access_token=bound)
    assert introspect(client, payments_api, bound, good).get_json()["active"] is True


def test_proof_by_another_key_is_refused(client, bound, other_prover, payments_api):
    # §4.3 item 12 / §6: the proof's key thumbprint is the token's cnf.jkt.
    proof = other_prover.proof("GET", CALL_URL, access_token=bound)
    refused(introspect(client, payments_api, bound, proof), "invalid_token")


def test_replayed_proof_is_refused(client, bound, prover, payments_api):
    # §11.1: a jti is accepted once.
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    assert introspect(client, payments_api, bound, proof).get_json()["active"] is True
    body = refused(introspect(client, payments_api, bound, proof))
    assert "replay" in body["dpop_error_description"]


def test_bearer_token_with_a_proof_is_refused(client, bearer, prover, payments_api):
    # §7.2 (the other way round): a proof names a DPoP-bound token; a bearer token has none.
    proof = prover.proof("GET", CALL_URL, access_token=bearer)
    refused(introspect(client, payments_api, bearer, proof), "invalid_token")
    # Received without a proof, the bearer token is usable.
    assert introspect(client, payments_api, bearer).get_json()["active"] is True


def test_bound_token_without_a_proof_is_refused(client, bound, payments_api):
    # §7.2: a DPoP-bound token is not a bearer token.
    refused(introspect(client, payments_api, bound), "invalid_token")
    refused(introspect(client, payments_api, bound, ""), "invalid_token")


@pytest.mark.parametrize("missing", ["dpop_method", "dpop_uri"])
def test_proof_without_method_or_uri_is_invalid_request(client, bound, prover, payments_api,
                                                        missing):  # fmt: skip
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    response = introspect(client, payments_api, bound, proof, **{missing[5:]: None})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "uri",
    ["/payments/invoices/7", "http://api.example/payments", "https://api.example/p#frag",
     "ftp://api.example/payments", "https://:443/x"],
)  # fmt: skip
def test_dpop_uri_must_be_an_absolute_https_url(client, bound, prover, payments_api, uri):
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    response = introspect(client, payments_api, bound, proof, uri=uri)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_bad_method_is_invalid_request(client, bound, prover, payments_api):
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    response = introspect(client, payments_api, bound, proof, method="GET /x")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "uri",
    [
        "https://api.example/paymentsX/1",
        "https://api.example/orders",
        "https://evil.example/payments/1",
    ],
)
def test_dpop_uri_outside_the_callers_resource_is_refused(client, bound, prover, payments_api,
                                                          uri):  # fmt: skip
    # RFC 8707: the token is for the payments API; the caller serves it, and only there.
    proof = prover.proof("GET", uri, access_token=bound)
    refused(introspect(client, payments_api, bound, proof, uri=uri), "invalid_token")


def test_token_client_is_not_the_resource_server(client, bound, prover, service):
    # The service may introspect its own token, but it does not serve the payments API.
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    refused(introspect(client, service, bound, proof), "invalid_token")


def test_caller_without_permission_learns_nothing(client, bound, prover, factory):
    # RFC 7662 §2.2: "active": false and nothing else; the proof is not looked at.
    stranger = factory.client(
        name="Stranger", grant_types=("client_credentials",), redirect_uris=(), scope=""
    )
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    assert introspect(client, stranger, bound, proof).get_json() == {"active": False}
    assert introspect(client, stranger, bound).get_json() == {"active": False}


def test_unauthenticated_caller_gets_401(client, bound, prover):
    proof = prover.proof("GET", CALL_URL, access_token=bound)
    data = {"token": bound, "dpop_proof": proof, "dpop_method": "GET", "dpop_uri": CALL_URL}
    assert client.post("/introspect", data=data).status_code == 401


@pytest.mark.config(DPOP_REQUIRE_NONCE=True)
def test_server_nonce_is_not_asked_of_resource_proofs(client, service, payments, prover,
                                                      payments_api):  # fmt: skip
    # §9: a resource's nonces are its own; this server's nonce is for its own endpoints.
    first = client_credentials(client, service, prover.headers(), scope="payments:read")
    assert first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    token = client_credentials(
        client, service, prover.headers(nonce=nonce), scope="payments:read", resource=PAYMENTS
    ).get_json()["access_token"]
    proof = prover.proof("GET", CALL_URL, access_token=token)
    assert introspect(client, payments_api, token, proof).get_json()["active"] is True


# --- one replay store for UserInfo and introspection (§11.1) ------------------------------


@pytest.fixture
def userinfo_token(auth, user, oauth_client, prover) -> str:
    auth.login()
    body = code_exchange(auth, oauth_client, prover).get_json()
    assert body["token_type"] == "DPoP"
    return body["access_token"]


def _userinfo(client, token, proof):
    return client.get("/userinfo", headers={"Authorization": f"DPoP {token}", "DPoP": proof})


def test_proof_used_at_userinfo_is_refused_at_introspection(client, userinfo_token, prover,
                                                            oauth_client):  # fmt: skip
    proof = prover.proof("GET", USERINFO_URL, access_token=userinfo_token)
    assert _userinfo(client, userinfo_token, proof).status_code == 200
    body = refused(introspect(client, oauth_client, userinfo_token, proof, uri=USERINFO_URL))
    assert "replay" in body["dpop_error_description"]


def test_proof_used_at_introspection_is_refused_at_userinfo(client, userinfo_token, prover,
                                                            oauth_client):  # fmt: skip
    proof = prover.proof("GET", USERINFO_URL, access_token=userinfo_token)
    response = introspect(client, oauth_client, userinfo_token, proof, uri=USERINFO_URL)
    assert response.get_json()["active"] is True
    refused_there = _userinfo(client, userinfo_token, proof)
    assert refused_there.status_code == 401
    assert 'error="invalid_dpop_proof"' in refused_there.headers["WWW-Authenticate"]


def test_refresh_token_with_a_proof_is_refused(client, auth, user, oauth_client, prover):
    # Refresh tokens are for the token endpoint, never a resource.
    auth.login()
    refresh_token = code_exchange(auth, oauth_client, prover).get_json()["refresh_token"]
    proof = prover.proof("GET", USERINFO_URL, access_token=refresh_token)
    refused(
        introspect(client, oauth_client, refresh_token, proof, uri=USERINFO_URL), "invalid_token"
    )
