"""Protected resources (APIs) named by URI, the target of RFC 8707 resource indicators.

A resource holds the scopes a client may request for it, the access token format and lifetime
its tokens get (RFC 9068 JWT or opaque; ``None`` follows the client and then the server), and
the clients that may request tokens for it.
"""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import Column, ForeignKey, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .client import Client

resource_clients = Table(
    "resource_clients",
    Base.metadata,
    Column("resource_id", ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "client_id",
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)

TOKEN_FORMATS = ("jwt", "opaque")


class Resource(Base):
    __tablename__ = "resources"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The resource indicator (RFC 8707 §2): an absolute URI without a fragment.
    identifier: Mapped[str] = mapped_column(String(512), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    # Space-separated scopes a client may request for this resource.
    scope: Mapped[str] = mapped_column(Text, default="")
    # "jwt" | "opaque"; None: the client's format, else the server's ACCESS_TOKEN_FORMAT.
    token_format: Mapped[str | None] = mapped_column(String(16))
    # Seconds; None: the client's lifetime, else the server's ACCESS_TOKEN_LIFETIME.
    access_token_lifetime: Mapped[int | None] = mapped_column()
    # The client the resource server authenticates as to introspect its tokens (RFC 7662 §2.1).
    introspection_client_id: Mapped[str | None] = mapped_column(
        ForeignKey("clients.client_id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clients: Mapped[list[Client]] = relationship(
        secondary=resource_clients, order_by=Client.client_name, lazy="selectin"
    )

    @property
    def scopes(self) -> list[str]:
        return scope_to_list(self.scope) or []

    def allows_client(self, client_id: str) -> bool:
        return any(c.client_id == client_id for c in self.clients)

    def __repr__(self) -> str:
        return f"<Resource {self.identifier}>"
