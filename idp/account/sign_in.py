"""Routes of the ``auth`` blueprint: /login and /logout.

Pages, above the protocol: the sign-in page names the client it leads to
(``oauth.authorize.client_redirect_target``) and the signed-out page runs Front-Channel
Logout (``oauth.end_session``, ``oauth.logout``). The blueprint keeps its name, so its
endpoints (``auth.login``, ``auth.logout``) and templates (templates/auth/) are unchanged.
"""

from __future__ import annotations

from flask import Blueprint, Flask, make_response, render_template, request, url_for
from flask_login import current_user

from .. import audit, db
from ..auth import mfa, session
from ..auth.forms import ConfirmForm, LoginForm
from ..auth.login import authenticate
from ..oauth.authorize import client_redirect_target
from ..security import allow_form_action

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
        # The password is the first factor: mfa.begin signs in now, or asks for a second
        # factor (or its enrolment) first; the lockout count stays until the last one.
        user = authenticate(form.username.data, form.password.data, complete=False)
        if user is not None:
            response = mfa.begin(user, ["pwd"], safe_next(form.next.data))
            db.session().commit()
            return response
        db.session().commit()
        error = FAILED
    elif request.method == "POST":
        error = (
            "Please fill in both fields."
            if not form.csrf_token.errors
            else ("Your session expired. Please try again.")
        )
    status = 401 if error == FAILED else (400 if error else 200)
    target = client_redirect_target(form.next.data)
    page = render_template(
        "auth/login.html", form=form, error=error, client=target[0] if target else None
    )
    response = make_response(page, status)
    if target:  # signing in may redirect straight on to the client
        allow_form_action(response, target[1])
    return response


@bp.route("/logout", methods=["GET", "POST"])
def logout():
    form = ConfirmForm()
    if form.validate_on_submit():
        from ..oauth import end_session, logout  # here: "logout" also names this view

        if current_user.is_authenticated:
            audit.record("logout", actor=current_user.sub)
        # The server session ends with every consequence (session.terminate): tokens of the
        # session revoked, back-channel logout queued; the page runs front-channel logout.
        row = session.end("logout")
        db.session().commit()
        return end_session.signed_out_page(logout.frontchannel_uris([row] if row else []))
    # Cancel goes back to the page the "Sign out" link was on (a same-site path only).
    back = safe_next(request.args.get("next"))
    return render_template("auth/logout.html", form=form, back=back)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
