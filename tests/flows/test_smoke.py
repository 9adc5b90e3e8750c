"""The whole path once: discovery, login, consent, code, tokens, userinfo, refresh, revoke."""

from joserfc import jwt
from joserfc.jwk import KeySet

from ..helpers import basic_auth


def test_code_flow_end_to_end(client, auth, user, oauth_client):
    meta = client.get("/.well-known/openid-configuration").get_json()
    assert meta["issuer"] == "http://localhost"
    auth.login()
    tokens = auth.tokens(oauth_client)
    assert tokens["token_type"] == "Bearer"
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    claims = jwt.decode(tokens["id_token"], jwks).claims
    assert claims["sub"] == user.sub
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.status_code == 200 and info.get_json()["sub"] == user.sub
    refreshed = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.get_json()
    new = refreshed.get_json()
    # RFC 7009 §2.1: revoking the refresh token also invalidates the access tokens of the
    # same grant (SHOULD, and this server does); §2.2: the answer is 200.
    client_auth = basic_auth(oauth_client.client_id, oauth_client.client_secret)
    revoked = client.post("/revoke", data={"token": new["refresh_token"]}, headers=client_auth)
    assert revoked.status_code == 200
    again = auth.token(
        oauth_client, {"grant_type": "refresh_token", "refresh_token": new["refresh_token"]}
    )
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    bearer = {"Authorization": "Bearer " + new["access_token"]}
    assert client.get("/userinfo", headers=bearer).status_code == 401
    introspected = client.post(
        "/introspect", data={"token": new["access_token"]}, headers=client_auth
    )
    assert introspected.get_json() == {"active": False}
