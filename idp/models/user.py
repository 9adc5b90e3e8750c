"""End users: login credentials and the OpenID Connect standard claims (OIDC Core §5.1)."""

from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


def new_subject() -> str:
    """A stable, opaque subject identifier that reveals nothing about the user."""
    return secrets.token_hex(16)


class User(UserMixin, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    sub: Mapped[str] = mapped_column(String(64), unique=True, default=new_subject)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    email_verified: Mapped[bool] = mapped_column(default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    disabled: Mapped[bool] = mapped_column(default=False)
    # OIDC Core §5.1 standard claims
    name: Mapped[str | None] = mapped_column(String(255))
    given_name: Mapped[str | None] = mapped_column(String(255))
    family_name: Mapped[str | None] = mapped_column(String(255))
    middle_name: Mapped[str | None] = mapped_column(String(255))
    nickname: Mapped[str | None] = mapped_column(String(255))
    profile: Mapped[str | None] = mapped_column(String(2048))
    picture: Mapped[str | None] = mapped_column(String(2048))
    website: Mapped[str | None] = mapped_column(String(2048))
    gender: Mapped[str | None] = mapped_column(String(64))
    birthdate: Mapped[str | None] = mapped_column(String(10))
    zoneinfo: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(35))
    phone_number: Mapped[str | None] = mapped_column(String(64))
    phone_number_verified: Mapped[bool] = mapped_column(default=False)
    address: Mapped[dict | None] = mapped_column(JSON)
    # Progressive lockout after failed sign-ins; an admin can lift it.
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_login_at: Mapped[datetime | None] = mapped_column()
    # MFA policy (auth.mfa): this user must sign in with a second factor.
    mfa_required: Mapped[bool] = mapped_column(default=False)
    # Mail the user after a sign-in from a browser not seen before (account page opt-out).
    new_device_notices: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    groups: Mapped[list["Group"]] = relationship(  # noqa: F821, UP037
        secondary="user_groups", back_populates="members", order_by="Group.name"
    )

    def get_id(self) -> str:  # Flask-Login
        return self.sub

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return not self.disabled

    def __repr__(self) -> str:
        return f"<User {self.id}>"
