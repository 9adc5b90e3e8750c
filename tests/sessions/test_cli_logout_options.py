"""`idp clients create` registers the logout metadata of RP-Initiated, Back- and
Front-Channel Logout 1.0, checked before anything is stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp.cli import cli
from idp.models import Client

from .conftest import find

CALLBACK = "https://app.example/cb"


def create(runner, *extra: str):
    args = ["clients", "create", "--name", "App", "--redirect-uri", CALLBACK, "--json", *extra]
    return runner.invoke(cli, args=args)


def test_logout_metadata_is_registered(app, runner):
    # RP-Initiated Logout 1.0 §3.1, Back-Channel Logout 1.0 §2.2, Front-Channel Logout 1.0 §2.
    result = create(
        runner,
        "--post-logout-redirect-uri", "https://app.example/bye",
        "--post-logout-redirect-uri", "https://app.example/bye2",
        "--backchannel-logout-uri", "https://app.example/bc",
        "--backchannel-logout-session-required",
        "--frontchannel-logout-uri", "https://app.example/fc",
        "--frontchannel-logout-session-required",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["post_logout_redirect_uris"] == [
        "https://app.example/bye",
        "https://app.example/bye2",
    ]
    (row,) = find(app, select(Client))
    assert row.post_logout_redirect_uris == ["https://app.example/bye", "https://app.example/bye2"]
    assert row.backchannel_logout_uri == "https://app.example/bc"
    assert row.backchannel_logout_session_required is True
    assert row.frontchannel_logout_uri == "https://app.example/fc"
    assert row.frontchannel_logout_session_required is True


@pytest.mark.parametrize(
    "option, uri",
    [
        ("--post-logout-redirect-uri", "https://app.example/bye#frag"),
        ("--post-logout-redirect-uri", "javascript:alert(1)"),
        ("--backchannel-logout-uri", "http://app.example/bc"),
        ("--backchannel-logout-uri", "https://app.example/bc#x"),
        ("--frontchannel-logout-uri", "https://elsewhere.example/fc"),
    ],
)
def test_unsafe_logout_uri_is_refused(app, runner, option, uri):
    # Back-Channel §2.2 / RFC 8252 §7.3: https except loopback; Front-Channel §2: same
    # scheme, host and port as a redirect URI; no fragments.
    result = create(runner, option, uri)
    assert result.exit_code != 0
    assert uri in result.output
    assert find(app, select(Client)) == []


def test_loopback_http_back_channel_uri_is_allowed_for_development(app, runner):
    result = create(runner, "--backchannel-logout-uri", "http://127.0.0.1:8000/bc")
    assert result.exit_code == 0, result.output
