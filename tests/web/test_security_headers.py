"""Response headers, cookies, templates and error pages that protect the browser side."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest

from idp import db, resource_dir
from idp.models import User

from ..helpers import allowed_methods


def fetch(name: str, client, auth, oauth_client):
    if name == "login":
        return client.get("/login")
    if name in ("consent", "account", "logout"):
        auth.login()
        if name == "consent":
            params, _ = auth.code_flow_params(oauth_client, scope="openid email")
            page = client.get("/authorize?" + urlencode(params))
            assert 'name="allow"' in page.text
            return page
        return client.get(f"/{name}" + ("/" if name == "account" else ""))
    if name == "not_found":
        return client.get("/no/such/page")
    if name == "authorize_error":  # error shown to the user, not redirected (RFC 6749 §4.1.2.1)
        return client.get("/authorize?response_type=code&client_id=unknown")
    if name == "discovery":
        return client.get("/.well-known/openid-configuration")
    if name == "jwks":
        return client.get("/jwks.json")
    if name == "token_error":
        return client.post("/token", data={"grant_type": "password"})
    if name == "userinfo_error":
        return client.get("/userinfo")
    raise AssertionError(name)


HTML_PAGES = ["login", "consent", "account", "logout", "not_found", "authorize_error"]
JSON_ENDPOINTS = ["discovery", "jwks", "token_error", "userinfo_error"]


@pytest.mark.parametrize("name", HTML_PAGES + JSON_ENDPOINTS)
def test_every_response_carries_the_security_headers(client, auth, user, oauth_client, name):
    response = fetch(name, client, auth, oauth_client)
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    # CSP Level 3: no inline script or style, no eval; never framed (clickjacking).
    assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    # RFC 7034 X-Frame-Options for browsers without CSP 2.
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    # No code, state or token leaks to other sites through Referer (RFC 9700 §4.2.4).
    assert headers["Referrer-Policy"] == "no-referrer"
    # RFC 6797 §7.2: HSTS is not sent over plain http.
    assert "Strict-Transport-Security" not in headers


@pytest.mark.parametrize("name", HTML_PAGES)
def test_html_pages_are_not_cached(client, auth, user, oauth_client, name):
    # Pages carry personal data and CSRF tokens (RFC 9111 §5.2.2.5 no-store).
    response = fetch(name, client, auth, oauth_client)
    assert response.mimetype == "text/html"
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.parametrize("name", ["token_error", "userinfo_error"])
def test_json_error_responses_are_not_cached(client, auth, user, oauth_client, name):
    # RFC 6749 §5.1 / §5.2: token responses carry Cache-Control: no-store.
    response = fetch(name, client, auth, oauth_client)
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.config(ISSUER="https://idp.example")
@pytest.mark.parametrize("path", ["/login", "/.well-known/openid-configuration", "/nope"])
def test_hsts_is_sent_when_the_issuer_is_https(client, path):
    # RFC 6797 §6.1: at least a long max-age.
    header = client.get(path, base_url="https://idp.example").headers["Strict-Transport-Security"]
    max_age = int(re.search(r"max-age=(\d+)", header).group(1))
    assert max_age >= 31536000


def session_cookie(response) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("idp_session=")]
    assert len(cookies) == 1, response.headers.getlist("Set-Cookie")
    return cookies[0]


def cookie_attributes(cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


def test_session_cookie_is_httponly_and_samesite_lax(client, auth, user):
    # RFC 6265 §4.1.2.6 HttpOnly; RFC 6265bis SameSite=Lax (a CSRF defence in depth).
    cookie = session_cookie(auth.login())
    assert "httponly" in cookie_attributes(cookie)
    assert re.search(r";\s*SameSite=Lax", cookie, re.I)
    assert "secure" not in cookie_attributes(cookie)  # http://localhost in tests


@pytest.mark.config(ISSUER="https://idp.example")
def test_session_cookie_is_secure_when_the_issuer_is_https(client):
    # RFC 6265 §4.1.2.5: never sent over plain http.
    cookie = session_cookie(client.get("/login", base_url="https://idp.example"))
    attributes = cookie_attributes(cookie)
    assert {"secure", "httponly", "samesite"} <= attributes


TEMPLATES = sorted(p for p in Path(resource_dir("templates")).rglob("*") if p.is_file())


def test_the_template_folder_is_scanned():
    assert len(TEMPLATES) >= 8
    assert any(p.name == "login.html" for p in TEMPLATES)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_have_no_inline_script_and_no_external_urls(path):
    # The CSP allows scripts and styles from 'self' only, so inline code would be blocked
    # (and would be a foothold for XSS); third-party hosts (CDNs) are not trusted.
    text = path.read_text()
    for tag in re.findall(r"<script\b[^>]*>", text, re.I):
        assert re.search(r"\bsrc=", tag), f"inline <script> in {path.name}: {tag}"
    assert not re.search(r"<script\b[^>]*>\s*[^<\s]", text, re.I), f"script body in {path.name}"
    assert not re.search(r"<style\b", text, re.I), f"<style> block in {path.name}"
    assert not re.search(r"\sstyle\s*=", text, re.I), f"style attribute in {path.name}"
    assert not re.search(r"\son[a-z]+\s*=", text, re.I), f"inline event handler in {path.name}"
    assert not re.search(r"javascript:", text, re.I), f"javascript: URL in {path.name}"
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), (
        f"external URL in {path.name}"
    )


def test_not_found_page_is_friendly_html_without_a_stack_trace(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    assert "There is nothing at this address." in response.text
    assert "Traceback" not in response.text and "werkzeug" not in response.text.lower()


def test_server_error_page_shows_no_stack_trace(app, client):
    def boom():
        raise RuntimeError("secret internals: password=hunter2")

    app.add_url_rule("/boom", "boom", boom)
    response = client.get("/boom")
    assert response.status_code == 500
    assert response.mimetype == "text/html"
    assert "Something went wrong on our side" in response.text
    assert "Traceback" not in response.text
    assert "hunter2" not in response.text and "RuntimeError" not in response.text
    assert response.headers["X-Frame-Options"] == "DENY"


def test_server_error_page_renders_after_a_failed_database_statement(app, client, auth, user):
    # Found by fuzzing: after a failed flush (or a PostgreSQL error) the session's transaction
    # is unusable, and rendering the page for a signed-in user failed in turn.
    def boom():
        session = db.session()
        session.add(User(username="alice", password_hash="x"))  # the name is taken
        session.flush()

    app.add_url_rule("/boom", "boom", boom)
    auth.login()
    response = client.get("/boom")
    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert '<span class="who">alice</span>' in response.text  # still signed in
    assert "UNIQUE" not in response.text and "unique" not in response.text


@pytest.mark.parametrize(
    "path", ["/.well-known/no-such-document", "/jwks.json/extra", "/userinfo/extra"]
)
def test_unknown_path_under_a_json_endpoint_answers_json(client, path):
    # Machine clients of the protocol endpoints get JSON errors, not HTML (RFC 6749 §5.2 style).
    response = client.get(path)
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    assert response.get_json()["error"]
    assert "<html" not in response.text


def test_wrong_method_at_a_json_endpoint_answers_json(client):
    response = client.get("/revoke")
    assert response.status_code == 405
    assert response.mimetype == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "mimetype"),
    [("GET", "/revoke", "application/json"), ("POST", "/jwks.json", "application/json"),
     ("TRACE", "/.well-known/openid-configuration", "application/json"),
     ("DELETE", "/end_session", "text/html"), ("PUT", "/login", "text/html")],
)  # fmt: skip
def test_wrong_method_lists_the_allowed_methods(client, method, path, mimetype):
    # RFC 9110 §15.5.6: a 405 MUST carry Allow with the methods the resource supports.
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.mimetype == mimetype
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed == set(client.application.url_map.bind("localhost").allowed_methods(path))
    assert method not in allowed


@pytest.mark.config(REGISTRATION="open")
@pytest.mark.parametrize(
    ("path", "methods"),
    [("/token", {"POST"}), ("/par", {"POST"}), ("/register", {"POST"}),
     ("/register/some-client", {"GET", "PUT", "DELETE"})],
)  # fmt: skip
def test_options_advertises_only_the_methods_served(client, path, methods):
    # RFC 9110 §10.2.1: Allow lists the methods the resource supports, not ones that only
    # answer 405 (found by schemathesis' allow-header check).
    assert allowed_methods(client.options(path)) == methods
    for method in {"GET", "PUT", "DELETE", "PATCH", "POST"} - methods:
        response = client.open(path, method=method)
        assert response.status_code == 405, method
        assert response.get_json()["error"] == "invalid_request"
        assert allowed_methods(response) == methods
