"""The demo relying party (/demo, DEMO on): its callback when the provider says no."""

from __future__ import annotations

import io
from urllib.error import HTTPError, URLError

import pytest

from idp import demo

from ..helpers import query

pytestmark = pytest.mark.config(DEMO=True)


def started(app, client) -> str:
    """Start the demo's sign-in; returns the state its cookie remembers."""
    with app.app_context():
        demo.prepare(app)
    response = client.get("/demo/")
    assert response.status_code == 302
    return query(response.headers["Location"])["state"]


def test_a_refused_code_shows_the_error_instead_of_crashing(app, client, monkeypatch):
    # Found while fuzzing the pages (by reading: no fuzzed request holds the state cookie):
    # reloading the callback page sends the used code again, the token endpoint answers
    # invalid_grant (RFC 6749 §5.2), and the page was a 500.
    def refuse(request, timeout):
        body = io.BytesIO(b'{"error": "invalid_grant"}')
        raise HTTPError(request.full_url, 400, "Bad Request", {}, body)

    state = started(app, client)
    monkeypatch.setattr(demo.urllib.request, "urlopen", refuse)
    response = client.get(f"/demo/callback?code=used&state={state}")
    assert response.status_code == 400
    assert "the provider refused the request (invalid_grant)" in response.text
    assert 'href="/demo/"' in response.text  # start again


def test_an_unreachable_provider_is_a_bad_gateway_page(app, client, monkeypatch):
    def unreachable(request, timeout):
        raise URLError("connection refused")

    state = started(app, client)
    monkeypatch.setattr(demo.urllib.request, "urlopen", unreachable)
    response = client.get(f"/demo/callback?code=x&state={state}")
    assert response.status_code == 502
    assert "could not be reached" in response.text
    assert "Traceback" not in response.text and "refused" not in response.text
