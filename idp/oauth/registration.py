"""Dynamic client registration (RFC 7591 §3) and client management (RFC 7592 §2).

Extends Authlib's ``ClientRegistrationEndpoint`` and ``ClientConfigurationEndpoint``::

    POST   /register              -> 201 client information (RFC 7591 §3.2.1)
           REGISTRATION = "open": anyone; "token": Bearer initial access token (§3);
           "off": the route answers 404 and discovery has no registration_endpoint
    GET    /register/<client_id>  -> 200 client information             (RFC 7592 §2.1)
    PUT    /register/<client_id>  -> 200, full replacement               (RFC 7592 §2.2)
    DELETE /register/<client_id>  -> 204, tokens, codes, consents gone   (RFC 7592 §2.3)
           all three: Bearer registration access token of that client

Where Authlib's endpoints would store secrets as given, here the client secret, the initial
access tokens and the registration access tokens are stored as SHA-256 hashes
(``models.secret_hash``) and compared in constant time (``models.secret_matches``); the
plaintext values appear once, in the response that issues them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from authlib.consts import default_json_headers
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint as _RegistrationEndpoint
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint as _ConfigurationEndpoint
from flask import Flask, current_app
from flask import request as flask_request
from sqlalchemy import delete, or_, select, update

from .. import audit, db
from ..models import (
    AuthorizationCode,
    Client,
    Consent,
    RegistrationToken,
    Token,
    new_client_id,
    secret_hash,
    secret_matches,
    utcnow,
)
from . import client_metadata, clients, discovery
from .client_auth import CLIENT_SECRET_JWT, set_client_secret
from .paths import PATHS
from .paths import registration_mode as mode
from .tokens import new_secret

MODES = ("off", "token", "open")
# RFC 7592 §2.2: the client MUST NOT send these in an update.
SERVER_ASSIGNED = (
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
)


def configuration_uri(client_id: str) -> str:
    """registration_client_uri (RFC 7592 §3)."""
    path = PATHS["registration_endpoint"]
    return f"{current_app.config['ISSUER']}{path}/{client_id}"


class MissingTokenError(OAuth2Error):
    """RFC 6750 §3.1: a request without credentials gets a challenge and no error code."""

    status_code = 401

    def get_body(self):
        return []

    def get_headers(self):
        return default_json_headers + [("WWW-Authenticate", 'Bearer realm="registration"')]


def bearer_token(request) -> str:
    """The Bearer token of the Authorization header (RFC 6750 §2.1)."""
    header = request.headers.get("Authorization", "")
    if not header:
        raise MissingTokenError()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise InvalidTokenError("Use the Bearer authentication scheme", realm="registration")
    return value.strip()


# --- initial access tokens (RFC 7591 §3) ---


def create_initial_access_token(
    session, *, expires_in: int | None = None, max_uses: int | None = None, description=""
) -> tuple[RegistrationToken, str]:
    """A new initial access token: the row (hash only) and the plaintext, shown once."""
    token = new_secret()
    row = RegistrationToken(
        token_hash=secret_hash(token),
        description=description or "",
        expires_at=utcnow() + timedelta(seconds=expires_in) if expires_in else None,
        max_uses=max_uses,
    )
    session.add(row)
    return row, token


def _usable(now):
    """SQL condition: not revoked, not expired, not used up."""
    return (
        RegistrationToken.revoked_at.is_(None),
        or_(RegistrationToken.expires_at.is_(None), RegistrationToken.expires_at > now),
        or_(
            RegistrationToken.max_uses.is_(None),
            RegistrationToken.uses < RegistrationToken.max_uses,
        ),
    )


def token_status(row: RegistrationToken) -> str:
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= utcnow():
        return "expired"
    if row.max_uses is not None and row.uses >= row.max_uses:
        return "used up"
    return "active"


class OpenRegistration:
    """The credential of a registration request when REGISTRATION is open."""

    id = None


@dataclass
class RegistrationAccess:
    """A verified registration access token (RFC 7592 §1.2), bound to one client."""

    client_id: str
    token: str

    def check_client(self, client: Client) -> bool:
        return client.client_id == self.client_id


def client_information(client: Client) -> dict:
    """The client information response (RFC 7591 §3.2.1), without one-time secrets."""
    body = {
        "client_id": client.client_id,
        "client_id_issued_at": int(client.created_at.timestamp()),
    }
    if client.client_secret_hash:
        # §3.2.1: REQUIRED when a secret was issued; 0 means it does not expire.
        body["client_secret_expires_at"] = client.client_secret_expires_at
    body.update(client_metadata.from_client(client))
    return body


class ClientRegistrationEndpoint(_RegistrationEndpoint):
    """RFC 7591 §3: a client registers itself, with an initial access token if required."""

    def __init__(self, server=None):
        super().__init__(server, claims_classes=client_metadata.CLAIMS_CLASSES)

    def get_server_metadata(self):
        return discovery.metadata()

    def authenticate_token(self, request):
        if mode() == "open":
            return OpenRegistration()
        token = bearer_token(request)
        row = db.session().scalar(
            select(RegistrationToken).where(
                RegistrationToken.token_hash == secret_hash(token), *_usable(utcnow())
            )
        )
        if row is None:
            raise InvalidTokenError(
                "The initial access token is unknown, expired, revoked or used up",
                realm="registration",
            )
        return row

    def extract_client_metadata(self, request):
        request.client_metadata = super().extract_client_metadata(request)
        return request.client_metadata

    def generate_client_id(self, request):
        return new_client_id()

    def generate_client_secret(self, request):
        return new_secret()

    def generate_client_info(self, request):
        info = {
            "client_id": self.generate_client_id(request),
            "client_id_issued_at": int(time.time()),
        }
        if request.client_metadata["token_endpoint_auth_method"] in client_metadata.SECRET_METHODS:
            # §3.2.1: a secret only for the methods that use one, then with its expiry (never).
            info["client_secret"] = self.generate_client_secret(request)
            info["client_secret_expires_at"] = 0
        return info

    def create_registration_response(self, request):
        # Authlib's version echoes the request; this one answers with the stored client,
        # which is also exactly what a later read (RFC 7592 §2.1) returns.
        request.credential = self.authenticate_token(request)
        metadata = self.extract_client_metadata(request)
        info = self.generate_client_info(request)
        client = self.save_client(info, metadata, request)
        body = client_information(client)
        if "client_secret" in info:
            body["client_secret"] = info["client_secret"]
        body.update(self.generate_client_registration_info(client, request))
        return 201, body, default_json_headers

    def save_client(self, client_info, client_metadata_, request):
        session = db.session()
        credential = request.credential
        if isinstance(credential, RegistrationToken):
            # Counted in the same transaction as the new client, and only if still usable:
            # the row count decides who gets the last use of a token.
            won = session.execute(
                update(RegistrationToken)
                .where(RegistrationToken.id == credential.id, *_usable(utcnow()))
                .values(uses=RegistrationToken.uses + 1)
            ).rowcount
            if won != 1:
                session.rollback()
                raise InvalidTokenError(
                    "The initial access token is expired, revoked or used up",
                    realm="registration",
                )
        request.registration_access_token = new_secret()
        client = Client(
            client_id=client_info["client_id"],
            client_secret_expires_at=client_info.get("client_secret_expires_at", 0),
            registration_access_token_hash=secret_hash(request.registration_access_token),
            dynamically_registered=True,
            first_party=False,  # never: self-registered clients always ask for consent
            created_at=datetime.fromtimestamp(client_info["client_id_issued_at"], UTC),
        )
        client_metadata.to_client(client, client_metadata_)
        # The hash, and for client_secret_jwt an encrypted copy (HMAC needs the secret).
        clients.add_client(session, client, client_info.get("client_secret"))
        audit.record(
            "client.registered",
            target=client.client_id,
            initial_access_token=credential.id,
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            redirect_uris=client.redirect_uris,
        )
        session.commit()
        return client

    def generate_client_registration_info(self, client, request):
        return {
            "registration_access_token": request.registration_access_token,
            "registration_client_uri": configuration_uri(client.client_id),
        }


class ClientConfigurationEndpoint(_ConfigurationEndpoint):
    """RFC 7592 §2: read, replace or delete one's own registration."""

    def __init__(self, server=None):
        super().__init__(server, claims_classes=client_metadata.CLAIMS_CLASSES)

    def get_server_metadata(self):
        return discovery.metadata()

    def authenticate_token(self, request):
        token = bearer_token(request)
        client = self.authenticate_client(request)
        # §2: an unknown client and a wrong token look the same (401), so the endpoint
        # does not reveal which client_ids exist.
        if client is None or not secret_matches(token, client.registration_access_token_hash):
            raise InvalidTokenError(
                "The registration access token is not valid for this client",
                realm="registration",
            )
        return RegistrationAccess(client.client_id, token)

    def authenticate_client(self, request):
        client_id = (flask_request.view_args or {}).get("client_id", "")
        if not client_id or len(client_id) > 64:
            return None
        return db.session().scalar(select(Client).where(Client.client_id == client_id))

    def revoke_access_token(self, request, token):
        """Nothing to revoke: the token is a column of the client row, which is gone."""

    def check_permission(self, client, request):
        # A client an administrator disabled may no longer change or read its registration.
        if client.disabled:
            return False
        return client.dynamically_registered

    def introspect_client(self, client):
        return client_information(client)

    def generate_client_registration_info(self, client, request):
        info = {
            "registration_client_uri": configuration_uri(client.client_id),
            "registration_access_token": getattr(
                request, "registration_access_token", request.credential.token
            ),
        }
        if getattr(request, "client_secret", None):
            info["client_secret"] = request.client_secret
        return info

    def create_update_client_response(self, client, request):
        data = request.payload.data
        for name in SERVER_ASSIGNED:
            if name in data:
                raise InvalidRequestError(
                    f"{name} must not be sent in an update (RFC 7592 section 2.2)"
                )
        # §2.2: the client_id MUST be included and be the client's own.
        if data.get("client_id") != client.client_id:
            raise InvalidRequestError("client_id is required and must be this client's client_id")
        # §2.2: a client_secret, if sent, MUST match the issued one; a client never sets it.
        if "client_secret" in data:
            sent = data["client_secret"]
            if not isinstance(sent, str) or not client.check_client_secret(sent):
                raise InvalidRequestError("client_secret does not match the issued secret")
        metadata = self.extract_client_metadata(request)
        client = self.update_client(client, metadata, request)
        return self.create_read_client_response(client, request)

    def update_client(self, client, client_metadata_, request):
        """Full replacement (§2.2): fields left out return to their defaults."""
        session = db.session()
        was_public = client.is_public
        client_metadata.to_client(client, client_metadata_)
        client.first_party = False
        secret_change = None
        needs_secret = client.token_endpoint_auth_method in client_metadata.SECRET_METHODS
        hmac_key = client.token_endpoint_auth_method == CLIENT_SECRET_JWT
        if not needs_secret:
            if client.client_secret_hash:
                # none or private_key_jwt: the secret is withdrawn.
                set_client_secret(client, None)
                client.client_secret_expires_at = 0
                secret_change = "removed"
        elif not client.client_secret_hash or (hmac_key and not client.client_secret_encrypted):
            # The new method needs a secret the server does not have: none before, or one for
            # client_secret_jwt, whose HMAC key is kept encrypted where other methods keep only
            # a hash. The server issues it (returned once); the client never chooses it.
            request.client_secret = new_secret()
            set_client_secret(client, request.client_secret)
            client.client_secret_expires_at = 0
            secret_change = "issued"
        elif not hmac_key:
            client.client_secret_encrypted = None  # only client_secret_jwt needs the copy
        if client.is_public and not was_public:
            # Tokens issued to an authenticated client must not outlive its authentication.
            session.execute(
                update(Token)
                .where(Token.client_id == client.client_id, Token.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        rotated = bool(current_app.config["REGISTRATION_ACCESS_TOKEN_ROTATION"])
        if rotated:
            # §2.2 lets the server issue a new registration access token; the old one
            # stops working now.
            request.registration_access_token = new_secret()
            client.registration_access_token_hash = secret_hash(request.registration_access_token)
        audit.record(
            "client.updated",
            target=client.client_id,
            secret=secret_change,
            registration_access_token_rotated=rotated,
            redirect_uris=client.redirect_uris,
        )
        session.commit()
        return client

    def delete_client(self, client, request):
        """§2.3: the client and everything issued to it: tokens, codes and consents."""
        session = db.session()
        client_id = client.client_id
        counts = {
            name: session.execute(delete(model).where(model.client_id == client_id)).rowcount
            for name, model in (
                ("tokens", Token),
                ("codes", AuthorizationCode),
                ("consents", Consent),
            )
        }
        session.delete(client)
        audit.record("client.deleted", target=client_id, by="registration_access_token", **counts)
        session.commit()


def init_app(app: Flask) -> None:
    server = app.extensions["idp.oauth"]
    server.register_endpoint(ClientRegistrationEndpoint)
    server.register_endpoint(ClientConfigurationEndpoint)
