"""Remembered consent: which scopes, and which individually requested claims (OIDC Core
§5.5), a user granted to a client (OIDC Core §3.1.2.4)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .client import Client


class Consent(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text, default="")
    # Claims consented to one by one (the claims request parameter, OIDC Core §5.5) beyond
    # those of the granted scopes: space-separated names, like scope.
    claims: Mapped[str | None] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    client: Mapped[Client] = relationship(lazy="joined")

    @property
    def scopes(self) -> set[str]:
        return set(self.scope.split())

    @property
    def claim_names(self) -> set[str]:
        return set((self.claims or "").split())
