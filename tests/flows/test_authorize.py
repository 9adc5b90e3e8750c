"""The authorization endpoint: request validation, error delivery, response modes, login.

RFC 6749 §3.1 and §4.1.1-§4.1.2.1, RFC 9700 §2.1.2 and §4.1.3, RFC 9207 (iss),
OAuth 2.0 Form Post Response Mode, OIDC Core §3.1.2.
"""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import func, select

from idp import db
from idp.models import AuditEvent, AuthorizationCode

from ..helpers import csrf_token, query

ISSUER = "http://localhost"


def authorize_url(params) -> str:
    return "/authorize?" + urlencode(params)


def request_params(client, **extra) -> dict:
    """A valid code request of a confidential client (PKCE left out: it is optional there)."""
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "nonce": secrets.token_urlsafe(8),
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def page_error(response) -> str:
    """The error code shown on the error page (a page that never redirects)."""
    match = re.search(r"<code>([a-z_]+)</code>", response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:500]
    return match.group(1)


def form_fields(page: str) -> dict[str, str]:
    return {
        name: html.unescape(value)
        for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)
    }


def assert_error_page(response, error: str) -> None:
    """An error found before the redirect URI is trusted: shown to the user, never redirected."""
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    assert page_error(response) == error


def redirected_error(response, redirect_uri: str) -> dict[str, str]:
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.split("?")[0] == redirect_uri
    result = query(location)
    assert "code" not in result
    return result


def codes_issued(app) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(AuthorizationCode))


# --- response_type -------------------------------------------------------------------


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "id_token token"])
def test_only_the_code_response_type_is_supported(client, auth, user, oauth_client, response_type):
    # RFC 9700 §2.1.2: the implicit grant (and hybrid flows) are not offered; RFC 6749
    # §4.1.2.1: the error goes back to the client's registered redirect URI with state and iss.
    auth.login()
    params = request_params(oauth_client, response_type=response_type)
    result = redirected_error(client.get(authorize_url(params)), oauth_client.redirect_uri)
    assert result["error"] == "unsupported_response_type"
    assert result["state"] == params["state"]
    assert result["iss"] == ISSUER
    assert "access_token" not in result and "id_token" not in result


def test_missing_response_type_is_an_error_sent_to_the_client(client, auth, user, oauth_client):
    # RFC 6749 §4.1.1 (response_type REQUIRED), §4.1.2.1: reported to the redirect URI.
    auth.login()
    params = request_params(oauth_client, response_type=None)
    result = redirected_error(client.get(authorize_url(params)), oauth_client.redirect_uri)
    # §4.1.2.1 invalid_request: "missing a required parameter"; unsupported_response_type
    # is for a response type the server does not offer.
    assert result["error"] == "invalid_request"
    assert result["state"] == params["state"]
    assert result["iss"] == ISSUER


def test_unsupported_response_type_with_unregistered_redirect_uri_is_not_redirected(
    client, auth, user, oauth_client
):
    # RFC 6749 §4.1.2.1: with an invalid redirect URI the server MUST NOT redirect.
    auth.login()
    params = request_params(
        oauth_client, response_type="token", redirect_uri="https://attacker.example/cb"
    )
    response = client.get(authorize_url(params))
    assert response.status_code == 400
    assert "Location" not in response.headers


@pytest.mark.parametrize("response_type", ['to"ken', "cödé", "code\\"])
def test_response_type_with_odd_characters_is_an_error_page(
    client, auth, user, oauth_client, response_type
):
    # RFC 6749 §4.1.2.1 unsupported_response_type; Authlib raised ValueError building the
    # error from such a value, a 500 (found by schemathesis). An error page, not a redirect.
    auth.login()
    params = request_params(oauth_client, response_type=response_type)
    response = client.get(authorize_url(params))
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "response_type" in response.text


# --- errors before the redirect URI is trusted ----------------------------------------


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"client_id": "no-such-client"}, "invalid_client"),
        ({"client_id": None}, "invalid_client"),
        ({"redirect_uri": "https://attacker.example/cb"}, "invalid_request"),
        # RFC 9700 §4.1.3: exact string matching, no normalisation or prefix matching.
        ({"redirect_uri": "https://rp.example/cb/"}, "invalid_request"),
        ({"redirect_uri": "https://rp.example/cb?next=1"}, "invalid_request"),
        ({"redirect_uri": "https://rp.example/cb#frag"}, "invalid_request"),
        ({"redirect_uri": "HTTPS://RP.EXAMPLE/cb"}, "invalid_request"),
        ({"redirect_uri": "https://rp.example/cb/../cb"}, "invalid_request"),
    ],
)
def test_untrusted_client_or_redirect_uri_shows_error_page(
    app, client, auth, user, oauth_client, change, error
):
    # RFC 6749 §4.1.2.1: missing/invalid client or redirect URI -> inform the resource
    # owner and MUST NOT redirect the user-agent to the invalid redirection URI.
    auth.login()
    response = client.get(authorize_url(request_params(oauth_client, **change)))
    assert_error_page(response, error)
    assert codes_issued(app) == 0


def test_untrusted_request_shows_error_page_without_a_session(client, oauth_client):
    # RFC 6749 §4.1.2.1: the check happens before sign-in, so no login redirect either.
    params = request_params(oauth_client, redirect_uri="https://attacker.example/cb")
    assert_error_page(client.get(authorize_url(params)), "invalid_request")


def test_disabled_client_is_treated_as_unknown(app, client, auth, user, oauth_client):
    # RFC 6749 §4.1.2.1: a client that may no longer be used is an invalid client_id.
    with app.app_context():
        session = db.session()
        session.get(type(oauth_client.row), oauth_client.row.id).disabled = True
        session.commit()
    auth.login()
    response = client.get(authorize_url(request_params(oauth_client)))
    assert_error_page(response, "invalid_client")


def test_openid_request_without_redirect_uri_is_invalid_request(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.1: redirect_uri is REQUIRED in an authentication request; the one
    # registered URI is trusted, so the error goes there (RFC 6749 §4.1.2.1).
    auth.login()
    params = request_params(oauth_client, redirect_uri=None)
    result = redirected_error(client.get(authorize_url(params)), oauth_client.redirect_uri)
    assert result["error"] == "invalid_request"
    assert result["state"] == params["state"] and result["iss"] == ISSUER


def test_oauth_request_without_redirect_uri_uses_the_single_registered_one(
    client, auth, user, oauth_client
):
    # RFC 6749 §3.1.2.3: redirect_uri may be omitted when exactly one is registered.
    auth.login()
    params = request_params(oauth_client, redirect_uri=None, scope="profile", nonce=None)
    response = auth.authorize(params)
    assert response.status_code == 302
    assert response.headers["Location"].startswith(oauth_client.redirect_uri + "?")
    assert query(response.headers["Location"])["code"]


def test_missing_redirect_uri_with_several_registered_shows_error_page(client, auth, user, factory):
    # RFC 6749 §3.1.2.3: with several registered URIs the client must name one, and no
    # URI is trusted to receive the error (§4.1.2.1).
    several = factory.client(redirect_uris=("https://rp.example/a", "https://rp.example/b"))
    auth.login()
    params = request_params(several, redirect_uri=None, scope="profile")
    assert_error_page(client.get(authorize_url(params)), "invalid_request")


# --- state and iss on every response --------------------------------------------------


def test_success_echoes_state_and_adds_iss(client, auth, user, oauth_client):
    # RFC 6749 §4.1.2 (state echoed exactly), RFC 9207 §2 (iss in the response).
    auth.login()
    params = request_params(oauth_client, state="a b/c?d=e&f")
    response = auth.authorize(params)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(oauth_client.redirect_uri + "?")
    result = query(location)
    assert result["state"] == "a b/c?d=e&f"
    assert result["iss"] == ISSUER
    assert result["code"]
    # Each parameter appears once in the redirect.
    names = [k for k, _ in parse_qsl(urlsplit(location).query)]
    assert sorted(names) == ["code", "iss", "state"]


def test_success_without_state_has_no_state(client, auth, user, oauth_client):
    # RFC 6749 §4.1.2: state is REQUIRED only if the client sent one; iss always (RFC 9207).
    auth.login()
    result = query(auth.authorize(request_params(oauth_client, state=None)).headers["Location"])
    assert "state" not in result
    assert result["iss"] == ISSUER


def test_registered_redirect_uri_query_is_kept(client, auth, user, factory):
    # RFC 6749 §3.1.2: the query component of the redirect URI MUST be retained.
    rp = factory.client(redirect_uris=("https://rp.example/cb?tenant=7",))
    auth.login()
    response = auth.authorize(request_params(rp))
    location = response.headers["Location"]
    assert location.startswith("https://rp.example/cb?tenant=7&")
    result = query(location)
    assert result["tenant"] == "7" and result["code"] and result["iss"] == ISSUER


def test_consent_deny_redirects_access_denied_with_state_and_iss(
    app, client, auth, user, oauth_client
):
    # RFC 6749 §4.1.2.1: access_denied when the resource owner denies; RFC 9207 §2: iss.
    auth.login()
    params = request_params(oauth_client)
    response = auth.authorize(params, consent="deny")
    result = redirected_error(response, oauth_client.redirect_uri)
    assert result["error"] == "access_denied"
    assert result["state"] == params["state"] and result["iss"] == ISSUER
    assert codes_issued(app) == 0
    with app.app_context():
        events = db.session().scalars(select(AuditEvent.event)).all()
    assert "consent.denied" in events and "consent.granted" not in events


def test_consent_page_needs_csrf_token(app, client, auth, user, oauth_client):
    # RFC 6749 §10.12: the consent decision must come from the user, not a forged POST.
    auth.login()
    params = request_params(oauth_client)
    response = client.post(authorize_url(params), data={"allow": "Allow"})
    assert response.status_code == 200 and b'name="allow"' in response.data
    assert codes_issued(app) == 0


def test_consent_allow_issues_code_after_post(client, auth, user, oauth_client):
    # RFC 6749 §4.1.1-§4.1.2: the code is issued only after the owner grants access.
    auth.login()
    params = request_params(oauth_client)
    page = client.get(authorize_url(params))
    assert page.status_code == 200 and b'name="allow"' in page.data
    token = csrf_token(page.get_data(as_text=True))
    response = client.post(authorize_url(params), data={"csrf_token": token, "allow": "Allow"})
    result = query(response.headers["Location"])
    assert result["code"] and result["state"] == params["state"] and result["iss"] == ISSUER


def test_prompt_none_without_session_is_login_required_with_iss(client, oauth_client):
    # OIDC Core §3.1.2.6: login_required; RFC 9207 §2: iss on errors too.
    params = request_params(oauth_client, prompt="none")
    result = redirected_error(client.get(authorize_url(params)), oauth_client.redirect_uri)
    assert result["error"] == "login_required"
    assert result["state"] == params["state"] and result["iss"] == ISSUER


def test_prompt_none_without_consent_is_consent_required_with_iss(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.6: consent_required; RFC 9207 §2: iss.
    auth.login()
    params = request_params(oauth_client, prompt="none")
    result = redirected_error(client.get(authorize_url(params)), oauth_client.redirect_uri)
    assert result["error"] == "consent_required"
    assert result["state"] == params["state"] and result["iss"] == ISSUER


def test_invalid_prompt_is_invalid_request_with_state_and_iss(client, auth, user, oauth_client):
    # OIDC Core §3.1.2.1 (prompt none alone), RFC 6749 §4.1.2.1, RFC 9207 §2.
    auth.login()
    params = request_params(oauth_client, prompt="none login")
    result = redirected_error(client.get(authorize_url(params)), oauth_client.redirect_uri)
    assert result["error"] == "invalid_request"
    assert result["state"] == params["state"] and result["iss"] == ISSUER


def test_scopes_the_client_may_not_have_are_not_granted(app, client, auth, user, factory):
    # RFC 6749 §3.3: the server may ignore part of the requested scope; it never grants
    # a scope outside the client's registration.
    rp = factory.client(scope="openid profile")
    auth.login()
    response = auth.authorize(request_params(rp, scope="openid profile email admin"))
    result = query(response.headers["Location"])
    assert result["iss"] == ISSUER
    with app.app_context():
        row = db.session().scalar(select(AuthorizationCode))
        assert set(row.scope.split()) == {"openid", "profile"}


# --- response_mode ---------------------------------------------------------------------


def test_response_mode_query_redirects_with_query(client, auth, user, oauth_client):
    # OAuth 2.0 Multiple Response Types §2.1: query mode puts the response in the query.
    auth.login()
    response = auth.authorize(request_params(oauth_client, response_mode="query"))
    assert response.status_code == 302
    result = query(response.headers["Location"])
    assert result["code"] and result["iss"] == ISSUER


def test_form_post_response_mode_posts_code_state_and_iss(client, auth, user, oauth_client):
    # OAuth 2.0 Form Post Response Mode §2: an auto-submitting form POSTs the response;
    # RFC 9207 §2: iss included.
    auth.login()
    params = request_params(oauth_client, response_mode="form_post")
    response = auth.authorize(params)
    assert response.status_code == 200
    assert "Location" not in response.headers
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert re.search(r'<form method="post" action="https://rp\.example/cb"', page)
    fields = form_fields(page)
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == params["state"] and fields["iss"] == ISSUER
    # The submitting script comes from /static; no inline script (CSP script-src 'self').
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
    assert scripts and all('src="/static/' in attrs and not body.strip() for attrs, body in scripts)
    csp = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert "https://rp.example" in directives["form-action"]
    assert "'unsafe-inline'" not in directives.get("script-src", [])
    assert response.headers["Cache-Control"] == "no-store"
    with client.get("/static/js/form_post.js") as script:
        assert script.status_code == 200 and b"submit()" in script.data


def test_form_post_form_action_allows_the_origin_with_port(client, auth, user, factory):
    # OAuth 2.0 Form Post Response Mode §2; CSP form-action must name the client's origin.
    rp = factory.client(redirect_uris=("http://127.0.0.1:8765/callback",))
    auth.login()
    response = auth.authorize(request_params(rp, response_mode="form_post"))
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    form_action = next(d for d in csp.split(";") if d.strip().startswith("form-action"))
    assert "http://127.0.0.1:8765" in form_action.split()


def test_form_post_escapes_state(client, auth, user, oauth_client):
    # OAuth 2.0 Form Post Response Mode §5 (security): values are HTML-encoded in the form.
    auth.login()
    evil = '"><script>alert(1)</script>'
    response = auth.authorize(request_params(oauth_client, response_mode="form_post", state=evil))
    page = response.get_data(as_text=True)
    assert "<script>alert(1)" not in page
    assert form_fields(page)["state"] == evil


def test_form_post_errors_are_posted_too(client, auth, user, oauth_client):
    # OAuth 2.0 Form Post Response Mode §2: error responses use the requested mode as well.
    auth.login()
    params = request_params(oauth_client, response_mode="form_post", prompt="consent")
    response = auth.authorize(params, consent="deny")
    assert response.status_code == 200 and "Location" not in response.headers
    fields = form_fields(response.get_data(as_text=True))
    assert fields["error"] == "access_denied"
    assert fields["state"] == params["state"] and fields["iss"] == ISSUER
    assert "code" not in fields


@pytest.mark.parametrize("mode", ["fragment", "web_message", "jwt"])
def test_unsupported_response_mode_is_redirected_as_query_error(
    app, client, auth, user, oauth_client, mode
):
    # OAuth 2.0 Multiple Response Types §2.1 (fragment must not be used for code here),
    # RFC 6749 §4.1.2.1: invalid_request sent back in the query.
    auth.login()
    params = request_params(oauth_client, response_mode=mode)
    response = client.get(authorize_url(params))
    assert response.status_code == 302
    location = response.headers["Location"]
    assert "#" not in location
    result = redirected_error(response, oauth_client.redirect_uri)
    assert result["error"] == "invalid_request"
    assert result["state"] == params["state"] and result["iss"] == ISSUER
    assert codes_issued(app) == 0


# --- repeated parameters ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "prompt",
        "response_mode",
    ],
)
def test_repeated_parameter_is_invalid_request(app, client, auth, user, oauth_client, name):
    # RFC 6749 §3.1: request and response parameters MUST NOT be included more than once.
    auth.login()
    params = request_params(
        oauth_client,
        code_challenge="E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        code_challenge_method="S256",
        prompt="consent",
        response_mode="query",
    )
    url = authorize_url(params) + "&" + urlencode({name: params[name]})
    response = client.get(url)
    if response.status_code == 302:
        result = redirected_error(response, oauth_client.redirect_uri)
        assert result["error"] == "invalid_request" and result["iss"] == ISSUER
    else:
        assert_error_page(response, "invalid_request")
    assert codes_issued(app) == 0


def test_parameter_repeated_in_the_consent_post_body_is_refused(
    app, client, auth, user, oauth_client
):
    # RFC 6749 §3.1: the consent POST carries the request in its URL; a body that sends a
    # parameter again (here a second nonce) must not override it silently.
    auth.login()
    params = request_params(oauth_client)
    page = client.get(authorize_url(params))
    token = csrf_token(page.get_data(as_text=True))
    response = client.post(
        authorize_url(params), data={"csrf_token": token, "allow": "Allow", "nonce": "other"}
    )
    result = redirected_error(response, oauth_client.redirect_uri)
    assert result["error"] == "invalid_request"
    assert result["state"] == params["state"] and result["iss"] == ISSUER
    assert codes_issued(app) == 0


# --- sign-in on the way ----------------------------------------------------------------


def test_not_signed_in_redirects_to_login_and_back(app, client, auth, user, oauth_client):
    # OIDC Core §3.1.2.3: the server authenticates the end-user, then the request resumes.
    params = request_params(oauth_client)
    response = client.get(authorize_url(params))
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login" and location.netloc in ("", "localhost")
    next_url = query(response.headers["Location"])["next"]
    assert urlsplit(next_url).path == "/authorize"
    assert dict(parse_qsl(urlsplit(next_url).query)) == params
    assert codes_issued(app) == 0

    login = auth.login(next_url=next_url)
    assert login.status_code == 302 and login.headers["Location"] == next_url
    response = auth.authorize(dict(parse_qsl(urlsplit(next_url).query)))
    assert response.status_code == 302
    result = query(response.headers["Location"])
    assert result["code"] and result["state"] == params["state"] and result["iss"] == ISSUER
    assert codes_issued(app) == 1


def test_login_hint_is_passed_to_the_login_page(client, oauth_client):
    # OIDC Core §3.1.2.1: login_hint may prefill the identifier.
    params = request_params(oauth_client, login_hint="alice@example.com")
    response = client.get(authorize_url(params))
    assert query(response.headers["Location"])["login_hint"] == "alice@example.com"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'value="alice@example.com"' in page
