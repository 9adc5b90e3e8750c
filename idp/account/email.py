"""Email verification and email change: the address in ``email_verified`` was proven by a link.

OpenID Connect Core §5.1: ``email_verified`` is true only when the provider "took
affirmative and reasonable measures to ensure that this e-mail address was controlled by
the End-User"; here that is following a single-use link (``auth.links``, purpose "verify")
mailed to exactly that address.

    send_verification(user, address)   mail a link for ``address`` (older ones revoked)
    request_change(user, new)          the new address waits in the link row
                                       (account_links.email); users.email keeps the old
                                       one, verified or not, until the link is followed
    after_admin_edit(...)              the same rule for an admin's edit
    /account/verify?token=             GET asks (mail scanners fetch links), POST confirms

A change, as a state diagram::

    users.email = old ──request_change(new)──> link(verify, email=new) mailed to new
          ^                                          │ followed (POST, single use)
          └─ unchanged if never followed             v
                                     users.email = new, email_verified = true,
                                     "email changed" notice mailed to old
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length

from .. import audit, db, mail
from ..auth import links, passwords
from ..models import AccountLink, User, utcnow

bp = Blueprint("account_email", __name__, url_prefix="/account")

DEAD_LINK = "This link has expired or was already used."


# --- services ---------------------------------------------------------------------------


def same_address(a: str | None, b: str | None) -> bool:
    return (a or "").strip().lower() == (b or "").strip().lower()


def address_taken(address: str, except_id: int | None = None) -> bool:
    """Does another user have this address (ignoring case, as sign-in does)?"""
    query = select(User.id).where(func.lower(User.email) == address.strip().lower())
    if except_id is not None:
        query = query.where(User.id != except_id)
    return db.session().scalar(query.limit(1)) is not None


def ttl() -> int:
    return int(current_app.config["EMAIL_VERIFY_TTL"])


def send_verification(user: User, address: str | None = None, *, actor: str | None) -> None:
    """Mail a verification link for ``address`` (default: the user's current one). A new link
    revokes the user's older ones: only the latest mail works."""
    address = address or user.email
    if not address:
        return
    if user.id is None:
        db.session().flush()
    links.revoke("verify", user_id=user.id)
    token = links.issue("verify", address, ttl(), user=user, created_by=actor)
    mail.send(
        address,
        "Confirm your email address",
        "verify",
        name=user.name or user.username,
        link=links.external_url("account_email.verify", token=token),
        hours=max(1, ttl() // 3600),
        change=not same_address(address, user.email),
    )
    audit.record("email.verification_sent", actor=actor, target=user.sub)


def request_change(user: User, new: str, *, actor: str | None) -> None:
    """Start changing the address: the old one stays until the new one is verified. A new
    address another account already has gets a notice instead of a link (the answer to
    the requester is the same, so the form tells nobody who has an account)."""
    if address_taken(new, except_id=user.id):
        mail.send(
            new,
            "Your email address is already in use",
            "email_in_use",
            login=links.external_url("auth.login"),
        )
        audit.record("email.change_refused", actor=actor, target=user.sub, reason="taken")
        return
    send_verification(user, new, actor=actor)
    audit.record("email.change_requested", actor=actor, target=user.sub)


def pending_address(user: User) -> str | None:
    """The new address waiting for verification, if any."""
    row = db.session().scalar(
        select(AccountLink)
        .where(
            AccountLink.purpose == "verify",
            AccountLink.user_id == user.id,
            AccountLink.used_at.is_(None),
            AccountLink.revoked_at.is_(None),
            AccountLink.expires_at > utcnow(),
        )
        .order_by(AccountLink.id.desc())
        .limit(1)
    )
    if row is None or same_address(row.email, user.email):
        return None
    return row.email


def after_admin_edit(
    user: User, before_email: str | None, before_verified: bool, *, actor: str
) -> str | None:
    """Apply the verification rules to an address the admin form just set; a message for
    the admin, or None. A changed address waits for its link like a user's own change (the
    form's "verified" box counts only for an address that did not change)."""
    new = user.email
    if same_address(new, before_email):
        if not before_verified and user.email_verified:
            links.revoke("verify", user_id=user.id)
        return None
    if new is None:  # removed: nothing to verify any more
        user.email_verified = False
        links.revoke("verify", user_id=user.id)
        return None
    if before_email is None:  # a first address: set at once, verified by the link
        if user.email_verified:
            return None
        send_verification(user, new, actor=actor)
        return f"A verification link was sent to {new}."
    user.email, user.email_verified = before_email, before_verified
    request_change(user, new, actor=actor)
    return (
        f"A link was sent to {new}: the address changes when it is followed. "
        f"Until then the user keeps {before_email}."
    )


def apply_verification(link: AccountLink) -> User | None:
    """The address of a consumed link becomes the user's verified address; the old one, if
    it differs, is told. None when it can no longer be (user gone, address taken)."""
    user = db.session().get(User, link.user_id) if link.user_id is not None else None
    if user is None or address_taken(link.email, except_id=user.id):
        return None
    old = user.email
    user.email, user.email_verified = link.email, True
    links.revoke("verify", user_id=user.id)
    if old and not same_address(old, link.email):
        audit.record("email.changed", actor=user.sub, target=user.sub)
        mail.send(
            old,
            "Your email address was changed",
            "email_changed",
            name=user.name or user.username,
            new=link.email,
        )
    audit.record("email.verified", actor=user.sub, target=user.sub)
    return user


# --- forms and views --------------------------------------------------------------------


class EmailChangeForm(FlaskForm):
    email = StringField(
        "New email address",
        filters=[lambda v: v.strip() if v else v],
        validators=[DataRequired(), Length(max=320), Email()],
        render_kw={"autocomplete": "email", "type": "email"},
    )
    password = PasswordField(
        "Current password",
        validators=[DataRequired()],
        description="To make sure it is you.",
        render_kw={"autocomplete": "current-password"},
    )


class LinkForm(FlaskForm):
    """The confirmation button of a mailed link: the token travels in the POST body."""

    token = HiddenField()


@bp.route("/email", methods=["GET", "POST"])
@login_required
def change():
    form = EmailChangeForm()
    if form.validate_on_submit():
        if not passwords.verify(current_user.password_hash, form.password.data):
            form.password.errors.append("This is not your current password.")
            audit.record("email.change_refused", actor=current_user.sub, reason="password")
            db.session().commit()
        elif same_address(form.email.data, current_user.email):
            form.email.errors.append("This is already your address.")
        else:
            request_change(current_user, form.email.data, actor=current_user.sub)
            db.session().commit()
            flash(
                f"We sent a link to {form.email.data}. Your address changes when you follow it;"
                f" until then it stays {current_user.email or 'unset'}."
            )
            return redirect(url_for("account.index"))
    status = 400 if form.errors else 200
    return render_template("account/email.html", form=form, user=current_user), status


@bp.post("/email/verify")
@login_required
def resend():
    """Mail a new link for the current, unverified address (the old links stop working)."""
    if not FlaskForm().validate_on_submit():
        abort(400)
    if current_user.email and not current_user.email_verified:
        send_verification(current_user, actor=current_user.sub)
        db.session().commit()
        flash(f"We sent a new link to {current_user.email}.")
    return redirect(url_for("account.index"))


@bp.route("/verify", methods=["GET", "POST"])
def verify():
    """GET shows the address and a button (a mail scanner's fetch uses nothing); POST uses
    the link once."""
    form = LinkForm()
    if request.method == "GET":
        token = request.args.get("token", "")
        link = links.find("verify", token)
        if link is None:
            return dead_link()
        form.token.data = token
        return render_template("account/verify.html", form=form, address=link.email)
    if not form.validate_on_submit():
        abort(400)
    link = links.consume("verify", form.token.data or "")
    user = apply_verification(link) if link is not None else None
    if user is None:
        db.session().rollback()
        return dead_link()
    db.session().commit()
    return render_template("account/verify_done.html", address=user.email)


def dead_link():
    """The page of a link that no longer works (expired, used, revoked, or never was)."""
    return render_template("account/verify_dead.html", message=DEAD_LINK), 404


def email_section(user: User) -> dict:
    """What templates/account/_email.html shows."""
    return {
        "pending": pending_address(user),
        "form": FlaskForm(),
    }


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.jinja_env.globals["account_email_section"] = email_section
    app.jinja_env.globals["pending_email_address"] = pending_address
