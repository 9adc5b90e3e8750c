"""Pairwise subject identifiers (OpenID Connect Core 1.0 §8) and sector_identifier_uri (§8.1)."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp import db
from idp.models import LogoutDelivery

from ..helpers import basic_auth
from .conftest import configure

pytestmark = pytest.mark.config(REGISTRATION="open")


def decode(client, token: str) -> dict:
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    return jwt.decode(token, keys, algorithms=["RS256", "ES256"]).claims


def bearer(token: str) -> dict:
    return {"Authorization": "Bearer " + token}


def pairwise_client(app, factory, redirect_uri: str, **columns):
    rp = factory.client(redirect_uris=(redirect_uri,))
    configure(app, rp.client_id, subject_type="pairwise", **columns)
    return rp


def id_token_sub(client, auth, rp) -> str:
    return decode(client, auth.tokens(rp, scope="openid")["id_token"])["sub"]


def test_pairwise_sub_is_stable_and_not_the_local_sub(app, client, auth, user, factory):
    rp = pairwise_client(app, factory, "https://a.example/cb")
    auth.login()
    first = id_token_sub(client, auth, rp)
    second = id_token_sub(client, auth, rp)
    # §8: "the OP ... MUST NOT" reveal the local identifier; the value never changes.
    assert first == second
    assert first != user.sub
    assert len(first) <= 255  # OIDC Core §2: sub at most 255 ASCII characters


def test_different_sectors_see_different_subs(app, client, auth, user, factory):
    # §8: pairwise means "a different sub value to each Client", per sector.
    a = pairwise_client(app, factory, "https://a.example/cb")
    b = pairwise_client(app, factory, "https://b.example/cb")
    same_host = pairwise_client(app, factory, "https://a.example/other")
    auth.login()
    sub_a, sub_b = id_token_sub(client, auth, a), id_token_sub(client, auth, b)
    assert sub_a != sub_b
    # §8.1: the sector is the host of the redirect URI: same host, same sub.
    assert id_token_sub(client, auth, same_host) == sub_a


def test_different_secret_gives_different_subs(app):
    # §8: not computable without the server's secret (PAIRWISE_SECRET or SECRET_KEY).
    from idp.oauth import subjects

    with app.test_request_context():
        one = subjects.pairwise_sub("a.example", "local-sub")
        app.config["PAIRWISE_SECRET"] = "x" * 40
        two = subjects.pairwise_sub("a.example", "local-sub")
        assert one != two
        assert subjects.pairwise_sub("a.example", "local-sub") == two  # stable per key


def test_every_emitted_sub_is_the_same(app, client, auth, user, factory):
    # The pairwise sub in the ID token, UserInfo, the JWT access token and introspection.
    rp = pairwise_client(app, factory, "https://a.example/cb", access_token_format="jwt")
    auth.login()
    tokens = auth.tokens(rp, scope="openid profile")
    sub = decode(client, tokens["id_token"])["sub"]
    assert sub != user.sub
    assert client.get("/userinfo", headers=bearer(tokens["access_token"])).get_json()["sub"] == sub
    assert decode(client, tokens["access_token"])["sub"] == sub  # RFC 9068 §2.2
    introspection = client.post(
        "/introspect",
        data={"token": tokens["access_token"]},
        headers=basic_auth(rp.client_id, rp.client_secret),
    ).get_json()
    assert introspection["active"] is True
    assert introspection["sub"] == sub  # RFC 7662 §2.2, what the client sees


def test_back_channel_logout_token_carries_the_pairwise_sub(app, client, auth, user, factory):
    # Back-Channel Logout 1.0 §2.4: sub as in the client's ID tokens.
    rp = pairwise_client(
        app, factory, "https://a.example/cb", backchannel_logout_uri="https://a.example/bc"
    )
    auth.login()
    sub = id_token_sub(client, auth, rp)
    from idp.oauth import logout

    logout.dispatcher(app).stop()  # keep the queued token for inspection
    assert auth.logout().status_code in (200, 302)
    with app.app_context():
        (delivery,) = db.session().scalars(select(LogoutDelivery)).all()
        token = delivery.logout_token
    assert decode(client, token)["sub"] == sub


def test_id_token_hint_maps_back_at_end_session_and_authorize(app, client, auth, user, factory):
    # RP-Initiated Logout 1.0 §2 and OIDC Core §3.1.2.1: the hint's pairwise sub names the
    # signed-in user: no "another user" prompt, and logout needs no confirmation.
    rp = pairwise_client(app, factory, "https://a.example/cb")
    auth.login()
    id_token = auth.tokens(rp, scope="openid")["id_token"]
    params, _ = auth.code_flow_params(rp, scope="openid", prompt="none", id_token_hint=id_token)
    response = client.get("/authorize", query_string=params)
    assert response.status_code == 302
    assert "code=" in response.headers["Location"], response.headers["Location"]
    response = client.get("/end_session", query_string={"id_token_hint": id_token})
    assert response.status_code in (200, 302)
    # Signed out at once (the hint named this session), not asked to confirm.
    assert client.get("/account/").status_code == 302


def test_a_pairwise_sub_is_resolved_only_through_its_client(app, client, auth, user, factory):
    # A pairwise sub is no local sub: only decode_id_token, through the audience's sector,
    # maps it back to the user.
    from idp.oauth import oidc

    rp = pairwise_client(app, factory, "https://a.example/cb")
    auth.login()
    claims = decode(client, auth.tokens(rp, scope="openid")["id_token"])
    with app.test_request_context():
        assert oidc.live_subject(claims) is None  # the raw pairwise sub names nobody
        resolved = oidc.decode_id_token(auth.tokens(rp, scope="openid")["id_token"])
        assert resolved["sub"] == user.sub


# --- sector_identifier_uri (§8.1, OIDC Registration §2) ------------------------------------


def register(client, **fields):
    return client.post("/register", json=fields)


def test_shared_sector_identifier_uri_gives_one_sub(app, client, auth, user, sector_server):
    # §8.1: clients of one sector_identifier_uri host see the same pairwise sub.
    uris = ["https://app.example/cb", "https://other.example/cb"]
    sector = sector_server.serve("/sector.json", json.dumps(uris).encode())
    infos = []
    for uri in uris:
        response = register(
            client,
            redirect_uris=[uri],
            subject_type="pairwise",
            sector_identifier_uri=sector,
            scope="openid",
        )
        assert response.status_code == 201, response.get_json()
        infos.append(response.get_json())
    assert infos[0]["sector_identifier_uri"] == sector
    auth.login()
    subs = []
    for info, uri in zip(infos, uris, strict=True):
        rp = type("RP", (), dict(client_id=info["client_id"], client_secret=info["client_secret"],
                                 redirect_uri=uri))  # fmt: skip
        subs.append(id_token_sub(client, auth, rp))
    assert subs[0] == subs[1] != user.sub


@pytest.mark.parametrize(
    "body, status, reason",
    [
        (b"not json", 200, "is not JSON"),
        (b'{"redirect_uris": []}', 200, "JSON array"),
        (json.dumps(["https://elsewhere.example/cb"]).encode(), 200, "does not list"),
        (b"[]", 404, "could not be fetched"),
        (b"[" + b'"x",' * 40000 + b'"x"]', 200, "larger than"),
        (b"/somewhere", 302, "could not be fetched"),  # redirects are not followed
    ],
)
def test_sector_identifier_uri_is_fetched_and_checked(client, sector_server, body, status, reason):
    # §8.1: the JSON array at sector_identifier_uri must contain every redirect_uri.
    sector = sector_server.serve("/s.json", body, status)
    response = register(
        client,
        redirect_uris=["https://app.example/cb"],
        subject_type="pairwise",
        sector_identifier_uri=sector,
    )
    assert response.status_code == 400
    error = response.get_json()
    assert error["error"] == "invalid_client_metadata"
    assert error["error_description"].startswith("sector_identifier_uri")
    assert reason in error["error_description"]


def test_sector_identifier_uri_must_be_https(client):
    response = register(
        client,
        redirect_uris=["https://app.example/cb"],
        sector_identifier_uri="http://app.example/sector.json",
    )
    assert response.status_code == 400
    assert "https" in response.get_json()["error_description"]


def test_several_hosts_need_a_sector_identifier_uri(client):
    # §8.1: redirect URIs on several hosts: "MUST register a sector_identifier_uri".
    response = register(
        client,
        redirect_uris=["https://a.example/cb", "https://b.example/cb"],
        subject_type="pairwise",
    )
    assert response.status_code == 400
    assert response.get_json()["error_description"].startswith("sector_identifier_uri")
    one_host = register(client, redirect_uris=["https://a.example/cb"], subject_type="pairwise")
    assert one_host.status_code == 201
    assert one_host.get_json()["subject_type"] == "pairwise"


def test_refresh_keeps_the_pairwise_sub(app, client, auth, user, factory):
    # OIDC Core §12.2: the ID token on refresh has the same sub.
    rp = pairwise_client(app, factory, "https://a.example/cb")
    auth.login()
    tokens = auth.tokens(rp, scope="openid offline_access")
    refreshed = auth.token(
        rp, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.get_json()
    sub = decode(client, tokens["id_token"])["sub"]
    assert decode(client, refreshed.get_json()["id_token"])["sub"] == sub != user.sub
