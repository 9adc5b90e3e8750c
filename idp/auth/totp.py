"""Time-based one-time passwords (RFC 6238, on HOTP RFC 4226) as a second factor.

* The secret has 160 bits (RFC 4226 §4 R6 recommends it) and is stored encrypted: AES-GCM
  under a key derived from SECRET_KEY with HKDF (RFC 5869), bound to the user's ``sub``.
* A code is accepted within ±1 time step of 30 s (RFC 6238 §5.2: allow for clock drift).
* A code is accepted once: the last accepted time step is kept per user and a code of that
  step or an earlier one is refused (RFC 6238 §5.2 "MUST NOT accept the second attempt of
  the same OTP"; pyotp's ``verify`` does not). The step is advanced by a conditional UPDATE,
  so two racing requests with the same code cannot both win.
* Enrolment completes only once the user has typed one valid code (``confirm``).
"""

from __future__ import annotations

import base64
import hmac
import os
import time
from urllib.parse import urlsplit

import pyotp
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from markupsafe import Markup
from sqlalchemy import delete, exists, or_, select, update

from .. import db
from ..models import TOTPCredential, User, utcnow

STEP = 30
DIGITS = 6
WINDOW = 1  # time steps accepted before and after the current one
SECRET_CHARS = 32  # base32: 160 bits


def _aead(secret_key: str | bytes) -> AESGCM:
    material = secret_key.encode() if isinstance(secret_key, str) else secret_key
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idp totp v1").derive(
        material
    )
    return AESGCM(key)


def encrypt(user: User, secret: str) -> str:
    nonce = os.urandom(12)
    sealed = _aead(current_app.config["SECRET_KEY"]).encrypt(
        nonce, secret.encode(), user.sub.encode()
    )
    return "v1." + base64.urlsafe_b64encode(nonce + sealed).decode()


def decrypt(user: User, stored: str) -> str | None:
    """The plaintext secret; None if SECRET_KEY changed beyond SECRET_KEY_FALLBACKS."""
    if not stored.startswith("v1."):
        return None
    raw = base64.urlsafe_b64decode(stored[3:])
    fallbacks = current_app.config.get("SECRET_KEY_FALLBACKS") or []
    for secret_key in [current_app.config["SECRET_KEY"], *fallbacks]:
        try:
            return _aead(secret_key).decrypt(raw[:12], raw[12:], user.sub.encode()).decode()
        except InvalidTag:
            continue
    return None


def credential(user: User) -> TOTPCredential | None:
    return db.session().scalar(select(TOTPCredential).where(TOTPCredential.user_id == user.id))


def present(user_id):
    """``has`` as a SQL condition on a user id (auth.mfa asks all factors at once)."""
    return exists().where(
        TOTPCredential.user_id == user_id, TOTPCredential.confirmed_at.is_not(None)
    )


def has(user: User) -> bool:
    """The user has a confirmed authenticator app."""
    row = credential(user)
    return row is not None and row.confirmed_at is not None


def enrolment_secret(user: User) -> str:
    """The secret of the user's unconfirmed enrolment, created if there is none (a reload
    of the page shows the same QR code). Refused when an app is already confirmed."""
    row = credential(user)
    if row is not None and row.confirmed_at is not None:
        raise ValueError("an authenticator app is already set up")
    if row is not None:
        secret = decrypt(user, row.secret_encrypted)
        if secret:
            return secret
        db.session().delete(row)
        db.session().flush()
    secret = pyotp.random_base32(SECRET_CHARS)
    db.session().add(TOTPCredential(user_id=user.id, secret_encrypted=encrypt(user, secret)))
    db.session().flush()
    return secret


def issuer_name() -> str:
    return current_app.config["TOTP_ISSUER_NAME"] or (
        urlsplit(current_app.config["ISSUER"]).hostname or "idp"
    )


def provisioning_uri(user: User, secret: str) -> str:
    """The otpauth:// URI authenticator apps read from the QR code."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(
        name=user.email or user.username, issuer_name=issuer_name()
    )


def qr_svg(uri: str) -> Markup:
    """The QR code as inline SVG (no image request, nothing for the CSP to allow).

    segno is imported by the first enrolment page a worker shows, not at start: with the
    XML code it loads, it is ~0.7 MB of a worker (docs/benchmarks.md, twenty-first round),
    and a person enrols once while every sign-in page is served by every worker."""
    import segno

    svg = segno.make(uri, error="m").svg_inline(scale=4, title="QR code for your authenticator app")
    return Markup(svg.replace("<svg ", '<svg role="img" aria-label="QR code" ', 1))


def normalise(code: str) -> str:
    return "".join(ch for ch in (code or "") if not ch.isspace() and ch != "-")


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step within the window whose code this is (compared in constant time)."""
    code = normalise(code)
    if len(code) != DIGITS or not code.isdigit():
        return None
    hotp = pyotp.HOTP(secret, digits=DIGITS)
    current = int((time.time() if now is None else now) // STEP)
    found = None
    for step in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(hotp.at(step), code):
            found = step
    return found


def verify(user: User, code: str, *, enrolling: bool = False) -> bool:
    """A right, unused code of the user's (confirmed, or for ``enrolling`` unconfirmed) app.

    Accepting advances the user's last step: that code, and every earlier one, is spent.
    """
    row = credential(user)
    if row is None or (row.confirmed_at is None) != enrolling:
        return False
    secret = decrypt(user, row.secret_encrypted)
    step = matching_step(secret, code) if secret else None
    if step is None:
        return False
    won = (
        db.session()
        .execute(
            update(TOTPCredential)
            .where(
                TOTPCredential.id == row.id,
                or_(TOTPCredential.last_used_step.is_(None), TOTPCredential.last_used_step < step),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        )
        .rowcount
    )
    return won == 1


def confirm(user: User, code: str) -> bool:
    """Finish enrolment with one valid code of the new app."""
    if not verify(user, code, enrolling=True):
        return False
    db.session().execute(
        update(TOTPCredential)
        .where(TOTPCredential.user_id == user.id)
        .values(confirmed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return True


def remove(user: User) -> bool:
    """Forget the user's app (confirmed or not); True if one was confirmed."""
    confirmed = has(user)
    db.session().execute(delete(TOTPCredential).where(TOTPCredential.user_id == user.id))
    return confirmed
