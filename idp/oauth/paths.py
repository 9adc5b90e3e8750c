"""Where the protocol endpoints live, by their metadata names (RFC 8414 §2, OIDC Discovery
§3), and whether the optional registration endpoint (RFC 7591) is on.

The bottom of ``oauth``: routes, discovery, and every module that builds one of these URLs
(a client assertion's audience, ``registration_client_uri``, the UserInfo audience) reads
the paths here, so none of them imports another module for a path.
"""

from __future__ import annotations

from flask import current_app

PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks.json",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "end_session_endpoint": "/end_session",  # RP-Initiated Logout 1.0 §2.1
    "registration_endpoint": "/register",  # RFC 7591 §3; only while REGISTRATION is on
    "device_authorization_endpoint": "/device_authorization",  # RFC 8628 §4
    "pushed_authorization_request_endpoint": "/par",  # RFC 9126 §5
}


# RFC 8414 §2 service_documentation: a page for people, not an endpoint (service_documentation.py).
SERVICE_DOCUMENTATION = "/relying-parties"


def registration_mode() -> str:
    """The REGISTRATION setting: off, token (initial access token required) or open."""
    return current_app.config["REGISTRATION"]


def registration_enabled() -> bool:
    return registration_mode() != "off"
