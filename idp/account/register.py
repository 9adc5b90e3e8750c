"""Self-registration of end users (``REGISTRATION_USERS``: off | open | domains:a.org,b.org).

The account is created only when the mailed link is followed, so email verification always
comes before the first sign-in and no half-made account exists::

    /account/register      email only ──> same page and status whatever the address:
         │                   new address:   link(register, email) mailed (older ones revoked)
         │                   taken address: "you already have an account" mailed instead
         v
    /account/register/complete?token=   username, name, password (policy.check_password)
         │  POST consumes the link (single use)
         v
    user created with email_verified = true ──> signs in like anyone else

Throttled per IP and per address typed (``limits``: RATELIMIT_EMAIL_LINK_*). Disabled users
and taken addresses learn nothing new from the form: only the mailbox owner does.
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
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from .. import audit, db, mail
from ..auth import links, policy
from ..auth.forms import new_password_field, password_feedback, username_field
from ..auth.passwords import PasswordTooLong, check_length
from ..auth.users import create_user
from ..config import registration_domains
from ..models import User
from .email import address_taken, dead_link

bp = Blueprint("account_register", __name__, url_prefix="/account/register")


def strip(value):
    return value.strip() if isinstance(value, str) else value


def allowed_domains() -> tuple[str, ...] | None:
    """None: registration is off; (): any domain; else the domains allowed."""
    return registration_domains(current_app.config["REGISTRATION_USERS"])


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")


class StartForm(FlaskForm):
    email = StringField(
        "Email address",
        filters=[strip],
        validators=[DataRequired(), Length(max=320), Email()],
        description="We will mail you a link to finish creating your account.",
        render_kw={"autocomplete": "email", "type": "email"},
    )


class CompleteForm(FlaskForm):
    token = HiddenField()
    username = username_field(filters=[strip])
    name = StringField(
        "Full name",
        filters=[lambda v: strip(v) or None],
        validators=[Length(max=255)],
        render_kw={"autocomplete": "name"},
    )
    password = new_password_field("Password")
    confirm = PasswordField(
        "Repeat the password",
        validators=[DataRequired(), EqualTo("password", message="The passwords differ.")],
        render_kw={"autocomplete": "new-password"},
    )


def request_link(address: str) -> None:
    """Mail the right message for this address; nothing here shows in the answer."""
    ttl = int(current_app.config["REGISTRATION_TTL"])
    if address_taken(address):
        mail.send(
            address,
            "You already have an account",
            "register_taken",
            login=links.external_url("auth.login"),
        )
        audit.record("registration.requested", target=domain_of(address), taken=True)
        return
    links.revoke("register", email=address.lower())
    token = links.issue("register", address.lower(), ttl)
    mail.send(
        address,
        "Finish creating your account",
        "register",
        link=links.external_url("account_register.complete", token=token),
        hours=max(1, ttl // 3600),
    )
    audit.record("registration.requested", target=domain_of(address), taken=False)


@bp.route("", methods=["GET", "POST"])
def start():
    domains = allowed_domains()
    if domains is None:
        abort(404)
    form = StartForm()
    if form.validate_on_submit():
        if domains and domain_of(form.email.data) not in domains:
            form.email.errors.append(
                "Accounts can only be created with an address at "
                + ", ".join(domains[:-1])
                + (" or " if len(domains) > 1 else "")
                + domains[-1]
                + "."
            )
        else:
            request_link(form.email.data)
            db.session().commit()
            # The same page for a new and a taken address: the form reveals no account.
            return render_template("auth/register_sent.html", address=form.email.data)
    status = 400 if form.errors else 200
    return render_template("auth/register.html", form=form, domains=domains), status


@bp.route("/complete", methods=["GET", "POST"])
def complete():
    if allowed_domains() is None:
        abort(404)
    form = CompleteForm()
    token = request.args.get("token", "") if request.method == "GET" else form.token.data or ""
    link = links.find("register", token)
    if link is None:
        return dead_link()
    # The policy (auth.forms.PasswordPolicy) compares the password with these words too.
    form.password_context = {
        "username": form.username.data,
        "email": link.email,
        "name": form.name.data,
    }
    if request.method == "GET":
        form.token.data = token
    elif form.validate_on_submit() or (form.username.data and not form.csrf_token.errors):
        # Every refusal at once: a taken username is named even when the password is refused.
        session = db.session()
        taken = form.username.data and session.scalar(
            select(User.id).where(func.lower(User.username) == form.username.data.lower())
        )
        if taken:
            form.username.errors = [
                *form.username.errors,
                "This username is taken. Choose another one.",
            ]
        if not form.errors:
            if address_taken(link.email):  # registered meanwhile through another link
                links.consume("register", token)
                session.commit()
                return dead_link()
            try:
                password = policy.normalise(form.password.data)
                check_length(password)
            except PasswordTooLong as exc:
                form.password.errors.append(str(exc))
            else:
                if links.consume("register", token) is None:
                    session.rollback()
                    return dead_link()
                user = create_user(
                    session,
                    username=form.username.data,
                    password=password,
                    email=link.email,
                    email_verified=True,  # the link went to this address
                    name=form.name.data,
                )
                try:
                    session.flush()
                except IntegrityError:  # the same username or address a moment ago
                    session.rollback()
                    form.username.errors.append("This username is taken. Choose another one.")
                else:
                    audit.record("registration.completed", actor=user.sub, target=user.sub)
                    session.commit()
                    flash("Your account is ready. Sign in to continue.")
                    return redirect(url_for("auth.login", login_hint=user.username))
    status = 400 if form.errors else 200
    page = render_template(
        "auth/register_complete.html",
        form=form,
        address=link.email,
        feedback=password_feedback(form),
    )
    return page, status


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
