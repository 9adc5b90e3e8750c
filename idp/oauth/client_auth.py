"""Client authentication with JWTs: RFC 7523 §2.2 and §3, OpenID Connect Core 1.0 §9.

Two methods, registered on the Authlib server with ``register_client_auth_method`` and so
usable at every endpoint that authenticates clients (token, revocation, introspection, PAR,
device authorization):

* ``private_key_jwt``: signed with a key of the client's registered ``jwks`` or ``jwks_uri``
  (client metadata); a ``jwks_uri`` is fetched with a short timeout and cached per worker;
  an unknown ``kid`` triggers one early re-fetch, so a client can rotate its keys.
* ``client_secret_jwt``: HMAC with the client secret. Secrets are otherwise stored only as
  SHA-256 hashes, which cannot verify an HMAC, so for clients registered with this method
  the secret is also kept encrypted (AES-256-GCM under a key derived from ``SECRET_KEY``,
  the client_id as associated data); see docs/architecture.md for why.

Both extend Authlib's ``JWTBearerClientAssertion`` and check: ``iss`` = ``sub`` = the client
id, ``aud`` = the issuer, the token endpoint or the endpoint being called (RFC 9126 §2),
``exp`` present and at most ``CLIENT_ASSERTION_MAX_LIFETIME`` away, and a ``jti`` never
accepted twice. The replay store is shared by every worker: the ``jwt_replay`` table, or
Redis when ``REDIS_URL`` is set (falling back to the table while Redis is unreachable).

``refuse_multiple_methods`` enforces RFC 6749 §2.3 for every method, Authlib's included: a
request carrying credentials for more than one method is ``invalid_request``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7523.client import ASSERTION_TYPE
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey
from sqlalchemy.dialects import postgresql, sqlite

from .. import audit, db, outbound
from ..models import Client, JWTReplay, secret_hash, utcnow
from ..urls import https_or_loopback_http
from .paths import PATHS

log = logging.getLogger("idp.client_auth")

CLIENT_SECRET_JWT = "client_secret_jwt"
PRIVATE_KEY_JWT = "private_key_jwt"
METHODS = (CLIENT_SECRET_JWT, PRIVATE_KEY_JWT)
# Every client authentication method of this server, in the order they are tried; endpoints
# and grants list these (introspection and client credentials without "none").
ALL_METHODS = ["client_secret_basic", "client_secret_post", *METHODS, "none"]
CONFIDENTIAL_METHODS = [m for m in ALL_METHODS if m != "none"]
HMAC_ALGORITHMS = ["HS256", "HS384", "HS512"]
SIGNATURE_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
# token_endpoint_auth_signing_alg_values_supported (RFC 8414 §2); never "none".
SIGNING_ALG_VALUES = SIGNATURE_ALGORITHMS + HMAC_ALGORITHMS
LEEWAY = 30  # seconds of clock skew allowed on exp, nbf and iat
JWKS_MAX_BYTES = 64 * 1024
JWKS_REFETCH_AFTER = 10  # an unknown kid re-fetches a jwks_uri at most this often (seconds)


# --- client_secret_jwt: the secret, encrypted at rest -------------------------------------


def _aead(secret_key: str | bytes) -> AESGCM:
    material = secret_key.encode() if isinstance(secret_key, str) else secret_key
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"idp client_secret_jwt v1"
    ).derive(material)
    return AESGCM(key)


def encrypt_secret(client_id: str, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = _aead(current_app.config["SECRET_KEY"]).encrypt(
        nonce, secret.encode(), client_id.encode()
    )
    return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt_secret(client: Client) -> str | None:
    """The plaintext secret of a client_secret_jwt client; None if it cannot be recovered
    (no stored copy, or SECRET_KEY changed beyond SECRET_KEY_FALLBACKS)."""
    stored = client.client_secret_encrypted
    if not stored or not stored.startswith("v1."):
        return None
    raw = base64.urlsafe_b64decode(stored[3:])
    fallbacks = current_app.config.get("SECRET_KEY_FALLBACKS") or []  # Flask's default: None
    keys = [current_app.config["SECRET_KEY"], *fallbacks]
    for secret_key in keys:
        try:
            plain = _aead(secret_key).decrypt(raw[:12], raw[12:], client.client_id.encode())
        except InvalidTag:
            continue
        return plain.decode()
    return None


def set_client_secret(client: Client, secret: str | None) -> None:
    """Store a newly issued secret: its hash always, an encrypted copy for client_secret_jwt."""
    client.client_secret_hash = secret_hash(secret) if secret else None
    keep = secret and client.token_endpoint_auth_method == CLIENT_SECRET_JWT
    client.client_secret_encrypted = encrypt_secret(client.client_id, secret) if keep else None


# --- the replay store ---------------------------------------------------------------------


def _redis():
    app = current_app._get_current_object()
    url = app.config.get("REDIS_URL")
    if not url:
        return None
    if "idp.replay_redis" not in app.extensions:
        import redis

        app.extensions["idp.replay_redis"] = redis.Redis.from_url(
            url, socket_timeout=1, socket_connect_timeout=1
        )
    return app.extensions["idp.replay_redis"]


def _insert(dialect: str):
    return (postgresql if dialect == "postgresql" else sqlite).insert


def first_use(client_id: str, jti: str, expires_at: datetime) -> bool:
    """Record a jti until expires_at; False if it was already recorded and has not expired.

    A single atomic statement decides, so two workers presented the same assertion at the
    same moment cannot both accept it.
    """
    key = secret_hash(f"{client_id}\0{jti}")
    store = _redis()
    if store is not None:
        import redis

        try:
            return bool(store.set(f"idp:jti:{key}", 1, nx=True, exat=int(expires_at.timestamp())))
        except redis.RedisError:
            log.warning("redis unreachable: replay check falls back to the database")
    session = db.session()
    insert = _insert(session.get_bind().dialect.name)
    statement = (
        insert(JWTReplay)
        .values(key_hash=key, expires_at=expires_at)
        # An entry whose assertion has expired may be reused (RFC 7523 §3 item 7).
        .on_conflict_do_update(
            index_elements=["key_hash"],
            set_={"expires_at": expires_at},
            where=JWTReplay.expires_at <= utcnow(),
        )
        .returning(JWTReplay.key_hash)  # a row only when this statement inserted or renewed
    )
    won = session.execute(statement).first() is not None
    session.commit()
    return won


# --- private_key_jwt: the client's public keys --------------------------------------------


class _JWKSCache:
    """jwks_uri -> (fetched_at, KeySet), per worker, for CLIENT_JWKS_CACHE_SECONDS."""

    def __init__(self):
        self.entries: dict[str, tuple[float, KeySet]] = {}
        self.lock = threading.Lock()


def _jwks_cache() -> _JWKSCache:
    return current_app.extensions["idp.client_jwks"]


def fetch_jwks(uri: str) -> KeySet:
    """The JWK Set at a client's jwks_uri: not followed through redirects, at most 64 KiB,
    never from an address outbound requests may not reach (idp/outbound.py)."""
    parts = urlsplit(uri)
    if not https_or_loopback_http(parts):
        raise InvalidClientError(description="The client's jwks_uri must use https.")
    try:
        answer = outbound.fetch(
            uri,
            timeout=float(current_app.config["CLIENT_JWKS_TIMEOUT"]),
            max_bytes=JWKS_MAX_BYTES,
            headers={"Accept": "application/json"},
        )
    except outbound.Refused as exc:
        log.warning("a client's jwks_uri was refused", extra={"error": str(exc)})
        raise InvalidClientError(description=f"The client's jwks_uri {exc}.") from exc
    except (OSError, ValueError) as exc:
        log.warning("could not fetch a client's jwks_uri", extra={"error": str(exc)[:200]})
        raise InvalidClientError(description="The client's jwks_uri could not be read.") from exc
    try:
        if not answer.ok:
            raise ValueError(f"HTTP {answer.status}")
        if len(answer.body) > JWKS_MAX_BYTES:
            raise ValueError("JWK Set too large")
        return KeySet.import_key_set(json.loads(answer.body))
    except (ValueError, JoseError, TypeError, KeyError, RecursionError) as exc:
        log.warning("could not fetch a client's jwks_uri", extra={"error": str(exc)[:200]})
        raise InvalidClientError(description="The client's jwks_uri could not be read.") from exc


def client_keys(client: Client, refresh: bool = False) -> KeySet:
    """The client's registered public keys: jwks, else jwks_uri (cached)."""
    metadata = client.client_metadata or {}
    if isinstance(metadata.get("jwks"), dict):
        try:
            return KeySet.import_key_set(metadata["jwks"])
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            raise InvalidClientError(description="The client's jwks is not valid.") from exc
    uri = metadata.get("jwks_uri")
    if not isinstance(uri, str):
        raise InvalidClientError(description="The client has registered no keys.")
    cache = _jwks_cache()
    now = time.monotonic()
    ttl = float(current_app.config["CLIENT_JWKS_CACHE_SECONDS"])
    with cache.lock:
        entry = cache.entries.get(uri)
    fresh = entry is not None and now - entry[0] < ttl
    early = refresh and entry is not None and now - entry[0] >= JWKS_REFETCH_AFTER
    if fresh and not early:
        return entry[1]
    try:
        keys = fetch_jwks(uri)
    except InvalidClientError:
        if entry is not None:
            return entry[1]  # the last good copy until the client's server answers again
        raise
    with cache.lock:
        cache.entries[uri] = (now, keys)
    return keys


# --- the two methods ----------------------------------------------------------------------


class ClientAssertion(JWTBearerClientAssertion):
    """A JWT client assertion (RFC 7523 §2.2) for one of the two methods."""

    ALGORITHMS: list[str] = []

    def __init__(self):
        super().__init__(validate_jti=True, leeway=LEEWAY)

    def __call__(self, query_client, oauth_request):
        form = oauth_request.form
        assertion = form.get("client_assertion")
        if form.get("client_assertion_type") != ASSERTION_TYPE or not assertion:
            return None
        _, claims = self.extract_assertion(assertion)
        sub = claims.get("sub")
        client = query_client(sub) if isinstance(sub, str) else None
        if client is None or client.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
            return None  # the other method may own it; if none does, the answer is invalid_client
        # RFC 7523 §3 / OIDC Core §9: a client_id sent along must be the assertion's subject.
        sent = form.get("client_id")
        if sent and sent != sub:
            raise InvalidClientError(description="client_id does not match the assertion.")
        oauth_request.client = client
        self.process_assertion_claims(assertion, self.resolve_client_public_key(client))
        return self.authenticate_client(client)

    def process_assertion_claims(self, assertion, resolve_key):
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=self.ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description="The client assertion is not valid.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def get_audiences(self) -> list[str]:
        issuer = current_app.config["ISSUER"]
        return list(
            dict.fromkeys([issuer, issuer + PATHS["token_endpoint"], issuer + request.path])
        )

    def verify_claims(self, claims):
        now = time.time()
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidClientError(description="The client assertion has no exp.")
        # Short-lived only: the jti is remembered until exp, so exp bounds the replay store.
        if exp - now > int(current_app.config["CLIENT_ASSERTION_MAX_LIFETIME"]) + LEEWAY:
            raise InvalidClientError(description="The client assertion lives too long.")
        iat = claims.get("iat")
        if isinstance(iat, int | float) and iat > now + LEEWAY:
            raise InvalidClientError(description="The client assertion is issued in the future.")
        if not isinstance(claims.get("jti"), str) or not claims["jti"]:
            raise InvalidClientError(description="The client assertion has no jti.")
        super().verify_claims(claims)

    def validate_jti(self, claims, jti) -> bool:
        expires_at = datetime.fromtimestamp(claims["exp"] + LEEWAY, UTC)
        if first_use(claims["sub"], jti, expires_at):
            return True
        audit.record(
            "client.assertion_replayed", target=claims["sub"], method=self.CLIENT_AUTH_METHOD
        )
        db.session().commit()
        return False


class ClientSecretJWT(ClientAssertion):
    CLIENT_AUTH_METHOD = CLIENT_SECRET_JWT
    ALGORITHMS = HMAC_ALGORITHMS

    def resolve_client_public_key(self, client: Client) -> OctKey:
        secret = decrypt_secret(client)
        if secret is None:
            raise InvalidClientError(
                description="No usable secret for client_secret_jwt; issue a new secret."
            )
        return OctKey.import_key(secret.encode())


class PrivateKeyJWT(ClientAssertion):
    CLIENT_AUTH_METHOD = PRIVATE_KEY_JWT
    ALGORITHMS = SIGNATURE_ALGORITHMS

    def resolve_client_public_key(self, client: Client):
        def pick(guest):
            kid = guest.headers().get("kid")
            keys = client_keys(client)
            try:
                return keys.get_by_kid(kid)
            except (JoseError, ValueError):
                pass
            try:  # unknown kid: the client may have rotated its keys
                return client_keys(client, refresh=True).get_by_kid(kid)
            except (JoseError, ValueError) as exc:
                raise InvalidClientError(
                    description="No registered key of the client matches the assertion."
                ) from exc

        return pick


# --- one method per request ----------------------------------------------------------------


def methods_presented(request) -> list[str]:
    """The client authentication methods a request carries credentials for: HTTP Basic,
    ``client_secret`` in the body, ``client_assertion``. A ``client_id`` alone is none of
    them (it names a public client, or repeats the Basic or assertion one)."""
    presented = []
    flask_request = getattr(request, "_request", None)  # server.OAuth2Request: its environ
    if flask_request is not None:
        authorization = flask_request.environ.get("HTTP_AUTHORIZATION")
    else:
        authorization = request.headers.get("Authorization")
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if scheme.lower() == "basic" and credentials.strip():
        presented.append("client_secret_basic")
    form = request.form
    if form.get("client_secret"):  # an empty value carries no credential
        presented.append("client_secret_post")
    if form.get("client_assertion"):
        presented.append("client_assertion")
    return presented


def refuse_multiple_methods(request) -> None:
    """RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
    request." Otherwise the server would pick one and ignore the other credential, which may
    belong to another client."""
    if len(methods_presented(request)) > 1:
        raise InvalidRequestError(
            description="Use one client authentication method per request (RFC 6749 section 2.3)."
        )


def register(server) -> None:
    """Make both methods available to every endpoint whose method list names them."""
    server.register_client_auth_method(CLIENT_SECRET_JWT, ClientSecretJWT())
    server.register_client_auth_method(PRIVATE_KEY_JWT, PrivateKeyJWT())


def init_app(app: Flask) -> None:
    app.extensions["idp.client_jwks"] = _JWKSCache()
