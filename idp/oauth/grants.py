"""The grants of RFC 6749 as this server runs them, extending Authlib's classes.

Where Authlib's defaults fall short:

* the code grant looks the code up, issues tokens, then deletes the code, so two racing
  requests can both redeem it; here the code is consumed first by a conditional UPDATE
  whose row count decides the single winner, and a replayed code revokes every token
  issued from it (RFC 6749 §4.1.2);
* the refresh grant does not rotate; here every use rotates, the old token is consumed
  the same way, and reuse of a rotated token revokes its whole family (RFC 9700 §4.14.2).

    code:    issued --(token request wins UPDATE used_at)--> used --(replay)--> family revoked
    refresh: active --(refresh wins UPDATE refresh_used_at)--> rotated --(reuse)--> revoked
"""

from __future__ import annotations

from datetime import timedelta

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app
from sqlalchemy import select, update

from .. import audit, db
from ..auth.session import current_authentication, current_sid, remember_client
from ..models import AuthorizationCode, Token, secret_hash, utcnow
from . import tokens
from .claims import OIDC_SCOPES

RESPONSE_MODES = ("query", "form_post")
CLIENT_AUTH = ["client_secret_basic", "client_secret_post", "none"]


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH
    # 48 characters of [A-Za-z0-9]: about 285 bits, far above the 128 the issue asks for.
    AUTHORIZATION_CODE_LENGTH = 48

    def validate_authorization_request(self):
        redirect_uri = super().validate_authorization_request()
        data = self.request.payload.data
        state = self.request.payload.state
        if data.get("response_mode", "query") not in RESPONSE_MODES:
            raise InvalidRequestError(
                "response_mode must be query or form_post", redirect_uri=redirect_uri, state=state
            )
        if "openid" in (scope_to_list(self.request.payload.scope) or []) and not (
            self.request.payload.redirect_uri
        ):
            # OIDC Core §3.1.2.1: redirect_uri is REQUIRED in authentication requests.
            raise InvalidRequestError(
                "redirect_uri is required", redirect_uri=redirect_uri, state=state
            )
        return redirect_uri

    def save_authorization_code(self, code, request):
        data = request.payload.data
        auth_time, amr = current_authentication()
        lifetime = int(current_app.config["AUTHORIZATION_CODE_LIFETIME"])
        row = AuthorizationCode(
            code_hash=secret_hash(code),
            client_id=request.client.client_id,
            user_id=request.user.id,
            # Stored as sent: "" when omitted, so the token request must then omit it too.
            redirect_uri=request.payload.redirect_uri or "",
            scope=request.scope or "",
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            auth_time=auth_time,
            amr=amr,
            sid=current_sid(),
            expires_at=utcnow() + timedelta(seconds=lifetime),
        )
        session = db.session()
        session.add(row)
        remember_client(row.sid, row.client_id)
        audit.record(
            "code.issued",
            actor=request.user.sub,
            target=request.client.client_id,
            scope=row.scope,
        )
        session.commit()

    def query_authorization_code(self, code, client):
        session = db.session()
        row = session.scalar(
            select(AuthorizationCode).where(
                AuthorizationCode.code_hash == secret_hash(code),
                AuthorizationCode.client_id == client.client_id,
            )
        )
        if row is None:
            return None
        if row.used_at is not None:
            tokens.revoke_for_code(row.id, reason="authorization code replayed")
            audit.record("code.replayed", target=client.client_id, code_id=row.id)
            session.commit()
            return None
        if row.is_expired():
            return None
        return row

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: the code was consumed before tokens were issued; `idp purge` deletes."""

    def authenticate_user(self, authorization_code):
        user = authorization_code.user
        return user if user is not None and user.is_active else None

    def create_token_response(self):
        code = self.request.authorization_code
        session = db.session()
        # The code is consumed before tokens are issued, so a racing request finds nothing.
        won = session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == code.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=utcnow())
        ).rowcount
        session.commit()
        if won != 1:
            tokens.revoke_for_code(code.id, reason="authorization code redeemed twice")
            audit.record("code.replayed", target=code.client_id, code_id=code.id)
            session.commit()
            raise InvalidGrantError("The authorization code was already used.")
        return super().create_token_response()


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotate on every use

    def authenticate_refresh_token(self, refresh_token):
        row = tokens.find(refresh_token, "refresh_token")
        if row is None or row.presented_as != "refresh_token":
            return None
        if row.refresh_used_at is not None:
            tokens.revoke_family(row.family_id, reason="rotated refresh token reused")
            db.session().commit()
            return None
        if self.authenticate_user(row) is None:
            return None  # RFC 6749 §5.2: a disabled owner's grant is invalid_grant
        return row if row.refresh_is_usable() else None

    def authenticate_user(self, refresh_token):
        user = refresh_token.user
        return user if user is not None and user.is_active else None

    def _validate_token_scope(self, token):
        # RFC 6749 §6: the requested scope must be within what the grant carried.
        requested = set(scope_to_list(self.request.payload.scope) or [])
        if not requested.issubset(set(token.granted_scope.split())):
            raise InvalidScopeError()

    def issue_token(self, user, refresh_token):
        scope = self.request.payload.scope or refresh_token.granted_scope
        return self.generate_token(user=user, scope=scope, include_refresh_token=True)

    def create_token_response(self):
        old = self.request.refresh_token
        session = db.session()
        won = session.execute(
            update(Token)
            .where(Token.id == old.id, Token.refresh_used_at.is_(None), Token.revoked_at.is_(None))
            .values(refresh_used_at=utcnow())
        ).rowcount
        session.commit()
        if won != 1:
            tokens.revoke_family(old.family_id, reason="refresh token raced or reused")
            session.commit()
            raise InvalidGrantError("The refresh token was already used.")
        return super().create_token_response()

    def revoke_old_credential(self, refresh_token):
        """Nothing to do: the old refresh token was consumed before the new one was issued."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_token_request(self):
        super().validate_token_request()
        # No end user here, so user scopes (openid, profile...) cannot be granted.
        requested = scope_to_list(self.request.payload.scope) or []
        allowed = set(scope_to_list(self.request.client.scope) or []) - set(OIDC_SCOPES)
        if not set(requested).issubset(allowed):
            raise InvalidScopeError("The client may not request this scope.")
