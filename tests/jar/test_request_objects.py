"""Signed request objects (RFC 9101): by value at /authorize and at PAR, by reference through
PAR, the checks of §6 and FAPI 2.0, and clients that must sign their requests (§10.5)."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from sqlalchemy import func, select

from idp import db
from idp.models import AuditEvent, PushedAuthorizationRequest, secret_hash

from ..conftest import ISSUER
from ..helpers import query
from .conftest import (
    REDIRECT_URI,
    authorization_claims,
    authorize_url,
    consent,
    push,
    request_object,
    set_client,
)

PAR_PREFIX = "urn:ietf:params:oauth:request_uri:"


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))


def stored(app, request_uri: str) -> PushedAuthorizationRequest | None:
    with app.app_context():
        return db.session().scalar(
            select(PushedAuthorizationRequest).where(
                PushedAuthorizationRequest.request_uri_hash == secret_hash(request_uri)
            )
        )


def send(http, registered, token: str, **outside):
    """GET /authorize with a request object by value (§5.1), plus any outside parameters."""
    return http.get(authorize_url(client_id=registered.client_id, request=token, **outside))


def error_of(response) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert response.headers["Location"].startswith(REDIRECT_URI + "?")
    return query(response.headers["Location"])


def finish(http, auth, registered, response, verifier):
    """Follow the 303 to the request_uri, consent, exchange the code."""
    assert response.status_code == 303
    response = http.get(response.headers["Location"])
    if response.status_code == 200:
        response = consent(http, response)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    result = query(response.headers["Location"])
    tokens = auth.exchange(registered, result["code"], verifier)
    assert tokens.status_code == 200, tokens.get_json()
    return result, tokens.get_json()


def id_token_claims(tokens: dict) -> dict:
    payload = tokens["id_token"].split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# --- discovery ------------------------------------------------------------------------------


def test_discovery_advertises_signed_request_objects(client):
    # OIDC Discovery §3 / RFC 9101 §10.5: request by value; request_uri only through PAR.
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["request_parameter_supported"] is True
    assert metadata["request_uri_parameter_supported"] is False
    algs = metadata["request_object_signing_alg_values_supported"]
    assert {"PS256", "ES256", "RS256"} <= set(algs)
    assert "none" not in algs and not any(a.startswith("HS") for a in algs)
    assert metadata["require_signed_request_object"] is False
    # Encrypted request objects are not supported, so not advertised.
    assert "request_object_encryption_alg_values_supported" not in metadata


@pytest.mark.config(REQUIRE_SIGNED_REQUEST_OBJECT=True)
def test_discovery_says_when_every_client_must_sign(client):
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["require_signed_request_object"] is True


# --- by value at the authorization endpoint (§5.1) -----------------------------------------


def test_request_by_value_completes_the_code_flow(app, client, auth, user, jar_client):
    # RFC 9101 §5.1: the whole authorization request inside a signed JWT.
    auth.login()
    claims, verifier = authorization_claims(jar_client)
    response = send(client, jar_client, request_object(jar_client, claims))
    # Continued as a pushed request: the browser carries client_id and request_uri only.
    assert response.status_code == 303
    target = parse_qs(urlsplit(response.headers["Location"]).query)
    assert set(target) == {"client_id", "request_uri"}
    assert target["request_uri"][0].startswith(PAR_PREFIX)
    result, tokens = finish(client, auth, jar_client, response, verifier)
    assert result["state"] == claims["state"]
    assert result["iss"] == ISSUER
    assert id_token_claims(tokens)["nonce"] == claims["nonce"]
    assert tokens["scope"] == "openid profile"
    assert len(events(app, "request_object.accepted")) == 1


def test_ec_key_and_es256_are_accepted(client, auth, user, jar_client, ec_key):
    auth.login()
    claims, verifier = authorization_claims(jar_client)
    token = request_object(jar_client, claims, key=ec_key, alg="ES256")
    finish(client, auth, jar_client, send(client, jar_client, token), verifier)


def test_rfc_9101_example_claims(app, client, auth, user, jar_client):
    # RFC 9101 §4's example request object (response_type "code" here: the only one this
    # server offers; iss, aud and client_id are this test's client and issuer). max_age is a
    # JSON number in the object and becomes the parameter's text.
    _, verifier = authorization_claims(jar_client)
    claims, _ = authorization_claims(
        jar_client, scope="openid", state="af0ifjsldkj", nonce="n-0S6_WzA2Mj", max_age=86400
    )
    token = request_object(jar_client, claims, alg="RS256", typ=None, nbf=None, iat=None)
    response = send(client, jar_client, token)
    assert response.status_code == 303
    request_uri = parse_qs(urlsplit(response.headers["Location"]).query)["request_uri"][0]
    row = stored(app, request_uri)
    assert row.params["max_age"] == ["86400"]
    assert row.params["state"] == ["af0ifjsldkj"]
    assert row.params["client_id"] == [jar_client.client_id]
    assert not {"iss", "aud", "exp", "jti"} & set(row.params)


def test_request_object_parameters_win(app, client, auth, user, jar_client):
    # RFC 9101 §6.3: only the request object's parameters are used; the outside ones (other
    # than client_id and response_type, which must match) are ignored.
    auth.login()
    claims, verifier = authorization_claims(jar_client, scope="openid", state="inside")
    token = request_object(jar_client, claims)
    response = send(
        client,
        jar_client,
        token,
        response_type="code",
        scope="openid profile email",
        state="outside",
        redirect_uri="https://rp.example/other",
        prompt="none",
    )
    result, tokens = finish(client, auth, jar_client, response, verifier)
    assert result["state"] == "inside"
    assert tokens["scope"] == "openid"


def test_sign_in_returns_to_the_request_uri_not_the_request_object(client, auth, user, jar_client):
    # The request object's jti is single-use: signing in comes back to the stored request.
    claims, verifier = authorization_claims(jar_client)
    response = client.get(send(client, jar_client, request_object(jar_client, claims)).location)
    assert urlsplit(response.headers["Location"]).path == "/login"
    next_url = parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]
    assert "request=" not in next_url and "request_uri=" in next_url
    auth.login(next_url=next_url)
    response = client.get(next_url)
    response = consent(client, response)
    assert query(response.headers["Location"])["state"] == claims["state"]


# --- refusals (§6, §7; FAPI 2.0) ----------------------------------------------------------


def _hs256(registered, claims):
    now = int(time.time())
    body = {"iss": registered.client_id, "aud": ISSUER, "exp": now + 60, "jti": "h", **claims}
    key = OctKey.import_key(b"k" * 32)
    return jwt.encode({"alg": "HS256"}, body, key, algorithms=["HS256"])


def _unsigned(registered, claims):
    now = int(time.time())
    body = {"iss": registered.client_id, "aud": ISSUER, "exp": now + 60, "jti": "n", **claims}
    segment = base64.urlsafe_b64encode
    header = segment(json.dumps({"alg": "none"}).encode()).rstrip(b"=").decode()
    payload = segment(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{header}.{payload}."


REFUSALS = {
    # §10.8 / FAPI 2.0: never unsigned.
    "alg-none": lambda c, cl, k: _unsigned(c, cl),
    # The server keeps no client secret to check an HMAC by.
    "hs256": lambda c, cl, k: _hs256(c, cl),
    # §6.2: signed with a key the client registered.
    "wrong-key": lambda c, cl, k: request_object(c, cl, key=k),
    "wrong-iss": lambda c, cl, k: request_object(c, cl, iss="someone-else"),
    "no-iss": lambda c, cl, k: request_object(c, cl, iss=None),
    "wrong-aud": lambda c, cl, k: request_object(c, cl, aud="https://other.example"),
    "no-aud": lambda c, cl, k: request_object(c, cl, aud=None),
    "expired": lambda c, cl, k: request_object(c, cl, exp=int(time.time()) - 120),
    "no-exp": lambda c, cl, k: request_object(c, cl, exp=None),
    "too-long": lambda c, cl, k: request_object(c, cl, lifetime=7200, nbf=None),
    "nbf-future": lambda c, cl, k: request_object(c, cl, nbf=int(time.time()) + 600),
    # FAPI 2.0: nbf no longer than 60 minutes in the past.
    "nbf-too-old": lambda c, cl, k: request_object(c, cl, nbf=int(time.time()) - 3700),
    "no-jti": lambda c, cl, k: request_object(c, cl, jti=None),
    # §10.8: another kind of JWT is not a request object.
    "wrong-typ": lambda c, cl, k: request_object(c, cl, typ="dpop+jwt"),
    # §4: request and request_uri MUST NOT be inside a request object.
    "nested-request": lambda c, cl, k: request_object(c, cl, request="x.y.z"),
    "client_id-claim": lambda c, cl, k: request_object(c, cl, client_id="someone-else"),
    "not-a-jwt": lambda c, cl, k: "not-a-jwt",
    # Encrypted request objects (JWE, five parts) are not supported.
    "encrypted": lambda c, cl, k: "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d",
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_invalid_request_objects_are_refused(app, client, jar_client, stranger_key, case):
    # RFC 9101 §6.3 / OIDC Core §6.3: invalid_request_object, sent to the redirect URI
    # (trusted: registered for the client and sent next to the request) with the outside state.
    claims, _ = authorization_claims(jar_client)
    token = REFUSALS[case](jar_client, claims, stranger_key)
    response = send(client, jar_client, token, redirect_uri=REDIRECT_URI, state="outer")
    result = error_of(response)
    assert result["error"] == "invalid_request_object"
    assert result["state"] == "outer"
    assert result["iss"] == ISSUER
    assert [e.target for e in events(app, "request_object.refused")] == [jar_client.client_id]
    with app.app_context():
        assert db.session().scalar(select(func.count(PushedAuthorizationRequest.id))) == 0


def test_registered_signing_alg_is_enforced(app, client, jar_client, ec_key):
    # OIDC Registration §2 request_object_signing_alg: other algorithms are refused.
    set_client(app, jar_client.client_id, request_object_signing_alg="ES256")
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims, alg="PS256")
    response = send(client, jar_client, token, redirect_uri=REDIRECT_URI)
    assert error_of(response)["error"] == "invalid_request_object"
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims, key=ec_key, alg="ES256")
    assert send(client, jar_client, token).status_code == 303


def test_a_replayed_request_object_is_refused(app, client, jar_client):
    # The jti is remembered (jwt_replay table, shared by workers) until exp.
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims)
    assert send(client, jar_client, token).status_code == 303
    again = send(client, jar_client, token, redirect_uri=REDIRECT_URI)
    assert error_of(again)["error"] == "invalid_request_object"
    assert len(events(app, "request_object.replayed")) == 1


def test_client_id_outside_must_be_the_signer(app, client, jar_client, oauth_client):
    # §5: client_id is required next to request; the object's iss must be that client.
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims)
    response = client.get(authorize_url(client_id=oauth_client.client_id, request=token))
    # oauth_client's one registered redirect URI is trusted (RFC 6749 §3.1.2.3).
    assert response.headers["Location"].startswith(oauth_client.redirect_uri + "?")
    assert query(response.headers["Location"])["error"] == "invalid_request_object"
    response = client.get(authorize_url(request=token))
    assert response.status_code == 400  # no client_id: nobody to redirect to
    assert b"invalid_client" in response.data


def test_response_type_outside_must_match(client, jar_client):
    # §5: response_type sent outside the request object must equal the object's.
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims)
    response = send(
        client, jar_client, token, response_type="token", state="s", redirect_uri=REDIRECT_URI
    )
    result = error_of(response)
    assert result["error"] == "invalid_request"


def test_request_and_request_uri_together_are_refused(client, jar_client):
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims)
    response = send(
        client, jar_client, token, request_uri=PAR_PREFIX + "abc", redirect_uri=REDIRECT_URI
    )
    assert error_of(response)["error"] == "invalid_request"


def test_request_uri_to_fetch_is_not_supported(client, jar_client):
    # §5.2 by reference from a URL: not supported (discovery says request_uri_parameter_supported
    # false); only PAR's request_uri values are.
    response = client.get(
        authorize_url(
            client_id=jar_client.client_id,
            request_uri="https://rp.example/request.jwt",
            redirect_uri=REDIRECT_URI,
            state="s",
        )
    )
    result = error_of(response)
    assert result["error"] == "request_uri_not_supported"
    assert result["state"] == "s"


def test_errors_are_not_redirected_to_an_untrusted_uri(client, jar_client):
    # RFC 6749 §4.1.2.1: the redirect_uri sent outside is not registered: error page.
    response = send(client, jar_client, "x.y.z", redirect_uri="https://attacker.example/cb")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert b"invalid_request_object" in response.data
    # Two registered redirect URIs and none sent: no default to trust either.
    response = send(client, jar_client, "x.y.z")
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_pushed_only_clients_cannot_send_request_objects_by_value(app, client, jar_client):
    # RFC 9126 §6: a client required to push may not start in the front channel, signed or not.
    with app.app_context():
        from idp.models import Client

        session = db.session()
        row = session.scalar(select(Client).where(Client.client_id == jar_client.client_id))
        row.client_metadata = {**row.client_metadata, "require_pushed_authorization_requests": True}
        session.commit()
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims)
    response = send(client, jar_client, token, state="s", redirect_uri=REDIRECT_URI)
    assert error_of(response)["error"] == "invalid_request"


# --- PAR (RFC 9126 §3): by value at push, by reference at /authorize ----------------------


def test_pushed_request_object_is_used_by_reference(app, client, auth, user, jar_client):
    # RFC 9126 §3 + RFC 9101 §5.2: the request object is pushed; its request_uri stands for it.
    auth.login()
    claims, verifier = authorization_claims(jar_client, state="pushed-inside")
    response = push(
        client,
        jar_client,
        {"client_id": jar_client.client_id, "request": request_object(jar_client, claims)},
    )
    assert response.status_code == 201, response.get_json()
    request_uri = response.get_json()["request_uri"]
    row = stored(app, request_uri)
    assert row.params["state"] == ["pushed-inside"]
    assert "request" not in row.params
    response = client.get(authorize_url(client_id=jar_client.client_id, request_uri=request_uri))
    response = consent(client, response)
    result = query(response.headers["Location"])
    assert result["state"] == "pushed-inside"
    assert auth.exchange(jar_client, result["code"], verifier).status_code == 200


def test_pushed_request_object_parameters_win(app, client, jar_client):
    # RFC 9101 §6.3 at PAR: form parameters next to the request object are not used.
    claims, _ = authorization_claims(jar_client, scope="openid")
    response = push(
        client,
        jar_client,
        {"request": request_object(jar_client, claims), "scope": "openid email", "state": "x"},
    )
    assert response.status_code == 201
    row = stored(app, response.get_json()["request_uri"])
    assert row.params["scope"] == ["openid"]
    assert row.params["state"] == [claims["state"]]


@pytest.mark.parametrize("case", ["alg-none", "wrong-key", "wrong-aud", "expired", "no-jti"])
def test_pushed_invalid_request_objects_are_refused(app, client, jar_client, stranger_key, case):
    # RFC 9126 §2.3: the error is the PAR response, never a redirect.
    claims, _ = authorization_claims(jar_client)
    response = push(
        client, jar_client, {"request": REFUSALS[case](jar_client, claims, stranger_key)}
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request_object"
    assert len(events(app, "request_object.refused")) == 1


def test_pushed_request_object_is_checked_as_an_authorization_request(client, jar_client):
    # RFC 9126 §2.1: what the object carries is validated like any pushed request.
    claims, _ = authorization_claims(jar_client, redirect_uri="https://attacker.example/cb")
    response = push(client, jar_client, {"request": request_object(jar_client, claims)})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_pushed_request_object_replay_is_refused(client, jar_client):
    claims, _ = authorization_claims(jar_client)
    token = request_object(jar_client, claims)
    assert push(client, jar_client, {"request": token}).status_code == 201
    response = push(client, jar_client, {"request": token})
    assert response.get_json()["error"] == "invalid_request_object"


# --- clients that must sign their requests (§10.5) ----------------------------------------


def test_client_requiring_signed_requests_refuses_plain_parameters(app, client, auth, jar_client):
    set_client(app, jar_client.client_id, require_signed_request_object=True)
    claims, _ = authorization_claims(jar_client)
    response = client.get(authorize_url(**claims))
    result = error_of(response)
    assert result["error"] == "invalid_request"
    assert result["state"] == claims["state"]
    # At PAR too (RFC 9126 §3 lets the object be pushed; plain parameters are refused).
    response = push(client, jar_client, claims)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert len(events(app, "request_object.refused")) == 2


def test_client_requiring_signed_requests_accepts_them(app, client, auth, user, jar_client):
    set_client(app, jar_client.client_id, require_signed_request_object=True)
    auth.login()
    claims, verifier = authorization_claims(jar_client)
    finish(
        client,
        auth,
        jar_client,
        send(client, jar_client, request_object(jar_client, claims)),
        verifier,
    )
    claims, _ = authorization_claims(jar_client)
    response = push(client, jar_client, {"request": request_object(jar_client, claims)})
    assert response.status_code == 201


@pytest.mark.config(REQUIRE_SIGNED_REQUEST_OBJECT=True)
def test_server_wide_requirement(client, oauth_client):
    # RFC 9101 §10.5 server metadata: every client.
    claims, _ = authorization_claims(oauth_client)
    response = client.get(authorize_url(**claims))
    result = query(response.headers["Location"])
    assert result["error"] == "invalid_request"
