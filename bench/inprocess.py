"""Shared set-up of the in-process benchmarks (wsgi_cpu.py, breakdown.py, profile_token.py).

``service_app`` builds the app as deployed on a fresh, migrated database with signing keys
and one confidential client of the client credentials grant (scope ``api``), and then, as
each gunicorn worker does once its app is loaded (``idp.gunicorn_conf.post_worker_init``),
collects and freezes what exists, so that the cyclic collector's passes walk what the
requests make, not the whole app (without it, a sign-in in ``profile_sign_in.py`` paid about
2.5 ms more per flow on the 2026-12-05 host). PostgreSQL, when IDP_DATABASE_URL names it,
is EMPTIED first; otherwise a temporary SQLite file is used.
"""

from __future__ import annotations

import base64
import gc
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
    gc.collect()
    gc.freeze()  # as post_worker_init
    return app, "Basic " + base64.b64encode(credentials).decode()


def user_tokens(app: Flask, count: int, scope: str = "openid profile email offline_access"):
    """A first-party client of the code and refresh grants, a user, and ``count`` tokens.

    Returns (``Authorization: Basic ...`` of that client, [(access, refresh), ...]). The rows
    are stored as a code redemption would store them (hashes only, one family each), so
    UserInfo and refresh see what they see in production, without the sign-in.
    """
    import secrets
    import uuid
    from datetime import timedelta

    from idp.auth.users import create_user
    from idp.models import Token, secret_hash, utcnow

    with app.app_context():
        session = db.session()
        tag = secrets.token_hex(4)
        user = create_user(
            session, username=f"bench{tag}", name="Bench", email=f"{tag}@example.com",
            email_verified=True,
        )  # fmt: skip
        client, secret = create_client(
            session, name="bench rp", redirect_uris=["https://rp.example/cb"],
            grant_types=["authorization_code", "refresh_token"], scope=scope,
            public=False, first_party=True,
        )  # fmt: skip
        session.flush()
        now, pairs = utcnow(), []
        for _ in range(count):
            access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            session.add(
                Token(client_id=client.client_id, user_id=user.id, grant_type="authorization_code",
                      scope=scope, granted_scope=scope, access_token_hash=secret_hash(access),
                      refresh_token_hash=secret_hash(refresh), issued_at=now,
                      access_expires_at=now + timedelta(hours=1),
                      refresh_expires_at=now + timedelta(days=1), family_id=uuid.uuid4().hex,
                      auth_time=int(now.timestamp()), amr=["pwd"])
            )  # fmt: skip
            pairs.append((access, refresh))
        session.commit()
        credentials = f"{client.client_id}:{secret}".encode()
    return "Basic " + base64.b64encode(credentials).decode(), pairs
