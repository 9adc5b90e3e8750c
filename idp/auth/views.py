"""Routes of the ``auth`` blueprint: /login and /logout."""

from __future__ import annotations

from flask import Blueprint, Flask, redirect, render_template, request, url_for
from flask_login import current_user

from .. import audit, db
from . import passwords, session
from .forms import ConfirmForm, LoginForm
from .login import authenticate

bp = Blueprint("auth", __name__)

FAILED = "Incorrect username or password."


def safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after sign-in (no open redirect)."""
    if (
        target
        and target.startswith("/")
        and not target.startswith("//")
        and "\\" not in target
        and not any(ord(c) < 32 for c in target)
    ):
        return target
    return url_for("account.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if request.method == "GET":
        form.next.data = request.args.get("next", "")
        form.username.data = request.args.get("login_hint", "")[:320]
    error = None
    if form.validate_on_submit():
        user = authenticate(form.username.data, form.password.data)
        if user is not None:
            session.start(user, ["pwd"])
            db.session().commit()
            return redirect(safe_next(form.next.data))
        db.session().commit()
        error = FAILED
    elif request.method == "POST":
        error = (
            "Please fill in both fields."
            if not form.csrf_token.errors
            else ("Your session expired. Please try again.")
        )
    status = 401 if error == FAILED else (400 if error else 200)
    return render_template("auth/login.html", form=form, error=error), status


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    form = ConfirmForm()
    if form.validate_on_submit():
        if current_user.is_authenticated:
            audit.record("logout", actor=current_user.sub)
        session.end("logout")
        db.session().commit()
        return render_template("auth/logged_out.html")
    return render_template("auth/logout.html", form=form)


def init_app(app: Flask) -> None:
    passwords.init_app(app)
    session.login_manager.init_app(app)
    app.register_blueprint(bp)
