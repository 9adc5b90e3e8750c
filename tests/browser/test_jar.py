"""JAR (RFC 9101) in the browser: an oauth4webapi relying party (tests/browser/node/jar_rp.mjs)
signs its authorization requests with its own key, registered for the client, and completes
the code flow through the real pages with DPoP (RFC 9449).

* pushed (RFC 9126 §3 with RFC 9101 §4): the request object goes to /par, the browser
  carries only client_id and request_uri; the client's keys are in its ``jwks``;
* by value (RFC 9101 §5.1): the request object is the ``request`` parameter of /authorize,
  with ``dpop_jkt`` inside it; the client's keys are at a ``jwks_uri`` the server fetches
  (through idp/outbound.py: loopback is allowed because the issuer is on loopback);
* a request object changed after signing, or unsigned, is refused at /par (§6.3).
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from joserfc.jwk import ECKey
from sqlalchemy import update

from idp import db
from idp.models import Client

from ..grants.conftest import make_client, public_jwks
from ..outbound.conftest import Target
from .a11y import expect
from .test_dpop import NODE_DIR, oauth4webapi_ready
from .test_e2e import discover, sign_in_and_allow, validated_id_token

pytestmark = pytest.mark.browser

NAME = "oauth4webapi JAR RP"


@pytest.fixture(scope="module")
def signing_key():
    return ECKey.generate_key("P-256", parameters={"kid": "rp-jar-es256"}, private=True)


@pytest.fixture
def node_ready():
    if not oauth4webapi_ready():
        if os.environ.get("IDP_REQUIRE_BROWSER"):
            pytest.fail("node and oauth4webapi are needed: npm ci --prefix tests/browser/node")
        pytest.skip("node or oauth4webapi missing (npm ci --prefix tests/browser/node)")


def jar_client(app, redirect_uri: str, keys: dict):
    """A confidential client that must sign its requests with ES256 (RFC 9101 §10.5;
    OIDC Registration §2 request_object_signing_alg)."""
    registered = make_client(
        app,
        auth_method="client_secret_basic",
        metadata=keys,
        redirect_uris=[redirect_uri],
        grant_types=("authorization_code",),
        scope="openid profile email",
        name=NAME,
    )
    with app.app_context():
        session = db.session()
        session.execute(
            update(Client)
            .where(Client.client_id == registered.client_id)
            .values(request_object_signing_alg="ES256", require_signed_request_object=True)
        )
        session.commit()
    return registered


def start_rp(live_server, registered, redirect_uri: str, key: ECKey, mode: str):
    env = {**os.environ, "IDP_RP_PRIVATE_JWK": json.dumps(key.as_dict(private=True))}
    return subprocess.Popen(
        ["node", "jar_rp.mjs", live_server, registered.client_id, registered.client_secret,
         redirect_uri, mode],
        cwd=NODE_DIR, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def run_code_flow(live_server, page, rp_callback, registered, key, mode: str) -> dict:
    rp = start_rp(live_server, registered, rp_callback.url, key, mode)
    try:
        first = rp.stdout.readline()
        assert first, rp.stderr.read()
        url = json.loads(first)["authorization_url"]
        page.goto(url)
        sign_in_and_allow(page, NAME)
        hit = rp_callback.wait()
        expect(page).to_have_url(re.compile(re.escape(rp_callback.url) + r"\?"))
        out, err = rp.communicate(hit.url + "\n", timeout=30)
        assert rp.returncode == 0, err
    finally:
        if rp.poll() is None:
            rp.kill()
            rp.wait()
    return {"authorization_url": url, **json.loads(out.strip().splitlines()[-1])}


def check_result(live_server, registered, user, result: dict) -> None:
    meta = discover(live_server)
    assert "ES256" in meta["request_object_signing_alg_values_supported"]  # OIDC Discovery §3
    # The request object oauth4webapi signed: typed (RFC 9101 §10.8), with the key's kid.
    header = result["request_object_header"]
    assert header["alg"] == "ES256" and header["kid"] == "rp-jar-es256"
    assert header["typ"] == "oauth-authz-req+jwt"
    assert result["token_type"].lower() == "dpop"  # RFC 9449 §5
    # OIDC Core §3.1.3.7, checked here too: signature by the JWKS, iss, aud, nonce, exp.
    claims = validated_id_token(result["id_token"], meta, registered.client_id, result["nonce"])
    assert claims["sub"] == result["sub"] == user.sub
    assert result["userinfo"]["sub"] == user.sub and result["userinfo"]["email"] == user.email


def test_oauth4webapi_pushes_a_signed_request_object_and_completes_the_flow_with_dpop(
    node_ready, app, live_server, page, rp_callback, user, signing_key
):
    registered = jar_client(app, rp_callback.url, {"jwks": public_jwks(signing_key)})
    result = run_code_flow(live_server, page, rp_callback, registered, signing_key, "par")
    # RFC 9126 §4: the browser saw only client_id and request_uri.
    query = result["authorization_url"].split("?", 1)[1]
    assert sorted(p.split("=")[0] for p in query.split("&")) == ["client_id", "request_uri"]
    check_result(live_server, registered, user, result)


def test_oauth4webapi_sends_a_request_object_by_value_with_keys_at_a_jwks_uri(
    node_ready, app, live_server, page, rp_callback, user, signing_key
):
    with Target() as keys:
        keys.body = public_jwks(signing_key)
        registered = jar_client(app, rp_callback.url, {"jwks_uri": keys.url("/jwks.json")})
        result = run_code_flow(live_server, page, rp_callback, registered, signing_key, "value")
        assert [path for _, path, _ in keys.seen][:1] == ["/jwks.json"]  # fetched to verify
    assert "request=" in result["authorization_url"]  # RFC 9101 §5.1: by value
    check_result(live_server, registered, user, result)


@pytest.mark.parametrize("mode", ["tampered", "unsigned"])
def test_a_tampered_or_unsigned_request_object_is_refused_at_par(
    node_ready, app, live_server, rp_callback, signing_key, mode
):
    # RFC 9101 §6.3 and §10.8 (never alg none): the signature must verify with the client's
    # registered key; a request object changed after signing, or unsigned, is refused.
    registered = jar_client(app, rp_callback.url, {"jwks": public_jwks(signing_key)})
    rp = start_rp(live_server, registered, rp_callback.url, signing_key, mode)
    out, err = rp.communicate(timeout=30)
    assert rp.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"status": 400, "error": "invalid_request_object"}
