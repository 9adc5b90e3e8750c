"""DPoP (RFC 9449) in the browser: two relying parties complete the code flow with
sender-constrained tokens through the real pages.

* Authlib's OAuth2Session (the README's kind of client) has no DPoP support of its own: the
  proofs come from joserfc (tests/dpop/proofs.py) and travel as extra headers.
* oauth4webapi (a certified RP library, tests/browser/node) pushes the request (PAR) with a
  proof, redeems the code and calls UserInfo with DPoP, handling server nonces itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from ..dpop.proofs import Prover
from .a11y import expect
from .test_e2e import discover, sign_in_and_allow

pytestmark = pytest.mark.browser

NODE_DIR = Path(__file__).parent / "node"


def test_authlib_client_completes_code_flow_with_dpop(live_server, page, rp_callback, factory,
                                                      user):  # fmt: skip
    client = factory.client(name="DPoP RP", redirect_uris=[rp_callback.url])
    meta = discover(live_server)
    assert "ES256" in meta["dpop_signing_alg_values_supported"]  # RFC 9449 §5.1
    prover = Prover(token_url=meta["token_endpoint"])
    verifier = generate_token(48)
    session = OAuth2Session(
        client.client_id,
        client.client_secret,
        scope="openid profile",
        redirect_uri=rp_callback.url,
        code_challenge_method="S256",
    )
    with session as rp:
        url, state = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, dpop_jkt=prover.jkt
        )
        page.goto(url)
        sign_in_and_allow(page, "DPoP RP")
        hit = rp_callback.wait()
        assert hit.params["state"] == state
        token = rp.fetch_token(
            meta["token_endpoint"], authorization_response=hit.url, code_verifier=verifier,
            headers={"DPoP": prover.proof("POST", meta["token_endpoint"])},
        )  # fmt: skip
    assert token["token_type"] == "DPoP"  # RFC 9449 §5
    access = token["access_token"]
    proof = prover.proof("GET", meta["userinfo_endpoint"], access_token=access)
    info = requests.get(meta["userinfo_endpoint"], timeout=5,
                        headers={"Authorization": f"DPoP {access}", "DPoP": proof})  # fmt: skip
    assert info.status_code == 200 and info.json()["sub"] == user.sub
    # RFC 9449 §7.2: the same token as a bearer token is refused.
    bearer = requests.get(meta["userinfo_endpoint"], timeout=5,
                          headers={"Authorization": f"Bearer {access}"})  # fmt: skip
    assert bearer.status_code == 401
    assert bearer.headers["WWW-Authenticate"].startswith("DPoP ")


def oauth4webapi_ready() -> bool:
    if shutil.which("node") is None:
        return False
    if not (NODE_DIR / "node_modules" / "oauth4webapi").is_dir() and shutil.which("npm"):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, timeout=180,
                       capture_output=True, check=False)  # fmt: skip
    return (NODE_DIR / "node_modules" / "oauth4webapi").is_dir()


@pytest.mark.config(DPOP_REQUIRE_NONCE=True)
def test_oauth4webapi_completes_par_code_flow_with_dpop_and_nonces(
    live_server, page, rp_callback, factory, user
):
    if not oauth4webapi_ready():
        if os.environ.get("IDP_REQUIRE_BROWSER"):
            pytest.fail("node and oauth4webapi are needed: npm ci --prefix tests/browser/node")
        pytest.skip("node or oauth4webapi missing (npm ci --prefix tests/browser/node)")
    client = factory.client(name="oauth4webapi RP", redirect_uris=[rp_callback.url])
    rp = subprocess.Popen(
        ["node", "dpop_par_rp.mjs", live_server, client.client_id, client.client_secret,
         rp_callback.url],
        cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        first = rp.stdout.readline()
        assert first, rp.stderr.read()
        page.goto(json.loads(first)["authorization_url"])  # RFC 9126 §4: request_uri only
        sign_in_and_allow(page, "oauth4webapi RP")
        hit = rp_callback.wait()
        expect(page).to_have_url(re.compile(re.escape(rp_callback.url) + r"\?"))
        out, err = rp.communicate(hit.url + "\n", timeout=30)
        assert rp.returncode == 0, err
    finally:
        if rp.poll() is None:
            rp.kill()
            rp.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["token_type"].lower() == "dpop"  # RFC 9449 §5
    assert result["sub"] == user.sub and result["userinfo"]["sub"] == user.sub
