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

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    grants,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from flask import current_app
from sqlalchemy import bindparam, insert, select, update

from .. import audit, db
from ..auth.session import current_authentication, current_sid, remember_client
from ..models import AuthorizationCode, Token, secret_hash, token_sql, utcnow
from . import acr, claims_request, dpop, resources, tokens
from .claims import OIDC_SCOPES
from .client_auth import ALL_METHODS, CONFIDENTIAL_METHODS

_INSERT_CODE = db.Statement(
    insert(AuthorizationCode).values({name: bindparam(name) for name in token_sql.CODE_COLUMNS})
)

RESPONSE_MODES = ("query", "form_post")
CLIENT_AUTH = ALL_METHODS  # incl. private_key_jwt, client_secret_jwt (client_auth.py)


class ResourceIndicators:
    """RFC 8707 §2.2 at the token endpoint: the resources a token is for, its scope narrowed
    to them. ``resolve_resources`` runs in validate_token_request, before anything is used up.
    """

    def resolve_resources(self, granted: list[str] | None) -> None:
        self.request.target_resources = resources.for_token_request(
            self.request, self.request.client, granted
        )
        self.request.granted_resources = granted

    def generate_token(self, user=None, scope=None, **kwargs):
        target = getattr(self.request, "target_resources", None) or []
        if scope is None and target:
            # RFC 6749 §3.3: without a scope, the default is what the resources offer.
            scope = " ".join(dict.fromkeys(s for r in target for s in r.scopes))
        scope = resources.narrow(scope, target)
        return super().generate_token(user=user, scope=scope, **kwargs)


class AuthorizationCodeGrant(ResourceIndicators, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH

    def generate_authorization_code(self) -> str:
        """256 random bits (RFC 6749 §10.10 and RFC 9700 §4.5 ask for at least 128), as the
        tokens have (``tokens.new_secret``): one read of the system's random source.
        Authlib's default draws 48 characters one at a time from ``SystemRandom`` (48
        reads, ~45 µs a code against ~1 µs)."""
        return tokens.new_secret()

    @staticmethod
    def validate_authorization_redirect_uri(request, client):
        uri = request.payload.redirect_uri
        if uri and not client.check_redirect_uri(uri):
            # Authlib echoes the URI in the description and raises ValueError when it has
            # characters RFC 6749 §5.2 forbids there: a 500 at /par (found by schemathesis).
            raise InvalidRequestError("redirect_uri is not registered for this client.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    def validate_authorization_request(self):
        redirect_uri = super().validate_authorization_request()
        data = self.request.payload.data
        state = self.request.payload.state
        if data.get("response_mode", "query") not in RESPONSE_MODES:
            raise InvalidRequestError(
                "response_mode must be query or form_post", redirect_uri=redirect_uri, state=state
            )
        try:
            claims_request.parse(data.get("claims"))  # OIDC Core §5.5
        except OAuth2Error as error:
            error.redirect_uri, error.state = redirect_uri, state
            raise
        if "openid" in (scope_to_list(self.request.payload.scope) or []) and not (
            self.request.payload.redirect_uri
        ):
            # OIDC Core §3.1.2.1: redirect_uri is REQUIRED in authentication requests.
            raise InvalidRequestError(
                "redirect_uri is required", redirect_uri=redirect_uri, state=state
            )
        try:
            target = resources.for_authorization(self.request, self.request.client)
        except OAuth2Error as error:  # RFC 8707 §2: invalid_target goes back to the client
            error.redirect_uri, error.state = redirect_uri, state
            raise
        self.request.granted_resources = [r.identifier for r in target]
        try:
            dpop.check_dpop_jkt(data.get("dpop_jkt"))  # RFC 9449 §10
        except OAuth2Error as error:
            error.redirect_uri, error.state = redirect_uri, state
            raise
        return redirect_uri

    def save_authorization_code(self, code, request):
        data = request.payload.data
        auth_time, amr = current_authentication()
        lifetime = int(current_app.config["AUTHORIZATION_CODE_LIFETIME"])
        now = utcnow()
        values = {
            "code_hash": secret_hash(code),
            "client_id": request.client.client_id,
            "user_id": request.user.id,
            # Stored as sent: "" when omitted, so the token request must then omit it too.
            "redirect_uri": request.payload.redirect_uri or "",
            "scope": request.scope or "",
            "nonce": data.get("nonce"),
            "code_challenge": data.get("code_challenge"),
            "code_challenge_method": data.get("code_challenge_method"),
            "auth_time": auth_time,
            "amr": amr,
            "acr": acr.chosen(amr),
            "sid": current_sid(),
            "resources": getattr(request, "granted_resources", None) or None,
            "dpop_jkt": data.get("dpop_jkt"),  # RFC 9449 §10
            # OIDC Core §5.5: the normal form, for the ID token and UserInfo of its tokens.
            "claims_request": claims_request.dumps(claims_request.parse(data.get("claims"))),
            "created_at": now,
            "expires_at": now + timedelta(seconds=lifetime),
            "used_at": None,
        }
        event = audit.row(
            "code.issued",
            actor=request.user.sub,
            target=request.client.client_id,
            scope=values["scope"],
        )
        if db.driver_path():
            # PostgreSQL: the code, its session's link to the client and the event in one
            # statement (token_sql.ISSUE_CODE); autocommitted when the request's session
            # holds nothing to commit with it, else in its transaction.
            if db.nothing_pending():
                with db.autocommit() as conn:
                    token_sql.issue_code(conn, values, event)
            else:
                with db.in_session() as conn:
                    token_sql.issue_code(conn, values, event)
                db.session().commit()
            audit.logged(event)
            return
        # Statements on the session's connection, not ORM objects flushed at commit.
        _INSERT_CODE.execute(values)
        remember_client(values["sid"], values["client_id"])
        audit.write(event)
        db.session().commit()

    def query_authorization_code(self, code, client):
        if db.driver_path():
            # PostgreSQL: narrow columns and the user's on the driver, autocommitted (no
            # ORM objects, no BEGIN); the session is opened only to store the tokens.
            with db.autocommit() as conn:
                row = token_sql.find_code(conn, secret_hash(code), client.client_id)
        else:
            row = db.session().scalar(
                select(AuthorizationCode).where(
                    AuthorizationCode.code_hash == secret_hash(code),
                    AuthorizationCode.client_id == client.client_id,
                )
            )
        if row is None:
            return None
        if row.used_at is not None:
            tokens.revoke_code(row.id, reason="authorization code replayed")
            audit.record("code.replayed", target=client.client_id, code_id=row.id)
            db.session().commit()
            return None
        if row.is_expired():
            return None
        if row.get_redirect_uri() and not self.request.payload.redirect_uri:
            # RFC 6749 §4.1.3: REQUIRED when the authorization request had one; missing, it
            # is invalid_request (§5.2), not the invalid_grant of a different one. The code
            # stays unused: the client may repeat the request with it.
            raise InvalidRequestError(
                "redirect_uri is required: the authorization request had one."
            )
        return row

    def validate_token_request(self):
        super().validate_token_request()
        dpop.check_code(self.request.authorization_code)  # RFC 9449 §10
        self.resolve_resources(self.request.authorization_code.resources or [])

    def delete_authorization_code(self, authorization_code):
        """Nothing to do: the code was consumed before tokens were issued; `idp purge` deletes."""

    def authenticate_user(self, authorization_code):
        user = authorization_code.user
        return user if user is not None and user.is_active else None

    def create_token_response(self):
        code = self.request.authorization_code
        now = utcnow()
        # The code is consumed before tokens are issued, so a racing request finds nothing.
        # RFC 6749 §4.1.3: only an unexpired code; a sign-out or revocation that expired it
        # after validate_token_request read it wins.
        if db.driver_path():
            with db.autocommit() as conn:  # one round trip: the UPDATE is its transaction
                won = token_sql.consume_code(conn, code.id, now)
        else:
            params = {"code_id": code.id, "now": now}
            won = db.session().execute(token_sql.CONSUME_CODE_STATEMENT, params).rowcount == 1
            db.session().commit()
        if not won:
            session = db.session()
            used = session.scalar(
                select(AuthorizationCode.used_at).where(AuthorizationCode.id == code.id)
            )
            if used is None:
                raise InvalidGrantError("The authorization code has expired.")
            # RFC 6749 §4.1.2: the winner may still be inserting its tokens; the mark set
            # here makes it revoke them itself (tokens.settle).
            tokens.revoke_code(code.id, reason="authorization code redeemed twice")
            audit.record("code.replayed", target=code.client_id, code_id=code.id)
            session.commit()
            raise InvalidGrantError("The authorization code was already used.")
        return super().create_token_response()


class RefreshTokenGrant(ResourceIndicators, grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotate on every use

    def authenticate_refresh_token(self, refresh_token):
        # On PostgreSQL the row comes from the driver; the rotation checks the grant's state
        # again, locked, as it consumes the token (tokens.find_to_refresh, tokens.rotate).
        row = tokens.find_to_refresh(refresh_token)
        if row is None or row.presented_as != "refresh_token":
            return None
        if row.refresh_used_at is not None:
            tokens.revoke_family(row.family_id, reason="rotated refresh token reused")
            db.session().commit()
            return None
        # RFC 6749 §5.2: a grant that ended (user disabled, signed out, consent revoked,
        # client disabled) is invalid_grant.
        live = tokens.is_live(row) and getattr(row, "user_live", True)
        return row if live else None

    def authenticate_user(self, refresh_token):
        user = refresh_token.user
        return user if user is not None and user.is_active else None

    def _validate_token_scope(self, token):
        # RFC 6749 §6: the requested scope must be within what the grant carried.
        requested = set(scope_to_list(self.request.payload.scope) or [])
        if not requested.issubset(set(token.granted_scope.split())):
            raise InvalidScopeError()

    def validate_token_request(self):
        super().validate_token_request()
        dpop.check_refresh(self.request.refresh_token, self.request.client)  # RFC 9449 §5
        # RFC 8707 §2.2: a refresh may ask for fewer of the grant's resources.
        self.resolve_resources(self.request.refresh_token.resources or [])

    def issue_token(self, user, refresh_token):
        scope = self.request.payload.scope or refresh_token.granted_scope
        return self.generate_token(user=user, scope=scope, include_refresh_token=True)

    def create_token_response(self):
        old = self.request.refresh_token
        if isinstance(old, token_sql.RefreshView):
            # PostgreSQL: consumed and replaced in one statement (tokens.rotate), which
            # answers invalid_grant itself when another request consumed it first.
            return super().create_token_response()
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


class ClientCredentialsGrant(ResourceIndicators, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_METHODS

    def validate_token_request(self):
        super().validate_token_request()
        # RFC 8707: the resources named, or the one the scopes belong to (RFC 9068 §3).
        self.resolve_resources(None)
        # No end user here, so user scopes (openid, profile...) cannot be granted.
        requested = scope_to_list(self.request.payload.scope) or []
        allowed = set(scope_to_list(self.request.client.scope) or []) - set(OIDC_SCOPES)
        allowed.update(s for r in self.request.target_resources for s in r.scopes)
        if not set(requested).issubset(allowed):
            raise InvalidScopeError("The client may not request this scope.")
