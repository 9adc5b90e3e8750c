"""Liveness and readiness for load balancers and orchestrators.

``/healthz``: the process answers (never touches the database, so a database outage does not
get healthy workers restarted). ``/readyz``: the database answers ``SELECT 1`` and, when
Redis is configured, Redis answers ``PING``; otherwise 503, so the balancer sends traffic
elsewhere until it recovers. The answers name what failed, never a URL or a password.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify
from sqlalchemy import text

from . import db

log = logging.getLogger("idp.health")


def redis_url(config) -> str | None:
    """The Redis the server depends on, if any (REDIS_URL or a redis rate-limit storage)."""
    for value in (config.get("REDIS_URL"), config.get("RATELIMIT_STORAGE_URI")):
        if value and str(value).startswith(("redis://", "rediss://", "unix://")):
            return str(value)
    return None


def check_database() -> str:
    try:
        with db.engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:  # any failure means not ready
        log.warning("readiness: database unavailable (%s)", type(exc).__name__)
        return "unavailable"


def check_redis(url: str) -> str:
    import redis

    client = current_app.extensions.get("idp.health.redis")
    if client is None:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        current_app.extensions["idp.health.redis"] = client
    try:
        client.ping()
        return "ok"
    except Exception as exc:
        log.warning("readiness: redis unavailable (%s)", type(exc).__name__)
        return "unavailable"


def _answer(body: dict, status: int):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def healthz():
    return _answer({"status": "ok"}, 200)


def readyz():
    checks = {"database": check_database()}
    url = redis_url(current_app.config)
    if url:
        checks["redis"] = check_redis(url)
    ready = all(value == "ok" for value in checks.values())
    return _answer(
        {"status": "ready" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


def init_app(app: Flask) -> None:
    app.add_url_rule("/healthz", "healthz", healthz)
    app.add_url_rule("/readyz", "readyz", readyz)
