"""The signed-in user's own page: who am I, which applications I authorized, revoke one."""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import delete, select

from .. import audit, db
from ..auth.forms import ConfirmForm
from ..models import Consent
from ..oauth import tokens

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
        "account/index.html", user=current_user, consents=consents, form=ConfirmForm()
    )


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
    count = tokens.revoke_for_user_client(current_user.id, client_id)
    audit.record("consent.revoked", actor=current_user.sub, target=client_id, tokens=count)
    session.commit()
    flash("Access removed. The application's tokens no longer work.")
    return redirect(url_for("account.index"))


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
