from urllib.parse import urlencode
from tests.helpers import pkce_pair
def test_p(app, client, auth, user, oauth_client):
    app.config["PROPAGATE_EXCEPTIONS"] = True
    auth.login()
    v, c = pkce_pair()
    base = {"response_type": "code", "client_id": oauth_client.client_id, "redirect_uri": oauth_client.redirect_uri, "scope": "openid", "state": "xyz", "code_challenge": c, "code_challenge_method": "plain"}
    r = client.get("/authorize?" + urlencode(base))
    print(r.status_code, r.headers.get("Location"))
