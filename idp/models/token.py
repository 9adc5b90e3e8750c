"""Access and refresh tokens (RFC 6749 §1.4-1.5), stored only as SHA-256 hashes.

One row is one issuance: an access token and, optionally, the refresh token handed out
with it. Rows that descend from one grant share ``family_id``; presenting a refresh token
that was already rotated revokes the whole family (RFC 9700 §4.14.2).
"""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc6749 import TokenMixin
from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .client import Client
from .user import User


class TokenMethods(TokenMixin):
    """Authlib's TokenMixin over the token columns: shared by the ORM row (``Token``) and
    the hot path's read-only view (``token_sql.TokenView``), which have the same names."""

    __slots__ = ()

    def check_client(self, client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int((self.access_expires_at - self.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return self.access_expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> Client:
        return self.client

    def refresh_is_usable(self) -> bool:
        return (
            self.revoked_at is None
            and self.refresh_used_at is None
            and self.refresh_expires_at is not None
            and self.refresh_expires_at > utcnow()
        )


class Token(TokenMethods, Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    grant_type: Mapped[str] = mapped_column(String(64))
    # Scope of the access token of this row; may be narrower than granted_scope (RFC 6749 §6).
    scope: Mapped[str] = mapped_column(Text, default="")
    # Scope of the grant the refresh token carries forward, identical across rotations.
    granted_scope: Mapped[str] = mapped_column(Text, default="")
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    access_expires_at: Mapped[datetime] = mapped_column(index=True)
    refresh_expires_at: Mapped[datetime | None] = mapped_column()
    # The refresh token of this row was exchanged (rotated) at this time.
    refresh_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    authorization_code_id: Mapped[int | None] = mapped_column(index=True)
    auth_time: Mapped[int | None] = mapped_column()
    # The browser session (sid) the grant came from, if any.
    sid: Mapped[str | None] = mapped_column(String(64), index=True)
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    acr: Mapped[str | None] = mapped_column(String(64))  # kept across refresh (oauth.acr)
    # RFC 9068: the jti of a JWT access token (None for opaque ones) and its aud.
    jti: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    audience: Mapped[list[str] | None] = mapped_column(JSON)
    # RFC 8707: the resources the grant covers, carried forward by the refresh token, from
    # which a refreshed access token may be scoped down to fewer (§2.2).
    resources: Mapped[list[str] | None] = mapped_column(JSON)
    # RFC 8693 §4.1: the actor a token-exchange token was delegated to (the "act" claim).
    act: Mapped[dict | None] = mapped_column(JSON)
    # RFC 9449 §6: the JWK thumbprint (RFC 7638) of the DPoP key the access token, and for a
    # public client the refresh token (§5), is bound to; None for a bearer token.
    jkt: Mapped[str | None] = mapped_column(String(43))
    # OIDC Core §5.5: the claims request of the authorization (normal form, from the code),
    # carried forward by refresh: which claims the ID token and UserInfo add to the scopes'.
    claims_request: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User | None] = relationship(lazy="joined")
    client: Mapped[Client] = relationship(lazy="joined")

    # (authlib TokenMixin: the methods are TokenMethods.)
    # Which of the row's two tokens a request presented (set by tokens.find, not stored).
    presented_as = "access_token"
