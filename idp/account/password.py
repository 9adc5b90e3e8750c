"""Passwords, by their owner: change one (signed in, with the current password) and reset a
lost one through a mailed link. NIST SP 800-63B rev. 4 §3.1.1.2 (policy), §4.2.1 (recovery).

    GET  /account/password        change form (current + new password)
    POST /account/password        ok: new hash, every OTHER session ended (their tokens revoked
                                  by session_ended; offline_access refresh tokens survive),
                                  "password changed" mail, audit; this browser stays signed in

    GET  /password/forgot         "Username or email" (linked from the sign-in page)
    POST /password/forgot  ------> always the same page, status and work (no enumeration):
                                  enabled account with an address: older reset links revoked,
                                  a new one (hash stored, PASSWORD_RESET_TTL) mailed
    GET  /password/reset?token=T  the secret moves into the session cookie and the browser is
                                  sent to /password/reset: it leaves the address bar, the
                                  history and any Referer (the pages also send no-referrer)
    GET  /password/reset          the form while the link is live, else "expired or used"
    POST /password/reset          link consumed (atomic, single use), new hash, EVERY session
                                  ended and the user's tokens revoked (offline_access kept, as
                                  for a change), lockout cleared, mail, audit; then the sign-in
                                  page. A reset never signs in: a second factor, once there is
                                  one, is still asked at the next sign-in.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required

from .. import audit, db, mail
from ..auth import links, passwords
from ..auth import session as user_session
from ..auth.forms import (
    ChangePasswordForm,
    ForgotPasswordForm,
    ResetPasswordForm,
    password_feedback,
)
from ..auth.login import find_user, is_locked, record_failure
from ..auth.users import notify_password_changed
from ..models import User
from ..oauth import tokens

bp = Blueprint("password", __name__)

RESET_TOKEN = "password_reset_token"  # the session key holding a reset link's secret
WRONG_CURRENT = "This is not your current password."
PLACEHOLDER_ADDRESS = "nobody@example.com"  # the reset mail rendered for no account


def context_of(user: User) -> dict:
    """The user's own words the new password is checked against."""
    return {"username": user.username, "email": user.email, "name": user.name}


def set_password(user: User, new_password: str) -> None:
    """The new password's hash (NFKC, argon2id); a lockout no longer applies."""
    user.password_hash = passwords.hash_password(new_password)
    user.failed_logins = 0
    user.locked_until = None


# --- change ---------------------------------------------------------------------------------


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change():
    user = db.session().get(User, current_user.id)
    form = ChangePasswordForm()
    form.password_context = context_of(user)
    if form.validate_on_submit():
        # The current password is checked like a sign-in: a wrong one counts towards the
        # account's lockout, so this form is no way around the sign-in's limits.
        matched = passwords.match(user.password_hash, form.current_password.data)
        if matched is None or is_locked(user):
            if matched is None:
                record_failure(user)
            audit.record("password.change_failed", actor=user.sub, reason="wrong current")
            db.session().commit()
            form.current_password.errors.append(WRONG_CURRENT)
        else:
            set_password(user, form.password.data)
            ended = user_session.end_all(
                user.id, "password changed", except_sid=user_session.current_sid()
            )
            audit.record("password.changed", actor=user.sub, sessions_ended=len(ended))
            notify_password_changed(user, "changed on your account page")
            db.session().commit()
            flash(
                "Your password was changed."
                + (" You were signed out everywhere else." if ended else "")
            )
            return redirect(url_for("account.index"))
    status = 400 if form.errors else 200
    page = render_template(
        "account/password.html", form=form, feedback=password_feedback(form), user=user
    )
    return page, status


# --- forgot ---------------------------------------------------------------------------------


def request_reset(identifier: str) -> None:
    """Mail a reset link if the identifier names an enabled account with an address.

    Every request does the same work, so that neither the answer nor its time tells whether
    the account exists, is disabled or has no address: the same user lookup, the same
    revocation UPDATE, then, inside a SAVEPOINT, the link row and the queued message (to a
    placeholder address when nobody is to get one), and the same audit row. For an account
    that gets no link the SAVEPOINT is rolled back instead of released: the same statements
    ran, nothing of them stays.
    """
    user = find_user(identifier)
    eligible = user is not None and user.is_active and bool(user.email)
    ttl = int(current_app.config["PASSWORD_RESET_TTL"])
    # A new link revokes the older ones (only the latest mail works).
    links.revoke("reset", user_id=user.id if eligible else 0)
    address = user.email if eligible else PLACEHOLDER_ADDRESS
    session_ = db.session()
    nested = session_.begin_nested()
    try:
        token = links.issue("reset", address, ttl, user=user if eligible else None)
        mail.send(
            address,
            "Reset your password",
            "password_reset",
            name=(user.name or user.username) if eligible else identifier,
            username=user.username if eligible else identifier,
            link=links.external_url("password.reset", token=token),
            minutes=max(1, ttl // 60),
        )
        session_.flush()
    except ValueError:  # an address the mail cannot go to: the same answer, nothing sent
        eligible = False
    if eligible:
        nested.commit()
    else:
        nested.rollback()
    audit.record(
        "password.reset_requested",
        actor=identifier[:150],
        target=user.sub if user is not None else None,
        sent=eligible,
    )


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        request_reset(form.username.data)
        db.session().commit()
        return render_template(
            "auth/forgot_sent.html", minutes=current_app.config["PASSWORD_RESET_TTL"] // 60
        )
    status = 400 if form.errors else 200
    return render_template("auth/forgot.html", form=form), status


# --- reset ----------------------------------------------------------------------------------


def live_reset() -> tuple[object, User] | None:
    """(link, user) for the secret in this browser's session, while both are usable."""
    token = session.get(RESET_TOKEN)
    link = links.find("reset", token) if token else None
    if link is None or link.user_id is None:
        return None
    user = db.session().get(User, link.user_id)
    if user is None or not user.is_active:
        return None
    return link, user


@bp.route("/password/reset", methods=["GET", "POST"])
def reset():
    if request.method == "GET" and "token" in request.args:
        # Out of the URL at once: the next page has no secret to leak.
        session[RESET_TOKEN] = request.args.get("token", "")[:200]
        return redirect(url_for("password.reset"))
    found = live_reset()
    if found is None:
        session.pop(RESET_TOKEN, None)
        return render_template("auth/reset_invalid.html"), 400
    _, user = found
    form = ResetPasswordForm()
    form.password_context = context_of(user)
    if form.validate_on_submit():
        # Consumed first, in this transaction: of two submissions racing, one wins.
        link = links.consume("reset", session.get(RESET_TOKEN, ""))
        if link is None or link.user_id != user.id:
            db.session().rollback()
            session.pop(RESET_TOKEN, None)
            return render_template("auth/reset_invalid.html"), 400
        set_password(user, form.password.data)
        links.revoke("reset", user_id=user.id)
        ended = user_session.end_all(user.id, "password reset")
        revoked = tokens.revoke_grants("password reset", user_id=user.id, keep_offline=True)
        audit.record(
            "password.reset", actor=user.sub, sessions_ended=len(ended), tokens_revoked=revoked
        )
        notify_password_changed(user, "reset with a link sent to this address")
        db.session().commit()
        session.pop(RESET_TOKEN, None)
        flash("Your password was changed. Sign in with your new password.")
        return redirect(url_for("auth.login"))
    status = 400 if form.errors else 200
    page = render_template(
        "auth/reset.html", form=form, feedback=password_feedback(form), user=user
    )
    return page, status


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


__all__ = ["bp", "init_app", "request_reset"]
