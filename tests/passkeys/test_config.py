"""Passkey settings and the localhost issuer: browsers refuse an IP address as the WebAuthn
RP ID (WebAuthn L3 §5.1.4.1), so development and the browser tests serve the issuer as
http://localhost:PORT, which must be accepted as a loopback issuer, while redirect URIs keep
their own rule (RFC 8252 §8.3: "localhost" gets no any-port exception)."""

from __future__ import annotations

import pytest

from idp import config
from idp.urls import redirect_uri_matches


def settings(**overrides) -> dict:
    values = dict(config.DEFAULTS)
    values.update(ISSUER="https://id.example.com", SECRET_KEY="k" * 32, **overrides)
    return values


@pytest.mark.parametrize(
    "issuer", ["http://localhost:5000", "http://localhost", "http://127.0.0.1:8"]
)
def test_a_loopback_issuer_may_use_http(issuer):
    config.check_issuer(issuer)  # RFC 6749 §3.1: TLS is required off loopback only


def test_http_elsewhere_is_refused():
    with pytest.raises(config.ConfigError):
        config.check_issuer("http://id.example.com")


def test_localhost_redirect_uris_get_no_port_exception():
    # RFC 8252 §8.3 / §7.3: only loopback IP literals may change the port.
    assert not redirect_uri_matches("http://localhost:1/cb", "http://localhost:2/cb")
    assert redirect_uri_matches("http://127.0.0.1:1/cb", "http://127.0.0.1:2/cb")


def test_the_defaults_pass():
    config.check(settings())


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBAUTHN_ATTESTATION", "enterprise"),
        ("WEBAUTHN_USER_VERIFICATION", "sometimes"),
        ("WEBAUTHN_RESIDENT_KEY", "discouraged"),
        ("WEBAUTHN_TIMEOUT", 5),
        ("WEBAUTHN_TIMEOUT", 3600),
    ],
)
def test_bad_passkey_settings_are_refused(name, value):
    with pytest.raises(config.ConfigError, match=name):
        config.check(settings(**{name: value}))


@pytest.mark.config(WEBAUTHN_RP_NAME="Example Corp", WEBAUTHN_ATTESTATION="direct")
def test_rp_name_and_attestation_are_configurable(app, user):
    from ..helpers import Auth
    from .support import options_of

    browser = app.test_client()
    Auth(browser).login("alice")
    options = options_of(browser.get("/account/passkeys/new").get_data(as_text=True))
    assert options["rp"]["name"] == "Example Corp"
    assert options["attestation"] == "direct"
