"""SQLAlchemy 2 typed models. The schema is created and changed only by Alembic migrations."""

from .audit import AuditEvent
from .base import Base, secret_hash, secret_matches, utcnow
from .client import Client
from .consent import Consent
from .grant import AuthorizationCode
from .key import SigningKey
from .token import Token
from .user import User

__all__ = [
    "AuditEvent",
    "AuthorizationCode",
    "Base",
    "Client",
    "Consent",
    "SigningKey",
    "Token",
    "User",
    "secret_hash",
    "secret_matches",
    "utcnow",
]
