"""`idp clients create` and `idp clients show` with the client settings of issue 16: pairwise
subjects (OIDC Core §8), signed UserInfo (§5.3.2), DPoP-bound tokens (RFC 9449 §5.2) and
signed request objects (RFC 9101). Checked by the rules registration and the admin form use."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from ..dpop.proofs import Prover
from ..factories import RegisteredClient
from ..helpers import basic_auth
from ..protocol16.conftest import sector_server  # noqa: F401
from .test_cli import client_count, invoke, stored_client

RP = "https://billing.example/cb"


def create(runner, *extra, redirect=(RP,), grants=("authorization_code",)):
    args = ["clients", "create", "--name", "Billing", "--scope", "openid profile", "--json"]
    for uri in redirect:
        args += ["--redirect-uri", uri]
    for grant in grants:
        args += ["--grant-type", grant]
    return invoke(runner, *args, *extra)


def created(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def show(runner, client_id) -> dict:
    result = invoke(runner, "clients", "show", client_id, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def refused(app, result, *words):
    # click.UsageError: exit 2, a message naming the option; nothing is stored.
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for word in words:
        assert word in result.output
    assert client_count(app) == 0


# --- DPoP (RFC 9449 §5.2) -----------------------------------------------------------------


def test_dpop_bound_access_tokens_is_enforced_at_the_token_endpoint(app, runner, client):
    data = created(create(runner, "--dpop-bound-access-tokens", grants=("client_credentials",)))
    assert data["dpop_bound_access_tokens"] is True
    assert stored_client(app, data["client_id"]).dpop_bound_access_tokens is True
    auth = basic_auth(data["client_id"], data["client_secret"])
    form = {"grant_type": "client_credentials"}
    # §5.2: a token request without a proof is refused...
    without = client.post("/token", data=form, headers=auth)
    assert without.status_code == 400 and without.get_json()["error"] == "invalid_request"
    # ...and one with a proof gets a DPoP-bound token.
    prover = Prover()
    bound = client.post("/token", data=form, headers={**auth, **prover.headers()})
    assert bound.status_code == 200, bound.get_json()
    assert bound.get_json()["token_type"] == "DPoP"
    assert show(runner, data["client_id"])["dpop_bound_access_tokens"] is True


def test_without_the_flag_dpop_is_optional(app, runner):
    data = created(create(runner))
    assert data["dpop_bound_access_tokens"] is False
    assert show(runner, data["client_id"])["dpop_bound_access_tokens"] is False


# --- signed UserInfo (OIDC Core §5.3.2) ---------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_userinfo_signed_response_alg_makes_userinfo_a_jwt(app, runner, client, auth, user, alg):
    data = created(create(runner, "--userinfo-signed-response-alg", alg, "--first-party"))
    assert data["userinfo_signed_response_alg"] == alg
    rp = RegisteredClient(data["client_id"], data["client_secret"], RP, None)
    auth.login()
    tokens = auth.tokens(rp, scope="openid profile")
    response = client.get(
        "/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}
    )
    assert response.status_code == 200
    assert response.mimetype == "application/jwt"
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    claims = jwt.decode(response.get_data(as_text=True), keys, algorithms=[alg]).claims
    assert claims["aud"] == data["client_id"]
    assert show(runner, data["client_id"])["userinfo_signed_response_alg"] == alg


@pytest.mark.parametrize("alg", ["none", "HS256", "PS256"])
def test_userinfo_alg_outside_the_advertised_list_is_refused(app, client, runner, alg):
    # Discovery's userinfo_signing_alg_values_supported is the list; "none" never (§5.3.2).
    advertised = client.get("/.well-known/openid-configuration").get_json()
    assert alg not in advertised["userinfo_signing_alg_values_supported"]
    refused(app, create(runner, "--userinfo-signed-response-alg", alg), "--userinfo-signed")


# --- subject types (OIDC Core §8) ---------------------------------------------------------


def test_pairwise_client_with_one_redirect_host(app, runner):
    data = created(create(runner, "--subject-type", "pairwise"))
    assert data["subject_type"] == "pairwise"
    assert stored_client(app, data["client_id"]).subject_type == "pairwise"
    assert show(runner, data["client_id"])["subject_type"] == "pairwise"


def test_public_is_the_default_subject_type(app, runner):
    data = created(create(runner))
    assert data["subject_type"] == "public"
    assert stored_client(app, data["client_id"]).subject_type is None  # as the admin form
    assert show(runner, data["client_id"])["subject_type"] == "public"


def test_unknown_subject_type_is_refused(app, runner):
    refused(app, create(runner, "--subject-type", "random"), "--subject-type")


def test_pairwise_on_several_hosts_needs_a_sector_identifier_uri(app, runner):
    # §8.1: the sector is ambiguous without one (the rule registration applies).
    redirect = (RP, "https://other.example/cb")
    result = create(runner, "--subject-type", "pairwise", redirect=redirect)
    refused(app, result, "--sector-identifier-uri", "several hosts")


def test_sector_identifier_uri_listing_the_redirect_uris(app, runner, sector_server):  # noqa: F811
    # §8.1: fetched at registration; a JSON array with every redirect URI.
    redirect = (RP, "https://other.example/cb")
    uri = sector_server.serve("/sector.json", json.dumps(list(redirect)).encode())
    data = created(
        create(
            runner,
            "--subject-type",
            "pairwise",
            "--sector-identifier-uri",
            uri,
            redirect=redirect,
        )
    )
    row = stored_client(app, data["client_id"])
    assert (row.subject_type, row.sector_identifier_uri) == ("pairwise", uri)
    assert show(runner, data["client_id"])["sector_identifier_uri"] == uri


def test_sector_identifier_uri_missing_a_redirect_uri_is_refused(app, runner, sector_server):  # noqa: F811
    uri = sector_server.serve("/sector.json", json.dumps(["https://elsewhere.example/cb"]).encode())
    result = create(runner, "--subject-type", "pairwise", "--sector-identifier-uri", uri)
    refused(app, result, "--sector-identifier-uri", "does not list the redirect URI")


def test_sector_identifier_uri_must_be_https(app, runner):
    result = create(runner, "--sector-identifier-uri", "http://sector.example/s.json")
    refused(app, result, "--sector-identifier-uri", "https")


# --- signed request objects (RFC 9101) ----------------------------------------------------


@pytest.fixture
def jwks_file(tmp_path):
    key = ECKey.generate_key("P-256", private=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    return str(path)


def test_request_object_signing_alg_and_requirement(app, runner, jwks_file):
    result = create(
        runner,
        "--request-object-signing-alg",
        "ES256",
        "--require-signed-request-object",
        "--jwks-file",
        jwks_file,
    )
    data = created(result)
    row = stored_client(app, data["client_id"])
    assert (row.request_object_signing_alg, row.require_signed_request_object) == ("ES256", True)
    shown = show(runner, data["client_id"])
    assert shown["request_object_signing_alg"] == "ES256"
    assert shown["require_signed_request_object"] is True
    assert shown["jwks"]["keys"][0]["kty"] == "EC"


def test_request_object_alg_none_is_refused(app, runner, jwks_file):
    # RFC 9101 §10.8: never "none"; the list discovery advertises.
    result = create(runner, "--request-object-signing-alg", "none", "--jwks-file", jwks_file)
    refused(app, result, "--request-object-signing-alg")


def test_signed_request_objects_need_the_clients_keys(app, runner):
    result = create(runner, "--require-signed-request-object")
    assert result.exit_code != 0 and "jwks" in result.output
    assert client_count(app) == 0


# --- idp clients show ---------------------------------------------------------------------


def test_show_never_prints_the_secret(runner):
    data = created(create(runner))
    for extra in ((), ("--json",)):
        result = invoke(runner, "clients", "show", data["client_id"], *extra)
        assert result.exit_code == 0, result.output
        assert data["client_secret"] not in result.output
        assert data["client_id"] in result.output
    text = invoke(runner, "clients", "show", data["client_id"]).output
    assert "subject_type: public" in text and "dpop_bound_access_tokens: no" in text


def test_show_unknown_client(runner):
    result = invoke(runner, "clients", "show", "nope")
    assert result.exit_code == 1 and "no client nope" in result.output
