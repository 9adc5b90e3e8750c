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
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

HOPS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def init_app(app: Flask) -> None:
    hops = {name: int(app.config[f"PROXY_FIX_{name.upper()}"]) for name in HOPS}
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)
    remember_ensure_sync(app)
    app.session_interface = CookieSessions()


def add_vary(response, name: str) -> None:
    """``response.vary.add(name)``: parses and rewrites the header only when there is one.

    ``response.vary`` parses the header into a set and writes it back on every ``add``;
    most answers have no Vary yet, and then the result is one appended line.
    """
    headers = response.headers
    for key, _value in headers._list:
        if key.lower() == "vary":
            response.vary.add(name)
            return
    headers._list.append(("Vary", name))  # a constant, valid header value


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer built once per key.

    Flask builds a new serializer (and its signer settings) when each request opens its
    session, cookie or not; it depends only on SECRET_KEY and SECRET_KEY_FALLBACKS, so it is
    rebuilt only when they change.

    Most requests (every API call) bring no cookie and leave the session empty: opening
    then skips parsing the cookies, and saving only adds ``Vary: Cookie`` when the session
    was read, as Flask does; anything else is Flask's own code.
    """

    _cached: tuple = (None, None)

    def open_session(self, app: Flask, request):
        if "HTTP_COOKIE" not in request.environ and app.secret_key:
            return self.session_class()  # what Flask returns for a missing cookie
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if not session and not session.modified:  # nothing to write and nothing to delete
            if session.accessed:
                add_vary(response, "Cookie")
            return
        super().save_session(app, session, response)

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached_keys, serializer = self._cached
        if cached_keys != keys:
            serializer = super().get_signing_serializer(app)
            self._cached = (keys, serializer)
        return serializer


MEMO_SIZE = 512  # hooks, views and error handlers are far fewer; past it the memo starts over


def remember_ensure_sync(app: Flask) -> None:
    """Decide once per function whether it is a coroutine function.

    Flask passes every hook, view and error handler through ``app.ensure_sync`` on every
    request (18 times a token request), and each time ``inspect.iscoroutinefunction``
    unwraps and inspects the function again. The answer for a given function object does
    not change, so the first one is kept (per-request closures such as ``after_this_request``
    functions only fill the memo until it starts over).
    """
    decide = app.ensure_sync
    memo: dict = {}

    def ensure_sync(func):
        try:
            return memo[func]
        except KeyError:
            pass
        except TypeError:  # unhashable callable
            return decide(func)
        result = decide(func)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[func] = result
        return result

    app.ensure_sync = ensure_sync


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
    # argon2 runs on one thread per worker (auth.passwords), so a worker holds at most one
    # ARGON2_MEMORY_COST buffer (19 MiB) at a time. A fixed mmap threshold gives it back to
    # the system after each sign-in (glibc would otherwise keep it in that thread's arena for
    # good: ~119 MB per worker instead of ~100); glibc's hugetlb tunable maps it with
    # transparent huge pages (THP in "madvise" or "always" mode), so faulting it in again
    # costs a few ms instead of the 12-15 ms of 4 KiB page faults (docs/benchmarks.md).
    # Set either variable yourself to choose otherwise.
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(1024 * 1024))
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb" not in tunables:
        os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, (tunables, "glibc.malloc.hugetlb=1")))
    argv = gunicorn_argv(extra)
    os.execv(argv[0], argv)
