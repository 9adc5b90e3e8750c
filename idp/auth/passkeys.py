"""Passkeys: WebAuthn Level 3 registration (§7.1) and authentication (§7.2), by py_webauthn.

    registration_options(user) -> JSON     for navigator.credentials.create()
    register(user, credential_json, name)  verify §7.1, store the credential, audit, mail
    authentication_options(user=None)      for navigator.credentials.get(); None: usernameless
    verify_authentication(json, user=None) -> (User, amr)   verify §7.2, counter, audit
    has_passkey(user), credentials(user), rename(row, name, actor), remove(row, actor)

The Relying Party is the issuer: RP ID = the issuer's host, origin = its scheme://host[:port]
(§5.1.4.1 and §13.4.9: an RP ID is a domain, so an issuer on an IP address cannot use
passkeys; development uses http://localhost). Attestation is "none" unless configured.

A ceremony's challenge (32 random bytes) lives in the Flask session with an expiry, bound to
the user it was made for, and is taken out when the response arrives. The session is a
signed cookie that a client could send again, so an answered challenge is also recorded in
``webauthn_challenge_replay`` until it expires: a response is accepted once.

Signature counter (§6.1.1, §7.2 step 22): when the stored or the new count is non-zero, the
new one must be greater; otherwise the authenticator may have been cloned, so the sign-in
is refused and audited as ``passkey.clone_suspected``, after the signature verified (a
forged response must not raise that alarm). Synced passkeys report 0 and are not counted.

amr (RFC 8176 §2), for the MFA framework and the ID token:
- "hwk" when the credential is not backup eligible (BE flag clear, §6.1.3): its key cannot
  leave the authenticator, a hardware-secured key; "swk" when it may be synced to other
  devices (a software-secured key as far as this server can know).
- "user" when the authenticator verified the user (UV flag): a PIN or biometric check on
  the device, which is also a presence test. Which one is not told to the server, so "pin"
  or "fpt" are never claimed. A bare presence touch (UP without UV), which every assertion
  has, adds nothing to possession of the key and is not claimed.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

from flask import current_app, session
from sqlalchemy import exists, func, select
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .. import audit, db, mail
from ..models import User, WebAuthnChallengeReplay, WebAuthnCredential, secret_hash, utcnow

REGISTER = "webauthn.register"
AUTHENTICATE = "webauthn.authenticate"
NAME_MAX = 64


class PasskeyError(Exception):
    """A ceremony that failed; ``str()`` is safe to show the user."""


# --- the Relying Party, from the issuer ---------------------------------------------------


def _issuer():
    from urllib.parse import urlsplit

    return urlsplit(current_app.config["ISSUER"])


def rp_id() -> str:
    """The issuer's host (WebAuthn L3 §5.1.4.1: an effective domain of the origin)."""
    return _issuer().hostname or ""


def origin() -> str:
    """The issuer's origin, scheme://host[:port], default ports left out as browsers do."""
    issuer = _issuer()
    port = issuer.port
    default = {"http": 80, "https": 443}[issuer.scheme]
    return f"{issuer.scheme}://{issuer.hostname}" + (f":{port}" if port and port != default else "")


def rp_name() -> str:
    return current_app.config["WEBAUTHN_RP_NAME"] or rp_id()


def user_handle(user: User) -> bytes:
    """The WebAuthn user.id (§5.4.3): the opaque ``sub``, never a name or an address."""
    return user.sub.encode()


def _uv() -> UserVerificationRequirement:
    return UserVerificationRequirement(current_app.config["WEBAUTHN_USER_VERIFICATION"])


def _timeout() -> int:
    return int(current_app.config["WEBAUTHN_TIMEOUT"])


# --- challenges: in the session, single use ----------------------------------------------


def _remember(key: str, challenge: bytes, user: User | None) -> None:
    session[key] = {
        "challenge": bytes_to_base64url(challenge),
        "expires": time.time() + _timeout(),
        "sub": user.sub if user is not None else None,
        "uv": _uv() == UserVerificationRequirement.REQUIRED,
    }


def _take(key: str) -> dict:
    """The pending ceremony's state, removed from the session; PasskeyError if none is live."""
    state = session.pop(key, None)
    if not isinstance(state, dict) or float(state.get("expires", 0)) < time.time():
        raise PasskeyError("The passkey request expired. Please try again.")
    return state


def _consume(challenge: str, expires: float) -> bool:
    """Record the answered challenge; False if it was answered before (a replay)."""
    s = db.session()
    values = {
        "key_hash": secret_hash("webauthn\0" + challenge),
        "expires_at": datetime.fromtimestamp(expires, UTC),
    }
    insert = db.insert_for(s.get_bind().dialect.name)
    statement = (
        insert(WebAuthnChallengeReplay)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["key_hash"])
        .returning(WebAuthnChallengeReplay.key_hash)
    )
    return s.execute(statement).first() is not None


# --- registration (§7.1) -------------------------------------------------------------------


def credentials(user: User) -> list[WebAuthnCredential]:
    return list(
        db.session().scalars(
            select(WebAuthnCredential)
            .where(WebAuthnCredential.user_id == user.id)
            .order_by(WebAuthnCredential.created_at, WebAuthnCredential.id)
        )
    )


def passkey_present(user_id):
    """``has_passkey`` as a SQL condition on a user id (auth.mfa asks all factors at once)."""
    return exists().where(WebAuthnCredential.user_id == user_id)


def has_passkey(user: User) -> bool:
    count = db.session().scalar(
        select(func.count())
        .select_from(WebAuthnCredential)
        .where(WebAuthnCredential.user_id == user.id)
    )
    return bool(count)


def _descriptor(row: WebAuthnCredential) -> PublicKeyCredentialDescriptor:
    transports = []
    for value in row.transports or []:
        try:
            transports.append(AuthenticatorTransport(value))
        except ValueError:
            pass  # a transport newer than the library: leave it out
    return PublicKeyCredentialDescriptor(
        id=base64url_to_bytes(row.credential_id), transports=transports or None
    )


def registration_options(user: User) -> str:
    """PublicKeyCredentialCreationOptions as JSON; the challenge is kept in the session.

    Resident key "required" (default) makes every passkey discoverable, so it also serves
    usernameless sign-in; user verification "preferred" asks for a PIN or biometric where
    the authenticator has one without locking out those that have none.
    """
    challenge = secrets.token_bytes(32)
    options = generate_registration_options(
        rp_id=rp_id(),
        rp_name=rp_name(),
        user_id=user_handle(user),
        user_name=user.username,
        user_display_name=user.name or user.username,
        challenge=challenge,
        timeout=_timeout() * 1000,
        attestation=AttestationConveyancePreference(current_app.config["WEBAUTHN_ATTESTATION"]),
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement(current_app.config["WEBAUTHN_RESIDENT_KEY"]),
            user_verification=_uv(),
        ),
        # §5.4 excludeCredentials: the same authenticator is not registered twice.
        exclude_credentials=[_descriptor(row) for row in credentials(user)],
    )
    _remember(REGISTER, challenge, user)
    return options_to_json(options)


def clean_name(name: str) -> str:
    name = " ".join((name or "").split())[:NAME_MAX]
    return name or "Passkey"


def register(user: User, credential_json: str, name: str) -> WebAuthnCredential:
    """Verify a navigator.credentials.create() response and store the credential."""
    state = _take(REGISTER)
    if state.get("sub") != user.sub:
        raise PasskeyError("The passkey request expired. Please try again.")
    try:
        credential = parse_registration_credential_json(credential_json)
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(state["challenge"]),
            expected_rp_id=rp_id(),
            expected_origin=origin(),
            require_user_verification=bool(state.get("uv")),
        )
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        audit.record("passkey.registration_failed", actor=user.sub, reason=str(exc)[:200])
        raise PasskeyError("The passkey could not be verified. Please try again.") from None
    if not _consume(state["challenge"], state["expires"]):
        audit.record("passkey.registration_failed", actor=user.sub, reason="challenge replayed")
        raise PasskeyError("The passkey request expired. Please try again.")
    credential_id = bytes_to_base64url(verified.credential_id)
    s = db.session()
    # §7.1 step 26: a credential id registered before (to anyone) is refused.
    if s.scalar(
        select(WebAuthnCredential.id).where(WebAuthnCredential.credential_id == credential_id)
    ):
        audit.record("passkey.registration_failed", actor=user.sub, reason="already registered")
        raise PasskeyError("This passkey is already registered.")
    transports = [t.value for t in (credential.response.transports or [])]
    row = WebAuthnCredential(
        user_id=user.id,
        credential_id=credential_id,
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=transports or None,
        name=clean_name(name),
        aaguid=verified.aaguid,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
        user_verified=verified.user_verified,
    )
    s.add(row)
    s.flush()
    audit.record(
        "passkey.added",
        actor=user.sub,
        target=user.sub,
        passkey_id=row.id,
        name=row.name,
        backup_eligible=row.backup_eligible,
    )
    _notify(user, "passkey_added", "A passkey was added to your account", row.name, by_admin=False)
    return row


# --- authentication (§7.2) -----------------------------------------------------------------


def authentication_options(user: User | None = None) -> str:
    """PublicKeyCredentialRequestOptions as JSON. With a user (second factor): their
    credentials in allowCredentials; without (usernameless, conditional mediation): none,
    the authenticator offers its discoverable credentials for this RP ID."""
    challenge = secrets.token_bytes(32)
    options = generate_authentication_options(
        rp_id=rp_id(),
        challenge=challenge,
        timeout=_timeout() * 1000,
        allow_credentials=[_descriptor(row) for row in credentials(user)] if user else [],
        user_verification=_uv(),
    )
    _remember(AUTHENTICATE, challenge, user)
    return options_to_json(options)


def _refuse(reason: str, actor: str | None = None, **details) -> PasskeyError:
    audit.record("passkey.failure", actor=actor, reason=reason, **details)
    return PasskeyError("That passkey could not be used to sign in.")


def verify_authentication(credential_json: str, user: User | None = None) -> tuple[User, list[str]]:
    """Verify a navigator.credentials.get() response: (the credential's user, amr).

    ``user``: the user already identified (second factor); the credential must be theirs
    and the options must have been made for them. None: usernameless; the user is the
    credential's owner, whose user handle the response must carry (§7.2 step 6).
    """
    state = _take(AUTHENTICATE)
    if state.get("sub") != (user.sub if user is not None else None):
        raise _refuse("options made for another sign-in", actor=user.sub if user else None)
    try:
        credential = parse_authentication_credential_json(credential_json)
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise _refuse(f"malformed response: {str(exc)[:150]}") from None
    s = db.session()
    row = s.scalar(
        select(WebAuthnCredential).where(WebAuthnCredential.credential_id == credential.id)
    )
    if row is None:
        raise _refuse("unknown credential", actor=user.sub if user else None)
    owner = s.get(User, row.user_id)
    if user is not None and row.user_id != user.id:
        # §7.2 step 5/6: the credential must be one of the identified user's.
        raise _refuse("credential of another user", actor=user.sub, owner=owner.sub)
    handle = credential.response.user_handle
    if (user is None and handle is None) or (handle is not None and handle != user_handle(owner)):
        raise _refuse("user handle does not match the credential", actor=owner.sub)
    if not owner.is_active:
        raise _refuse("disabled", actor=owner.sub)
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=base64url_to_bytes(state["challenge"]),
            expected_rp_id=rp_id(),
            expected_origin=origin(),
            credential_public_key=row.public_key,
            # The counter is checked below, after the signature, to tell a clone apart.
            credential_current_sign_count=0,
            require_user_verification=bool(state.get("uv")),
        )
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise _refuse(str(exc)[:200], actor=owner.sub, passkey_id=row.id) from None
    new, stored = verified.new_sign_count, row.sign_count
    if (new or stored) and new <= stored:
        # §6.1.1: the authenticator may be cloned. Refused; the stored count stays.
        audit.record(
            "passkey.clone_suspected",
            actor=owner.sub,
            passkey_id=row.id,
            stored_count=stored,
            presented_count=new,
        )
        raise PasskeyError("That passkey could not be used to sign in.")
    if not _consume(state["challenge"], state["expires"]):
        raise _refuse("challenge replayed", actor=owner.sub, passkey_id=row.id)
    row.sign_count = new
    row.backed_up = verified.credential_backed_up
    row.last_used_at = utcnow()
    amr = [amr_of(row, verified.credential_device_type)]
    if verified.user_verified:
        amr.append("user")
    audit.record("passkey.used", actor=owner.sub, passkey_id=row.id, amr=amr)
    return owner, amr


def amr_of(row: WebAuthnCredential, device_type: CredentialDeviceType | None = None) -> str:
    """ "hwk" for a device-bound credential, "swk" for one that may be synced (BE flag)."""
    synced = row.backup_eligible or device_type == CredentialDeviceType.MULTI_DEVICE
    return "swk" if synced else "hwk"


# --- management ----------------------------------------------------------------------------


def find(user_id: int, passkey_id: int) -> WebAuthnCredential | None:
    row = db.session().get(WebAuthnCredential, passkey_id)
    return row if row is not None and row.user_id == user_id else None


def rename(row: WebAuthnCredential, name: str, actor: str) -> None:
    old, row.name = row.name, clean_name(name)
    owner = db.session().get(User, row.user_id)
    audit.record(
        "passkey.renamed", actor=actor, target=owner.sub, passkey_id=row.id, name=row.name, old=old
    )


def remove(row: WebAuthnCredential, actor: str) -> None:
    """Delete the credential; the owner is told by mail (NIST SP 800-63B §4.6)."""
    s = db.session()
    owner = s.get(User, row.user_id)
    audit.record("passkey.removed", actor=actor, target=owner.sub, passkey_id=row.id, name=row.name)
    by_admin = actor != owner.sub
    name = row.name
    s.delete(row)
    s.flush()
    _notify(owner, "passkey_removed", "A passkey was removed from your account", name, by_admin)


def _notify(user: User, template: str, subject: str, name: str, by_admin: bool) -> None:
    if user.email:
        mail.send(
            user.email,
            subject,
            template,
            name=user.name or user.username,
            passkey=name,
            by_admin=by_admin,
            when=utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        )
