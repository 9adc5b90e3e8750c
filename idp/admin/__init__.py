"""The admin web UI (blueprint ``admin`` at /admin): users, groups, clients, the audit log.

Only enabled users with the admin role get in (``access``: checked on every request, on the
server); every form posts a CSRF token (CSRFProtect covers every POST of the app); every
change is audited with the fields before and after (``changes``), never a password, secret
or token. Templates in templates/admin/, styles in static/css/admin.css.
"""

from __future__ import annotations

from flask import Flask

from .access import admin_required, bp


def init_app(app: Flask) -> None:
    from . import audit, clients, deletions, factors, groups, passkeys, resources, users  # noqa: F401

    app.register_blueprint(bp)
    app.add_template_global(deletions.pending_for, "pending_deletion_of")
    app.add_template_global(deletions.pending_count, "pending_deletion_count")


__all__ = ["admin_required", "bp", "init_app"]
