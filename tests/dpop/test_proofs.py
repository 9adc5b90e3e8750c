"""DPoP proofs at the token endpoint: RFC 9449 §4.3, every check, and the RFC's examples."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jws
from joserfc.jwk import OctKey

from idp import create_app
from idp.oauth import dpop

from .conftest import TOKEN_URL, client_credentials
from .proofs import Prover

# RFC 9449 §4.1 Figure 4 (= §4.2 Figure 2): the example proof, its key's thumbprint (§6.1
# Figure 9 "0ZcOCORZ..."), and §7.1's access token with its ath (Figure 12 / 13).
RFC_PROOF = (
    "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0"
    "VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10"
    "NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoi"
    "UE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-"
    "GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg"
)
RFC_JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
RFC_ACCESS_TOKEN = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
RFC_ATH = "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


@pytest.fixture
def service(factory):
    return factory.client(
        name="Service", grant_types=("client_credentials",), redirect_uris=(), scope="api.read"
    )


def refused(response, error="invalid_dpop_proof"):
    # RFC 9449 §5: a token request with an invalid proof is 400 invalid_dpop_proof.
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"] == error
    assert "access_token" not in response.get_json()
    return response


# --- the RFC's own examples ---------------------------------------------------------------


def test_rfc_example_proof_is_accepted_at_its_time(app, monkeypatch):
    # RFC 9449 §4.1 Figure 4: the example proof verifies, with the key of §6.1 Figure 9.
    monkeypatch.setattr(dpop.time, "time", lambda: 1562262616 + 1)
    with app.test_request_context("/token", method="POST"):
        jkt = dpop.check_proof(RFC_PROOF, "POST", "https://server.example.com/token")
    assert jkt == RFC_JKT


def test_rfc_example_proof_is_refused_today(app):
    # §4.3 item 11: issued in 2019, far outside the iat window.
    with app.test_request_context("/token", method="POST"), pytest.raises(dpop.DPoPError) as e:
        dpop.check_proof(RFC_PROOF, "POST", "https://server.example.com/token")
    assert "too old" in e.value.description


def test_rfc_example_ath():
    # RFC 9449 §7.1 Figure 13: ath is base64url(SHA-256(access token)).
    assert dpop.ath(RFC_ACCESS_TOKEN) == RFC_ATH


def test_rfc_example_thumbprint():
    # RFC 9449 §6.1: jkt is the RFC 7638 thumbprint of the proof's jwk.
    header = json.loads(base64.urlsafe_b64decode(RFC_PROOF.split(".")[0] + "=="))
    assert dpop.thumbprint(header["jwk"]) == RFC_JKT


@pytest.mark.parametrize(
    ("uri", "normal"),
    [
        ("HTTPS://Server.Example.COM/token", "https://server.example.com/token"),
        ("https://server.example.com:443/token", "https://server.example.com/token"),
        ("http://localhost:80/token?x=1#f", "http://localhost/token"),
        ("http://localhost:5000/token", "http://localhost:5000/token"),
        ("https://server.example.com", "https://server.example.com/"),
    ],
)
def test_htu_is_normalised(uri, normal):
    # §4.3 item 9: RFC 3986 §6.2.2-6.2.3 normalisation, query and fragment ignored.
    assert dpop.normalise_uri(uri) == normal


# --- a valid proof ------------------------------------------------------------------------


def test_valid_proof_binds_the_token(client, service, prover):
    # §5: token_type DPoP; §6.2 introspection shows the binding.
    response = client_credentials(client, service, prover.headers())
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "DPoP"
    from ..helpers import basic_auth

    info = client.post(
        "/introspect",
        data={"token": body["access_token"]},
        headers=basic_auth(service.client_id, service.client_secret),
    ).get_json()
    assert info["active"] is True
    assert info["token_type"] == "DPoP"
    assert info["cnf"] == {"jkt": prover.jkt}


def test_without_proof_the_token_stays_bearer(client, service):
    response = client_credentials(client, service)
    assert response.get_json()["token_type"] == "Bearer"


def test_rsa_and_case_variants_of_htu_are_accepted(client, service, rsa_prover_key):
    prover = Prover(rsa_prover_key, alg="PS256")
    response = client_credentials(
        client, service, prover.headers(htu="HTTP://LOCALHOST:80/token?ignored=1")
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["token_type"] == "DPoP"


# --- §4.3: every check --------------------------------------------------------------------


def test_two_dpop_headers_are_refused(client, service, prover):
    # §4.3 item 1: exactly one DPoP HTTP request header field.
    headers = [("DPoP", prover.proof()), ("DPoP", prover.proof())]
    from ..helpers import basic_auth

    headers += list(basic_auth(service.client_id, service.client_secret).items())
    refused(client.post("/token", data={"grant_type": "client_credentials"}, headers=headers))


@pytest.mark.parametrize("value", ["not-a-jwt", "a.b.c", "e30.e30.", "x" * 9000])
def test_malformed_proof_is_refused(client, service, value):
    # §4.3 item 2: a well-formed JWT.
    refused(client_credentials(client, service, {"DPoP": value}))


@pytest.mark.parametrize("missing", ["jti", "htm", "htu", "iat"])
def test_proof_missing_a_claim_is_refused(client, service, prover, missing):
    # §4.3 item 3: all required claims (§4.2).
    refused(client_credentials(client, service, prover.headers(**{missing: None})))


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "DPOP+JWT"])
def test_wrong_typ_is_refused(client, service, prover, typ):
    # §4.3 item 4: typ is dpop+jwt.
    refused(client_credentials(client, service, prover.headers(header={"typ": typ})))


def test_alg_none_is_refused(client, service, prover):
    # §4.3 item 5: not none.
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": prover.key.as_dict(private=False)}
    claims = {"jti": "n1", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())}
    unsigned = ".".join(
        base64.urlsafe_b64encode(json.dumps(p).encode()).rstrip(b"=").decode()
        for p in (header, claims)
    )
    refused(client_credentials(client, service, {"DPoP": unsigned + "."}))


def test_symmetric_alg_is_refused(client, service):
    # §4.3 item 5: an asymmetric algorithm only (a MAC key proves nothing to others).
    key = OctKey.generate_key(256, private=True)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": key.as_dict()}
    claims = {"jti": "h1", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())}
    proof = jws.serialize_compact(header, json.dumps(claims), key, algorithms=["HS256"])
    refused(client_credentials(client, service, {"DPoP": proof}))


def test_private_key_in_jwk_is_refused(client, service, prover):
    # §4.3 item 7: the jwk header does not contain a private key.
    leaked = prover.key.as_dict(private=True)
    refused(client_credentials(client, service, prover.headers(header={"jwk": leaked})))


def test_bad_signature_is_refused(client, service, prover, other_prover):
    # §4.3 item 6: the signature verifies with the public key in the jwk header.
    proof = other_prover.proof(header={"jwk": prover.key.as_dict(private=False)})
    refused(client_credentials(client, service, {"DPoP": proof}))
    tampered = prover.proof()
    head, payload, sig = tampered.split(".")
    payload = (
        base64.urlsafe_b64encode(
            json.dumps(
                {"jti": "t", "htm": "POST", "htu": TOKEN_URL, "iat": int(time.time())}
            ).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    refused(client_credentials(client, service, {"DPoP": f"{head}.{payload}.{sig}"}))


def test_alg_not_matching_the_key_is_refused(client, service, prover):
    # §4.3 items 5-6: the header's alg is the one verified; an RSA alg on an EC key fails.
    head, payload, sig = prover.proof().split(".")
    header = json.loads(base64.urlsafe_b64decode(head + "=="))
    header["alg"] = "RS256"
    head = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    refused(client_credentials(client, service, {"DPoP": f"{head}.{payload}.{sig}"}))


def test_htm_mismatch_is_refused(client, service, prover):
    # §4.3 item 8: htm matches the request's method.
    refused(client_credentials(client, service, prover.headers(htm="GET")))
    refused(client_credentials(client, service, prover.headers(htm="post")))


@pytest.mark.parametrize(
    "htu",
    ["http://localhost/userinfo", "https://localhost/token", "http://evil.example/token",
     "http://localhost:8080/token", "http://localhost/token/"],
)  # fmt: skip
def test_htu_mismatch_is_refused(client, service, prover, htu):
    # §4.3 item 9: htu matches the request's URI (here: ISSUER + /token).
    refused(client_credentials(client, service, prover.headers(htu=htu)))


def test_too_old_proof_is_refused(client, service, prover):
    # §4.3 item 11: iat within an acceptable window (DPOP_PROOF_MAX_AGE + clock skew).
    refused(client_credentials(client, service, prover.headers(iat=int(time.time()) - 120)))


def test_proof_from_the_future_is_refused(client, service, prover):
    refused(client_credentials(client, service, prover.headers(iat=int(time.time()) + 60)))


def test_proof_within_the_clock_skew_is_accepted(client, service, prover):
    response = client_credentials(client, service, prover.headers(iat=int(time.time()) + 3))
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("iat", ["1700000000", True])
def test_non_numeric_iat_is_refused(client, service, prover, iat):
    refused(client_credentials(client, service, prover.headers(iat=iat)))


def test_replayed_jti_is_refused(client, service, prover):
    # §11.1: a proof (its jti) is accepted once.
    proof = prover.proof()
    assert client_credentials(client, service, {"DPoP": proof}).status_code == 200
    refused(client_credentials(client, service, {"DPoP": proof}))


def test_replay_is_refused_by_another_instance_sharing_the_database(
    app, app_config, client, service, prover
):
    # §11.1: the jti store is the database, so a second worker refuses a proof the first took.
    proof = prover.proof()
    assert client_credentials(client, service, {"DPoP": proof}).status_code == 200
    other = create_app(dict(app_config))
    try:
        refused(client_credentials(other.test_client(), service, {"DPoP": proof}))
        fresh = client_credentials(other.test_client(), service, prover.headers())
        assert fresh.status_code == 200
    finally:
        from idp import db

        db.engine(other).dispose()


# --- nonces (§8) --------------------------------------------------------------------------


@pytest.mark.config(DPOP_REQUIRE_NONCE=True)
def test_server_nonce_is_required_then_accepted(client, service, prover):
    # §8: use_dpop_nonce with a DPoP-Nonce header; the retry with that nonce succeeds.
    first = refused(client_credentials(client, service, prover.headers()), "use_dpop_nonce")
    nonce = first.headers["DPoP-Nonce"]
    assert nonce
    second = client_credentials(client, service, prover.headers(nonce=nonce))
    assert second.status_code == 200, second.get_json()
    assert second.headers["DPoP-Nonce"]  # §8.2: the next nonce comes with the answer
    refused(client_credentials(client, service, prover.headers(nonce="made-up")), "use_dpop_nonce")


@pytest.mark.config(DPOP_REQUIRE_NONCE=True, DPOP_NONCE_LIFETIME=60)
def test_nonces_rotate_and_the_previous_one_still_works(app, client, service, prover, monkeypatch):
    # §8/§9: nonces change over time; the previous window's one is still accepted.
    start = 1_800_000_000.0
    monkeypatch.setattr(dpop.time, "time", lambda: start)
    nonce = refused(client_credentials(client, service, prover.headers(iat=int(start))),
                    "use_dpop_nonce").headers["DPoP-Nonce"]  # fmt: skip
    monkeypatch.setattr(dpop.time, "time", lambda: start + 60)
    ok = client_credentials(client, service, prover.headers(iat=int(start + 60), nonce=nonce))
    assert ok.status_code == 200, ok.get_json()
    assert ok.headers["DPoP-Nonce"] != nonce  # a new window, a new nonce
    monkeypatch.setattr(dpop.time, "time", lambda: start + 120)
    stale = client_credentials(client, service, prover.headers(iat=int(start + 120), nonce=nonce))
    refused(stale, "use_dpop_nonce")


def test_discovery_lists_the_asymmetric_algorithms(client):
    # RFC 9449 §5.1: dpop_signing_alg_values_supported; never none or a MAC.
    algs = client.get("/.well-known/openid-configuration").get_json()[
        "dpop_signing_alg_values_supported"
    ]
    assert "ES256" in algs and "PS256" in algs
    assert not {"none", "HS256", "HS384", "HS512"} & set(algs)
