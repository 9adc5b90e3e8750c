"""Device authorization grant (RFC 8628), extending Authlib's ``authlib.oauth2.rfc8628``.

    device ──POST /device_authorization──► DeviceAuthorizationEndpoint (§3.1, §3.2)
      │        device_code (stored hashed), user_code XXXX-XXXX, verification_uri(_complete)
      │                                     user ──/device──► sign in, type the code (§3.3),
      │                                       see the client and its scopes, approve or deny
      └─POST /token grant_type=...device_code─► DeviceCodeGrant (§3.4, §3.5)
               pending → authorization_pending, or slow_down (+5 s) when polled too fast
               denied → access_denied; expired → expired_token
               approved → the code is consumed by a conditional UPDATE (one winner), tokens
               are issued, and an ID token when openid was granted

User codes are 8 characters from a 20-consonant alphabet (§6.1: no vowels, so no words;
no digits to confuse with letters): 20^8 ≈ 2^34.6 values, against which entry is rate
limited per address (limits.py, §5.1). Typed codes are normalised: case, dashes and spaces.
The verification page is the only HTML here: it has its own blueprint so that CSRF
protection applies to it (the protocol blueprint is exempt).
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    AuthorizationPendingError,
    ExpiredTokenError,
    SlowDownError,
)
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint as _DeviceAuthorizationEndpoint
from authlib.oauth2.rfc8628 import DeviceCodeGrant as _DeviceCodeGrant
from authlib.oidc.core.grants import OpenIDToken
from flask import Blueprint, Flask, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select, update
from wtforms import StringField, SubmitField

from .. import audit, db
from ..auth.session import current_authentication
from ..models import DeviceCode, User, secret_hash, utcnow
from ..models.device import APPROVED, DENIED, PENDING
from .claims import SCOPE_DESCRIPTIONS
from .client_auth import ALL_METHODS

USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
VERIFICATION_PATH = "/device"
SLOW_DOWN_STEP = 5  # seconds added to the interval on each slow_down (§3.5)


# --- user codes ---------------------------------------------------------------------------


def normalize_user_code(typed: str | None) -> str | None:
    """The 8 code characters of what the user typed, or None if it cannot be a user code."""
    value = "".join((typed or "").split()).replace("-", "").upper()
    if len(value) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in value):
        return None
    return value


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def _live(now):
    return (DeviceCode.expires_at > now, DeviceCode.used_at.is_(None))


def find_pending(code: str) -> DeviceCode | None:
    """The live, undecided device authorization a normalised user code names."""
    return db.session().scalar(
        select(DeviceCode).where(
            DeviceCode.user_code_hash == secret_hash(code),
            DeviceCode.status == PENDING,
            *_live(utcnow()),
        )
    )


# --- the device authorization endpoint (§3.1, §3.2) ---------------------------------------


class DeviceAuthorizationEndpoint(_DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = ALL_METHODS

    @property
    def EXPIRES_IN(self) -> int:  # noqa: N802 - Authlib's attribute name
        return int(current_app.config["DEVICE_CODE_LIFETIME"])

    @property
    def INTERVAL(self) -> int:  # noqa: N802 - Authlib's attribute name
        return int(current_app.config["DEVICE_POLL_INTERVAL"])

    def authenticate_client(self, request):
        client = super().authenticate_client(request)
        # §3.1 + RFC 6749 §5.2: only clients registered for this grant may start it.
        if not client.check_grant_type(DEVICE_CODE_GRANT_TYPE):
            raise UnauthorizedClientError("The client may not use the device authorization grant.")
        return client

    def generate_device_code(self) -> str:
        return secrets.token_urlsafe(32)  # 256 bits (§5.2 asks for enough to resist guessing)

    def generate_user_code(self) -> str:
        now = utcnow()
        for _ in range(10):
            code = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
            clash = db.session().scalar(
                select(DeviceCode.id).where(
                    DeviceCode.user_code_hash == secret_hash(code), *_live(now)
                )
            )
            if clash is None:  # a live code must name exactly one device
                return display_user_code(code)
        raise RuntimeError("no free user code")  # pragma: no cover - 20^8 values

    def get_verification_uri(self) -> str:
        return current_app.config["ISSUER"] + VERIFICATION_PATH

    def save_device_credential(self, client_id, scope, data):
        client = self.server.query_client(client_id)
        now = utcnow()
        row = DeviceCode(
            device_code_hash=secret_hash(data["device_code"]),
            user_code_hash=secret_hash(normalize_user_code(data["user_code"])),
            client_id=client_id,
            # Like the code grant: the requested scopes this client may have.
            scope=client.get_allowed_scope(scope),
            status=PENDING,
            interval=int(data["interval"]),
            created_at=now,
            expires_at=now + timedelta(seconds=int(data["expires_in"])),
        )
        session = db.session()
        session.add(row)
        audit.record("device.code_issued", target=client_id, scope=row.scope)
        session.commit()


# --- the token endpoint side (§3.4, §3.5) -------------------------------------------------


class DeviceCodeGrant(_DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    def validate_token_request(self):
        device_code = self.request.payload.data.get("device_code")
        if not device_code:
            raise InvalidRequestError("device_code is required.")
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("The client may not use the device authorization grant.")
        credential = self.query_device_credential(device_code)
        # RFC 6749 §5.2: a code unknown, or issued to another client, is invalid_grant.
        if credential is None or credential.client_id != client.client_id:
            raise InvalidGrantError("The device_code is not valid.")
        self.request.client = client
        self.request.credential = credential
        self.request.user = self.validate_device_credential(credential)
        # How the approving user had signed in, onto the token row (and a JWT access token's
        # auth_time/amr, RFC 9068 §2.2.1): refreshed ID tokens repeat it (OIDC Core §12.2).
        self.request.token_context = {"auth_time": credential.auth_time, "amr": credential.amr}

    def query_device_credential(self, device_code) -> DeviceCode | None:
        return db.session().scalar(
            select(DeviceCode).where(DeviceCode.device_code_hash == secret_hash(device_code))
        )

    def validate_device_credential(self, credential: DeviceCode) -> User:
        if credential.used_at is not None:
            raise InvalidGrantError("The device_code was already used.")
        if credential.is_expired():
            raise ExpiredTokenError("The device_code has expired.")
        if credential.status == DENIED:
            raise AccessDeniedError("The user denied the request.")
        if credential.status == APPROVED:
            user = credential.user
            if user is None or not user.is_active:
                raise InvalidGrantError("The user who approved is no longer active.")
            return user
        if self.should_slow_down(credential):
            raise SlowDownError(f"Poll at most every {credential.interval} seconds.")
        raise AuthorizationPendingError("The user has not yet approved the request.")

    def should_slow_down(self, credential: DeviceCode) -> bool:
        """§3.5: a poll sooner than the interval answers slow_down, and the interval, for
        this and every later poll, grows by 5 seconds."""
        now = utcnow()
        last = credential.last_polled_at
        too_fast = last is not None and now - last < timedelta(seconds=credential.interval)
        credential.last_polled_at = now
        if too_fast:
            credential.interval += SLOW_DOWN_STEP
        db.session().commit()
        return too_fast

    def create_token_response(self):
        credential = self.request.credential
        session = db.session()
        now = utcnow()
        # The device code is consumed before tokens are issued, so a racing poll finds nothing.
        won = session.execute(
            update(DeviceCode)
            .where(
                DeviceCode.id == credential.id,
                DeviceCode.used_at.is_(None),
                DeviceCode.status == APPROVED,
                # Revoking the user's access expires approved codes not yet polled.
                DeviceCode.expires_at > now,
            )
            .values(used_at=now)
        ).rowcount
        session.commit()
        if won != 1:
            audit.record("device.code_replayed", target=credential.client_id)
            session.commit()
            raise InvalidGrantError("The device_code was already used.")
        return super().create_token_response()


class OpenIDDevice(OpenIDToken):
    """An ID token with device-flow tokens when openid was granted (OIDC Core §2, §3.1.3.6)."""

    def encode_id_token(self, token, request) -> str:
        from .oidc import issue_id_token

        credential = request.credential
        return issue_id_token(
            request.client,
            request.user,
            token["scope"],
            auth_time=credential.auth_time,
            amr=credential.amr,
            access_token=token.get("access_token"),
        )


# --- the verification page (§3.3) ----------------------------------------------------------


class UserCodeForm(FlaskForm):
    user_code = StringField(
        "Code",
        render_kw={
            "autocomplete": "off",
            "autocapitalize": "characters",
            "spellcheck": "false",
            "placeholder": "XXXX-XXXX",
            "autofocus": True,
        },
    )
    allow = SubmitField("Allow")
    deny = SubmitField("Deny")


def decide(credential: DeviceCode, user: User, approved: bool) -> bool:
    """Record the user's answer once; False if the code was decided, used or expired meanwhile."""
    auth_time, amr = current_authentication()
    now = utcnow()
    session = db.session()
    won = session.execute(
        update(DeviceCode)
        .where(DeviceCode.id == credential.id, DeviceCode.status == PENDING, *_live(now))
        .values(
            status=APPROVED if approved else DENIED,
            user_id=user.id,
            decided_at=now,
            auth_time=auth_time,
            amr=amr,
        )
    ).rowcount
    if won == 1:
        if approved:
            from .authorize import remember_consent  # listed with the user's applications

            remember_consent(user, credential.client, credential.scope.split())
        audit.record(
            "device.approved" if approved else "device.denied",
            actor=user.sub,
            target=credential.client_id,
            scope=credential.scope,
        )
    session.commit()
    return won == 1


bp = Blueprint("device", __name__)

INVALID = "That code is not valid or has expired. Check the code on your device and try again."


@bp.route(VERIFICATION_PATH, methods=["GET", "POST"])
def verify():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    form = UserCodeForm()
    if request.method == "GET":
        # verification_uri_complete (§3.3.1) only fills the form in: the user still confirms,
        # and a lookup happens only on the (rate-limited) POST.
        form.user_code.data = request.args.get("user_code", "")[:32]
        return render_template("oauth/device.html", form=form)
    if not form.validate_on_submit():
        error = "Your session expired. Please try again."
        return render_template("oauth/device.html", form=form, error=error), 400
    code = normalize_user_code(form.user_code.data)
    credential = find_pending(code) if code else None
    if credential is None:
        return render_template("oauth/device.html", form=form, error=INVALID), 400
    if not (form.allow.data or form.deny.data):
        return confirm_page(form, credential, code)
    approved = bool(form.allow.data)
    if not decide(credential, current_user, approved):
        return render_template("oauth/device.html", form=form, error=INVALID), 400
    return render_template("oauth/device_done.html", client=credential.client, approved=approved)


def confirm_page(form: UserCodeForm, credential: DeviceCode, code: str):
    scopes = [{"scope": s, "text": SCOPE_DESCRIPTIONS.get(s, s)} for s in credential.scope.split()]
    form.user_code.data = display_user_code(code)
    return render_template(
        "oauth/device_confirm.html",
        form=form,
        client=credential.client,
        scopes=scopes,
        user_code=display_user_code(code),
    )


def register(server) -> None:
    server.register_endpoint(DeviceAuthorizationEndpoint)
    server.register_grant(DeviceCodeGrant, [OpenIDDevice()])


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
