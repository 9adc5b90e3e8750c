"""OAuth 2.0 Protected Resource Metadata (RFC 9728 §2, §3, §5.1).

Two kinds of protected resource:

- UserInfo, this server's own resource (OIDC Core §5.3). Its resource identifier is the
  issuer, so its document is at ``{issuer}/.well-known/oauth-protected-resource`` (§3.1) and
  UserInfo's 401 answers point to it with ``resource_metadata`` (§5.1).
- A registered resource (RFC 8707, ``models.Resource``) lives on its own host: this server
  cannot serve its document, so ``resource_document`` builds the one its resource server
  should publish at ``well_known_url(identifier)`` (CLI ``idp resources metadata``, admin UI).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from flask import current_app

from ..models import Resource
from .claims import OIDC_SCOPES
from .keys import ALGORITHMS
from .paths import PATHS, SERVICE_DOCUMENTATION

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def well_known_url(identifier: str) -> str:
    """§3.1: the well-known suffix goes between the host and the identifier's path."""
    parts = urlsplit(identifier)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, parts.query, ""))


def userinfo_url() -> str:
    """Where UserInfo's document is served: the issuer, then the well-known suffix."""
    return current_app.config["ISSUER"].rstrip("/") + WELL_KNOWN


def userinfo_document() -> dict:
    """§2: the metadata of UserInfo as a protected resource of this server."""
    issuer = current_app.config["ISSUER"]
    return {
        # §3.3: resource is the identifier the well-known URL was built from: the issuer.
        "resource": issuer,
        "resource_name": "UserInfo",
        "authorization_servers": [issuer],
        "scopes_supported": [s for s in OIDC_SCOPES if s != "offline_access"],
        # RFC 6750 §2.1 header and §2.2 form body; never the query string (§2.3).
        "bearer_methods_supported": ["header", "body"],
        # Signed UserInfo answers (OIDC Core §5.3.2) are signed with the issuer's keys.
        "jwks_uri": issuer + PATHS["jwks_uri"],
        "resource_signing_alg_values_supported": list(ALGORITHMS),
        "resource_documentation": issuer + SERVICE_DOCUMENTATION,
    }


def resource_document(resource: Resource) -> dict:
    """§2: the document a registered resource's server should serve about itself."""
    issuer = current_app.config["ISSUER"]
    return {
        "resource": resource.identifier,
        "resource_name": resource.name,
        "authorization_servers": [issuer],
        "scopes_supported": resource.scopes,
        # Tokens to a registered resource come from this server's token endpoint; how the
        # resource server accepts them is its own business: the header is what RFC 6750
        # says every resource server MUST support (§2).
        "bearer_methods_supported": ["header"],
    }


def with_resource_metadata(challenge: str) -> str:
    """A UserInfo WWW-Authenticate challenge with ``resource_metadata`` added (§5.1)."""
    scheme, _, params = challenge.partition(" ")
    extra = f'resource_metadata="{userinfo_url()}"'
    return f"{scheme} {params}, {extra}" if params.strip() else f"{scheme} {extra}"
