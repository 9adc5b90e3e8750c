"""Shared set-up of the in-process benchmarks (wsgi_cpu.py, breakdown.py, profile_token.py).

``service_app`` builds the app as deployed on a fresh, migrated database with signing keys
and one confidential client of the client credentials grant (scope ``api``). PostgreSQL,
when IDP_DATABASE_URL names it, is EMPTIED first; otherwise a temporary SQLite file is used.
"""

from __future__ import annotations

import base64
import os
import tempfile

from flask import Flask
from sqlalchemy import create_engine, text

from idp import create_app, db
from idp.migrate import upgrade
from idp.oauth import keys
from idp.oauth.clients import create_client


def fresh_database() -> str:
    url = os.environ.get("IDP_DATABASE_URL")
    if not url:
        return f"sqlite:///{tempfile.mkdtemp()}/idp.sqlite3"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


def service_app(**overrides) -> tuple[Flask, str]:
    """The app and the ``Authorization: Basic ...`` value of its one service client."""
    config = {
        "DATABASE_URL": fresh_database(),
        "SECRET_KEY": "bench",
        "ISSUER": "http://127.0.0.1",
        "RATELIMIT_TOKEN": "1000000/second",
        **overrides,
    }
    app = create_app(config)
    upgrade(app)
    with app.app_context():
        keys.ensure_keys(db.session())
        client, secret = create_client(
            db.session(), name="bench", redirect_uris=[], grant_types=["client_credentials"],
            scope="api", public=False, first_party=True,
        )  # fmt: skip
        db.session().commit()
        credentials = f"{client.client_id}:{secret}".encode()
    return app, "Basic " + base64.b64encode(credentials).decode()
