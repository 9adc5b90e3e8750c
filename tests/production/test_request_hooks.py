"""What the request hooks add to every answer, on the paths they take without a browser.

API calls bring no cookie and need no CSRF check, so the hooks answer them on shortcuts
(idp/serve.py, idp/errors.py, idp/security.py); these tests pin what those shortcuts must
still produce: Vary (RFC 9110 §12.5.5), the session cookie (RFC 6265), NUL refusals
(RFC 6749 Appendix A) and the CSRF check of forms.
"""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask, Response, after_this_request, request
from flask.sessions import SecureCookieSessionInterface

from idp.serve import HOOK_CHAINS, SessionSerializer, add_vary, hook_chains

from ..helpers import basic_auth, csrf_token

pytestmark = pytest.mark.config(RATELIMIT_ENABLED=False)


@pytest.fixture
def service(factory):
    return factory.client(
        grant_types=("client_credentials",),
        scope="api",
        redirect_uris=("https://spa.example/cb",),
    )


def credentials(service) -> dict:
    return basic_auth(service.client_id, service.client_secret)


def token_request(client, service, headers=None, **kwargs):
    data = kwargs.pop("data", {"grant_type": "client_credentials", "scope": "api"})
    return client.post("/token", data=data, headers={**credentials(service), **(headers or {})},
                       **kwargs)  # fmt: skip


def vary(response) -> list[str]:
    return [name.strip() for name in response.headers.get("Vary", "").split(",") if name]


def test_an_api_answer_varies_on_origin_and_cookie_once_each(client, service):
    # RFC 9110 §12.5.5: the answer depends on Origin (CORS) and on the session cookie;
    # one Vary line naming each once, whether or not the request had an Origin.
    for headers in ({}, {"Origin": "https://spa.example"}, {"Origin": "https://evil.example"}):
        response = token_request(client, service, headers=headers)
        assert response.status_code == 200
        assert response.headers.getlist("Vary") == ["Origin, Cookie"], headers
    allowed = token_request(client, service, headers={"Origin": "https://spa.example"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://spa.example"


@pytest.mark.parametrize(
    "existing",
    [[], ["Origin"], ["origin"], ["Cookie"], ["Accept, Origin"], ['"odd value"'], ["*"], [""],
     ["Accept", "Origin"]],
)  # fmt: skip
@pytest.mark.parametrize("name", ["Cookie", "Origin"])
def test_add_vary_writes_what_werkzeug_writes(existing, name):
    # The shortcut must leave exactly the header lines response.vary.add would leave.
    expected, got = Response(), Response()
    for response in (expected, got):
        response.headers.add("X-Before", "1")
        for value in existing:
            response.headers.add("Vary", value)
        response.headers.add("X-After", "2")
    expected.vary.add(name)
    add_vary(got, name)
    assert got.headers.to_wsgi_list() == expected.headers.to_wsgi_list()


def test_a_request_without_cookies_sets_none_and_a_signed_in_browser_keeps_its_session(
    client, auth, user, service
):
    # RFC 6265 §4.1: an API answer sets no cookie; a browser's session cookie still
    # carries its sign-in from one request to the next.
    assert "Set-Cookie" not in token_request(client, service).headers
    auth.login()
    page = client.get("/account/")
    assert page.status_code == 200
    assert "alice" in page.get_data(as_text=True)
    client.set_cookie("idp_session", "forged")
    assert client.get("/account/").status_code == 302  # a cookie that does not verify: signed out


def test_the_session_cookie_keeps_its_attributes(client):
    # RFC 6265 §4.1.2.5-6 and RFC 6265bis §4.1.2.7: HttpOnly and SameSite=Lax on the session.
    response = client.get("/login")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Cookie" in vary(response)


def test_the_session_cookie_reads_and_is_read_as_flasks_own(app, client, auth, user):
    # serve.SessionSerializer compresses with a smaller deflate state than itsdangerous's:
    # a browser's cookie from before (Flask's serializer) still signs it in, and its cookies
    # are Flask's format, compressed (".") when that is shorter, as Flask's would be.
    stock = SecureCookieSessionInterface().get_signing_serializer(app)
    ours = app.session_interface.get_signing_serializer(app)
    assert type(ours) is SessionSerializer
    big = {"next": "/authorize?client_id=abc&scope=openid+profile" * 20, "n": 1}
    for value in (big, {"csrf_token": "0123456789abcdef0123456789abcdef01234567"}):
        assert stock.loads(ours.dumps(value)) == value == ours.loads(stock.dumps(value))
    assert ours.dumps(big).startswith(".") and len(ours.dumps(big)) < 400
    auth.login()
    cookie = client.get_cookie("idp_session").value
    client.set_cookie("idp_session", stock.dumps(ours.loads(cookie)))
    assert client.get("/account/").status_code == 200


@pytest.mark.parametrize(
    "query",
    ["a=%00", "a=\x00", "%00=a", "x=1&b=c%00d"],
)
def test_a_nul_in_the_query_string_is_refused_with_400(client, service, query):
    # RFC 6749 Appendix A: no parameter holds NUL; a 400, never a 500 from the database.
    response = client.post(
        "/token?" + query,
        data={"grant_type": "client_credentials", "scope": "api"},
        headers=credentials(service),
    )
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"


def test_an_encoded_percent_sign_is_no_nul(client, service):
    # "%2500" decodes to the three characters "%00", not to NUL: nothing to refuse there.
    response = client.get("/login?next=%2500")
    assert response.status_code == 200
    assert token_request(client, service).status_code == 200


@pytest.mark.parametrize(
    "body",
    [b"grant_type=client_credentials%00&scope=api", b"grant_type=client_credentials&sc%00pe=api"],
)
def test_a_nul_in_the_form_is_refused_with_400(client, service, body):
    response = client.post(
        "/token", data=body, content_type="application/x-www-form-urlencoded",
        headers=credentials(service),
    )  # fmt: skip
    assert response.status_code == 400
    assert "NUL" in response.get_json()["error_description"]


def test_json_bodies_are_refused_when_they_carry_nul_or_nest_too_deep(client):
    # RFC 7591 §3.1 registration takes JSON: a NUL escape or a nesting Python's parser
    # cannot follow is a 400, not a 500.
    for body in (b'{"client_name": "a\\u0000b"}', b"[" * 30000 + b"]" * 30000):
        response = client.post("/register", data=body, content_type="application/json")
        assert response.status_code == 400, body[:20]


def test_protocol_posts_need_no_csrf_token_and_forms_still_do(client, service, user):
    # The token endpoint is exempt from the forms' CSRF check (it authenticates the client),
    # however often it is called; a form post without its token is refused every time.
    for _ in range(3):
        assert token_request(client, service).status_code == 200
        refused = client.post("/login", data={"username": "alice", "password": "x"})
        assert refused.status_code == 400
        assert 'data-refusal="csrf"' in refused.get_data(as_text=True)
    page = client.get("/login")
    accepted = client.post(
        "/login",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "username": "alice",
              "password": "wrong", "next": ""},
    )  # fmt: skip
    assert 'data-refusal="csrf"' not in accepted.get_data(as_text=True)


def test_every_answer_carries_the_security_headers_and_html_is_not_stored(client, service):
    for response in (token_request(client, service), client.get("/login"), client.get("/nope")):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers.get("Cache-Control") == "no-store"
        assert len(response.headers.getlist("Content-Security-Policy")) == 1


def twin_app(calls: list, lean: bool) -> Flask:
    """An app with hooks of every kind on the app, a blueprint and a nested blueprint, each
    writing what ran to ``calls``; ``lean`` runs them through ``serve.hook_chains``."""
    app = Flask(__name__)
    outer, inner = Blueprint("outer", __name__), Blueprint("inner", __name__)

    def record(kind, where):
        def url_values(endpoint, values):
            calls.append((kind, where, endpoint, dict(values or {})))

        def before():
            calls.append((kind, where))
            if where == "inner1" and request.args.get("stop") == kind:
                return "stopped by a before-request hook"
            return None

        def after(response):
            calls.append((kind, where, response.status_code))
            response.headers.add("X-Order", f"{kind}:{where}")
            return response

        def teardown(exc):
            calls.append((kind, where, type(exc).__name__ if exc else None))

        return {"url": url_values, "before": before, "after": after, "teardown": teardown}[kind]

    for owner, where in ((app, "app"), (outer, "outer"), (inner, "inner")):
        for number in (1, 2):  # two of each: the order within one list counts too
            owner.url_value_preprocessor(record("url", f"{where}{number}"))
            owner.before_request(record("before", f"{where}{number}"))
            owner.after_request(record("after", f"{where}{number}"))
            owner.teardown_request(record("teardown", f"{where}{number}"))

    @app.get("/top")
    def top():
        return "top"

    @inner.get("/deep/<int:n>")
    def deep(n):
        @after_this_request
        def once(response):
            calls.append(("after_this_request", n))
            return response

        if n == 0:
            raise ValueError("a view that fails")
        return f"deep {n}"

    outer.register_blueprint(inner, url_prefix="/inner")
    app.register_blueprint(outer, url_prefix="/outer")
    if lean:
        hook_chains(app)
    return app


@pytest.mark.parametrize(
    "path",
    ["/top", "/outer/inner/deep/7", "/outer/inner/deep/7?stop=before", "/outer/inner/deep/0",
     "/nowhere", "/top?again=1"],
)  # fmt: skip
def test_hooks_run_in_flasks_order_from_the_lists_made_once(path):
    # Flask's contract for request hooks: URL value preprocessors and before-request hooks
    # from the app down to the blueprint, after-request and teardown hooks back up, each
    # list in reverse; a before-request answer stops the rest; after_this_request first.
    # The lean runner (idp/serve.py) must leave the same trace, answer and headers.
    traces = []
    for lean in (False, True):
        calls: list = []
        app = twin_app(calls, lean)
        client = app.test_client()
        client.get("/top")  # the lean runner's lists are made at a first request
        calls.clear()
        response = client.get(path)
        traces.append((calls, response.status_code, response.headers.getlist("X-Order"),
                       response.get_data()))  # fmt: skip
    assert traces[0] == traces[1]
    assert traces[1][0], "no hook ran"


def test_each_blueprint_gets_its_own_hook_lists():
    calls: list = []
    app = twin_app(calls, lean=True)
    client = app.test_client()
    client.get("/top")
    assert not any(where.startswith("inner") for _kind, where, *_ in calls)
    calls.clear()
    client.get("/outer/inner/deep/3")
    assert ("before", "inner2") in calls
    assert set(app.extensions[HOOK_CHAINS]) == {None, "outer.inner"}
