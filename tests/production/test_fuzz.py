"""No request crashes the server: every JSON/form endpoint fuzzed with malformed input.

Hypothesis generates methods, content types, credentials, repeated and unknown parameters,
odd characters (NUL, non-ASCII, huge values) and raw bodies, with a fixed seed
(``derandomize=True``) and a bounded example budget. Every answer must be below 500 and,
on protocol endpoints, a spec-shaped error: JSON with an ``error`` code from the OAuth
registries and an ``error_description`` within RFC 6749 §5.2's character set.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ..helpers import basic_auth, csrf_token

pytestmark = pytest.mark.config(RATELIMIT_ENABLED=False, REGISTRATION="open", PURGE_INTERVAL=0)

FUZZ = settings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# RFC 6749 §4.1.2.1/§5.2, RFC 6750 §3.1, RFC 7009 §2.2.1, RFC 7591 §3.2.2, RFC 8628 §3.5,
# RFC 8707 §2, RFC 9126 §2.3, RFC 9449 §7.1, the OAuth Extensions Error Registry.
ERROR_CODES = {
    "invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
    "unsupported_grant_type", "invalid_scope", "unsupported_token_type", "invalid_token",
    "insufficient_scope", "access_denied", "unsupported_response_type", "server_error",
    "temporarily_unavailable", "invalid_redirect_uri", "invalid_client_metadata",
    "invalid_software_statement", "unapproved_software_statement", "authorization_pending",
    "slow_down", "expired_token", "invalid_target", "invalid_request_uri",
    "invalid_request_object", "invalid_dpop_proof", "use_dpop_nonce",
    "invalid_authorization_details",
}  # fmt: skip
DESCRIPTION = re.compile(r"^[\x20-\x21\x23-\x5b\x5d-\x7e]*$")  # RFC 6749 §5.2 NQSCHAR

PARAMS = [
    "grant_type", "code", "redirect_uri", "code_verifier", "refresh_token", "scope",
    "client_id", "client_secret", "token", "token_type_hint", "access_token", "resource",
    "audience", "device_code", "request_uri", "request", "response_type", "state", "nonce",
    "code_challenge", "code_challenge_method", "prompt", "max_age", "id_token_hint",
    "client_assertion", "client_assertion_type", "subject_token", "subject_token_type",
    "post_logout_redirect_uri", "logout_hint", "ui_locales", "response_mode", "username",
    "password",
]  # fmt: skip
ODD = [
    "", " ", "\x00", "a\x00b", "%00", "null", "[]", "{}", "-1", "0", "1e309", "é", "☃" * 3,
    "x" * 2000, "\r\nX-Injected: 1", "'; DROP TABLE tokens; --", "../../etc/passwd",
    "openid", "openid profile offline_access", "authorization_code", "refresh_token",
    "client_credentials", "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "eyJhbGciOiJub25lIn0.e30.",
    "S256", "plain", "https://rp.example/cb", "http://localhost/token", "access_token",
    "none", "login consent", "form_post", "code", "urn:ietf:params:oauth:request_uri:abc",
    "http://[", "logïn", 'x"y',
]  # fmt: skip
CONTENT_TYPES = [
    "application/x-www-form-urlencoded", "application/json", "text/plain",
    "multipart/form-data; boundary=x", "application/x-www-form-urlencoded; charset=latin-1",
    "", "application/jwt",
]  # fmt: skip

ascii_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40)
any_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=60)


@pytest.fixture
def known(factory, user):
    """Real identifiers so that fuzzed requests also reach the code behind client auth."""
    confidential = factory.client()
    public = factory.client(public=True)
    machine = factory.client(grant_types=("client_credentials",), scope="api")
    return {
        "values": [confidential.client_id, public.client_id, machine.client_id,
                   confidential.redirect_uri],
        "auth": [basic_auth(confidential.client_id, confidential.client_secret),
                 basic_auth(machine.client_id, machine.client_secret)],
    }  # fmt: skip


def draw_request(data, known, path: str, methods: list[str]) -> dict:
    value = st.one_of(any_text, st.sampled_from(ODD), st.sampled_from(known["values"]))
    key = st.one_of(st.sampled_from(PARAMS), any_text)
    pairs = data.draw(st.lists(st.tuples(key, value), max_size=8), label="params")
    method = data.draw(st.sampled_from(methods), label="method")
    content_type = data.draw(st.sampled_from(CONTENT_TYPES), label="content_type")
    body_kind = data.draw(st.sampled_from(["form", "json", "raw", "none"]), label="body")
    if body_kind == "form":
        body = urlencode(pairs).encode()
    elif body_kind == "json":
        body = json.dumps(
            data.draw(
                st.one_of(
                    st.dictionaries(
                        key,
                        st.one_of(
                            value,
                            st.lists(value, max_size=3),
                            st.integers(),
                            st.booleans(),
                            st.none(),
                        ),
                        max_size=8,
                    ),
                    st.lists(value, max_size=3),
                    value,
                    st.integers(),
                ),  # fmt: skip
                label="json",
            )
        ).encode()
    elif body_kind == "raw":
        body = data.draw(st.binary(max_size=300), label="raw")
    else:
        body = b""
    headers = {}
    if content_type:
        headers["Content-Type"] = content_type
    authorization = data.draw(
        st.one_of(
            st.none(),
            st.sampled_from(known["auth"]).map(lambda h: h["Authorization"]),
            ascii_text.map(lambda t: "Basic " + base64.b64encode(t.encode()).decode()),
            ascii_text.map(lambda t: "Basic " + t),
            ascii_text.map(lambda t: "Bearer " + t),
            ascii_text.map(lambda t: "DPoP " + t),
            ascii_text,
        ),
        label="authorization",
    )
    if authorization is not None:
        headers["Authorization"] = authorization
    query = urlencode(pairs) if method in ("GET", "DELETE") else ""
    return {"path": path + ("?" + query if query else ""), "method": method, "data": body,
            "headers": headers}  # fmt: skip


def assert_spec_shaped(response, protocol: bool) -> None:
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    if not protocol or response.status_code < 400:
        return
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert isinstance(body, dict)
    if response.status_code == 401 and not body:
        return  # RFC 6750 §3.1: a request without credentials gets no error code
    if response.status_code == 404 and "error" not in body:
        return
    assert body.get("error") in ERROR_CODES, body
    description = body.get("error_description", "")
    assert isinstance(description, str) and DESCRIPTION.match(description), body


PROTOCOL = [
    ("/token", ["POST", "GET", "PUT"]),
    ("/revoke", ["POST"]),
    ("/introspect", ["POST"]),
    ("/userinfo", ["GET", "POST"]),
    ("/register", ["POST", "GET"]),
    ("/register/some-client", ["GET", "PUT", "DELETE"]),
    ("/device_authorization", ["POST"]),
    ("/par", ["POST"]),
]


@pytest.mark.parametrize(("path", "methods"), PROTOCOL, ids=[p for p, _ in PROTOCOL])
@FUZZ
@given(data=st.data())
def test_protocol_endpoints_answer_malformed_requests_with_spec_shaped_errors(
    app, known, path, methods, data
):
    # Every fuzzed path must exist: a vanished endpoint fails here instead of skipping.
    assert path.startswith("/register/") or any(
        rule.rule == path.split("?")[0] for rule in app.url_map.iter_rules()
    ), path
    request = draw_request(data, known, path, methods)
    with app.test_client() as client:
        response = client.open(**request)
    assert_spec_shaped(response, protocol=True)


PAGES = [
    ("/authorize", ["GET", "POST"]),
    ("/login", ["POST", "GET"]),
    ("/end_session", ["GET", "POST"]),
    ("/device", ["GET", "POST"]),
]


@pytest.mark.parametrize(("path", "methods"), PAGES, ids=[p for p, _ in PAGES])
@FUZZ
@given(data=st.data())
def test_pages_never_crash_on_malformed_requests(app, known, path, methods, data):
    request = draw_request(data, known, path, methods)
    with app.test_client() as client:
        response = client.open(**request)
    assert response.status_code < 500, response.get_data(as_text=True)[:500]


NUL_PARAMS = ["client_id", "client_secret", "code", "token", "refresh_token", "redirect_uri",
              "scope", "username", "device_code", "request_uri"]  # fmt: skip


NUL_PATHS = ["/token", "/revoke", "/introspect", "/device_authorization", "/par", "/userinfo",
             "/authorize", "/login"]  # fmt: skip


def test_nul_characters_are_refused_before_reaching_the_database(client, known):
    # PostgreSQL text cannot hold NUL; the answer is a 400, never a 500 (found by fuzzing).
    for path in NUL_PATHS:
        for param in NUL_PARAMS:
            body = urlencode(
                {"grant_type": "client_credentials", param: known["values"][0] + "\x00"}
            )
            response = client.post(
                path, data=body, content_type="application/x-www-form-urlencoded"
            )
            assert response.status_code == 400, (path, param)
            assert_spec_shaped(response, protocol=not path.startswith(("/authorize", "/login")))
            query = client.get(f"{path}?{urlencode({param: 'a' + chr(0)})}")
            assert query.status_code == 400, (path, param)


def test_nul_in_a_multipart_form_is_refused(client, user):
    # Found by fuzzing the pages: only url-encoded bodies were checked, so a multipart form
    # carried NUL to PostgreSQL (a 500); with a valid CSRF token the check must still refuse.
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        "/login",
        data={"csrf_token": token, "username": "alice\x00", "password": "x", "next": ""},
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "must not contain NUL" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/login", "/logout", "/token", "/authorize"])
def test_a_multipart_field_without_a_name_is_refused(client, path):
    # Found by fuzzing the pages: a CR or LF in a multipart field name leaves the part
    # without a name, and Flask-WTF's CSRF check failed on it: a 500 on every form.
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        path, data={"csrf_token": token, "a\rb": "x"}, content_type="multipart/form-data"
    )
    assert response.status_code == 400
    assert_spec_shaped(response, protocol=path == "/token")
    if path != "/token":
        assert 'class="topbar"' in response.get_data(as_text=True)  # the friendly page


@pytest.mark.parametrize("path", ["/login", "/logout", "/register", "/end_session"])
@pytest.mark.config(REGISTRATION="open")
def test_json_nested_too_deep_is_refused_before_anything_reads_it(client, path):
    # Found by fuzzing the pages: json.loads raises RecursionError, not ValueError, and
    # Flask-WTF's forms read JSON bodies: a 500 on every form (given a valid CSRF token).
    token = csrf_token(client.get("/login").get_data(as_text=True))
    response = client.post(
        path,
        data="[" * 5000 + "]" * 5000,
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 400
    assert_spec_shaped(response, protocol=path == "/register")


def test_nul_in_a_basic_client_id_is_an_authentication_failure(client):
    headers = {"Authorization": "Basic " + base64.b64encode(b"a\x00b:secret").decode()}
    response = client.post("/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_nul_in_a_json_registration_is_refused(client):
    response = client.post(
        "/register", json={"redirect_uris": ["https://rp.example/cb"], "client_name": "a\x00b"}
    )
    assert response.status_code == 400
    assert_spec_shaped(response, protocol=True)
