"""Where one request's CPU goes, per component, in µs: each of Flask's phases, each hook,
and the parts of the view (client authentication, the statement, the signature).

    python bench/components.py [N] [scenario ...]   # token introspect userinfo refresh

Each listed function is wrapped in a timer of the calling thread's CPU clock
(``time.thread_time_ns``); N requests are replayed in-process as ``wsgi_cpu.py`` replays
them (no network, no gunicorn), and each component's CPU is printed divided by N. The
figures are inclusive, and an entry is part of the nearest entry above it with less
indent. Unlike cProfile, which times every Python call and inflates small ones several
times over, only these ~35 functions carry a timer (~0.3 µs each), so the parts add up to
the request's own CPU. Waiting for the database is not CPU and is not counted; nor is the
log writer's thread, which formats and writes the access line.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time

import flask.app
from authlib.oauth2.rfc6749 import authorization_server
from authlib.oauth2.rfc6749.grants import base as grant_base
from inprocess import service_app
from joserfc import jwt
from wsgi_cpu import all_scenarios, call, warm_up

from idp import db, serve
from idp.oauth import grants, jwt_tokens, keys, oidc, routes, server, tokens

CPU = time.thread_time_ns
spent: collections.Counter[str] = collections.Counter()
calls: collections.Counter[str] = collections.Counter()
ORDER: list[str] = []  # labels in the order they are printed (nested ones indented)


def timed(label: str, func):
    if label not in ORDER:
        ORDER.append(label)

    def wrapper(*args, **kwargs):
        started = CPU()
        try:
            return func(*args, **kwargs)
        finally:
            spent[label] += CPU() - started
            calls[label] += 1

    return wrapper


def wrap(owner, name: str, label: str) -> None:
    setattr(owner, name, timed(label, getattr(owner, name)))


def hooks(app, funcs: dict, indent: str) -> None:
    for chain in funcs.values():
        chain[:] = [timed(f"{indent}hook {hook.__qualname__}", hook) for hook in chain]
    app.extensions[serve.HOOK_CHAINS].clear()  # made again from the lists at the next request


def apply(parts, wrapper=wrap) -> None:
    """Put the timers of ``parts`` in place, in order: an ``(owner, name, label)`` wraps a
    function with ``wrapper``, a ``(hooks, app, funcs, indent)`` each hook of an app's
    chains."""
    for part in parts:
        if part[0] is hooks:
            hooks(*part[1:])
        else:
            wrapper(*part)


def instrument(app) -> None:
    """Timers on the phases and parts, registered in the order they are printed."""
    flask_app = flask.app.Flask
    authlib_server = authorization_server.AuthorizationServer
    validating = [
        (value, "validate_token_request", "      grant validation")
        for value in vars(grants).values()
        if isinstance(value, type) and "validate_token_request" in vars(value)
    ]
    apply((
        (flask_app, "request_context", "Flask.request_context: Request, URL adapter"),
        (flask_app, "full_dispatch_request", "Flask.full_dispatch_request"),
        (app, "preprocess_request", "  Flask.preprocess_request"),
        (hooks, app, app.before_request_funcs, "    "),
        (flask_app, "dispatch_request", "  Flask.dispatch_request: the view"),
        (routes, "_form_error", "    form check"),
        (authlib_server, "create_token_response", "    Authlib's token response"),
        (authlib_server, "get_token_grant", "      grant look-up"),
        *validating,
        (server.AuthorizationServer, "authenticate_client", "        client authentication"),
        (grant_base.BaseGrant, "generate_token", "      token generation"),
        (jwt_tokens, "shape", "      JWT access token: claims, signature"),
        (keys, "sign", "        of which keys.sign"),
        (tokens, "insert", "      INSERT of a token"),
        (oidc, "issue_id_token", "      ID token: claims, signature"),
        (server.AuthorizationServer, "handle_response", "      JSON answer"),
        (jwt, "encode", "      every signature: joserfc.jwt.encode, RSA included"),
        (db.Prepared, "one", "    any driver statement: db.Prepared.one"),
        (db.Prepared, "run", "      of which libpq: db.Prepared.run"),
        (flask_app, "finalize_request", "  Flask.finalize_request"),
        (flask_app, "make_response", "    Flask.make_response"),
        (app, "process_response", "    Flask.process_response"),
        (hooks, app, app.after_request_funcs, "      "),
        (app, "do_teardown_request", "Flask.do_teardown_request"),
        (flask_app, "do_teardown_appcontext", "Flask.do_teardown_appcontext"),
    ))  # fmt: skip


def main() -> None:
    args = sys.argv[1:]
    count = int(args.pop(0)) if args and args[0].isdigit() else 2000
    app, basic = service_app(**json.loads(os.environ.get("BENCH_CONFIG", "{}")))
    scenarios = all_scenarios(app, basic, count)
    instrument(app)
    for name in args or ("token", "introspect", "userinfo", "refresh"):
        request = scenarios[name]
        warm_up(app, name, request)
        spent.clear()
        calls.clear()
        started = CPU()
        for _ in range(count):
            call(app, request)
        total = (CPU() - started) / count / 1000
        print(f"{name}: {total:.1f} µs of CPU per request (timers included)")
        for label in ORDER:
            if calls[label]:
                per = spent[label] / count / 1000
                print(f"  {per:8.1f} µs  {calls[label] / count:4.1f}×  {label}")
    db.engine(app).dispose()


if __name__ == "__main__":
    main()
