"""Serving in production: gunicorn (``idp serve``) and the trusted reverse-proxy hops.

``idp serve`` replaces itself with ``gunicorn -c python:idp.gunicorn_conf 'idp:create_app()'``,
so what runs is exactly what an operator could type. The Flask development server is for
``idp run`` and ``idp demo`` only.

Behind a proxy, werkzeug's ProxyFix takes the client address, scheme, host, port and prefix
from X-Forwarded-* headers, but only as many hops deep as ``PROXY_FIX_X_*`` trust (0 = the
header is ignored, so a client cannot forge its address to dodge rate limits). The issuer and
every URL the server publishes come from ``ISSUER``, never from these headers or from Host.
"""

from __future__ import annotations

import os
import sys

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

HOPS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def init_app(app: Flask) -> None:
    hops = {name: int(app.config[f"PROXY_FIX_{name.upper()}"]) for name in HOPS}
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)


def gunicorn_argv(extra: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:idp.gunicorn_conf",
        *extra,
        "idp:create_app()",
    ]


def exec_gunicorn(settings: dict[str, object], extra: tuple[str, ...] = ()) -> None:
    """Set IDP_BIND/IDP_WORKERS/... for gunicorn_conf, then become gunicorn."""
    for name, value in settings.items():
        if value is not None:
            os.environ[f"IDP_{name.upper()}"] = str(value)
    # No MALLOC_* default: argon2 runs on one thread per worker (auth.passwords), whose
    # glibc arena keeps one 19 MiB buffer warm. A fixed MALLOC_MMAP_THRESHOLD_ (set here
    # before) gave it back after each sign-in and cost 12-15 ms of page faults a time.
    argv = gunicorn_argv(extra)
    os.execv(argv[0], argv)
