"""Where the CPU of one full sign-in goes, step by step, in-process (no network, no gunicorn).

The flow of bench/login_flow.py through Flask's test client, N times: GET /login, POST
/login (argon2id), GET /authorize (first-party client: straight to the code), POST /token
(code + PKCE). Prints the CPU per step and, for comparison, one argon2id verification
alone at the configured cost. IDP_DATABASE_URL or a temporary SQLite file, as the others.

    python bench/profile_sign_in.py [N] [BATCHES]     # best of BATCHES batches of N flows
    BENCH_PROFILE=1 python bench/profile_sign_in.py [N]   # cProfile of the whole flow
    BENCH_SQL=1 python bench/profile_sign_in.py [N]       # and the statements of one flow
    BENCH_STEP="POST /token" BENCH_PSTATS=FILE python bench/profile_sign_in.py [N]  # one step
    BENCH_CONFIG='{"NEW_DEVICE_NOTICES": false}' python bench/profile_sign_in.py [N]  # settings
    BENCH_COMPONENTS=1 python bench/profile_sign_in.py [N]   # µs per component, per step
    BENCH_RETURNING_BROWSER=1 python bench/profile_sign_in.py [N]  # a known device: no notice
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/tmp/cg.%p \
        python bench/profile_sign_in.py N 1      # instructions of N flows (as instructions.py)

With BENCH_COMPONENTS, the functions named in ``instrument`` carry the thread-CPU timers of
bench/components.py, and each step prints its request thread's CPU per flow, split into
those parts (inclusive: an entry is part of the nearest one above it with less indent).
The argon2 verification and the notice's delivery run on threads of their own: their CPU
is printed apart, per flow, and their calls of the listed functions (the mail thread's
commits, say) are not counted in any step.

Per step it also counts SQL statements and commits (through SQLAlchemy's engine events: on
PostgreSQL the driver-path token INSERT of idp/models/token_sql.py is not among them).

`idp serve` runs with MALLOC_MMAP_THRESHOLD_=33554432 and MALLOC_TRIM_THRESHOLD_=33554432
(docs/deploy.md, "Sizing"); run this script with those variables set to see their effect on
argon2's buffer.
"""

from __future__ import annotations

import base64
import collections
import cProfile
import json
import os
import pstats
import sys
import threading
import time

import argon2_alone
import components
import flows
from inprocess import service_app
from instructions import window
from sqlalchemy import event

from idp import db
from idp.auth.passwords import _sodium_verify
from idp.auth.users import create_user
from idp.oauth.clients import create_client

PASSWORD = argon2_alone.PASSWORD  # the bench user's, timed alone there too
APART = ("argon2 thread", "mail thread")  # BENCH_COMPONENTS: parts on threads of their own


def mail_idle(app) -> None:
    """Wait until this process's mail thread has delivered what the flows queued."""
    sender = app.extensions["idp.mail"]
    while sender.running:
        time.sleep(0.001)


def instrument(app) -> None:
    """bench/components.py's timers on the parts of a sign-in, in the order printed."""
    import flask.app
    import flask_login
    import flask_wtf
    import jinja2
    import sqlalchemy.orm
    from components import apply, hooks, timed

    from idp import audit, mail, serve
    from idp.account import sign_in
    from idp.auth import devices, login, mfa, session
    from idp.mail.message import EmailMessage
    from idp.oauth import authorize, grants, jwt_tokens, keys, oidc, server

    main_thread = threading.main_thread()

    def wrap(owner, name: str, label: str) -> None:
        func = getattr(owner, name)
        counted = timed(label, func)
        if label.startswith(APART):  # timed on whichever thread runs it
            setattr(owner, name, counted)
            return

        def on_the_request_thread(*args, **kwargs):
            if threading.current_thread() is main_thread:
                return counted(*args, **kwargs)
            return func(*args, **kwargs)

        setattr(owner, name, on_the_request_thread)

    flask_app = flask.app.Flask
    apply((
        (flask_app, "request_context", "Flask.request_context"),
        (serve.CookieSessions, "open_session", "  cookie session: open"),
        (app, "preprocess_request", "Flask.preprocess_request: before hooks"),
        (hooks, app, app.before_request_funcs, "  "),
        (flask_login.LoginManager, "_load_user", "  Flask-Login: the signed-in user"),
        (flask_app, "dispatch_request", "Flask.dispatch_request: the view"),
        (flask_wtf.FlaskForm, "__init__", "  FlaskForm(): the form, its CSRF token"),
        (flask_wtf.FlaskForm, "validate_on_submit", "  FlaskForm.validate_on_submit"),
        (sign_in, "authenticate", "  login.authenticate"),
        (login, "find_user", "    find_user: the user row (driver on PostgreSQL)"),
        (login.passwords, "match", "    passwords.match: waiting for the argon2 thread"),
        (mfa, "begin", "  mfa.begin"),
        (mfa, "survey", "    mfa.survey: factors and group policy"),
        (session, "start", "    session.start"),
        (session, "login_user", "      Flask-Login login_user, its signal"),
        (devices, "remember", "        devices.remember: the device row"),
        (devices, "notify", "        devices.notify: the new-device notice"),
        (mail, "render", "          mail.render: templates, headers (stdlib email)"),
        (EmailMessage, "as_string", "          EmailMessage.as_string"),
        (authorize, "finish", "  authorize.finish"),
        (grants.AuthorizationCodeGrant, "save_authorization_code", "    code INSERT, audit"),
        (server.AuthorizationServer, "create_token_response", "  Authlib's token response"),
        (jwt_tokens, "shape", "    JWT access token"),
        (oidc, "issue_id_token", "    ID token"),
        (keys, "sign", "    keys.sign: RS256 signatures"),
        (audit, "write", "  audit.write (every event but a code's on PostgreSQL)"),
        (jinja2.Template, "render", "  Jinja templates"),
        (sqlalchemy.orm.Session, "commit", "  Session.commit: flush, COMMIT"),
        (flask_app, "finalize_request", "Flask.finalize_request: after hooks"),
        (hooks, app, app.after_request_funcs, "  "),
        (serve.CookieSessions, "save_session", "  cookie session: save"),
        (app, "do_teardown_request", "Flask.do_teardown_request"),
        (flask_app, "do_teardown_appcontext", "Flask.do_teardown_appcontext"),
        # On threads of their own: counted apart, per flow.
        (login.passwords, "_sodium_verify", "argon2 thread: libsodium's check"),
        (type(app.extensions["idp.mail"]), "round", "mail thread: a delivery round"),
    ), wrap)  # fmt: skip


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    app, _ = service_app(
        ISSUER="http://127.0.0.1:8000",
        RATELIMIT_LOGIN_IP="1000000/minute",
        RATELIMIT_LOGIN_ACCOUNT="1000000/minute",
        **json.loads(os.environ.get("BENCH_CONFIG", "{}")),
    )
    with app.app_context():
        # As bench/prepare.py's user: with an address, so every flow (a new browser) queues
        # a new-device notice, and this worker's mail thread delivers it.
        create_user(
            db.session(),
            username="bench",
            password=PASSWORD,
            name="Bench",
            email="bench@example.com",
            email_verified=True,
        )
        client, secret = create_client(
            db.session(), name="rp", redirect_uris=["https://rp.example/cb"],
            grant_types=["authorization_code", "refresh_token"],
            scope="openid profile email offline_access", public=False, first_party=True,
        )  # fmt: skip
        db.session().commit()
        client_id = client.client_id
    basic = "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    names = flows.STEPS
    steps = dict.fromkeys(names, 0.0)
    statements = dict.fromkeys(names, 0)
    commits = dict.fromkeys(names, 0)
    current = [None]
    shown: list[str] = []

    @event.listens_for(db.engine(app), "before_cursor_execute")
    def _statement(_conn, _cursor, sql, *_args):
        if current[0]:
            statements[current[0]] += 1
            if os.environ.get("BENCH_SQL") and len(shown) < 100:
                shown.append(f"{current[0]:15} {' '.join(sql.split())[:150]}")

    @event.listens_for(db.engine(app), "commit")
    def _commit(_conn):
        if current[0]:
            commits[current[0]] += 1

    step_profiler = cProfile.Profile(time.process_time)
    profiled_step = os.environ.get("BENCH_STEP")  # e.g. "POST /token": dumped to BENCH_PSTATS
    by_component = bool(os.environ.get("BENCH_COMPONENTS"))
    if by_component:
        instrument(app)
    spent = components.spent
    parts = {name: collections.Counter() for name in names}  # label -> ns, in that step
    own_cpu = dict.fromkeys(names, 0)  # the request thread's CPU in each step, ns

    def step(name, call):
        current[0] = name
        started = time.process_time()
        if by_component:
            before, thread_started = dict(spent), time.thread_time_ns()
        if name == profiled_step:
            step_profiler.enable()
        answer = call()
        if name == profiled_step:
            step_profiler.disable()
        steps[name] += time.process_time() - started
        if by_component:
            own_cpu[name] += time.thread_time_ns() - thread_started
            parts[name].update({k: v - before.get(k, 0) for k, v in spent.items()})
        current[0] = None
        return answer

    device = {} if os.environ.get("BENCH_RETURNING_BROWSER") == "1" else None

    def flow():
        flows.sign_in(app, step, username="bench", password=PASSWORD, client_id=client_id,
                      redirect_uri="https://rp.example/cb", authorization=basic,
                      device=device)  # fmt: skip

    for _ in range(5):
        flow()
    if shown:
        shown.clear()
        flow()
        print("\n".join(shown))
    for name in names:  # the warm-up's parts
        parts[name].clear()
        own_cpu[name] = 0
    apart = dict(spent)  # the other threads' parts: counted over the batches, not per step
    best = None
    mail_idle(app)
    # Under callgrind only: every batch, every thread (argon2's, mail's).
    with window("sign_in"):
        for _ in range(batches):
            for name in names:
                steps[name], statements[name], commits[name] = 0.0, 0, 0
            profiler = (
                cProfile.Profile(time.process_time) if os.environ.get("BENCH_PROFILE") else None
            )
            if profiler:
                profiler.enable()
            started = time.process_time()
            for _ in range(count):
                flow()
            mail_idle(app)  # process_time counts every thread: the notices' delivery included
            total = (time.process_time() - started) / count * 1000
            if profiler:
                profiler.disable()
                stats = pstats.Stats(profiler)
                print(f"{stats.total_calls / count:.0f} function calls per flow")
                stats.sort_stats("tottime").print_stats(30)
                if os.environ.get("BENCH_PSTATS_ALL"):
                    stats.dump_stats(os.environ["BENCH_PSTATS_ALL"])
            if best is None or total < best[0]:
                best = (total, dict(steps), dict(statements), dict(commits))
    total, steps, statements, commits = best
    if by_component:
        print_parts(parts, own_cpu, {k: v - apart.get(k, 0) for k, v in spent.items()},
                    count * batches)  # fmt: skip
    if profiled_step:
        step_profiler.dump_stats(os.environ.get("BENCH_PSTATS", "/tmp/profile_step.pstats"))
    with app.app_context():
        hasher = app.extensions["idp.passwords"]
        argon2 = argon2_alone.timed(_sodium_verify, hasher.hash(PASSWORD), 20) * 1000
    threshold = os.environ.get("MALLOC_MMAP_THRESHOLD_", "unset")
    tunables = os.environ.get("GLIBC_TUNABLES", "unset")
    print(f"{count} sign-in flows (best of {batches}), CPU per flow {total:.1f} ms, "
          f"{sum(statements.values()) / count:.0f} statements, "
          f"{sum(commits.values()) / count:.0f} commits "
          f"(MALLOC_MMAP_THRESHOLD_={threshold}, GLIBC_TUNABLES={tunables}):")  # fmt: skip
    for name, seconds in steps.items():
        print(f"  {seconds / count * 1000:7.2f} ms  {statements[name] / count:4.1f} statements"
              f"  {commits[name] / count:3.1f} commits  {name}")  # fmt: skip
    print(f"  {argon2:7.2f} ms  one argon2id verification alone (in POST /login)")


def print_parts(parts: dict, own_cpu: dict, totals: dict, runs: int) -> None:
    """Each step's request-thread CPU and its parts, then the other threads', per flow."""
    for name, counter in parts.items():
        print(f"{name}: {own_cpu[name] / runs / 1000:.0f} µs of the request thread's CPU")
        for label in components.ORDER:
            if counter[label] and not label.startswith(APART):
                print(f"  {counter[label] / runs / 1000:8.0f} µs  {label}")
    for label in components.ORDER:
        if label.startswith(APART):
            print(f"{totals.get(label, 0) / runs / 1000:8.0f} µs per flow  {label}")


if __name__ == "__main__":
    main()
