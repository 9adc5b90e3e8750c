"""Audit records of admin changes: who did what to whom, with the fields before and after.

Snapshots name the fields they keep, so a password hash, a client secret hash or a token
can never reach the audit log by accident.
"""

from __future__ import annotations

from flask_login import current_user

from .. import audit
from ..models import Client, User

USER_FIELDS = (
    "username",
    "email",
    "email_verified",
    "name",
    "given_name",
    "family_name",
    "phone_number",
    "phone_number_verified",
    "address",
    "locale",
    "zoneinfo",
    "picture",
    "is_admin",
    "disabled",
    "failed_logins",
    "locked_until",
)
CLIENT_FIELDS = (
    "client_name",
    "redirect_uris",
    "post_logout_redirect_uris",
    "grant_types",
    "response_types",
    "scope",
    "token_endpoint_auth_method",
    "first_party",
    "require_mfa",
    "access_token_lifetime",
    "refresh_token_lifetime",
    "id_token_signed_response_alg",
    "userinfo_signed_response_alg",
    "subject_type",
    "sector_identifier_uri",
    "access_token_format",
    "request_object_signing_alg",
    "require_signed_request_object",
    "token_exchange_policy",
    "backchannel_logout_uri",
    "backchannel_logout_session_required",
    "frontchannel_logout_uri",
    "frontchannel_logout_session_required",
    "client_metadata",  # public metadata: jwks/jwks_uri, PAR, registration's URIs
    "disabled",
)


def _plain(value):
    """JSON-storable copy (datetimes as ISO strings, lists copied)."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def user_snapshot(user: User) -> dict:
    data = {name: _plain(getattr(user, name)) for name in USER_FIELDS}
    data["groups"] = sorted(group.name for group in user.groups)
    return data


def client_snapshot(client: Client) -> dict:
    return {name: _plain(getattr(client, name)) for name in CLIENT_FIELDS}


def diff(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the fields that changed, as (before, after)."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def record(event: str, target: str | None, before: dict | None = None, after=None, **details):
    """An ``admin.*`` audit event by the signed-in admin; only changed fields are kept."""
    if before is not None and after is not None:
        before, after = diff(before, after)
    if before is not None:
        details["before"] = before
    if after is not None:
        details["after"] = after
    audit.record(f"admin.{event}", actor=current_user.sub, target=target, **details)
