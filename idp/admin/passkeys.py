"""A user's passkeys in the admin UI: listed on the user page (names and dates, never key
material, templates/admin/users/_passkeys.html) and removable after a confirmation; the
removal is audited and mailed to the user (``auth.passkeys.remove``)."""

from __future__ import annotations

from flask import abort, flash, request
from flask_login import current_user

from .. import db
from ..auth import passkeys
from .access import admin_required, bp
from .users import back_to, confirm, find_user, posted


@bp.route("/users/<int:user_id>/passkeys/<int:passkey_id>/remove", methods=["GET", "POST"])
@admin_required
def remove_passkey(user_id: int, passkey_id: int):
    user = find_user(user_id)
    row = passkeys.find(user.id, passkey_id)
    if row is None:
        abort(404)
    if request.method == "GET":
        return confirm(
            user,
            f"Remove passkey “{row.name}” of {user.username}?",
            [
                f"stop {user.username} from signing in with the passkey “{row.name}”;",
                "email the user that it was removed by an administrator.",
            ],
            "Remove passkey",
        )
    posted()
    name = row.name
    passkeys.remove(row, actor=current_user.sub)
    db.session().commit()
    flash(f"Passkey “{name}” of {user.username} removed.")
    return back_to(user)
