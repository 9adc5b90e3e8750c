"""The user's own data: download it (JSON), and ask for the account to be deleted.

Export: one JSON file (an attachment) with the profile, sessions, known devices, consents,
deletion requests and the audit events about the user. Never a secret: no password hash, no
token or cookie hash, no session id; audit events the user caused about someone else keep
only their name, time and IP. Audited as ``account.data_exported``.

Deletion (GDPR art. 17 style, with an administrator in the loop)::

    user: request (password again) --> pending --admin: approve--> account deleted
                                          |     \\--admin: reject--> rejected
                                          \\--user: cancel--> cancelled

Each step is audited (``account.deletion_requested``, ``_cancelled``, ``_approved``,
``_rejected``, then ``admin.user.deleted``) and the user is mailed on request and decision.
The approval uses the admin's delete path (``admin.users.remove_user``).
"""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from wtforms import PasswordField, SubmitField
from wtforms.validators import DataRequired

from .. import audit, db, mail
from ..auth import login, passwords
from ..auth.devices import describe
from ..auth.forms import ConfirmForm
from ..auth.links import external_url
from ..models import (
    AuditEvent,
    Client,
    Consent,
    DeletionRequest,
    KnownDevice,
    User,
    UserSession,
    utcnow,
)
from ..models.own_data import CANCELLED, PENDING

bp = Blueprint("data", __name__, url_prefix="/account")

# Every column of users that the export shows; password_hash and lockout state are not.
PROFILE = (
    "sub", "username", "email", "email_verified", "name", "given_name", "family_name",
    "middle_name", "nickname", "profile", "picture", "website", "gender", "birthdate",
    "zoneinfo", "locale", "phone_number", "phone_number_verified", "address", "is_admin",
    "disabled", "new_device_notices", "created_at", "updated_at", "last_login_at",
)  # fmt: skip
# Audit detail keys that could carry a secret are left out, whatever their value.
SECRET_WORDS = ("hash", "secret", "password", "token", "code", "sid")


class DeletionForm(FlaskForm):
    password = PasswordField(
        "Your current password",
        validators=[DataRequired(message="Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
    submit = SubmitField("Request deletion")


def plain(value):
    return value.isoformat() if hasattr(value, "isoformat") else value


def scrubbed(details: dict | None) -> dict:
    """Audit details without any key that names a secret (counts such as tokens_revoked
    stay: a number is not a secret)."""
    return {
        key: value
        for key, value in (details or {}).items()
        if isinstance(value, int | float | bool) or not any(w in key for w in SECRET_WORDS)
    }


def audit_events(user: User) -> list[dict]:
    """Events with the user as target, or as actor about themselves or an application, in
    full; as actor about anyone else (an admin's action on another user): the event name,
    time and IP only, so another user's data never leaves in this file."""
    s = db.session()
    mine = {user.sub, user.username} | ({user.email} if user.email else set())
    rows = list(
        s.scalars(
            select(AuditEvent)
            .where(or_(AuditEvent.target.in_(mine), AuditEvent.actor.in_(mine)))
            .order_by(AuditEvent.at, AuditEvent.id)
        )
    )
    targets = {row.target for row in rows if row.target and row.target not in mine}
    clients = set(s.scalars(select(Client.client_id).where(Client.client_id.in_(targets))))
    events = []
    for row in rows:
        event = {"event": row.event, "at": plain(row.at), "ip": row.ip}
        if row.target in mine:
            event.update(role="target", details=scrubbed(row.details))
        elif row.target is None or row.target in clients:
            event.update(role="actor", target=row.target, details=scrubbed(row.details))
        else:
            event["role"] = "actor"
        events.append(event)
    return events


def export(user: User) -> dict:
    """Everything this server keeps about the user, secrets left out."""
    s = db.session()
    profile = {name: plain(getattr(user, name)) for name in PROFILE}
    profile["groups"] = sorted(group.name for group in user.groups)
    sessions = s.scalars(
        select(UserSession).where(UserSession.user_id == user.id).order_by(UserSession.id)
    )
    devices = s.scalars(
        select(KnownDevice).where(KnownDevice.user_id == user.id).order_by(KnownDevice.id)
    )
    consents = s.scalars(
        select(Consent).where(Consent.user_id == user.id).order_by(Consent.granted_at)
    )
    requests = s.scalars(
        select(DeletionRequest)
        .where(DeletionRequest.user_id == user.id)
        .order_by(DeletionRequest.id)
    )
    return {
        "issuer": current_app.config["ISSUER"],
        "exported_at": plain(utcnow()),
        "profile": profile,
        "sessions": [
            {
                "device": describe(row.user_agent),
                "user_agent": row.user_agent,
                "ip": row.ip,
                "signed_in_at": plain(row.created_at),
                "last_seen_at": plain(row.last_seen_at),
                "methods": row.amr,
                "ended_at": plain(row.ended_at),
                "end_reason": row.end_reason,
            }
            for row in sessions
        ],
        "devices": [
            {
                "device": row.description,
                "first_seen_at": plain(row.first_seen_at),
                "last_seen_at": plain(row.last_seen_at),
            }
            for row in devices
        ],
        "consents": [
            {
                "client_id": row.client_id,
                "client_name": row.client.client_name,
                "scopes": row.scope.split(),
                "claims": sorted(row.claim_names),  # consented one by one (OIDC Core §5.5)
                "granted_at": plain(row.granted_at),
                "updated_at": plain(row.updated_at),
            }
            for row in consents
        ],
        "deletion_requests": [
            {
                "status": row.status,
                "requested_at": plain(row.requested_at),
                "decided_at": plain(row.decided_at),
            }
            for row in requests
        ],
        "audit_events": audit_events(user),
    }


@bp.post("/data")
@login_required
def download():
    """The export as a file. A POST with the CSRF token: another site cannot make a signed-in
    browser produce (and audit) it."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    body = json.dumps(export(user), indent=2, ensure_ascii=False, sort_keys=False)
    audit.record("account.data_exported", actor=user.sub)
    db.session().commit()
    filename = f"account-{user.username}-{utcnow():%Y%m%d}.json"
    return Response(
        body + "\n",
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{ascii_name(filename)}"'},
    )


def ascii_name(name: str) -> str:
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.@+") else "_" for c in name)


def pending_deletion(user: User) -> DeletionRequest | None:
    if not user.is_authenticated:
        return None
    return db.session().scalar(
        select(DeletionRequest).where(
            DeletionRequest.user_id == user.id, DeletionRequest.status == PENDING
        )
    )


@bp.route("/delete", methods=["GET", "POST"])
@login_required
def request_deletion():
    """GET: what deletion means, and the password to confirm. POST: the request."""
    user = current_user._get_current_object()
    pending = pending_deletion(user)
    form = DeletionForm()
    if pending is None and form.validate_on_submit():
        # Wrong passwords count toward the sign-in lockout (auth.login), so this form
        # cannot be used to guess the password of a session left open.
        right = passwords.verify(user.password_hash, form.password.data)
        if not right or login.is_locked(user):
            form.password.errors.append("This is not your current password.")
            if not right:
                login.record_failure(user)
            reason = "wrong password" if not right else "locked"
            audit.record("account.deletion_refused", actor=user.sub, reason=reason)
            db.session().commit()
        else:
            s = db.session()
            s.add(DeletionRequest(user_id=user.id))
            audit.record("account.deletion_requested", actor=user.sub)
            if user.email:
                mail.send(
                    user.email,
                    "Your request to delete your account",
                    "deletion_requested",
                    name=user.name or user.username,
                    username=user.username,
                    account_url=external_url("account.index"),
                )
            try:
                s.commit()
            except IntegrityError:  # the same request from another tab, a moment ago
                s.rollback()
            flash("Your request was sent. An administrator will review it; you will get an email.")
            return redirect(url_for("account.index"))
    status = 400 if form.errors else 200
    return render_template(
        "account/delete.html", form=form, pending=pending, cancel_form=ConfirmForm()
    ), status


@bp.post("/delete/cancel")
@login_required
def cancel_deletion():
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = current_user._get_current_object()
    pending = pending_deletion(user)
    if pending is None:
        flash("There is no deletion request to cancel.")
        return redirect(url_for("account.index"))
    pending.status, pending.decided_at = CANCELLED, utcnow()
    audit.record("account.deletion_cancelled", actor=user.sub)
    db.session().commit()
    flash("Your deletion request is cancelled. Your account stays.")
    return redirect(url_for("account.index"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.add_template_global(pending_deletion, "pending_deletion")
