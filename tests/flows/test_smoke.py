"""The whole path once: discovery, login, consent, code, tokens, userinfo, refresh, revoke."""

from joserfc import jwt
from joserfc.jwk import KeySet


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
