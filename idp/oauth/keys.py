"""Signing keys and the JWKS (RFC 7517 §5; OIDC Core §10.1): rotation with a grace period.

Keys live in the ``signing_keys`` table so every worker signs with and publishes the same
set. Each worker keeps them in memory for ``KEY_CACHE_SECONDS`` to keep the token endpoint
off the database for key look-ups; a rotation is therefore published everywhere within
that many seconds (and at once in the worker that rotated).
"""

from __future__ import annotations

import functools
import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey, import_key
from joserfc.jws import JWSRegistry
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .. import audit, db
from ..models import SigningKey, utcnow

ALGORITHMS = ("RS256", "ES256")


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    alg: str
    key: RSAKey | ECKey
    active: bool

    def public_jwk(self) -> dict:
        return {**self.key.as_dict(private=False), "kid": self.kid, "use": "sig", "alg": self.alg}


def generate(alg: str) -> SigningKey:
    """A new private key for alg; kid is its RFC 7638 thumbprint."""
    if alg == "RS256":
        key = RSAKey.generate_key(2048, private=True)
    elif alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg}")
    return SigningKey(kid=key.thumbprint(), alg=alg, private_jwk=key.as_dict(private=True))


def ensure_keys(session: Session) -> list[SigningKey]:
    """Create an active key for every algorithm that has none (safe to run twice)."""
    created = []
    for alg in ALGORITHMS:
        active = session.scalar(
            select(SigningKey.id).where(SigningKey.alg == alg, SigningKey.retired_at.is_(None))
        )
        if active is None:
            row = generate(alg)
            session.add(row)
            created.append(row)
    return created


def rotate(session: Session, grace_seconds: int) -> list[SigningKey]:
    """Add a new active key per algorithm; retired keys stay published for the grace period."""
    now = utcnow()
    for old in session.scalars(select(SigningKey).where(SigningKey.retired_at.is_(None))):
        old.retired_at = now
        old.publish_until = now + timedelta(seconds=grace_seconds)
    new = [generate(alg) for alg in ALGORITHMS]
    session.add_all(new)
    audit.record("keys.rotated", kids=[key.kid for key in new], grace_seconds=grace_seconds)
    return new


class KeyStore:
    """Per-app cache of the published keys."""

    def __init__(self, app: Flask):
        self.ttl = float(app.config["KEY_CACHE_SECONDS"])
        self._lock = threading.Lock()
        self._loaded_at = -1e9
        self._keys: list[LoadedKey] = []
        self.version = 0  # changes whenever the set in memory may change (idp.published)

    def invalidate(self) -> None:
        self._loaded_at = -1e9
        self.version += 1

    def fresh_until(self) -> float:
        """The time.monotonic() at which the keys in memory are next re-read."""
        return self._loaded_at + self.ttl

    def keys(self) -> list[LoadedKey]:
        if time.monotonic() - self._loaded_at > self.ttl:
            with self._lock:
                if time.monotonic() - self._loaded_at > self.ttl:
                    self._keys = self._load()
                    self._loaded_at = time.monotonic()
                    self.version += 1
        return self._keys

    def _load(self) -> list[LoadedKey]:
        now = utcnow()
        rows = db.session().scalars(
            select(SigningKey)
            .where(or_(SigningKey.publish_until.is_(None), SigningKey.publish_until > now))
            .order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
        )
        return [
            LoadedKey(r.kid, r.alg, imported(r.private_jwk), r.retired_at is None) for r in rows
        ]

    def signing_key(self, alg: str) -> LoadedKey:
        for key in self.keys():
            if key.alg == alg and key.active:
                return key
        raise RuntimeError(f"no active {alg} signing key: run `idp init`")

    def jwks(self) -> dict:
        return {"keys": [k.public_jwk() for k in self.keys()]}

    def verification_keys(self) -> KeySet:
        return KeySet([import_key(k.public_jwk()) for k in self.keys()])


def imported(private_jwk: dict) -> RSAKey | ECKey:
    """The key of a stored JWK, imported once per process: importing an RSA private key
    checks it (tens of milliseconds), which each reload of each app's store would otherwise
    pay per key. Keyed by the whole JWK, so a row is never answered with another's key."""
    return _import(json.dumps(private_jwk, sort_keys=True))


@functools.lru_cache(maxsize=32)
def _import(jwk_text: str) -> RSAKey | ECKey:
    return import_key(json.loads(jwk_text))


def init_app(app: Flask) -> None:
    app.extensions["idp.keys"] = KeyStore(app)


def sign(claims: dict, alg: str, typ: str = "JWT") -> str:
    """A JWT signed with the active key for alg: ID tokens (typ JWT), access tokens
    (at+jwt, RFC 9068 §2.1) and logout tokens (logout+jwt)."""
    key = store().signing_key(alg)
    # joserfc would build this registry (the one algorithm allowed) on every call.
    registry = _REGISTRIES.get(alg) or _REGISTRIES.setdefault(alg, JWSRegistry(algorithms=[alg]))
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": typ}, claims, key.key, registry=registry)


_REGISTRIES: dict[str, JWSRegistry] = {}


def store() -> KeyStore:
    return current_app._get_current_object().extensions["idp.keys"]
