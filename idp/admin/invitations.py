"""Admin: invite a user (an account without a password and a mailed link to choose one),
resend or revoke the invitation, resend an email verification link.

The work is ``account.invitation`` and ``account.email``'s, shared with `idp users invite`;
these views only check the form and the admin's intent (a GET confirmation page before a
revocation). Each action is audited there, and as an admin change here.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Email, Length

from .. import db
from ..account import email as verification
from ..account import invitation
from ..auth.forms import ConfirmForm, username_field
from ..models import User
from . import changes
from .access import admin_required, bp
from .confirm import confirmation_page
from .forms import none_if_blank, strip


class InviteForm(FlaskForm):
    email = StringField(
        "Email",
        filters=[strip],
        validators=[DataRequired(), Length(max=320), Email()],
        description="The invitation is mailed here; accepting it verifies the address.",
    )
    username = username_field(
        required=False,
        filters=[none_if_blank],
        autocomplete="off",
        description="Leave empty to use the beginning of the email address.",
    )
    name = StringField("Full name", filters=[none_if_blank], validators=[Length(max=255)])
    submit = SubmitField("Send invitation")


def find_user(user_id: int) -> User:
    user = db.session().get(User, user_id)
    if user is None:
        abort(404)
    return user


def back_to(user: User):
    return redirect(url_for("admin.user", user_id=user.id))


def posted() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400)


def username_taken(username: str) -> bool:
    query = select(User.id).where(func.lower(User.username) == username.lower())
    return db.session().scalar(query.limit(1)) is not None


@bp.route("/users/invite", methods=["GET", "POST"])
@admin_required
def invite_user():
    form = InviteForm()
    if form.validate_on_submit():
        if form.username.data and username_taken(form.username.data):
            form.username.errors.append("Another user already has this username.")
        if verification.address_taken(form.email.data):
            form.email.errors.append("Another user already has this email.")
        if not form.errors:
            session = db.session()
            try:
                user = invitation.invite(
                    session,
                    email=form.email.data,
                    username=form.username.data,
                    name=form.name.data,
                    actor=current_user.sub,
                )
            except IntegrityError:  # the same name a moment ago, by someone else
                session.rollback()
                form.email.errors.append("Another user already has this username or email.")
            else:
                changes.record("user.invited", user.sub, after=changes.user_snapshot(user))
                session.commit()
                flash(f"Invitation sent to {user.email}.")
                return back_to(user)
    status = 400 if form.errors else 200
    return render_template("admin/users/invite.html", form=form), status


@bp.post("/users/<int:user_id>/invitation/resend")
@admin_required
def resend_invitation(user_id: int):
    posted()
    user = find_user(user_id)
    if user.password_hash or not user.email or invitation.state(user) in (None, "accepted"):
        flash("This user has no open invitation.", "error")
        return back_to(user)
    invitation.resend(user, actor=current_user.sub)
    db.session().commit()
    flash(f"A new invitation was sent to {user.email}; the previous link no longer works.")
    return back_to(user)


@bp.route("/users/<int:user_id>/invitation/revoke", methods=["GET", "POST"])
@admin_required
def revoke_invitation(user_id: int):
    user = find_user(user_id)
    if request.method == "GET":
        return confirmation_page(
            section="users",
            crumbs=[
                ("Users", url_for("admin.users")),
                (user.username, url_for("admin.user", user_id=user.id)),
            ],
            title=f"Revoke the invitation of {user.username}?",
            consequences=[
                "make the link mailed to the user stop working;",
                f"keep the account {user.username}, without a password: nobody can sign in "
                "as it until you send a new invitation or set a password.",
            ],
            button="Revoke invitation",
            action=request.path,
            cancel=url_for("admin.user", user_id=user.id),
        )
    posted()
    invitation.revoke(user, actor=current_user.sub)
    db.session().commit()
    flash("Invitation revoked.")
    return back_to(user)


@bp.post("/users/<int:user_id>/verification/send")
@admin_required
def send_verification(user_id: int):
    posted()
    user = find_user(user_id)
    if not user.email or user.email_verified:
        flash("This address needs no verification.", "error")
        return back_to(user)
    verification.send_verification(user, actor=current_user.sub)
    db.session().commit()
    flash(f"A verification link was sent to {user.email}.")
    return back_to(user)
