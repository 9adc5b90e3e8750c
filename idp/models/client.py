"""OAuth 2.0 clients (RFC 6749 §2) with the metadata of RFC 7591 §2 that the server uses.

The secret is stored only as a SHA-256 hash (``secret_hash``); Authlib's own client mixin
would store it in plaintext, so this model implements ``ClientMixin`` itself.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..urls import redirect_uri_matches
from .base import Base, secret_matches, utcnow

PUBLIC = "none"


def new_client_id() -> str:
    """128 random bits, URL-safe; never starting with "-", which a command line (``idp
    clients disable <id>``) would read as an option (found by a flaky CLI test)."""
    while True:
        value = secrets.token_urlsafe(16)
        if not value.startswith("-"):
            return value


class Client(ClientMixin, Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    client_secret_hash: Mapped[str | None] = mapped_column(String(64))
    # client_secret_jwt only (RFC 7523 §2.2): the secret is the HMAC key, so the server must
    # hold it; AES-GCM under a key derived from SECRET_KEY (oauth/client_auth.py).
    client_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    client_name: Mapped[str] = mapped_column(String(255))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    response_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="")
    token_endpoint_auth_method: Mapped[str] = mapped_column(
        String(64), default="client_secret_basic"
    )
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(String(16))
    # RFC 9101 (oauth/jar.py): the one algorithm the client signs request objects with
    # (OIDC Registration §2; None: any of the server's), and whether it must (§10.5).
    request_object_signing_alg: Mapped[str | None] = mapped_column(String(16))
    require_signed_request_object: Mapped[bool] = mapped_column(default=False)
    # OIDC Core §5.3.2: RS256/ES256 signs UserInfo answers (application/jwt); None: JSON.
    userinfo_signed_response_alg: Mapped[str | None] = mapped_column(String(16))
    # OIDC Core §8: "public" (None) or "pairwise" subject identifiers (oauth/subjects.py);
    # the sector is the host of sector_identifier_uri, else of the redirect URIs (§8.1).
    subject_type: Mapped[str | None] = mapped_column(String(16))
    sector_identifier_uri: Mapped[str | None] = mapped_column(Text)
    first_party: Mapped[bool] = mapped_column(default=False)
    # Sign-in to this client needs a second factor (step-up at /authorize, oauth.acr).
    require_mfa: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    # Per-client token lifetimes in seconds; None means the server default.
    access_token_lifetime: Mapped[int | None] = mapped_column()
    refresh_token_lifetime: Mapped[int | None] = mapped_column()
    # RFC 9068 "jwt" or opaque access tokens; None: the server's ACCESS_TOKEN_FORMAT.
    access_token_format: Mapped[str | None] = mapped_column(String(16))
    # RFC 8693 token exchange policy (oauth/token_exchange.py); None: this client may not.
    token_exchange_policy: Mapped[dict | None] = mapped_column(JSON)
    # RP-Initiated, Back-Channel and Front-Channel Logout 1.0 metadata.
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    backchannel_logout_session_required: Mapped[bool] = mapped_column(default=False)
    frontchannel_logout_uri: Mapped[str | None] = mapped_column(Text)
    frontchannel_logout_session_required: Mapped[bool] = mapped_column(default=False)
    # Dynamic registration (RFC 7591/7592): origin, management credential, other metadata
    # (client_uri, logo_uri, policy_uri, tos_uri, contacts, jwks, jwks_uri, ...).
    dynamically_registered: Mapped[bool] = mapped_column(default=False)
    registration_access_token_hash: Mapped[str | None] = mapped_column(String(64))
    client_secret_expires_at: Mapped[int] = mapped_column(default=0)
    client_metadata: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Scopes of the RFC 8707 resources this client may request tokens for: not a column,
    # filled in by the protocol's registry cache (oauth/cache.py), which reads the
    # resource_clients links (models/resource.py) once per worker rather than per request.
    resource_scopes: frozenset[str] = frozenset()

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == PUBLIC

    # --- registered metadata shown to users (RFC 7591 §2) ---
    def _https_metadata(self, name: str) -> str | None:
        value = (self.client_metadata or {}).get(name)
        # Only https links reach a page, whatever was stored (no javascript: or data:).
        return value if isinstance(value, str) and value.startswith("https://") else None

    @property
    def client_uri(self) -> str | None:
        return self._https_metadata("client_uri")

    @property
    def logo_uri(self) -> str | None:
        return self._https_metadata("logo_uri")

    @property
    def policy_uri(self) -> str | None:
        return self._https_metadata("policy_uri")

    @property
    def tos_uri(self) -> str | None:
        return self._https_metadata("tos_uri")

    @property
    def contacts(self) -> list[str]:
        return list((self.client_metadata or {}).get("contacts") or [])

    @property
    def info_links(self) -> list[tuple[str, str, str]]:
        """(label, url, host) of the client's web page, privacy policy and terms."""
        links = [
            ("Website", self.client_uri),
            ("Privacy policy", self.policy_uri),
            ("Terms of service", self.tos_uri),
        ]
        return [(label, url, urlsplit(url).hostname or "") for label, url in links if url]

    @property
    def require_pushed_authorization_requests(self) -> bool:
        """RFC 9126 §6: this client may start authorization only with a pushed request."""
        return (self.client_metadata or {}).get("require_pushed_authorization_requests") is True

    @property
    def dpop_bound_access_tokens(self) -> bool:
        """RFC 9449 §5.2: this client always sends a DPoP proof at the token endpoint."""
        return (self.client_metadata or {}).get("dpop_bound_access_tokens") is True

    @property
    def origin(self) -> str:
        """How the client came to exist: "dynamic" (RFC 7591) or "static" (admin, CLI)."""
        return "dynamic" if self.dynamically_registered else "static"

    # --- authlib ClientMixin ---
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 §3.1.2.3: the URI may be omitted only when exactly one is registered.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client may have, in request order: its own scopes and
        those of the resources it may request (RFC 8707)."""
        allowed = set(scope_to_list(self.scope) or [])
        allowed.update(self.resource_scopes)
        return " ".join(s for s in dict.fromkeys(scope_to_list(scope) or []) if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Authlib's hook wherever a redirect URI is checked (/authorize, PAR, error
        redirects): exact match, any port on loopback IPs (``idp.urls``)."""
        return any(redirect_uri_matches(uri, redirect_uri) for uri in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "introspection" and method == PUBLIC:
            return False  # RFC 7662 §2.1: the caller must authenticate
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def __repr__(self) -> str:
        return f"<Client {self.client_id}>"
