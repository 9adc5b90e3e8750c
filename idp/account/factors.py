"""Second-factor pages: sign-in with a factor (/login/totp, /login/recovery), enrolment
when policy demands it (/login/enrol), and the account's own management of its authenticator
app and recovery codes (/account/totp, /account/recovery-codes).

The sign-in pages serve only a pending sign-in (``auth.mfa``); every decision (who, how
many tries, which session) is made there and in ``auth.totp`` / ``auth.recovery``.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Flask,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from .. import audit, db
from ..auth import mfa, passwords, recovery, totp
from ..oauth.authorize import client_redirect_target
from ..security import allow_form_action

bp = Blueprint("factors", __name__)

WRONG_CODE = "That code is not right. Check your authenticator app and try again."
WRONG_RECOVERY = "That recovery code is not right, or it was already used."
TIMED_OUT = "Your sign-in timed out or had too many wrong codes. Please sign in again."


class CodeForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app",
        validators=[DataRequired("Enter the 6-digit code."), Length(max=32)],
        description="The 6-digit code the app shows now for this account.",
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True},
    )


class RecoveryForm(FlaskForm):
    code = StringField(
        "Recovery code",
        validators=[DataRequired("Enter one of your recovery codes."), Length(max=64)],
        description="One of the codes you saved when you set up two-step verification.",
        render_kw={"autocomplete": "off", "autofocus": True, "spellcheck": "false"},
    )


class PasswordForm(FlaskForm):
    password = PasswordField(
        "Your password",
        validators=[DataRequired("Enter your password.")],
        render_kw={"autocomplete": "current-password"},
    )


def refuse(form, field, message: str) -> None:
    field.errors = [*field.errors, message]
    form._errors = None  # WTForms caches form.errors; recompute with the new message


def others(current: str, user) -> list[mfa.Factor]:
    """The other factors the pending user could use (links on the page)."""
    return [f for f in mfa.available(user, mfa.need()) if f.kind != current]


def restart():
    state = mfa.pending() or {}
    mfa.cancel()
    flash(TIMED_OUT, "error")
    return redirect(url_for("auth.login", next=state.get("next") or None))


def sign_in_page(kind: str, form, check, template: str):
    """One factor's sign-in page: GET shows it, POST checks the answer."""
    user = mfa.pending_user()
    if user is None:
        return restart()
    if kind not in {f.kind for f in mfa.available(user, mfa.need())}:
        choices = mfa.available(user, mfa.need())
        return redirect(url_for(choices[0].endpoint) if choices else url_for("factors.enrol"))
    status = 200
    if form.validate_on_submit():
        if mfa.locked(user):
            db.session().commit()
            return restart()
        if check(user, form.code.data):
            response = mfa.finish(["otp"], kind=kind)
            db.session().commit()
            return response
        alive = mfa.fail(user, kind)
        db.session().commit()
        if not alive:
            return restart()
        refuse(form, form.code, WRONG_CODE if kind == "totp" else WRONG_RECOVERY)
        status = 401
    elif request.method == "POST":
        status = 400
    page = render_template(
        template, form=form, others=others(kind, user), start_again=start_again_url()
    )
    return with_form_action(make_response(page, status))


def with_form_action(response):
    """A right code redirects on to /authorize and the client: CSP form-action must allow
    the client's redirect URI (CSP3 §6.3.1), as on the password page."""
    target = client_redirect_target((mfa.pending() or {}).get("next"))
    if target:
        allow_form_action(response, target[1])
    return response


def start_again_url() -> str:
    state = mfa.pending() or {}
    return url_for("auth.login", next=state.get("next") or None)


@bp.route("/login/totp", methods=["GET", "POST"])
def totp_sign_in():
    return sign_in_page("totp", CodeForm(), totp.verify, "auth/factor_totp.html")


def use_recovery_code(user, code: str) -> bool:
    if not recovery.use(user, code):
        return False
    left = recovery.remaining(user)
    audit.record("recovery_code.used", actor=user.sub, remaining=left)
    mfa.notify(
        user,
        "A recovery code was used to sign in",
        "A recovery code was used to sign in to your account. "
        f"{left} unused code{'s' if left != 1 else ''} left. If this was not you, change "
        "your password and create new recovery codes now.",
    )
    return True


@bp.route("/login/recovery", methods=["GET", "POST"])
def recovery_sign_in():
    return sign_in_page("recovery", RecoveryForm(), use_recovery_code, "auth/factor_recovery.html")


@bp.route("/login/enrol", methods=["GET", "POST"])
def enrol():
    """Policy requires a second factor and the user has none: set up an app, then sign in."""
    user = mfa.pending_user()
    if user is None:
        return restart()
    if mfa.available(user, mfa.need()):
        return redirect(url_for(mfa.available(user, mfa.need())[0].endpoint))
    if mfa.need() == "phr":  # only a passkey gives that (the passkey pages enrol those)
        return restart()
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        if mfa.locked(user):
            db.session().commit()
            return restart()
        if totp.confirm(user, form.code.data):
            added(user, "totp")
            response = mfa.finish(["otp"], kind="totp")
            codes = recovery.generate(user)
            audit.record("recovery_codes.generated", actor=user.sub)
            db.session().commit()
            return render_template(
                "account/recovery_codes.html", codes=codes, next=response.location
            )
        alive = mfa.fail(user, "totp")
        db.session().commit()
        if not alive:
            return restart()
        refuse(form, form.code, WRONG_CODE)
        status = 401
    elif request.method == "POST":
        status = 400
    secret = totp.enrolment_secret(user)
    db.session().commit()
    return enrolment_page("auth/factor_enrol.html", form, user, secret, status)


def enrolment_page(template: str, form, user, secret: str, status: int = 200):
    uri = totp.provisioning_uri(user, secret)
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    page = render_template(
        template, form=form, qr=totp.qr_svg(uri), secret=grouped, start_again=start_again_url()
    )
    return with_form_action(make_response(page, status))


def added(user, kind: str) -> None:
    audit.record("mfa.factor_added", actor=user.sub, factor=kind)
    mfa.notify(
        user,
        "An authenticator app was added to your account",
        "An authenticator app was set up for two-step verification on your account. "
        "If this was not you, change your password and contact your administrator.",
    )


# --- the account's own factors ---


@bp.route("/account/totp", methods=["GET", "POST"])
@login_required
def totp_setup():
    user = current_user._get_current_object()
    if totp.has(user):
        flash("An authenticator app is already set up. Remove it first to set up another.")
        return redirect(url_for("account.index"))
    form = CodeForm()
    status = 200
    if form.validate_on_submit():
        if totp.confirm(user, form.code.data):
            added(user, "totp")
            if not recovery.has(user):
                codes = recovery.generate(user)
                audit.record("recovery_codes.generated", actor=user.sub)
                db.session().commit()
                return render_template(
                    "account/recovery_codes.html", codes=codes, next=url_for("account.index")
                )
            db.session().commit()
            flash("Authenticator app added. You will be asked for a code when you sign in.")
            return redirect(url_for("account.index"))
        db.session().commit()
        refuse(form, form.code, WRONG_CODE)
        status = 400
    elif request.method == "POST":
        status = 400
    secret = totp.enrolment_secret(user)
    db.session().commit()
    return enrolment_page("account/totp.html", form, user, secret, status)


def password_confirmed(form) -> bool:
    """Re-authentication before removing or replacing a factor (NIST SP 800-63B §4.6)."""
    if not form.validate_on_submit():
        return False
    if passwords.verify(current_user.password_hash, form.password.data):
        return True
    refuse(form, form.password, "That is not your password.")
    return False


@bp.route("/account/totp/remove", methods=["GET", "POST"])
@login_required
def totp_remove():
    user = current_user._get_current_object()
    if not totp.has(user):
        return redirect(url_for("account.index"))
    form = PasswordForm()
    if password_confirmed(form):
        totp.remove(user)
        audit.record("mfa.factor_removed", actor=user.sub, factor="totp")
        mfa.notify(
            user,
            "An authenticator app was removed from your account",
            "The authenticator app was removed from your account. If this was not you, "
            "change your password and contact your administrator.",
        )
        db.session().commit()
        flash("Authenticator app removed.")
        return redirect(url_for("account.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("account/totp_remove.html", form=form), status


@bp.route("/account/recovery-codes", methods=["GET", "POST"])
@login_required
def recovery_codes():
    """New recovery codes (the old ones stop working), after the password."""
    user = current_user._get_current_object()
    form = PasswordForm()
    if password_confirmed(form):
        codes = recovery.generate(user)
        audit.record("recovery_codes.generated", actor=user.sub)
        mfa.notify(
            user,
            "New recovery codes were created for your account",
            "New recovery codes were created for your account; the old ones no longer work. "
            "If this was not you, change your password and contact your administrator.",
        )
        db.session().commit()
        return render_template(
            "account/recovery_codes.html", codes=codes, next=url_for("account.index")
        )
    status = 400 if request.method == "POST" else 200
    return render_template(
        "account/recovery.html", form=form, remaining=recovery.remaining(user)
    ), status


def factor_summary(user) -> dict:
    """What the account page shows about the user's factors (never a secret)."""
    return {
        "totp": totp.has(user),
        "recovery_left": recovery.remaining(user),
        "required": mfa.required(user),
    }


def backup(user) -> bool:
    """Recovery codes stand in for another factor; alone they are none (each sign-in would
    burn one), so they count only while the user has another factor."""
    others = [f for f in mfa.FACTORS if f.kind != "recovery"]
    return recovery.has(user) and any(f.has(user) for f in others)


def init_app(app: Flask) -> None:
    mfa.register_factor(
        "totp", "Use an authenticator app", "factors.totp_sign_in", totp.has, present=totp.present
    )
    mfa.register_factor(
        "recovery", "Use a recovery code", "factors.recovery_sign_in", backup,
        present=recovery.present, backup=True,
    )  # fmt: skip
    app.register_blueprint(bp)
    app.jinja_env.globals["factor_summary"] = factor_summary
