"""Two real gunicorn workers (`idp serve --workers 2`) sharing one database.

Exactly-once code redemption (RFC 6749 §4.1.2), refresh rotation with family revocation
(RFC 9700 §4.14.2), key rotation published by every worker (OIDC Core §10.1.1), revocation
seen by every worker (RFC 7009 §2), and metrics summed over workers. Runs on PostgreSQL
when IDP_TEST_DATABASE_URL is set (in a database of its own, `<name>2`), else on SQLite.

Which worker served a request is read from the JSON access log (request id -> pid), so
each test also shows that both workers took part.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from argon2 import PasswordHasher
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from idp import create_app, db
from idp.migrate import upgrade
from idp.models import AuditEvent, SigningKey, User
from idp.oauth import keys

from ..conftest import PG_URL
from ..factories import PASSWORD, Factory
from ..helpers import kib, pkce_pair

SECRET_KEY = "workers-test-secret-key"
# Failed sign-ins of one account, all at once, in the lockout test: the lock comes at this count.
LOCKOUT_THRESHOLD = 12


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workers_database(tmp_path_factory) -> str:
    """A migrated database for the server: `<db>2` on PostgreSQL, or a SQLite file."""
    if PG_URL:
        url = make_url(PG_URL)
        name = os.environ.get("IDP_TEST_WORKERS_DATABASE") or f"{url.database}2"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        target = url.set(database=name).render_as_string(hide_password=False)
        engine = create_engine(target)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        return target
    return f"sqlite:///{tmp_path_factory.mktemp('workers')}/idp.sqlite3"


class Server:
    def __init__(self, url: str, database_url: str, log_path, process):
        self.url = url
        self.database_url = database_url
        self.log_path = log_path
        self.process = process

    def served_by(self, responses) -> set[int]:
        """The pids of the workers that answered these responses (from the access log)."""
        wanted = {r.headers["X-Request-Id"] for r in responses}
        pids = set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = {}
            for line in self.log_path.read_text().splitlines():
                if line.startswith("{") and '"idp.access"' in line:
                    entry = json.loads(line)
                    found[entry.get("request_id")] = entry["pid"]
            if wanted <= set(found):
                pids = {found[w] for w in wanted}
                break
            time.sleep(0.05)
        return pids


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # Each worker on a socket of its own: the kernel hands every new connection to either
    # worker by its address (a new source port each time), so two requests sent at once
    # reach two workers half the time. On one shared socket, whichever worker wakes first
    # may accept both, and under a loaded test run it did, in 12 tries of 12.
    with running(tmp_path_factory, workers_database(tmp_path_factory), "--reuse-port") as started:
        yield started


@contextlib.contextmanager
def running(tmp_path_factory, database_url: str, *options: str):
    """`idp serve --workers 2` (and ``options``) on a migrated database, until the block ends."""
    folder = tmp_path_factory.mktemp("server")
    config = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "ISSUER": "http://127.0.0.1"}
    app = create_app(config)
    upgrade(app)
    with app.app_context():
        keys.ensure_keys(db.session())
        db.session().commit()
    db.engine(app).dispose()

    port = free_port()
    env = {
        **os.environ,
        "IDP_INSTANCE_PATH": str(folder),
        "IDP_DATABASE_URL": database_url,
        "IDP_SECRET_KEY": SECRET_KEY,
        "IDP_ISSUER": f"http://127.0.0.1:{port}",
        "IDP_KEY_CACHE_SECONDS": "1",
        "IDP_RATELIMIT_ENABLED": "false",
        "IDP_LOCKOUT_THRESHOLD": str(LOCKOUT_THRESHOLD),
        "IDP_MFA_REQUIRED_FOR_ADMINS": "false",  # admins sign in with a password here
        "IDP_ARGON2_RELEASE_AFTER_IDLE": "2",  # argon2's buffer released after 2 idle s
        "IDP_LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(folder / "metrics"),
    }
    env.pop("IDP_TEST_DATABASE_URL", None)
    log_path = folder / "server.log"
    command = [sys.executable, "-c", "from idp.cli import main; main()", "serve",
               "--workers", "2", "--bind", f"127.0.0.1:{port}", *options]  # fmt: skip
    with log_path.open("w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url + "/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "server did not start: " + log_path.read_text()
            time.sleep(0.1)
        yield Server(url, database_url, log_path, process)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def rows(server):
    """A user and a first-party confidential client in the server's database."""
    app = create_app({"DATABASE_URL": server.database_url, "SECRET_KEY": SECRET_KEY,
                      "ISSUER": server.url, "TESTING": True})  # fmt: skip
    with app.app_context():
        factory = Factory(app)
        factory.user(username="walt")
        registered = factory.client(
            first_party=True,
            grant_types=("authorization_code", "refresh_token", "client_credentials"),
            scope="openid profile api",
        )
    yield registered
    db.engine(app).dispose()


@pytest.fixture(scope="module")
def stale_users(server) -> list[list[str]]:
    """Three batches of eight users whose passwords were hashed with an older time cost:
    each one's first sign-in rehashes it (argon2-cffi, on the worker)."""
    app = create_app({"DATABASE_URL": server.database_url, "SECRET_KEY": SECRET_KEY,
                      "ISSUER": server.url, "TESTING": True})  # fmt: skip
    stale = PasswordHasher(memory_cost=19456, time_cost=1, parallelism=1).hash(PASSWORD)
    batches = [[f"stale-{b}-{i}" for i in range(8)] for b in range(3)]
    with app.app_context():
        session = db.session()
        for name in (n for batch in batches for n in batch):
            session.add(User(username=name, password_hash=stale))
        session.commit()
    db.engine(app).dispose()
    return batches


def at_once(n: int, action) -> list:
    """Run action(i) in n threads released together; returns the n results."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait(timeout=10)
            results[i] = action(i)
        except BaseException as exc:  # reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    for result in results:
        assert not isinstance(result, BaseException), repr(result)
    return results


def until_both_workers_answered(server, burst, rounds: int = 12) -> list:
    """Repeat ``burst()`` (requests at once, checked inside) until the two workers have
    answered between them; every burst's responses. One burst may land on one worker alone:
    a gthread worker takes several connections at a time."""
    responses, workers = [], set()
    for _ in range(rounds):
        batch = burst()
        responses += batch
        workers |= server.served_by(batch)
        if len(workers) == 2:
            return responses
    raise AssertionError(f"{rounds} bursts all served by worker {workers}")


def form_token(page: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def together(*actions) -> list:
    """Run the zero-argument actions at once, one thread each; returns their results."""
    return at_once(len(actions), lambda i: actions[i]())


def sign_in(server, username: str = "walt") -> requests.Session:
    browser = requests.Session()
    token = form_token(browser.get(server.url + "/login").text)
    answer = browser.post(
        server.url + "/login",
        data={"csrf_token": token, "username": username, "password": PASSWORD, "next": ""},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    return browser


@contextlib.contextmanager
def server_app(server):
    """An app on the server's database, in an app context: another process's view of it."""
    app = create_app({"DATABASE_URL": server.database_url, "SECRET_KEY": SECRET_KEY,
                      "ISSUER": server.url, "TESTING": True})  # fmt: skip
    try:
        with app.app_context():
            yield app
    finally:
        db.engine(app).dispose()


def get_code(server, browser, registered) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    answer = browser.get(
        server.url + "/authorize",
        params={
            "response_type": "code",
            "client_id": registered.client_id,
            "redirect_uri": registered.redirect_uri,
            "scope": "openid profile",
            "state": "s",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },  # fmt: skip
        allow_redirects=False,
    )
    assert answer.status_code == 302, answer.text[:500]
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0], verifier


def token_request(server, registered, data: dict) -> requests.Response:
    return requests.post(
        server.url + "/token", data=data, auth=(registered.client_id, registered.client_secret)
    )


def introspect(server, registered, token: str) -> requests.Response:
    return requests.post(
        server.url + "/introspect",
        data={"token": token},
        auth=(registered.client_id, registered.client_secret),
    )


def outcome(responses) -> Counter:
    return Counter(
        "ok" if r.status_code == 200 else f"{r.status_code} {r.json().get('error')}"
        for r in responses
    )


def test_a_code_redeemed_twice_at_once_on_two_workers_succeeds_once(server, rows):
    # RFC 6749 §4.1.2: a code is used once, even when two workers get it at the same time.
    browser = sign_in(server)
    workers = set()
    for _ in range(20):  # until the two requests have been on different workers at least once
        code, verifier = get_code(server, browser, rows)
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": rows.redirect_uri}  # fmt: skip
        responses = at_once(2, lambda _i, data=data: token_request(server, rows, data))
        assert outcome(responses) == Counter({"ok": 1, "400 invalid_grant": 1})
        # §4.1.2: the replay revokes the winner's tokens, even if they were stored after it.
        (winner,) = [r.json() for r in responses if r.status_code == 200]
        assert introspect(server, rows, winner["access_token"]).json() == {"active": False}
        workers = server.served_by(responses)
        if len(workers) == 2:
            break
    assert len(workers) == 2


def test_a_refresh_race_on_two_workers_has_one_winner_and_revokes_the_family(server, rows):
    # RFC 9700 §4.14.2: of two uses of one refresh token, one gets new tokens; the other is
    # a reuse, so the whole family is revoked, the winner's new tokens included.
    browser = sign_in(server)
    workers = set()
    for _ in range(20):
        code, verifier = get_code(server, browser, rows)
        first = token_request(server, rows, {
            "grant_type": "authorization_code", "code": code, "code_verifier": verifier,
            "redirect_uri": rows.redirect_uri,
        }).json()  # fmt: skip
        data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        responses = at_once(2, lambda _i, data=data: token_request(server, rows, data))
        assert outcome(responses) == Counter({"ok": 1, "400 invalid_grant": 1})
        (winner,) = [r.json() for r in responses if r.status_code == 200]
        assert introspect(server, rows, winner["access_token"]).json() == {"active": False}
        again = token_request(
            server, rows, {"grant_type": "refresh_token", "refresh_token": winner["refresh_token"]}
        )
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        assert introspect(server, rows, first["access_token"]).json() == {"active": False}
        workers = server.served_by(responses)
        if len(workers) == 2:
            break
    assert len(workers) == 2


@pytest.fixture(scope="module")
def third_party(server, rows):
    """A client that is not first-party: the user's consent is its grant."""
    app = create_app({"DATABASE_URL": server.database_url, "SECRET_KEY": SECRET_KEY,
                      "ISSUER": server.url, "TESTING": True})  # fmt: skip
    with app.app_context():
        registered = Factory(app).client(name="Third", scope="openid profile")
    yield registered
    db.engine(app).dispose()


def csrf_of(response: requests.Response) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', response.text).group(1)


def consent_page(server, browser, registered) -> tuple[str, str, str]:
    """GET /authorize up to the consent page: (its URL, its CSRF token, the verifier)."""
    verifier, challenge = pkce_pair()
    answer = browser.get(
        server.url + "/authorize",
        params={"response_type": "code", "client_id": registered.client_id,
                "redirect_uri": registered.redirect_uri, "scope": "openid profile",
                "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"},
        allow_redirects=False,
    )  # fmt: skip
    assert answer.status_code == 200 and 'name="allow"' in answer.text, answer.text[:300]
    return answer.url, csrf_of(answer), verifier


def new_code(server, browser, registered) -> tuple[str, str]:
    """A code for the client, through the consent page if it shows: (code, verifier)."""
    verifier, challenge = pkce_pair()
    answer = browser.get(
        server.url + "/authorize",
        params={"response_type": "code", "client_id": registered.client_id,
                "redirect_uri": registered.redirect_uri, "scope": "openid profile",
                "state": "s", "code_challenge": challenge, "code_challenge_method": "S256"},
        allow_redirects=False,
    )  # fmt: skip
    if answer.status_code == 200:
        answer = allow(browser, answer.url, csrf_of(answer))
    return code_of(answer), verifier


def allow(browser, url: str, token: str) -> requests.Response:
    return browser.post(url, data={"csrf_token": token, "allow": "Allow"}, allow_redirects=False)


def code_of(answer: requests.Response) -> str:
    assert answer.status_code == 302, answer.text[:300]
    return parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]


def assert_dead(server, registered, answer: requests.Response) -> None:
    """A token response of a grant that ended: refused, or tokens that do not work."""
    if answer.status_code != 200:
        assert answer.json()["error"] == "invalid_grant"
        return
    body = answer.json()
    assert introspect(server, registered, body["access_token"]).json() == {"active": False}
    again = token_request(
        server, registered, {"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_two_first_consents_at_once_both_succeed(server, third_party):
    # Issue 19 §7: two first consents of one user to one client at once (two tabs) both
    # answer with a code, never a 500 from the unique (user, client) constraint.
    for _ in range(3):
        pages = []
        for _tab in range(2):
            browser = sign_in(server)
            pages.append((browser, *consent_page(server, browser, third_party)))
        answers = together(*(partial(allow, *page[:3]) for page in pages))
        assert [a.status_code for a in answers] == [302, 302], [a.text[:300] for a in answers]
        revoke_consent(server, pages[0][0], third_party)


def revoke_consent(server, browser, registered) -> requests.Response:
    page = browser.get(server.url + "/account/")
    answer = browser.post(
        server.url + f"/account/apps/{registered.client_id}/revoke",
        data={"csrf_token": csrf_of(page)},
        allow_redirects=False,
    )
    assert answer.status_code == 302
    return answer


def sign_out(server, browser) -> requests.Response:
    page = browser.get(server.url + "/logout")
    answer = browser.post(
        server.url + "/logout", data={"csrf_token": csrf_of(page)}, allow_redirects=False
    )
    assert answer.status_code in (200, 302)
    return answer


def test_a_sign_out_racing_a_redemption_leaves_no_working_token(server, third_party):
    # Issue 19 §1: the session's tokens end with it, also those stored while it ended.
    for _ in range(5):
        browser = sign_in(server)
        code, verifier = new_code(server, browser, third_party)
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": third_party.redirect_uri}  # fmt: skip
        redeemed, _ = together(
            partial(token_request, server, third_party, data), partial(sign_out, server, browser)
        )
        assert_dead(server, third_party, redeemed)


def test_revoking_access_racing_a_redemption_leaves_no_working_token(server, third_party):
    # Issue 19 §3: "The application's tokens no longer work", the ones in flight included.
    browser = sign_in(server)
    for _ in range(5):
        code, verifier = new_code(server, browser, third_party)
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": third_party.redirect_uri}  # fmt: skip
        redeemed, _ = together(
            partial(token_request, server, third_party, data),
            partial(revoke_consent, server, browser, third_party),
        )
        assert_dead(server, third_party, redeemed)


def jwks_round(server, n=6) -> list[requests.Response]:
    return at_once(n, lambda _i: requests.get(server.url + "/jwks.json"))


def test_a_key_rotated_through_one_process_is_published_by_every_worker(server, rows):
    # OIDC Core §10.1.1: a new signing key must be in the JWKS that every worker serves
    # (KEY_CACHE_SECONDS=1 here). The rotation is done by another process (the CLI's code).
    before = jwks_round(server)
    old_kids = {k["kid"] for k in before[0].json()["keys"]}
    assert all({k["kid"] for k in r.json()["keys"]} == old_kids for r in before)
    app = create_app({"DATABASE_URL": server.database_url, "SECRET_KEY": SECRET_KEY,
                      "ISSUER": server.url})  # fmt: skip
    with app.app_context():
        session = db.session()
        new_kids = {row.kid for row in keys.rotate(session, 3600)}
        session.commit()
        assert session.query(SigningKey).count() == len(old_kids) + len(new_kids)
    db.engine(app).dispose()

    # Until a round that both workers answered, each with the new keys (and the retired ones
    # in grace). A round answered by one worker proves nothing of the other's cache, which
    # may still be up to KEY_CACHE_SECONDS old: the next round is asked then.
    deadline = time.monotonic() + 10
    while True:
        responses = jwks_round(server, 10)
        published = [{k["kid"] for k in r.json()["keys"]} for r in responses]
        everywhere = all(new_kids | old_kids <= kids for kids in published)
        if everywhere and len(server.served_by(responses)) == 2:
            break
        assert time.monotonic() < deadline, published
        time.sleep(0.2)


def test_a_revocation_through_one_worker_is_seen_by_every_worker(server, rows):
    # RFC 7009 §2: once revoked, the token is invalid everywhere at once (no per-worker cache).
    token = token_request(server, rows, {"grant_type": "client_credentials", "scope": "api"})
    access_token = token.json()["access_token"]
    active = at_once(6, lambda _i: introspect(server, rows, access_token))
    assert all(r.json()["active"] is True for r in active)
    revoked = requests.post(
        server.url + "/revoke",
        data={"token": access_token},
        auth=(rows.client_id, rows.client_secret),
    )
    assert revoked.status_code == 200

    def inactive() -> list:
        after = at_once(8, lambda _i: introspect(server, rows, access_token))
        assert all(r.json() == {"active": False} for r in after)
        return after

    until_both_workers_answered(server, inactive)  # each worker, after the revocation


def test_metrics_add_up_the_requests_of_every_worker(server, rows):
    # prometheus-client multiprocess mode: any worker's /metrics counts both workers' work.
    def count() -> float:
        body = requests.get(server.url + "/metrics").text
        match = re.search(
            r'idp_http_requests_total\{endpoint="healthz",method="GET",status="200"\} (\S+)', body
        )
        return float(match.group(1)) if match else 0.0

    before = count()
    sent = until_both_workers_answered(
        server, lambda: at_once(10, lambda _i: requests.get(server.url + "/healthz"))
    )
    assert count() - before == len(sent)


def test_each_request_writes_one_access_line(server):
    # gunicorn's logconfig gives the root logger a handler too; the idp loggers have their
    # own, so a record that also propagated to root was written twice.
    responses = [requests.get(server.url + "/healthz", timeout=5) for _ in range(3)]
    assert len(server.served_by(responses)) >= 1  # waits until the lines are written
    time.sleep(0.2)  # a second copy would follow at once
    ids = [answer.headers["X-Request-Id"] for answer in responses]
    entries = [json.loads(line) for line in server.log_path.read_text().splitlines()
               if line.startswith("{")]  # fmt: skip
    lines = Counter(e.get("request_id") for e in entries if e.get("logger") == "idp.access")
    assert [lines[request_id] for request_id in ids] == [1, 1, 1]


def test_workers_run_threads_and_hold_one_argon2_buffer_at_a_time(server, rows, stale_users):
    # docs/deploy.md: gthread workers (4 threads) by default. auth/passwords.py runs argon2
    # on one thread per worker, so a worker whose four threads sign in at once holds one
    # ARGON2_MEMORY_COST buffer (19 MiB) at a time, not four (~165 MB). A sign-in's check
    # (libsodium) unmaps its buffer at once; a hash (argon2-cffi: here the rehash of a
    # password stored with older parameters) leaves it in the argon2 thread's arena, kept by
    # idp serve's fixed malloc thresholds, until no password was hashed for
    # ARGON2_RELEASE_AFTER_IDLE seconds (2 here; docs/architecture.md, "Hot paths").
    buffer_kib, most_kib = 19456, 140 * 1024

    def sign_ins(usernames: list[str]) -> list[requests.Response]:
        def one(i):
            browser = requests.Session()
            token = form_token(browser.get(server.url + "/login").text)
            form = {"csrf_token": token, "username": usernames[i], "password": PASSWORD}
            return browser.post(server.url + "/login", data=form, allow_redirects=False)

        responses = at_once(len(usernames), one)
        assert [r.status_code for r in responses] == [302] * len(usernames)
        return responses

    walt = ["walt"] * 8
    warm = server.served_by(sign_ins(walt) + sign_ins(walt))
    time.sleep(3)  # past ARGON2_RELEASE_AFTER_IDLE: nothing of argon2's held from before
    before = {pid: kib(pid, "VmRSS") for pid in warm}
    served = set()
    for _ in range(3):
        served |= server.served_by(sign_ins(walt))
    for pid in served & warm:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"MALLOC_MMAP_THRESHOLD_=33554432" in environ
        assert b"MALLOC_TRIM_THRESHOLD_=33554432" in environ
        # ... and no glibc tunable of its own (huge pages cost RSS for no speed: serve.py)
        tunables = [e for e in environ if e.startswith(b"GLIBC_TUNABLES=")]
        mine = os.environ.get("GLIBC_TUNABLES")
        assert tunables == ([f"GLIBC_TUNABLES={mine}".encode()] if mine is not None else [])
        assert kib(pid, "VmHWM") < most_kib, (kib(pid, "VmHWM"), before[pid])
        # at most one buffer (and a little) at a time, never two or four ...
        peak = kib(pid, "VmHWM") - before[pid]
        assert peak < buffer_kib * 3 // 2, (kib(pid, "VmHWM"), before[pid])
        # ... and the checks' buffers not kept: straight after 24 sign-ins, no buffer more
        assert kib(pid, "VmRSS") - before[pid] < buffer_kib // 2, (kib(pid, "VmRSS"), before)
    held: dict[int, int] = {}
    for batch in stale_users:  # until a batch reaches a warm worker (one may take them all)
        last = server.served_by(sign_ins(batch))  # each a rehash: a new argon2-cffi hash
        held = {pid: kib(pid, "VmRSS") for pid in last & warm}
        if held:
            break
    assert held
    for pid in held:  # the hash's buffer is kept while passwords keep coming ...
        assert held[pid] - before[pid] > buffer_kib * 3 // 4, (held, before)
    # ... and given back once the worker is idle.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(
        kib(pid, "VmRSS") > held[pid] - buffer_kib * 3 // 4 for pid in held
    ):
        time.sleep(0.5)
    assert all(kib(pid, "VmRSS") <= held[pid] - buffer_kib * 3 // 4 for pid in held), held
    log = server.log_path.read_text()
    assert "Using worker: gthread" in log


def test_failed_sign_ins_at_once_on_two_workers_are_each_counted(server, rows):
    # auth/login.py counts failures with UPDATE ... RETURNING so that workers lose no count
    # (RFC 6819 §5.1.4.2.3: lock out password guessing). A read-modify-write would let two
    # concurrent failures write the same number. The lock comes with the threshold-th failure.
    for attempt in range(8):  # a new account each time, until the guesses met both workers
        name = f"guessed{attempt}"
        with server_app(server) as app:
            Factory(app).user(username=name)
        browsers = [requests.Session() for _ in range(LOCKOUT_THRESHOLD)]
        tokens = [form_token(b.get(server.url + "/login").text) for b in browsers]

        def guess(i: int, name=name, browsers=browsers, tokens=tokens) -> requests.Response:
            data = {"csrf_token": tokens[i], "username": name, "password": "not it", "next": ""}
            return browsers[i].post(server.url + "/login", data=data, allow_redirects=False)

        responses = at_once(LOCKOUT_THRESHOLD, guess)
        assert [r.status_code for r in responses] == [401] * LOCKOUT_THRESHOLD
        with server_app(server):
            session = db.session()
            user = session.scalar(select(User).where(User.username == name))
            assert user.failed_logins == LOCKOUT_THRESHOLD
            assert user.locked_until is not None
            locked = session.scalars(
                select(AuditEvent).where(
                    AuditEvent.event == "login.locked", AuditEvent.actor == user.sub
                )
            ).all()
            assert [e.details["failures"] for e in locked] == [LOCKOUT_THRESHOLD]
        if len(server.served_by(responses)) == 2:
            break
    assert len(server.served_by(responses)) == 2
    # Locked now: even the right password is refused.
    token = form_token(browsers[0].get(server.url + "/login").text)
    answer = browsers[0].post(server.url + "/login", allow_redirects=False, data={
        "csrf_token": token, "username": name, "password": PASSWORD, "next": ""})  # fmt: skip
    assert answer.status_code == 401


def test_two_admins_demoting_each_other_on_two_workers_leave_one_admin(server, rows):
    # idp/admin/users.py: at least one enabled admin remains, even when two admins on two
    # workers take each other's role at the same moment (the admins' rows are locked).
    with server_app(server) as app:
        factory = Factory(app)
        admins = [factory.user(username=f"boss{i}", is_admin=True).id for i in (1, 2)]
    browsers = [sign_in(server, f"boss{i}") for i in (1, 2)]
    tokens = [form_token(b.get(server.url + "/logout").text) for b in browsers]
    targets = [admins[1], admins[0]]  # each demotes the other

    def demote(i: int) -> requests.Response:
        path = f"{server.url}/admin/users/{targets[i]}/admin/revoke"
        # A new connection each time, so that either worker may take either request.
        return browsers[i].post(path, data={"csrf_token": tokens[i]}, allow_redirects=False,
                                headers={"Connection": "close"})  # fmt: skip

    workers: set[int] = set()
    for round_ in range(1, 9):
        responses = at_once(2, demote)
        # 302 whether done or refused; 403 when the other's demotion was committed before
        # this request's role check.
        assert sorted(r.status_code for r in responses) in ([302, 302], [302, 403])
        with server_app(server):
            session = db.session()
            left = session.scalars(
                select(User.username).where(User.is_admin.is_(True), User.disabled.is_(False))
            ).all()
            assert len(left) == 1, left
            revoked = session.scalars(
                select(AuditEvent).where(AuditEvent.event == "admin.user.admin_revoked")
            ).all()
            # One demotion a round went through, the other was refused (the log is append-only).
            assert len(revoked) == round_
            session.execute(update(User).where(User.id.in_(admins)).values(is_admin=True))
            session.commit()
        workers |= server.served_by(responses)
    assert len(workers) == 2


ROUNDS = 6  # each round: a sign-in, a consent, the race, an enable


def test_disabling_a_user_racing_a_redemption_leaves_no_working_token(server, third_party):
    # Issue 19 §2: a token stored while an admin disables its user is revoked too, and stays
    # revoked when the user is enabled again (revocation, not only a check of `disabled`).
    with server_app(server) as app:
        factory = Factory(app)
        factory.user(username="chief", is_admin=True)
        user_id = factory.user(username="dora").id
    admin = sign_in(server, "chief")
    token = form_token(admin.get(server.url + "/logout").text)

    def disable() -> requests.Response:
        answer = admin.post(f"{server.url}/admin/users/{user_id}/disable",
                            data={"csrf_token": token}, allow_redirects=False)  # fmt: skip
        assert answer.status_code == 302, answer.text[:300]
        return answer

    answers = []
    for _ in range(ROUNDS):
        browser = sign_in(server, "dora")
        code, verifier = new_code(server, browser, third_party)
        data = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier,
                "redirect_uri": third_party.redirect_uri}  # fmt: skip
        redeemed, _ = together(partial(token_request, server, third_party, data), disable)
        answers.append(redeemed)
        enabled = admin.post(f"{server.url}/admin/users/{user_id}/enable",
                             data={"csrf_token": token}, allow_redirects=False)  # fmt: skip
        assert enabled.status_code == 302
    # Checked after the user is enabled again: nothing of the disabled grant comes back.
    for redeemed in answers:
        assert_dead(server, third_party, redeemed)
