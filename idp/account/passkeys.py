"""Passkey pages: add, rename and remove on the account page; passwordless, usernameless
sign-in from the sign-in page (a button and the browser's autofill, conditional mediation);
a passkey as the second factor after the password.

The WebAuthn work is ``auth.passkeys``; these views move JSON between it and
static/js/passkeys.js. Registration and the second factor are ordinary forms (the script
fills in the credential, errors come back in the error summary); passwordless sign-in
posts JSON from the sign-in page, which belongs to the sign-in view, and answers JSON.
"""

from __future__ import annotations

import json

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField
from wtforms.validators import DataRequired, Length

from .. import audit, db
from ..auth import mfa, passkeys
from ..auth.forms import ConfirmForm
from .sign_in import safe_next

bp = Blueprint("passkeys", __name__)

NO_CREDENTIAL = (
    "Your browser did not create a passkey. Passkeys need a browser that supports them, "
    "with JavaScript on."
)
CANCELLED = "The passkey request was cancelled or timed out. Please try again."


class NameForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=passkeys.NAME_MAX)],
        description="So you can tell your passkeys apart, for example “Work laptop”.",
        render_kw={"autocomplete": "off", "maxlength": passkeys.NAME_MAX},
    )
    submit = SubmitField("Save")


class AddForm(NameForm):
    credential = HiddenField()
    client_error = HiddenField()
    submit = SubmitField("Create passkey")


class UseForm(FlaskForm):
    credential = HiddenField()
    client_error = HiddenField()
    submit = SubmitField("Use a passkey")


def browser_problem(form) -> str | None:
    """What to tell when the browser sent no credential (script off, cancelled)."""
    if form.credential.data:
        return None
    return CANCELLED if form.client_error.data else NO_CREDENTIAL


# --- account page: add, rename, remove ----------------------------------------------------


@bp.route("/account/passkeys/new", methods=["GET", "POST"])
@login_required
def add():
    form = AddForm()
    if request.method == "GET":
        form.name.data = ""
    elif form.validate_on_submit():
        problem = browser_problem(form)
        if problem is None:
            try:
                row = passkeys.register(current_user, form.credential.data, form.name.data)
            except passkeys.PasskeyError as exc:
                problem = str(exc)
            else:
                db.session().commit()
                flash(f"Passkey “{row.name}” added. You can use it to sign in.")
                return redirect(url_for("account.index"))
        db.session().commit()  # the audit record of a failure
        form.form_errors.append(problem)
    options = passkeys.registration_options(current_user)
    status = 400 if form.errors else 200
    return render_template("account/passkey_new.html", form=form, options=options), status


def _own(passkey_id: int):
    row = passkeys.find(current_user.id, passkey_id)
    if row is None:
        abort(404)
    return row


@bp.route("/account/passkeys/<int:passkey_id>/rename", methods=["GET", "POST"])
@login_required
def rename(passkey_id: int):
    row = _own(passkey_id)
    form = NameForm()
    if request.method == "GET":
        form.name.data = row.name
    elif form.validate_on_submit():
        passkeys.rename(row, form.name.data, actor=current_user.sub)
        db.session().commit()
        flash(f"Passkey renamed to “{row.name}”.")
        return redirect(url_for("account.index"))
    status = 400 if form.errors else 200
    return render_template("account/passkey_rename.html", form=form, passkey=row), status


@bp.route("/account/passkeys/<int:passkey_id>/remove", methods=["GET", "POST"])
@login_required
def remove(passkey_id: int):
    """GET asks; POST (with the CSRF token) removes."""
    row = _own(passkey_id)
    if request.method == "GET":
        return render_template(
            "account/passkey_remove.html",
            passkey=row,
            others=len(passkeys.credentials(current_user)) - 1,
            form=ConfirmForm(formdata=None),
        )
    if not ConfirmForm().validate_on_submit():
        abort(400)
    name = row.name
    passkeys.remove(row, actor=current_user.sub)
    db.session().commit()
    flash(f"Passkey “{name}” removed.")
    return redirect(url_for("account.index"))


NO_UV_MESSAGE = "This passkey did not verify you (no PIN or biometric). Sign in with your password."


# --- passwordless, usernameless sign-in (from the sign-in page) ---------------------------


@bp.post("/login/passkey/options")
def sign_in_options():
    """Request options with an empty allowCredentials: the authenticator offers its own."""
    options = passkeys.authentication_options(None)
    return current_app.response_class(options, mimetype="application/json")


@bp.post("/login/passkey")
def sign_in():
    """Verify the assertion, start the session (amr from the passkey), say where to go."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        return jsonify(message="The passkey response was malformed."), 400
    try:
        user, amr = passkeys.verify_authentication(json.dumps(body["credential"]))
    except passkeys.PasskeyError as exc:
        db.session().commit()  # the audit record
        return jsonify(message=str(exc)), 400
    if mfa.required(user) and "user" not in amr:
        # A passkey alone is one factor unless the authenticator verified the user (PIN or
        # biometric): someone who must have MFA then signs in with the password first.
        audit.record("passkey.sign_in_refused", actor=user.sub, reason="no user verification")
        db.session().commit()
        return jsonify(message=NO_UV_MESSAGE), 400
    next_url = body.get("next") if isinstance(body.get("next"), str) else None
    response = mfa.complete(user, amr, safe_next(next_url), kind="webauthn")
    db.session().commit()
    return jsonify(location=response.location)


# --- a passkey as the second factor ---------------------------------------------------------


@bp.route("/login/second-factor/passkey", methods=["GET", "POST"])
def second_factor():
    """After the password: the pending user proves a passkey of theirs (mfa.pending_user)."""
    user = mfa.pending_user()
    if user is None:
        return redirect(url_for("auth.login"))
    form = UseForm()
    if form.validate_on_submit():
        problem = browser_problem(form)
        if problem is None:
            try:
                if mfa.locked(user):
                    raise passkeys.PasskeyError("That passkey could not be used to sign in.")
                _, amr = passkeys.verify_authentication(form.credential.data, user=user)
            except passkeys.PasskeyError as exc:
                problem = str(exc)
                # Issue #15: second-factor failures count toward the password lockout
                # (mfa.fail); too many end the half-finished sign-in.
                if not mfa.fail(user, "webauthn"):
                    db.session().commit()
                    return redirect(url_for("auth.login"))
            else:
                response = mfa.finish(amr, kind="webauthn")
                db.session().commit()
                return response
        db.session().commit()
        form.form_errors.append(problem)
    options = passkeys.authentication_options(user)
    status = 400 if form.errors else 200
    return render_template("account/passkey_second_factor.html", form=form, options=options), status


def init_app(app: Flask) -> None:
    # First choice after the password, and the only phishing-resistant factor (auth.mfa).
    mfa.register_factor(
        "webauthn", "Use a passkey", "passkeys.second_factor", passkeys.has_passkey,
        present=passkeys.passkey_present,
    )  # fmt: skip
    app.register_blueprint(bp)
    # The account and admin pages list a user's passkeys through their partials.
    app.add_template_global(passkeys.credentials, "user_passkeys")
