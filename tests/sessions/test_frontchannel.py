"""Front-Channel Logout 1.0: the signed-out page loads each RP's logout URI in an iframe."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from .conftest import decode

LOGGED_OUT = "https://rp.example/logged-out"


@pytest.fixture
def session_rp(factory):
    return factory.client(
        name="Session RP",
        logout_metadata={
            "frontchannel_logout_uri": "https://rp.example/fc?tenant=1",
            "frontchannel_logout_session_required": True,
            "post_logout_redirect_uris": [LOGGED_OUT],
        },
    )


@pytest.fixture
def plain_rp(factory):
    return factory.client(
        name="Plain RP",
        redirect_uris=["https://other.example/cb"],
        logout_metadata={"frontchannel_logout_uri": "https://other.example/logout"},
    )


def frames(html: str) -> list[str]:
    return [u.replace("&amp;", "&") for u in re.findall(r'data-src="([^"]+)"', html)]


def test_signed_out_page_loads_each_rps_logout_uri_with_iss_and_sid_when_required(
    client, auth, user, session_rp, plain_rp
):
    # Front-Channel Logout 1.0 §2-§3: iss and sid added when the RP registered
    # frontchannel_logout_session_required; the RP's own query is kept.
    auth.login()
    sid = decode(client, auth.tokens(session_rp)["id_token"]).claims["sid"]
    auth.tokens(plain_rp)
    response = auth.logout()
    assert response.status_code == 200
    uris = frames(response.text)
    assert len(uris) == 2
    with_session = next(u for u in uris if u.startswith("https://rp.example/fc"))
    assert parse_qs(urlsplit(with_session).query) == {
        "tenant": ["1"],
        "iss": ["http://localhost"],
        "sid": [sid],
    }
    assert "https://other.example/logout" in uris  # not required: the bare URI


def test_signed_out_page_allows_framing_exactly_those_origins(client, auth, user, session_rp):
    # Front-Channel Logout 1.0 §3 under this server's CSP: frame-src lists the RP origins only.
    auth.login()
    auth.tokens(session_rp)
    csp = auth.logout().headers["Content-Security-Policy"]
    assert "frame-src https://rp.example;" in csp
    assert "frame-ancestors 'none'" in csp  # the page itself still cannot be framed
    assert "script-src 'self'" in csp


def test_no_iframes_for_an_rp_the_session_never_signed_into(client, auth, user, session_rp):
    # Front-Channel Logout 1.0 §3: only the RPs of this session are rendered.
    auth.login()
    response = auth.logout()
    assert frames(response.text) == []
    assert "frame-src" not in response.headers["Content-Security-Policy"]


def test_rp_initiated_logout_shows_iframes_before_returning_to_the_rp(
    client, auth, user, session_rp
):
    # Front-Channel Logout 1.0 §4 with RP-Initiated Logout 1.0 §3: the iframes are rendered
    # and the page then continues to the post_logout_redirect_uri (static script, no inline).
    auth.login()
    id_token = auth.tokens(session_rp)["id_token"]
    response = client.get(
        "/end_session?"
        + urlencode(
            {"id_token_hint": id_token, "post_logout_redirect_uri": LOGGED_OUT, "state": "f"}
        )
    )
    assert response.status_code == 200
    assert len(frames(response.text)) == 1
    assert f'id="continue" href="{LOGGED_OUT}?state=f"' in response.text
    assert "/static/js/logged_out.js" in response.text


def test_an_rp_authorized_twice_in_one_session_is_loaded_once(client, auth, user, session_rp):
    # Front-Channel Logout 1.0 §3: one logout URI per RP the session signed into, however
    # many codes it was issued (the second authorization succeeds and records nothing new).
    auth.login()
    auth.tokens(session_rp)
    auth.tokens(session_rp)
    uris = frames(auth.logout().text)
    assert len(uris) == 1 and uris[0].startswith("https://rp.example/fc")
