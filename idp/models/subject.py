"""Pairwise subject identifiers given out in ID tokens (OIDC Core §8), so that an ID token
presented back (``id_token_hint``, a token exchange subject) maps to its user."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class PairwiseSubject(Base):
    __tablename__ = "pairwise_subjects"
    __table_args__ = (UniqueConstraint("sector", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # The sector identifier (a host, §8.1) and the sub computed for it (oauth/subjects.py).
    sector: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
