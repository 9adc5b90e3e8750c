"""Client authentication with JWTs (RFC 7523 §2.2, §3; OIDC Core §9): private_key_jwt and
client_secret_jwt at every endpoint that authenticates clients, and the jti replay store."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuditEvent, Client, JWTReplay, Token, utcnow

from ..conftest import ISSUER
from ..helpers import basic_auth, pkce_pair, serving_thread
from .conftest import (
    DEVICE_GRANT,
    assertion,
    client_assertion_form,
    client_credentials,
    make_client,
    public_jwks,
    race,
    secret_key,
)


def replay_events(app) -> int:
    with app.app_context():
        return db.session().scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.event == "client.assertion_replayed")
        )


# --- private_key_jwt and client_secret_jwt at the token endpoint --------------------------


def test_private_key_jwt_authenticates_the_client(app, client, pkjwt_client):
    # RFC 7523 §2.2, OIDC Core §9: a JWT signed with a registered key authenticates the client.
    response = client_credentials(client, assertion(pkjwt_client.client_id, pkjwt_client.key))
    assert response.status_code == 200, response.get_json()
    with app.app_context():
        token = db.session().scalar(select(Token))
        assert token.client_id == pkjwt_client.client_id


def test_client_secret_jwt_authenticates_the_client(client, csjwt_client):
    # OIDC Core §9: client_secret_jwt is an HMAC SHA-256 with the client secret as key.
    token = assertion(csjwt_client.client_id, secret_key(csjwt_client.client_secret), alg="HS256")
    response = client_credentials(client, token)
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize("alg", ["RS384", "PS256", "RS512"])
def test_other_rsa_algorithms_are_accepted(client, pkjwt_client, alg):
    # RFC 8414 §2: each token_endpoint_auth_signing_alg_values_supported value works.
    token = assertion(pkjwt_client.client_id, pkjwt_client.key, alg=alg)
    assert client_credentials(client, token).status_code == 200


def test_ec_key_is_accepted(app, client, ec_key):
    # RFC 7518 §3.4: ES256 client keys.
    registered = make_client(
        app, auth_method="private_key_jwt", metadata={"jwks": public_jwks(ec_key)}
    )
    token = assertion(registered.client_id, ec_key, alg="ES256")
    assert client_credentials(client, token).status_code == 200


def test_issuer_is_an_accepted_audience(client, pkjwt_client):
    # RFC 7523 §3 item 3: the audience identifies the authorization server (its issuer).
    token = assertion(pkjwt_client.client_id, pkjwt_client.key, aud=ISSUER)
    assert client_credentials(client, token).status_code == 200


def test_audience_list_containing_the_token_endpoint_is_accepted(client, pkjwt_client):
    # RFC 7519 §4.1.3: aud may be an array; one value identifying this server suffices.
    token = assertion(
        pkjwt_client.client_id, pkjwt_client.key, aud=["https://other.example", ISSUER + "/token"]
    )
    assert client_credentials(client, token).status_code == 200


def test_code_flow_with_private_key_jwt(client, auth, user, pkjwt_client):
    # OIDC Core §9: the code is redeemed with private_key_jwt instead of a secret.
    auth.login()
    code, verifier, _ = auth.get_code(pkjwt_client)
    token = assertion(pkjwt_client.client_id, pkjwt_client.key)
    response = client.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": pkjwt_client.redirect_uri,
            "client_id": pkjwt_client.client_id,  # optional, and must match (RFC 7523 §3)
            **client_assertion_form(token),
        },
    )
    assert response.status_code == 200, response.get_json()
    assert "id_token" in response.get_json()


# --- what makes an assertion invalid -------------------------------------------------------


def refused(response) -> None:
    assert response.status_code in (400, 401)
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://elsewhere.example/token"},  # RFC 7523 §3 item 3
        {"aud": None},  # item 3: aud is required
        {"exp": None},  # item 4: exp is required
        {"exp": -120},  # item 4: expired (beyond the clock-skew leeway)
        {"nbf": 300},  # item 5: not yet valid
        {"iat": 300},  # issued in the future
        {"jti": None},  # item 7 and OIDC Core §9: jti is required
        {"iss": "someone-else"},  # item 1: iss is the client
    ],
    ids=["audience", "no-aud", "no-exp", "expired", "nbf", "iat-future", "no-jti", "iss"],
)
def test_invalid_claims_are_refused(app, client, pkjwt_client, claims):
    # Times are offsets from now, taken when the test runs: computed at collection, they
    # had passed by the time a slow run (> 5 min) reached the test.
    now = int(time.time())
    claims = {
        k: now + v if k in ("exp", "nbf", "iat") and isinstance(v, int) else v
        for k, v in claims.items()
    }
    token = assertion(pkjwt_client.client_id, pkjwt_client.key, **claims)
    refused(client_credentials(client, token))
    with app.app_context():
        assert db.session().scalar(select(func.count(Token.id))) == 0


@pytest.mark.config(CLIENT_ASSERTION_MAX_LIFETIME=300)
def test_long_lived_assertion_is_refused(client, pkjwt_client):
    # OIDC Core §9 / RFC 7523 §3: a short exp; a long one would keep its jti in the store.
    token = assertion(pkjwt_client.client_id, pkjwt_client.key, lifetime=3600)
    refused(client_credentials(client, token))


def test_subject_must_be_a_known_client(client, pkjwt_client):
    # RFC 7523 §3 item 2: sub is the client_id of the client.
    token = assertion("unknown-client", pkjwt_client.key)
    refused(client_credentials(client, token))


def test_client_id_parameter_must_match_the_assertion(client, factory, pkjwt_client):
    # RFC 7523 §3 / OIDC Core §9: a client_id sent along is the assertion's subject.
    other = factory.client(grant_types=("client_credentials",), redirect_uris=())
    token = assertion(pkjwt_client.client_id, pkjwt_client.key)
    refused(client_credentials(client, token, client_id=other.client_id))


def test_key_not_registered_by_the_client_is_refused(client, pkjwt_client, other_rsa_key):
    # RFC 7523 §3 item 9: the signature must verify with the client's own keys.
    token = assertion(pkjwt_client.client_id, other_rsa_key, kid="client-key-1")
    refused(client_credentials(client, token))


def test_unsigned_assertion_is_refused(client, pkjwt_client):
    # RFC 7523 §3 item 9: the JWT MUST be signed; alg none is never accepted.
    import base64

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": pkjwt_client.client_id,
        "sub": pkjwt_client.client_id,
        "aud": ISSUER + "/token",
        "exp": now + 60,
        "jti": "x1",
    }
    token = f"{part({'alg': 'none'})}.{part(claims)}."
    refused(client_credentials(client, token))


def test_hmac_with_the_public_key_is_refused(client, pkjwt_client):
    # Algorithm confusion: a private_key_jwt client's public key is not an HMAC secret.
    import base64
    import hashlib
    import hmac

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": pkjwt_client.client_id,
        "sub": pkjwt_client.client_id,
        "aud": ISSUER + "/token",
        "exp": now + 60,
        "jti": "confused",
    }
    header = {"alg": "HS256", "kid": "client-key-1"}
    signing_input = f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}"
    for secret in (
        pkjwt_client.key.as_pem(private=False),
        json.dumps(pkjwt_client.key.as_dict(private=False)).encode(),
    ):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        refused(client_credentials(client, f"{signing_input}.{part(mac)}"))


def test_client_registered_for_secret_jwt_cannot_use_basic(client, csjwt_client):
    # OIDC Core §9 / RFC 7591 §2: a client uses the method it registered, and no other.
    response = client.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "api.read"},
        headers=basic_auth(csjwt_client.client_id, csjwt_client.client_secret),
    )
    refused(response)


def test_basic_client_cannot_use_a_secret_jwt(client, factory):
    # The method is bound to the client: a client_secret_basic client's secret signs nothing.
    registered = factory.client(grant_types=("client_credentials",), redirect_uris=())
    token = assertion(registered.client_id, secret_key(registered.client_secret), alg="HS256")
    refused(client_credentials(client, token))


def test_secret_jwt_signed_with_a_wrong_secret_is_refused(client, csjwt_client):
    token = assertion(csjwt_client.client_id, secret_key("x" * 43), alg="HS256")
    refused(client_credentials(client, token))


# --- jti: never accepted twice (RFC 7523 §3 item 7) ----------------------------------------


def test_replayed_assertion_is_refused_and_audited(app, client, pkjwt_client):
    token = assertion(pkjwt_client.client_id, pkjwt_client.key)
    assert client_credentials(client, token).status_code == 200
    refused(client_credentials(client, token))
    assert replay_events(app) == 1
    with app.app_context():
        assert db.session().scalar(select(func.count(JWTReplay.key_hash))) == 1


def test_jti_is_remembered_across_endpoints(client, pkjwt_client):
    # The store is one per server: a jti used at /token cannot be used at /revoke either.
    token = assertion(pkjwt_client.client_id, pkjwt_client.key, aud=ISSUER)
    assert client_credentials(client, token).status_code == 200
    response = client.post("/revoke", data={"token": "x", **client_assertion_form(token)})
    refused(response)


def test_same_jti_from_two_clients_is_two_entries(app, client, pkjwt_client, rsa_key):
    # The jti is unique per issuer (RFC 7519 §4.1.7): another client may use the same value.
    other = make_client(app, auth_method="private_key_jwt", metadata={"jwks": public_jwks(rsa_key)})
    one = assertion(pkjwt_client.client_id, rsa_key, jti="shared")
    two = assertion(other.client_id, rsa_key, jti="shared")
    assert client_credentials(client, one).status_code == 200
    assert client_credentials(client, two).status_code == 200
    with app.app_context():
        assert db.session().scalar(select(func.count(JWTReplay.key_hash))) == 2
    # Each entry still refuses its own replay.
    refused(client_credentials(client, one))
    refused(client_credentials(client, two))


def test_jti_may_return_after_its_assertion_expired(app, client, pkjwt_client):
    # RFC 7523 §3 item 7: jti values are kept "for the length of time for which the JWT would
    # be considered valid"; after that, a new assertion may carry the value again.
    first = assertion(pkjwt_client.client_id, pkjwt_client.key, jti="daily")
    assert client_credentials(client, first).status_code == 200
    with app.app_context():
        session = db.session()
        row = session.scalar(select(JWTReplay))
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    second = assertion(pkjwt_client.client_id, pkjwt_client.key, jti="daily")
    assert client_credentials(client, second).status_code == 200


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_replays_have_exactly_one_winner(app, pkjwt_client, n):
    # RFC 7523 §3 item 7 with several workers: one atomic statement decides.
    token = assertion(pkjwt_client.client_id, pkjwt_client.key)
    responses = race(app, n, lambda http: client_credentials(http, token))
    outcome = Counter(r.status_code == 200 for r in responses)
    assert outcome == Counter({True: 1, False: n - 1})
    assert replay_events(app) == n - 1


# --- every endpoint that authenticates clients --------------------------------------------


def _revoke(http, form):
    return http.post("/revoke", data={"token": "unknown-token", **form})


def _introspect(http, form):
    return http.post("/introspect", data={"token": "unknown-token", **form})


def _par(http, form):
    _, challenge = pkce_pair()
    data = {
        "response_type": "code",
        "redirect_uri": "https://rp.example/cb",
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return http.post("/par", data={**data, **form})


def _device(http, form):
    return http.post("/device_authorization", data={"scope": "openid", **form})


ENDPOINTS = {
    "/revoke": (_revoke, 200),  # RFC 7009 §2.1
    "/introspect": (_introspect, 200),  # RFC 7662 §2.1
    "/par": (_par, 201),  # RFC 9126 §2
    "/device_authorization": (_device, 200),  # RFC 8628 §3.1
}


@pytest.mark.parametrize("path", list(ENDPOINTS))
@pytest.mark.parametrize("aud", ["issuer", "token", "endpoint"])
def test_assertions_work_at_every_client_endpoint(app, client, rsa_key, path, aud):
    # RFC 7523 §2.2 applies wherever clients authenticate; RFC 9126 §2: the issuer, the
    # token endpoint URL and the endpoint's own URL are all accepted audiences.
    registered = make_client(
        app,
        auth_method="private_key_jwt",
        metadata={"jwks": public_jwks(rsa_key)},
        grant_types=("authorization_code", DEVICE_GRANT),
    )
    audience = {"issuer": ISSUER, "token": ISSUER + "/token", "endpoint": ISSUER + path}[aud]
    call, status = ENDPOINTS[path]
    token = assertion(registered.client_id, rsa_key, aud=audience)
    response = call(client, client_assertion_form(token))
    assert response.status_code == status, response.get_json()
    # and a replay is refused there too
    refused(call(client, client_assertion_form(token)))


@pytest.mark.parametrize("path", list(ENDPOINTS))
def test_assertion_for_another_endpoint_is_refused(app, client, rsa_key, path):
    # An assertion made for one endpoint of another server-path is not this endpoint's.
    registered = make_client(
        app,
        auth_method="private_key_jwt",
        metadata={"jwks": public_jwks(rsa_key)},
        grant_types=("authorization_code", DEVICE_GRANT),
    )
    call, _ = ENDPOINTS[path]
    token = assertion(registered.client_id, rsa_key, aud=ISSUER + "/userinfo")
    refused(call(client, client_assertion_form(token)))


def test_secret_jwt_works_at_introspection(client, csjwt_client):
    # RFC 7662 §2.1 lets the server choose methods; every advertised one works here.
    token = assertion(csjwt_client.client_id, secret_key(csjwt_client.client_secret), alg="HS512")
    response = _introspect(client, client_assertion_form(token))
    assert response.status_code == 200
    assert response.get_json() == {"active": False}


# --- jwks_uri: fetched with a timeout, cached, re-fetched for a new kid ---------------------


class JWKSServer:
    """A client's jwks_uri on loopback that counts how often it is fetched."""

    def __init__(self, jwks: dict):
        self.jwks = jwks
        self.raw: bytes | None = None  # served instead of the JWK Set when set
        self.hits = 0
        self.delay = 0.0
        self.status = 200
        self.location: str | None = None  # a Location header (for redirects) when set
        self.chunked = False  # no Content-Length: the size is known only by reading
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                outer.hits += 1
                if outer.delay:
                    time.sleep(outer.delay)
                body = outer.raw or json.dumps(outer.jwks).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                if outer.location:
                    self.send_header("Location", outer.location)
                if outer.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for start in range(0, len(body), 4096):
                        chunk = body[start : start + 4096]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        self.thread = serving_thread(self.server)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def jwks_server(rsa_key):
    server = JWKSServer(public_jwks(rsa_key))
    yield server
    server.close()


@pytest.fixture
def uri_client(app, jwks_server):
    return make_client(app, auth_method="private_key_jwt", metadata={"jwks_uri": jwks_server.url})


def test_jwks_uri_is_fetched_once_and_cached(client, uri_client, rsa_key, jwks_server):
    # RFC 7591 §2 jwks_uri; fetched, then served from the worker's cache.
    for _ in range(3):
        token = assertion(uri_client.client_id, rsa_key)
        assert client_credentials(client, token).status_code == 200
    assert jwks_server.hits == 1


def test_new_kid_refetches_the_jwks_uri(
    app, client, uri_client, rsa_key, other_rsa_key, jwks_server
):
    # OIDC Core §10.1.1: a client rotates keys by publishing a new one at its jwks_uri.
    assert client_credentials(client, assertion(uri_client.client_id, rsa_key)).status_code == 200
    jwks_server.jwks = public_jwks(rsa_key, other_rsa_key)
    cache = app.extensions["idp.client_jwks"]
    fetched_at, keys = cache.entries[jwks_server.url]
    cache.entries[jwks_server.url] = (fetched_at - 30, keys)  # older than the re-fetch floor
    token = assertion(uri_client.client_id, other_rsa_key)
    assert client_credentials(client, token).status_code == 200
    assert jwks_server.hits == 2


def test_unknown_kid_does_not_refetch_at_every_request(
    client, uri_client, other_rsa_key, jwks_server
):
    # An attacker's unknown kids must not turn the server into a fetcher of the client's URL.
    for _ in range(3):
        refused(client_credentials(client, assertion(uri_client.client_id, other_rsa_key)))
    assert jwks_server.hits == 1


@pytest.mark.config(CLIENT_JWKS_TIMEOUT=0.2)
def test_slow_jwks_uri_times_out(client, uri_client, rsa_key, jwks_server):
    # A client's slow server cannot hold the token endpoint: a short timeout, then invalid_client.
    jwks_server.delay = 1.0
    refused(client_credentials(client, assertion(uri_client.client_id, rsa_key)))


def test_a_jwks_uri_nested_too_deep_is_invalid_client(client, uri_client, rsa_key, jwks_server):
    # A client's server answering deeply nested JSON (under the 64 KiB limit) made json.loads
    # raise RecursionError, not ValueError: the token endpoint answered 500 (found while fuzzing).
    jwks_server.raw = b"[" * 5000 + b"]" * 5000
    refused(client_credentials(client, assertion(uri_client.client_id, rsa_key)))


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_jwks_uri_is_not_followed(
    app, client, rsa_key, jwks_server, uri_client, status
):
    # SSRF (RFC 7591 §5, RFC 9700 §4.18): the server fetches the URL the client registered
    # and nothing else. The redirect target here even serves the right keys, so following
    # it would authenticate the client; it must not be requested at all.
    target = JWKSServer(public_jwks(rsa_key))
    try:
        jwks_server.status = status
        jwks_server.location = target.url
        refused(client_credentials(client, assertion(uri_client.client_id, rsa_key)))
        assert (jwks_server.hits, target.hits) == (1, 0)
    finally:
        target.close()


def padded_jwks(rsa_key, size: int) -> bytes:
    """A valid JWK Set of exactly size bytes (an extra member pads it; RFC 7517 §5 allows
    members a reader does not understand)."""
    body = public_jwks(rsa_key)
    bare = len(json.dumps({**body, "pad": ""}).encode())
    raw = json.dumps({**body, "pad": "x" * (size - bare)}).encode()
    assert len(raw) == size
    return raw


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_jwks_uri_over_64_kib_is_refused(client, uri_client, rsa_key, jwks_server, chunked):
    # A client's server cannot make the token endpoint read (and parse) an unbounded body:
    # a JWK Set one byte over 64 KiB is refused even though its keys are right; with and
    # without a Content-Length.
    jwks_server.chunked = chunked
    jwks_server.raw = padded_jwks(rsa_key, 64 * 1024 + 1)
    refused(client_credentials(client, assertion(uri_client.client_id, rsa_key)))
    assert jwks_server.hits == 1


def test_a_jwks_uri_of_exactly_64_kib_is_read(client, uri_client, rsa_key, jwks_server):
    jwks_server.raw = padded_jwks(rsa_key, 64 * 1024)
    assert client_credentials(client, assertion(uri_client.client_id, rsa_key)).status_code == 200


@pytest.mark.parametrize("outage", ["503", "closed"])
def test_the_last_good_key_set_is_used_while_the_clients_server_is_down(
    app, client, uri_client, rsa_key, jwks_server, outage
):
    # A client's server being down for a while must not lock the client out: once the cached
    # copy is due for a re-fetch and the fetch fails, the last good copy still verifies.
    assert client_credentials(client, assertion(uri_client.client_id, rsa_key)).status_code == 200
    cache = app.extensions["idp.client_jwks"]
    fetched_at, keys = cache.entries[jwks_server.url]
    stale = fetched_at - app.config["CLIENT_JWKS_CACHE_SECONDS"] - 1
    cache.entries[jwks_server.url] = (stale, keys)
    if outage == "503":
        jwks_server.status = 503
        jwks_server.raw = b"{}"
    else:
        jwks_server.close()
    assert client_credentials(client, assertion(uri_client.client_id, rsa_key)).status_code == 200
    if outage == "503":
        assert jwks_server.hits == 2  # it did try again: the copy was due
    # What the server answered while down did not replace the good copy.
    assert cache.entries[jwks_server.url][1] is keys


def test_unreachable_jwks_uri_is_invalid_client(app, client, rsa_key):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    registered = make_client(
        app,
        auth_method="private_key_jwt",
        metadata={"jwks_uri": f"http://127.0.0.1:{port}/jwks.json"},
    )
    refused(client_credentials(client, assertion(registered.client_id, rsa_key)))


# --- client_secret_jwt: the secret at rest ------------------------------------------------


def test_secret_jwt_secret_is_stored_encrypted_not_in_plaintext(app, csjwt_client):
    # The HMAC key must be recoverable by the server, but never sits in the database as is.
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == csjwt_client.client_id))
    assert row.client_secret_encrypted.startswith("v1.")
    assert csjwt_client.client_secret not in row.client_secret_encrypted
    assert row.client_secret_hash != csjwt_client.client_secret


def test_other_clients_keep_only_a_hash(app, oauth_client, pkjwt_client):
    with app.app_context():
        rows = db.session().scalars(select(Client)).all()
    assert all(r.client_secret_encrypted is None for r in rows)
    assert {r.client_id for r in rows if r.client_secret_hash is None} == {pkjwt_client.client_id}


def test_secret_jwt_ciphertext_cannot_be_moved_to_another_client(app, client, csjwt_client):
    # The client_id is the associated data of the AES-GCM seal (docs/architecture.md): someone
    # who can write the clients table but does not hold SECRET_KEY must not make client B
    # accept assertions signed with client A's secret by copying A's ciphertext onto B.
    victim = make_client(app, auth_method="client_secret_jwt")
    with app.app_context():
        session = db.session()
        rows = {
            row.client_id: row
            for row in session.scalars(
                select(Client).where(
                    Client.client_id.in_([csjwt_client.client_id, victim.client_id])
                )
            )
        }
        rows[victim.client_id].client_secret_encrypted = rows[
            csjwt_client.client_id
        ].client_secret_encrypted
        session.commit()
    moved = assertion(victim.client_id, secret_key(csjwt_client.client_secret), alg="HS256")
    refused(client_credentials(client, moved))
    # The ciphertext itself is intact: it still works for the client it was sealed for.
    own = assertion(csjwt_client.client_id, secret_key(csjwt_client.client_secret), alg="HS256")
    assert client_credentials(client, own).status_code == 200


def test_secret_jwt_survives_a_secret_key_rotation_with_fallbacks(app, client, csjwt_client):
    # Flask's SECRET_KEY_FALLBACKS: the old key still decrypts after SECRET_KEY changes.
    old = app.config["SECRET_KEY"]
    app.config.update(SECRET_KEY="a-new-secret-key-after-rotation", SECRET_KEY_FALLBACKS=[old])
    token = assertion(csjwt_client.client_id, secret_key(csjwt_client.client_secret), alg="HS256")
    assert client_credentials(client, token).status_code == 200
    app.config["SECRET_KEY_FALLBACKS"] = []
    token = assertion(csjwt_client.client_id, secret_key(csjwt_client.client_secret), alg="HS256")
    refused(client_credentials(client, token))


# --- the replay store in Redis (REDIS_URL) ------------------------------------------------


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if not binary:
        pytest.skip("redis-server is not installed")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    process.terminate()
    process.wait(timeout=10)


def test_replay_store_uses_redis_when_configured(app, client, pkjwt_client, redis_url):
    # Shared by every worker and machine: the jti lives in Redis, not the database.
    import redis

    app.config["REDIS_URL"] = redis_url
    token = assertion(pkjwt_client.client_id, pkjwt_client.key)
    assert client_credentials(client, token).status_code == 200
    refused(client_credentials(client, token))
    keys = redis.Redis.from_url(redis_url).keys("idp:jti:*")
    assert len(keys) >= 1
    ttl = redis.Redis.from_url(redis_url).ttl(keys[0])
    assert 0 < ttl <= 60 + 30 + 1  # until the assertion expires (plus leeway)
    with app.app_context():
        assert db.session().scalar(select(func.count(JWTReplay.key_hash))) == 0


def test_unreachable_redis_falls_back_to_the_database(app, client, pkjwt_client):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    token = assertion(pkjwt_client.client_id, pkjwt_client.key)
    assert client_credentials(client, token).status_code == 200
    refused(client_credentials(client, token))
    with app.app_context():
        assert db.session().scalar(select(func.count(JWTReplay.key_hash))) == 1


def test_purge_deletes_expired_replay_entries(app, client, pkjwt_client, runner):
    # Entries are kept only while their assertion could be replayed (purge.py).
    assert (
        client_credentials(client, assertion(pkjwt_client.client_id, pkjwt_client.key)).status_code
        == 200
    )
    with app.app_context():
        session = db.session()
        session.scalar(select(JWTReplay)).expires_at = utcnow() - timedelta(days=2)
        session.commit()
    from idp.cli import cli

    result = runner.invoke(cli, ["purge", "--json"])
    assert json.loads(result.output)["deleted"]["jwt_replay"] == 1


# --- discovery -----------------------------------------------------------------------------


def test_discovery_lists_the_methods_and_algorithms(client):
    # RFC 8414 §2, OIDC Discovery §3: what the endpoints accept, and never "none" as alg.
    doc = client.get("/.well-known/openid-configuration").get_json()
    for prefix in ("token", "revocation", "introspection"):
        methods = doc[f"{prefix}_endpoint_auth_methods_supported"]
        assert {"private_key_jwt", "client_secret_jwt"} <= set(methods)
        algs = doc[f"{prefix}_endpoint_auth_signing_alg_values_supported"]
        assert {"RS256", "ES256", "PS256", "HS256"} <= set(algs) and "none" not in algs
    assert "none" not in doc["introspection_endpoint_auth_methods_supported"]
