from urllib.parse import urlencode
from tests.helpers import pkce_pair, query

def show(r):
    print(r.status_code, r.headers.get("Location"), r.headers.get("Content-Type"))
    if r.status_code != 302:
        import re; m=re.search(r"<code>.*?</p>", r.get_data(as_text=True), re.S); print(m.group(0) if m else r.get_data(as_text=True)[:1500])

def test_probe(client, auth, user, oauth_client, public_client, factory):
    auth.login()
    v, c = pkce_pair()
    base = {"response_type": "code", "client_id": oauth_client.client_id, "redirect_uri": oauth_client.redirect_uri, "scope": "openid", "state": "xyz"}
    cases = {
        "token": dict(base, response_type="token"),
        "id_token": dict(base, response_type="id_token"),
        "code id_token": dict(base, response_type="code id_token"),
        "missing rt": {k: v for k, v in base.items() if k != "response_type"},
        "unknown client": dict(base, client_id="nope"),
        "missing client": {k: v for k, v in base.items() if k != "client_id"},
        "bad redirect": dict(base, redirect_uri="https://evil.example/cb"),
        "slash": dict(base, redirect_uri="https://rp.example/cb/"),
        "extra query": dict(base, redirect_uri="https://rp.example/cb?x=1"),
        "fragment mode": dict(base, response_mode="fragment"),
        "plain": dict(base, code_challenge=c, code_challenge_method="plain"),
        "nomethod": dict(base, code_challenge=c),
        "public nopkce": dict(base, client_id=public_client.client_id),
        "bad scope": dict(base, scope="openid admin"),
        "formpost": dict(base, response_mode="form_post", response_type="token"),
        "missing redirect": {k: v for k, v in base.items() if k != "redirect_uri"},
    }
    for name, p in cases.items():
        print("==", name)
        show(client.get("/authorize?" + urlencode(p)))
    print("== dup state")
    show(client.get("/authorize?" + urlencode(base) + "&state=abc"))
    print("== dup rt")
    show(client.get("/authorize?" + urlencode(base) + "&response_type=code"))
    print("== dup client id")
    show(client.get("/authorize?" + urlencode(base) + "&client_id=x"))
    print("== dup nonce")
    show(client.get("/authorize?" + urlencode(base) + "&nonce=a&nonce=b"))
