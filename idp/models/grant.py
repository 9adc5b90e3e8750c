"""Authorization codes (RFC 6749 §4.1.2): short-lived, single-use, stored only as a hash."""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin
from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .client import Client
from .user import User


class CodeMethods(AuthorizationCodeMixin):
    """Authlib's AuthorizationCodeMixin over the code columns: shared by the ORM row
    (``AuthorizationCode``) and the code exchange's read-only view on PostgreSQL
    (``token_sql.CodeView``), which have the same names."""

    __slots__ = ()

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str] | None:
        return self.amr

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()


class AuthorizationCode(CodeMethods, Base):
    __tablename__ = "authorization_codes"
    # The nonce check (OIDC Core §15.5.2: a nonce this client used before is a replay) runs
    # twice per authorization request: without an index it reads every stored code of the
    # client. A hash index on PostgreSQL, whose B-trees refuse entries over ~2.7 kB and a
    # nonce has no length limit; SQLite's B-trees have none.
    __table_args__ = (Index("ix_authorization_codes_nonce", "nonce", postgresql_using="hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(
        ForeignKey("clients.client_id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str | None] = mapped_column(String(128))
    code_challenge_method: Mapped[str | None] = mapped_column(String(16))
    auth_time: Mapped[int] = mapped_column()
    sid: Mapped[str | None] = mapped_column(String(64))
    amr: Mapped[list[str] | None] = mapped_column(JSON)
    # OIDC Core §2: the Authentication Context Class the sign-in satisfied (oauth.acr).
    acr: Mapped[str | None] = mapped_column(String(64))
    # RFC 8707 §2.1: the resources the authorization request named (or its scopes implied).
    resources: Mapped[list[str] | None] = mapped_column(JSON)
    # RFC 9449 §10: the dpop_jkt of the authorization request; the token request's proof
    # must be signed by that key.
    dpop_jkt: Mapped[str | None] = mapped_column(String(43))
    # OIDC Core §5.5: the claims request parameter in its normal form (oauth.claims_request),
    # kept by the tokens issued from this code.
    claims_request: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    # Set once, by the single request that wins the redemption (conditional UPDATE).
    used_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship(lazy="joined")
    client: Mapped[Client] = relationship(lazy="joined")
