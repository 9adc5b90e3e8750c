"""Invitations: an admin (UI or `idp users invite`) creates an account without a password and
mails its owner a single-use link (``auth.links``, purpose "invite") to choose one.

    invite(session, email=, username=, name=, actor=)  the user + the link + the mail
    resend(user, actor=) / revoke(user, actor=)         a new link (the old one revoked) / none
    state(user)        the latest invitation: pending | expired | revoked | accepted | None
    /account/invitation?token=                          choose a password (policy.check_password)

Accepting proves the address (the link went there), so it also sets ``email_verified``.
The invitee then signs in like anyone else: accepting does not sign in by itself.
"""

from __future__ import annotations

import re

from flask import Blueprint, Flask, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import HiddenField, PasswordField
from wtforms.validators import DataRequired, EqualTo

from .. import audit, db, mail
from ..auth import links
from ..auth.forms import new_password_field, password_feedback
from ..auth.passwords import PasswordTooLong, hash_password
from ..auth.users import create_user
from ..models import AccountLink, User
from .email import dead_link, same_address

bp = Blueprint("account_invitation", __name__, url_prefix="/account")

STATES = {"used": "accepted", "pending": "pending", "expired": "expired", "revoked": "revoked"}


def free_username(email: str) -> str:
    """A username from the address's local part, made unique with a number if needed."""
    base = re.sub(r"[^A-Za-z0-9._@+-]", "", email.rpartition("@")[0])[:140] or "user"
    session = db.session()
    candidate, n = base, 1
    while session.scalar(
        select(User.id).where(func.lower(User.username) == candidate.lower()).limit(1)
    ):
        n += 1
        candidate = f"{base}{n}"
    return candidate


def _send(user: User, actor: str | None) -> None:
    ttl = int(current_app.config["INVITATION_TTL"])
    links.revoke("invite", user_id=user.id)
    token = links.issue("invite", user.email, ttl, user=user, created_by=actor)
    mail.send(
        user.email,
        "You are invited to create your account",
        "invite",
        name=user.name or user.username,
        username=user.username,
        link=links.external_url("account_invitation.accept", token=token),
        days=max(1, ttl // 86400),
    )


def invite(
    session, *, email: str, username: str | None = None, name: str | None = None, actor: str
) -> User:
    """A new user without a password, and the invitation mailed. The caller checked that the
    username and address are free, and commits."""
    user = create_user(
        session,
        username=username or free_username(email),
        email=email,
        email_verified=False,
        name=name or None,
    )
    session.flush()
    _send(user, actor)
    audit.record("invitation.sent", actor=actor, target=user.sub)
    return user


def latest(user: User) -> AccountLink | None:
    return db.session().scalar(
        select(AccountLink)
        .where(AccountLink.purpose == "invite", AccountLink.user_id == user.id)
        .order_by(AccountLink.id.desc())
        .limit(1)
    )


def state(user: User) -> str | None:
    """The state of the user's latest invitation, None if never invited."""
    row = latest(user)
    return STATES[row.state] if row is not None else None


def resend(user: User, *, actor: str) -> None:
    """A new link (the previous one stops working), with a new expiry."""
    _send(user, actor)
    audit.record("invitation.resent", actor=actor, target=user.sub)


def revoke(user: User, *, actor: str) -> int:
    """The outstanding link stops working; the account stays, without a password."""
    count = links.revoke("invite", user_id=user.id)
    audit.record("invitation.revoked", actor=actor, target=user.sub, links=count)
    return count


class AcceptForm(FlaskForm):
    token = HiddenField()
    password = new_password_field("New password")
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


def live_invitation(token: str) -> tuple[AccountLink, User] | None:
    link = links.find("invite", token)
    user = db.session().get(User, link.user_id) if link and link.user_id else None
    # A password set meanwhile (by an admin) or a disabled account ends the invitation.
    if link is None or user is None or user.disabled or user.password_hash is not None:
        return None
    return link, user


@bp.route("/invitation", methods=["GET", "POST"])
def accept():
    form = AcceptForm()
    token = request.args.get("token", "") if request.method == "GET" else form.token.data or ""
    found = live_invitation(token)
    if found is None:
        return dead_link()
    link, user = found
    # The policy (auth.forms.PasswordPolicy) compares the password with the user's own words.
    form.password_context = {"username": user.username, "email": user.email, "name": user.name}
    if request.method == "GET":
        form.token.data = token
    elif form.validate_on_submit():
        try:
            password_hash = hash_password(form.password.data)
        except PasswordTooLong as exc:
            form.password.errors.append(str(exc))
        else:
            # Used once: of two tabs submitting, one sets the password.
            if links.consume("invite", token) is None:
                db.session().rollback()
                return dead_link()
            user.password_hash = password_hash
            if same_address(link.email, user.email):
                user.email_verified = True
            audit.record("invitation.accepted", actor=user.sub, target=user.sub)
            db.session().commit()
            flash("Your password is set. Sign in to continue.")
            return redirect(url_for("auth.login", login_hint=user.username))
    status = 400 if form.errors else 200
    page = render_template(
        "account/invitation.html", form=form, user=user, feedback=password_feedback(form)
    )
    return page, status


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    # The admin UI shows the state of a user's invitation (templates/admin/users/).
    app.jinja_env.globals["latest_invitation"] = latest
    app.jinja_env.globals["invitation_states"] = STATES
