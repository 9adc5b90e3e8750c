"""WebAuthn credentials (passkeys) and the record of used challenges (W3C WebAuthn Level 3).

A credential row keeps what §7.1 step 27 ("Create and store a new credential record") lists:
the credential id, its COSE public key, the signature counter, the transports, the backup
flags and whether user verification was done at registration. Only public material is
stored: the private key never leaves the authenticator.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class WebAuthnCredential(Base):
    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # base64url of the raw credential id (at most 1023 bytes, WebAuthn L3 §5.8.3).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key (RFC 9052 §7)
    # The authenticator's signature counter, 32 bits unsigned (§6.1.1): BIGINT in PostgreSQL.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[list | None] = mapped_column(JSON)
    name: Mapped[str] = mapped_column(String(64))
    aaguid: Mapped[str | None] = mapped_column(String(36))
    # The BE and BS flags (§6.1.3): a backup-eligible credential may be synced to other devices.
    backup_eligible: Mapped[bool] = mapped_column(default=False)
    backed_up: Mapped[bool] = mapped_column(default=False)
    # The UV flag at registration (§6.1 "uvInitialized" of the credential record).
    user_verified: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()


class WebAuthnChallengeReplay(Base):
    """A challenge that was answered, kept until it expires (then purged, idp/purge.py), so
    that a response is accepted once even if the signed session cookie holding the
    challenge is sent again."""

    __tablename__ = "webauthn_challenge_replay"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
