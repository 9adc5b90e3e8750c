"""Device codes (RFC 8628 §3.2), pushed authorization requests (RFC 9126 §2.2) and the JWT
replay store of client assertions (RFC 7523 §3 item 7).

Every credential here is stored only as a SHA-256 hash, like codes and tokens.

    device code: pending --(user approves)--> approved --(token request wins used_at)--> used
                        \\-(user denies)-----> denied          expired at expires_at, any state
    pushed request: pushed --(browser arrives: claimed_at)--> claimed --(answer: used_at)--> used
"""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc8628 import DeviceCredentialMixin
from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .client import Client
from .user import User

PENDING, APPROVED, DENIED = "pending", "approved", "denied"


class DeviceCode(DeviceCredentialMixin, Base):
    __tablename__ = "device_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    device_code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # Not unique: an expired code may share the value of a live one (issuing checks the live).
    user_code_hash: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    # Seconds the device must wait between polls; grows by 5 on each slow_down (§3.5).
    interval: Mapped[int] = mapped_column()
    last_polled_at: Mapped[datetime | None] = mapped_column()
    # Who decided, when, and how that user had signed in (for the ID token).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    decided_at: Mapped[datetime | None] = mapped_column()
    auth_time: Mapped[int | None] = mapped_column()
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # Set once, by the single token request that wins the redemption (conditional UPDATE).
    used_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User | None] = relationship(lazy="joined")
    client: Mapped[Client] = relationship(lazy="joined")

    # --- authlib DeviceCredentialMixin ---
    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code_hash  # only the hash is known after issuance

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()


class PushedAuthorizationRequest(Base):
    __tablename__ = "pushed_authorization_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    # SHA-256 of the whole request_uri (urn:ietf:params:oauth:request_uri:<random>).
    request_uri_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    params: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # First seen at the authorization endpoint (the sign-in that follows may outlast expires_in).
    claimed_at: Mapped[datetime | None] = mapped_column()
    # Set once, by the authorization response that consumed it (conditional UPDATE).
    used_at: Mapped[datetime | None] = mapped_column()

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()


class JWTReplay(Base):
    """A client assertion's jti, kept until the assertion expires (purged after)."""

    __tablename__ = "jwt_replay"

    # SHA-256 of client_id and jti: the same jti from two clients are two entries.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
