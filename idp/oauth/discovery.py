"""Discovery: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 metadata, built from what runs.

Every value comes from the grants, endpoints and algorithms the server actually registers,
so the document cannot advertise a feature that is off.
"""

from __future__ import annotations

from flask import current_app

from . import dpop
from .acr import LEVELS
from .claims import CLAIMS_SUPPORTED, OIDC_SCOPES
from .client_auth import CONFIDENTIAL_METHODS, SIGNING_ALG_VALUES
from .grants import CLIENT_AUTH, RESPONSE_MODES
from .jar import SIGNING_ALG_VALUES as REQUEST_OBJECT_ALG_VALUES
from .keys import ALGORITHMS
from .paths import PATHS, SERVICE_DOCUMENTATION, registration_enabled
from .server import GRANT_TYPES
from .subjects import SUBJECT_TYPES


def metadata() -> dict:
    issuer = current_app.config["ISSUER"]
    doc = {"issuer": issuer}
    doc.update({name: issuer + path for name, path in PATHS.items()})
    doc.update(
        scopes_supported=list(OIDC_SCOPES),
        response_types_supported=["code"],
        response_modes_supported=list(RESPONSE_MODES),
        grant_types_supported=list(GRANT_TYPES),
        subject_types_supported=list(SUBJECT_TYPES),  # OIDC Core §8 (oauth/subjects.py)
        id_token_signing_alg_values_supported=list(ALGORITHMS),
        # OIDC Core §5.3.2: UserInfo as a JWS for clients with userinfo_signed_response_alg.
        userinfo_signing_alg_values_supported=list(ALGORITHMS),
        token_endpoint_auth_methods_supported=list(CLIENT_AUTH),
        revocation_endpoint_auth_methods_supported=list(CLIENT_AUTH),
        introspection_endpoint_auth_methods_supported=list(CONFIDENTIAL_METHODS),
        # RFC 8414 §2 / OIDC Discovery §3: the JWS algorithms of private_key_jwt and
        # client_secret_jwt assertions, wherever clients authenticate (client_auth.py).
        token_endpoint_auth_signing_alg_values_supported=list(SIGNING_ALG_VALUES),
        revocation_endpoint_auth_signing_alg_values_supported=list(SIGNING_ALG_VALUES),
        introspection_endpoint_auth_signing_alg_values_supported=list(SIGNING_ALG_VALUES),
        # RFC 9126 §5: whether every client must use the PAR endpoint.
        require_pushed_authorization_requests=bool(
            current_app.config["REQUIRE_PUSHED_AUTHORIZATION_REQUESTS"]
        ),
        code_challenge_methods_supported=["S256"],
        dpop_signing_alg_values_supported=list(dpop.ALGORITHMS),  # RFC 9449 §5.1
        claims_supported=CLAIMS_SUPPORTED
        + ["iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "amr", "acr"],
        # OIDC Discovery §3 (oauth/acr.py): pwd < mfa < phr (phishing-resistant).
        acr_values_supported=list(LEVELS),
        prompt_values_supported=["none", "login", "consent"],
        # OIDC Core §5.5: honoured for id_token.acr (step-up); other claims follow scopes.
        claims_parameter_supported=True,
        # RFC 9101 (oauth/jar.py): signed request objects by value, and by reference only
        # through PAR (request_uri values to fetch are not supported); never encrypted.
        request_parameter_supported=True,
        request_uri_parameter_supported=False,
        request_object_signing_alg_values_supported=list(REQUEST_OBJECT_ALG_VALUES),
        # RFC 9101 §10.5: whether every client must send signed request objects.
        require_signed_request_object=bool(current_app.config["REQUIRE_SIGNED_REQUEST_OBJECT"]),
        authorization_response_iss_parameter_supported=True,
        # Front-Channel Logout 1.0 §3 and Back-Channel Logout 1.0 §2.1 (oauth/logout.py):
        # both run for every client that registers the URI, with iss and sid.
        frontchannel_logout_supported=True,
        frontchannel_logout_session_supported=True,
        backchannel_logout_supported=True,
        backchannel_logout_session_supported=True,
        # RFC 8414 §2: how to use this server, in words; among others the loopback redirect
        # URI rule (RFC 8252 §7.3), which no metadata field expresses.
        service_documentation=issuer + SERVICE_DOCUMENTATION,
    )
    if not registration_enabled():
        doc.pop("registration_endpoint")
    return doc
