"""Client metadata: RFC 7591 §2 and OpenID Connect Dynamic Client Registration 1.0 §2.

Extends Authlib's claim classes (``authlib.oauth2.rfc7591.ClientMetadataClaims`` and
``authlib.oidc.registration.ClientMetadataClaims``): one ``validate_<field>`` per field, each
raising ``invalid_redirect_uri`` or ``invalid_client_metadata`` (RFC 7591 §3.2.2) with a
description that starts with the field's name. The values a client may choose come from the
discovery document (the endpoint passes it in as ``params``), so registration accepts exactly
what the server advertises. Omitted fields get their defaults here, which is what gives an
RFC 7592 §2.2 update its full-replacement meaning.

Fields the server understands but does not implement (encryption, request URIs to fetch,
``default_max_age``, ``acr``...) are refused rather than silently
ignored, so a client never relies on behaviour it will not get. Unknown fields, language-tagged
variants (``client_name#fr``, RFC 7591 §2.2) and ``software_statement`` are ignored (§2, §2.3).

``to_client`` / ``from_client`` map validated metadata onto the ``Client`` row and back, so the
registration response and every later read return the same document.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.oauth2.rfc7591 import ClientMetadataClaims as _OAuthClaims
from authlib.oauth2.rfc7591 import InvalidClientMetadataError, InvalidRedirectURIError
from authlib.oidc.registration import ClientMetadataClaims as _OpenIDClaims
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .. import outbound
from ..models import Client
from ..urls import is_loopback
from . import subjects
from .redirects import invalid_redirect_uri

MAX_URIS = 20
MAX_URL = 2000
MAX_TEXT = 255
MAX_CONTACTS = 10
# Token endpoint authentication methods that use a client secret (RFC 7591 §2 / OIDC Core §9);
# "none" is a public client, "private_key_jwt" authenticates with the client's own keys.
SECRET_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")
KEY_METHODS = ("private_key_jwt",)
# RFC 7591 §2.1: the grant type each part of a response type needs.
GRANT_FOR_RESPONSE_TYPE = {
    "code": "authorization_code",
    "token": "implicit",
    "id_token": "implicit",
}
# Allowed in error_description (RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E).
_ALLOWED = {chr(c) for c in range(0x20, 0x7F)} - {'"', "\\"}


def _describe(field: str, reason: str) -> str:
    text = f"{field}: {reason}".replace("§", "section ")
    return "".join(c for c in text if c in _ALLOWED)


def metadata_error(field: str, reason: str) -> InvalidClientMetadataError:
    return InvalidClientMetadataError(_describe(field, reason))


def redirect_error(field: str, reason: str) -> InvalidRedirectURIError:
    return InvalidRedirectURIError(_describe(field, reason))


def _shown(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."


def _text(field: str, value, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise metadata_error(field, "must be a string")
    if not value.strip():
        raise metadata_error(field, "must not be empty")
    if len(value) > limit:
        raise metadata_error(field, f"must be at most {limit} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise metadata_error(field, "must not contain control characters")
    return value


def _string_list(field: str, value, error=metadata_error, limit: int = MAX_URIS) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise error(field, "must be an array of strings")
    if len(value) > limit:
        raise error(field, f"at most {limit} values")
    return list(dict.fromkeys(value))


def _boolean(field: str, value) -> bool:
    if not isinstance(value, bool):
        raise metadata_error(field, "must be true or false")
    return value


def web_url_problem(value: str, *, loopback_http: bool) -> str | None:
    """None if value is an absolute https URL (or http on loopback when allowed)."""
    if len(value) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme == "http" and loopback_http and is_loopback(parts.hostname):
        pass
    elif parts.scheme != "https":
        return "must be an https URL"
    if not parts.hostname:
        return "must be an absolute URL with a host"
    if "@" in parts.netloc:
        return "must not contain user information"
    if parts.fragment or "#" in value:
        return "must not contain a fragment"
    return None


def _https(field: str, value, *, loopback_http: bool = False) -> str:
    if not isinstance(value, str):
        raise metadata_error(field, "must be a string")
    problem = web_url_problem(value, loopback_http=loopback_http)
    if problem:
        raise metadata_error(field, problem)
    return value


def _called(field: str, url: str) -> str:
    """RFC 7591 §5: a URL the server will call must not point into its own network
    (idp/outbound.py); sector_identifier_uri is checked when it is fetched."""
    problem = outbound.problem(url)
    if problem:
        raise metadata_error(field, problem)
    return url


def _drop_nulls(claims: dict) -> None:
    # RFC 7592 §2.2: null and omitted fields mean the same (the value is removed).
    for name in [k for k, v in claims.items() if v is None]:
        del claims[name]


class OAuthClientMetadata(_OAuthClaims):
    """RFC 7591 §2: the OAuth 2.0 client metadata this server supports."""

    REGISTERED_CLAIMS = [
        *_OAuthClaims.REGISTERED_CLAIMS,
        "dpop_bound_access_tokens",  # RFC 9449 §5.2
    ]

    @classmethod
    def get_claims_options(cls, metadata):
        return {}  # every rule is a validate_* method below, with its own description

    @property
    def supported(self) -> dict:
        return self.params  # the discovery document

    def validate(self, now=None, leeway=0):
        _drop_nulls(self)
        self.validate_token_endpoint_auth_method()
        self.validate_grant_types()
        self.validate_response_types()
        self.validate_redirect_uris()
        self.validate_client_name()
        for field in ("client_uri", "logo_uri", "policy_uri", "tos_uri"):
            if field in self:
                self[field] = _https(field, self[field])
        self.validate_scope()
        self.validate_contacts()
        self.validate_jwks_uri()
        self.validate_jwks()
        self.validate_software_id()
        self.validate_software_version()
        self.validate_dpop_bound_access_tokens()

    def validate_token_endpoint_auth_method(self):
        # §2: the default is client_secret_basic; the value must be one the server supports.
        value = self.setdefault("token_endpoint_auth_method", "client_secret_basic")
        methods = self.supported.get("token_endpoint_auth_methods_supported", [])
        if value not in methods:
            raise metadata_error(
                "token_endpoint_auth_method", "must be one of " + ", ".join(methods)
            )

    def validate_grant_types(self):
        value = _string_list("grant_types", self.setdefault("grant_types", ["authorization_code"]))
        if not value:
            raise metadata_error("grant_types", "must not be empty")
        supported = self.supported.get("grant_types_supported", [])
        unsupported = [g for g in value if g not in supported]
        if unsupported:
            raise metadata_error(
                "grant_types",
                f"{_shown(unsupported[0])} is not supported; use " + ", ".join(supported),
            )
        if "refresh_token" in value and not set(value) - {"refresh_token", "client_credentials"}:
            # Refresh tokens come with a user's grant, never alone or with client_credentials.
            raise metadata_error("grant_types", "refresh_token needs a grant that issues it")
        if "client_credentials" in value and self["token_endpoint_auth_method"] == "none":
            # RFC 6749 §4.4: only confidential clients may use client_credentials.
            raise metadata_error(
                "grant_types", "client_credentials needs a confidential client (not none)"
            )
        self["grant_types"] = value

    def validate_response_types(self):
        grant_types = self["grant_types"]
        if "response_types" not in self:
            # §2 defaults to "code"; a client without the code grant gets none (§2.1).
            self["response_types"] = ["code"] if "authorization_code" in grant_types else []
            return
        value = _string_list("response_types", self["response_types"])
        supported = self.supported.get("response_types_supported", [])
        for response_type in value:
            if response_type not in supported:
                raise metadata_error(
                    "response_types",
                    f"{_shown(response_type)} is not supported; use " + ", ".join(supported),
                )
            # §2.1: a response type needs its grant types.
            for part in response_type.split():
                needed = GRANT_FOR_RESPONSE_TYPE.get(part)
                if needed and needed not in grant_types:
                    raise metadata_error(
                        "response_types",
                        f"{response_type} needs the {needed} grant type (section 2.1)",
                    )
        if "authorization_code" in grant_types and not any("code" in r.split() for r in value):
            raise metadata_error(
                "response_types",
                "the authorization_code grant type needs the code response type (section 2.1)",
            )
        self["response_types"] = value

    def validate_redirect_uris(self):
        needed = bool(self["response_types"])  # every supported response type redirects
        if "redirect_uris" not in self:
            if needed:
                # §2: clients using flows with redirection MUST register their redirect URIs.
                raise redirect_error("redirect_uris", "required for the authorization_code grant")
            self["redirect_uris"] = []
            return
        uris = _string_list("redirect_uris", self["redirect_uris"], error=redirect_error)
        if needed and not uris:
            raise redirect_error("redirect_uris", "required for the authorization_code grant")
        for uri in uris:
            problem = "is too long" if len(uri) > MAX_URL else invalid_redirect_uri(uri)
            if problem:
                raise redirect_error("redirect_uris", f"{_shown(uri)} {problem}")
        self["redirect_uris"] = uris

    def validate_client_name(self):
        if "client_name" in self:
            self["client_name"] = _text("client_name", self["client_name"])

    def validate_scope(self):
        supported = self.supported.get("scopes_supported", [])
        value = self.get("scope")
        if value is None or (isinstance(value, str) and not value.strip()):
            # §2: if omitted, the server MAY register a default set: every scope it offers.
            self["scope"] = " ".join(supported)
            return
        if not isinstance(value, str):
            raise metadata_error("scope", "must be a space-separated string")
        scopes = list(dict.fromkeys(value.split()))
        unknown = [s for s in scopes if s not in supported]
        if unknown:
            raise metadata_error(
                "scope", f"{_shown(unknown[0])} is not supported; use " + " ".join(supported)
            )
        self["scope"] = " ".join(scopes)

    def validate_contacts(self):
        if "contacts" in self:
            contacts = _string_list("contacts", self["contacts"], limit=MAX_CONTACTS)
            self["contacts"] = [_text("contacts", c) for c in contacts]

    def validate_jwks_uri(self):
        if "jwks_uri" in self:
            self["jwks_uri"] = _called("jwks_uri", _https("jwks_uri", self["jwks_uri"]))

    def validate_jwks(self):
        if self["token_endpoint_auth_method"] in KEY_METHODS and not (
            "jwks" in self or "jwks_uri" in self
        ):
            # OIDC Core §9 / RFC 7523 §2.2: the assertions are checked with the client's keys.
            raise metadata_error(
                "token_endpoint_auth_method", "private_key_jwt needs jwks or jwks_uri"
            )
        if "jwks" not in self:
            return
        if "jwks_uri" in self:
            # §2: jwks_uri and jwks MUST NOT both be present.
            raise metadata_error("jwks", "must not be sent together with jwks_uri")
        jwks = self["jwks"]
        keys = jwks.get("keys") if isinstance(jwks, dict) else None
        if not isinstance(keys, list) or not keys:
            raise metadata_error("jwks", "must be a JWK Set with a keys array")
        if any(not isinstance(k, dict) or "d" in k or k.get("kty") == "oct" for k in keys):
            raise metadata_error("jwks", "must contain public keys only")
        try:
            KeySet.import_key_set(jwks)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise metadata_error("jwks", "is not a valid JWK Set") from exc

    def validate_software_id(self):
        if "software_id" in self:
            self["software_id"] = _text("software_id", self["software_id"])

    def validate_software_version(self):
        if "software_version" in self:
            self["software_version"] = _text("software_version", self["software_version"])

    def validate_dpop_bound_access_tokens(self):
        # RFC 9449 §5.2: a boolean, false when omitted.
        if "dpop_bound_access_tokens" in self:
            _boolean("dpop_bound_access_tokens", self["dpop_bound_access_tokens"])


class OpenIDClientMetadata(_OpenIDClaims):
    """OIDC Registration §2 plus the logout specifications' client metadata."""

    REGISTERED_CLAIMS = [
        "application_type",
        "subject_type",
        "sector_identifier_uri",
        "id_token_signed_response_alg",
        "userinfo_signed_response_alg",
        "require_auth_time",
        "initiate_login_uri",
        # OpenID Connect RP-Initiated Logout 1.0 §3.1
        "post_logout_redirect_uris",
        # OpenID Connect Back-Channel Logout 1.0 §2.2
        "backchannel_logout_uri",
        "backchannel_logout_session_required",
        # OpenID Connect Front-Channel Logout 1.0 §2
        "frontchannel_logout_uri",
        "frontchannel_logout_session_required",
        # OIDC Registration §2 / RFC 9101 §10.5: signed request objects (oauth/jar.py)
        "request_object_signing_alg",
        "require_signed_request_object",
    ]
    # Understood but not implemented: refused so that a client does not count on them
    # (token_endpoint_auth_signing_alg: assertions may use any algorithm the server lists in
    # token_endpoint_auth_signing_alg_values_supported; one cannot be pinned per client).
    UNSUPPORTED = (
        "token_endpoint_auth_signing_alg",
        "id_token_encrypted_response_alg",
        "id_token_encrypted_response_enc",
        "userinfo_encrypted_response_alg",
        "userinfo_encrypted_response_enc",
        "default_max_age",
        "default_acr_values",
        "request_object_encryption_alg",
        "request_object_encryption_enc",
        "request_uris",
    )

    @classmethod
    def get_claims_options(cls, metadata):
        return {}

    @property
    def supported(self) -> dict:
        return self.params

    def validate(self, now=None, leeway=0):
        _drop_nulls(self)
        for field in self.UNSUPPORTED:
            if field in self:
                raise metadata_error(field, "is not supported by this server")
        self.validate_application_type()
        self.validate_subject_type()
        self.validate_id_token_signed_response_alg()
        self.validate_userinfo_signed_response_alg()
        self.validate_require_auth_time()
        self.validate_initiate_login_uri()
        self.validate_post_logout_redirect_uris()
        self.validate_backchannel_logout_uri()
        self.validate_frontchannel_logout_uri()
        self.validate_request_object_signing_alg()
        self.validate_require_signed_request_object()

    def validate_application_type(self):
        # §2: web (the default) or native. Redirect URIs follow the same rules for both:
        # with no implicit flow, the web-only rules do not apply, and RFC 8252 §7.2 lets
        # native apps use claimed https URIs.
        if self.setdefault("application_type", "web") not in ("web", "native"):
            raise metadata_error("application_type", "must be web or native")

    def validate_subject_type(self):
        supported = self.supported.get("subject_types_supported", [])
        if "subject_type" in self and self["subject_type"] not in supported:
            raise metadata_error("subject_type", "must be one of " + ", ".join(supported))
        if "sector_identifier_uri" in self:
            _https("sector_identifier_uri", self["sector_identifier_uri"], loopback_http=True)
        # OIDC Core §8.1 / Registration §2: the sector URI is fetched and must list every
        # redirect URI; pairwise redirect URIs on several hosts need one.
        problem = subjects.subject_problem(
            self.get("subject_type"), self.get("sector_identifier_uri"), self._redirect_uris()
        )
        if problem:
            raise metadata_error(*problem)

    def validate_userinfo_signed_response_alg(self):
        # §2: omitted means JSON; "none" is never offered (OIDC Core §5.3.2).
        supported = self.supported.get("userinfo_signing_alg_values_supported", [])
        field = "userinfo_signed_response_alg"
        if field in self and self[field] not in supported:
            raise metadata_error(field, "must be one of " + ", ".join(supported))

    def validate_id_token_signed_response_alg(self):
        # §2: "none" is never offered; omitted means the server default (ID_TOKEN_SIGNING_ALG).
        supported = self.supported.get("id_token_signing_alg_values_supported", [])
        if "id_token_signed_response_alg" in self:
            if self["id_token_signed_response_alg"] not in supported:
                raise metadata_error(
                    "id_token_signed_response_alg", "must be one of " + ", ".join(supported)
                )

    def validate_require_auth_time(self):
        # Every ID token carries auth_time, so either value is honoured.
        if "require_auth_time" in self:
            _boolean("require_auth_time", self["require_auth_time"])

    def validate_initiate_login_uri(self):
        if "initiate_login_uri" in self:
            _https("initiate_login_uri", self["initiate_login_uri"])

    def validate_post_logout_redirect_uris(self):
        field = "post_logout_redirect_uris"
        uris = _string_list(field, self.setdefault(field, []))
        for uri in uris:
            problem = "is too long" if len(uri) > MAX_URL else invalid_redirect_uri(uri)
            if problem:
                raise metadata_error(field, f"{_shown(uri)} {problem}")
        self[field] = uris

    def validate_backchannel_logout_uri(self):
        # Back-Channel Logout §2.2: absolute URL, no fragment.
        if "backchannel_logout_uri" in self:
            uri = _https(
                "backchannel_logout_uri", self["backchannel_logout_uri"], loopback_http=True
            )
            _called("backchannel_logout_uri", uri)
        field = "backchannel_logout_session_required"
        _boolean(field, self.setdefault(field, False))

    def validate_frontchannel_logout_uri(self):
        field = "frontchannel_logout_uri"
        if field in self:
            uri = _https(field, self[field], loopback_http=True)
            # Front-Channel Logout §2: same scheme, host and port as a registered redirect URI.
            if _origin(uri) not in {_origin(u) for u in self._redirect_uris()}:
                raise metadata_error(
                    field, "must have the scheme, host and port of a registered redirect URI"
                )
        flag = "frontchannel_logout_session_required"
        _boolean(flag, self.setdefault(flag, False))

    def validate_request_object_signing_alg(self):
        # OIDC Registration §2: request objects from this client must use this algorithm;
        # "none" is never offered (RFC 9101 §10.8), and checking needs the client's keys.
        field = "request_object_signing_alg"
        supported = self.supported.get("request_object_signing_alg_values_supported", [])
        if field in self and self[field] not in supported:
            raise metadata_error(field, "must be one of " + ", ".join(supported))
        if self.get(field) and not ("jwks" in self or "jwks_uri" in self):
            raise metadata_error(field, "needs the client's keys: jwks or jwks_uri")

    def validate_require_signed_request_object(self):
        # RFC 9101 §10.5: the server refuses this client's requests without a request object.
        field = "require_signed_request_object"
        if _boolean(field, self.setdefault(field, False)) and not (
            "jwks" in self or "jwks_uri" in self
        ):
            raise metadata_error(field, "needs the client's keys: jwks or jwks_uri")

    def _redirect_uris(self) -> list[str]:
        uris = self.get("redirect_uris")
        return [u for u in uris if isinstance(u, str)] if isinstance(uris, list) else []


def _origin(uri: str) -> tuple:
    try:
        parts = urlsplit(uri)
        return (parts.scheme, parts.hostname, parts.port)
    except ValueError:
        return ("", None, None)


CLAIMS_CLASSES = [OAuthClientMetadata, OpenIDClientMetadata]

# Metadata kept in Client columns (the grants read them); everything else registered is
# kept in Client.client_metadata.
COLUMNS = {
    "client_name": None,
    "redirect_uris": [],
    "grant_types": [],
    "response_types": [],
    "scope": "",
    "token_endpoint_auth_method": "client_secret_basic",
    "id_token_signed_response_alg": None,
    "userinfo_signed_response_alg": None,
    "subject_type": None,
    "sector_identifier_uri": None,
    "post_logout_redirect_uris": [],
    "backchannel_logout_uri": None,
    "backchannel_logout_session_required": False,
    "frontchannel_logout_uri": None,
    "frontchannel_logout_session_required": False,
    "request_object_signing_alg": None,
    "require_signed_request_object": False,
}


def to_client(client: Client, metadata: dict) -> None:
    """Replace the client's registered metadata with ``metadata`` (RFC 7592 §2.2)."""
    for name, default in COLUMNS.items():
        setattr(client, name, metadata.get(name, default))
    # §2: without a name, the raw client_id may be shown instead.
    client.client_name = metadata.get("client_name") or client.client_id
    client.client_metadata = {k: v for k, v in metadata.items() if k not in COLUMNS}


def from_client(client: Client) -> dict:
    """The registered metadata of a client, as RFC 7591 §3.2.1 returns it."""
    data = {name: getattr(client, name) for name in COLUMNS}
    data.update(client.client_metadata or {})
    return {k: v for k, v in data.items() if v is not None}
