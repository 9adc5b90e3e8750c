"""SQLAlchemy 2 typed models. The schema is created and changed only by Alembic migrations."""

from .account_link import AccountLink
from .audit import AuditEvent
from .base import Base, secret_hash, secret_matches, utcnow
from .client import Client, new_client_id
from .consent import Consent
from .device import DeviceCode, JWTReplay, PushedAuthorizationRequest
from .factor import RecoveryCode, TOTPCredential
from .grant import AuthorizationCode
from .group import Group, user_groups
from .key import SigningKey
from .mail import MailMessage
from .own_data import DeletionRequest, KnownDevice
from .registration import RegistrationToken
from .resource import Resource, resource_clients
from .session import LogoutDelivery, SessionClient, UserSession
from .subject import PairwiseSubject
from .token import Token
from .user import User
from .webauthn import WebAuthnChallengeReplay, WebAuthnCredential

__all__ = [
    "AccountLink",
    "AuditEvent",
    "AuthorizationCode",
    "Base",
    "Client",
    "Consent",
    "DeletionRequest",
    "DeviceCode",
    "Group",
    "JWTReplay",
    "KnownDevice",
    "LogoutDelivery",
    "MailMessage",
    "PairwiseSubject",
    "PushedAuthorizationRequest",
    "RecoveryCode",
    "TOTPCredential",
    "RegistrationToken",
    "Resource",
    "SessionClient",
    "SigningKey",
    "Token",
    "User",
    "WebAuthnChallengeReplay",
    "WebAuthnCredential",
    "new_client_id",
    "UserSession",
    "secret_hash",
    "secret_matches",
    "resource_clients",
    "user_groups",
    "utcnow",
]
