"""Discovery: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 metadata, built from what runs.

Every value comes from the grants, endpoints and algorithms the server actually registers,
so the document cannot advertise a feature that is off.
"""

from __future__ import annotations

from flask import current_app

from .claims import CLAIMS_SUPPORTED, OIDC_SCOPES
from .grants import CLIENT_AUTH, RESPONSE_MODES
from .keys import ALGORITHMS
from .server import GRANT_TYPES

PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks.json",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
}


def metadata() -> dict:
    issuer = current_app.config["ISSUER"]
    doc = {"issuer": issuer}
    doc.update({name: issuer + path for name, path in PATHS.items()})
    doc.update(
        scopes_supported=list(OIDC_SCOPES),
        response_types_supported=["code"],
        response_modes_supported=list(RESPONSE_MODES),
        grant_types_supported=list(GRANT_TYPES),
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=list(ALGORITHMS),
        token_endpoint_auth_methods_supported=list(CLIENT_AUTH),
        revocation_endpoint_auth_methods_supported=list(CLIENT_AUTH),
        introspection_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        code_challenge_methods_supported=["S256"],
        claims_supported=CLAIMS_SUPPORTED
        + ["iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "amr"],
        prompt_values_supported=["none", "login", "consent"],
        claims_parameter_supported=False,
        request_parameter_supported=False,
        request_uri_parameter_supported=False,
        authorization_response_iss_parameter_supported=True,
    )
    return doc
