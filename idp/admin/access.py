"""Who may use the admin UI: signed-in users with the admin role, checked on every request.

The role is read from the database on each request (the user loader loads the row afresh),
so taking the role away takes effect at the admin's next click. Anonymous visitors are sent
to sign in; signed-in users without the role get 403.
"""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort
from flask_login import current_user

from ..auth.session import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")


def is_admin(user) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_admin)


def check_admin():
    """None when the current user is an admin; else a sign-in redirect or 403."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not is_admin(current_user):
        abort(403)
    return None


def admin_required(view):
    """Decorate an admin view: re-checks the admin role on the server for this request."""

    @wraps(view)
    def checked(*args, **kwargs):
        refused = check_admin()
        if refused is not None:
            return refused
        return view(*args, **kwargs)

    return checked


# Belt and braces: the blueprint checks too, so a view that forgot the decorator is still shut.
bp.before_request(check_admin)
