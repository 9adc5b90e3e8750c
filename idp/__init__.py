"""A standards-exact OAuth 2.0 and OpenID Connect identity provider.

``create_app`` only wires the parts together; each part has ``init_app(app)`` and the order
of those calls below is the architecture in a few lines (see docs/architecture.md).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask

PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> str:
    """templates/ or static/: inside the package in a wheel, at the top of a checkout."""
    packaged = PACKAGE / name
    return str(packaged if packaged.is_dir() else PACKAGE.parent / name)


def instance_path() -> str | None:
    value = os.environ.get("IDP_INSTANCE_PATH")
    return str(Path(value).resolve()) if value else None


def create_app(config: dict | None = None) -> Flask:
    from . import account, admin, auth, db, demo, errors, mail, oauth, security
    from . import config as settings

    app = Flask(
        "idp",
        instance_path=instance_path(),
        instance_relative_config=True,
        template_folder=resource_dir("templates"),
        static_folder=resource_dir("static"),
    )
    settings.load(app, config)
    if not app.config["SECRET_KEY"]:  # only reachable in development (config.check)
        app.config["SECRET_KEY"] = secrets.token_hex(32)

    db.init_app(app)
    mail.init_app(app)  # queue + background sender (idp/mail/)
    security.init_csrf(app)  # CSRFProtect (flask-wtf) on every form
    auth.init_app(app)
    oauth.init_app(app)
    account.init_app(app)
    admin.init_app(app)
    security.init_app(app)
    errors.init_app(app)
    if app.config["DEMO"]:
        demo.init_app(app)
    init_production(app)
    return app


def init_production(app: Flask) -> None:
    """Logs with request ids, trusted proxy hops, health, metrics, CORS, purging, and the
    rate limits last, so that they attach to every view registered before (docs/deploy.md)."""
    from . import cors, health, limits, logs, metrics, published, purge, serve

    logs.init_app(app)
    published.init_app(app)  # discovery and JWKS from prepared bytes, inside ProxyFix
    serve.init_app(app)
    health.init_app(app)
    metrics.init_app(app)
    cors.init_app(app)
    purge.init_app(app)
    limits.init_app(app)
