"""SQLAlchemy 2 typed models. The schema is created and changed only by Alembic migrations."""

from .audit import AuditEvent
from .base import Base, secret_hash, secret_matches, utcnow
from .client import Client
from .consent import Consent
from .grant import AuthorizationCode
from .group import Group, user_groups
from .key import SigningKey
from .registration import RegistrationToken
from .session import LogoutDelivery, SessionClient, UserSession
from .token import Token
from .user import User

__all__ = [
    "AuditEvent",
    "AuthorizationCode",
    "Base",
    "Client",
    "Consent",
    "Group",
    "LogoutDelivery",
    "RegistrationToken",
    "SessionClient",
    "SigningKey",
    "Token",
    "User",
    "UserSession",
    "secret_hash",
    "secret_matches",
    "user_groups",
    "utcnow",
]
