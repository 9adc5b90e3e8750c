"""The signed-in user's own page: who am I, where I am signed in (end one session or all of
them), which applications I authorized (revoke one)."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import delete, select

from .. import audit, db
from ..auth import session as user_session
from ..auth.forms import ConfirmForm
from ..models import Consent, UserSession
from ..oauth import end_session, logout, tokens
from . import data, email, factors, invitation, passkeys, password, profile, register, sign_in
from .devices import describe

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/")
@login_required
def index():
    consents = (
        db.session()
        .scalars(
            select(Consent).where(Consent.user_id == current_user.id).order_by(Consent.granted_at)
        )
        .all()
    )
    return render_template(
        "account/index.html",
        user=current_user,
        consents=consents,
        sessions=user_session.live_sessions(current_user.id),
        current_sid=user_session.current_sid(),
        describe=describe,
        form=ConfirmForm(),
    )


@bp.post("/sessions/<int:session_id>/end")
@login_required
def end_one_session(session_id: int):
    """Sign out one session: this browser's, or one elsewhere (which its next request sees)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    s = db.session()
    row = s.get(UserSession, session_id)
    if row is None or row.user_id != current_user.id or row.ended_at is not None:
        abort(404)
    if row.sid == user_session.current_sid():
        return sign_out_here("account.session_ended", sessions=1)
    user_session.terminate([row], "signed out from account page")
    audit.record("account.session_ended", actor=current_user.sub, session_id=row.id)
    s.commit()
    flash(f"Signed out of {describe(row.user_agent)}.")
    return redirect(url_for("account.index"))


@bp.route("/sessions/end-all", methods=["GET", "POST"])
@login_required
def end_all_sessions():
    """Sign out everywhere: every session of the user, this one included. GET asks first."""
    if request.method == "GET":
        return render_template(
            "account/sign_out_everywhere.html",
            sessions=user_session.live_sessions(current_user.id),
            form=ConfirmForm(formdata=None),
        )
    if not ConfirmForm().validate_on_submit():
        abort(400)
    ended = user_session.end_all(current_user.id, "signed out everywhere")
    return sign_out_here("account.signed_out_everywhere", sessions=len(ended))


def sign_out_here(event: str, **details):
    """End this browser's session and show the signed-out page (front-channel iframes)."""
    audit.record(event, actor=current_user.sub, **details)
    row = user_session.end("signed out from account page")
    db.session().commit()
    return end_session.signed_out_page(logout.frontchannel_uris([row] if row else []))


@bp.post("/apps/<client_id>/revoke")
@login_required
def revoke_app(client_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    session = db.session()
    removed = session.execute(
        delete(Consent).where(Consent.user_id == current_user.id, Consent.client_id == client_id)
    ).rowcount
    if not removed:
        abort(404)
    # The consent is gone first: a token issued meanwhile sees it (tokens.settle).
    count = tokens.revoke_grants(
        "access revoked by user", user_id=current_user.id, client_id=client_id
    )
    audit.record("consent.revoked", actor=current_user.sub, target=client_id, tokens=count)
    session.commit()
    flash("Access removed. The application's tokens no longer work.")
    return redirect(url_for("account.index"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    sign_in.init_app(app)  # /login and /logout (blueprint "auth")
    password.init_app(app)  # change, forgot, reset (blueprint "password")
    email.init_app(app)  # /account/email, /account/verify (blueprint "account_email")
    invitation.init_app(app)  # /account/invitation (blueprint "account_invitation")
    register.init_app(app)  # /account/register (self-registration, REGISTRATION_USERS)
    factors.init_app(app)  # second factors: /login/totp, /account/totp ... (auth.mfa)
    passkeys.init_app(app)  # passkey pages, passwordless sign-in (blueprint "passkeys")
    profile.init_app(app)  # /account/profile, /account/notices (blueprint "profile")
    data.init_app(app)  # /account/data export, /account/delete requests (blueprint "data")
