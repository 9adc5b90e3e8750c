"""Structured JSON logs with a request id (X-Request-Id), never containing secrets or tokens.

OWASP Logging Cheat Sheet ("Data to exclude": access tokens, session ids, passwords...);
RFC 6749 §10.3/§10.4 (tokens and codes are credentials); RFC 6819 §5.1.4.1.3.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from queue import SimpleQueue

import pytest
from flask import g
from sqlalchemy import select

from idp import db, logs
from idp.logs import AccessRecord, BackgroundHandler, JsonFormatter, TextFormatter, scrub
from idp.models import Client
from idp.oauth import logout
from idp.oauth.registration import create_initial_access_token

from ..factories import PASSWORD
from ..grants.conftest import (
    DEVICE_GRANT,
    assertion,
    client_assertion_form,
    device_authorization,
    poll,
    secret_key,
)
from ..grants.test_device import enter_code
from ..grants.test_par import auth_params, authorize_with, push
from ..helpers import basic_auth, query
from ..registration.rp import Registrar, metadata
from ..sessions.receiver import Receiver


@pytest.fixture
def log_lines():
    """Every record written through the `idp` loggers, formatted as production writes it."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("idp", "werkzeug", "authlib", "sqlalchemy")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("idp").setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_every_response_carries_a_request_id(client):
    ids = set()
    for path in ("/healthz", "/login", "/nowhere", "/.well-known/openid-configuration"):
        response = client.get(path)
        request_id = response.headers["X-Request-Id"]
        assert 16 <= len(request_id) <= 64
        ids.add(request_id)
    assert len(ids) == 4
    refused = client.post("/token", data={"grant_type": "x"})  # an error answer has one too
    assert refused.headers["X-Request-Id"]


def test_a_well_formed_request_id_from_the_proxy_is_kept(client, log_lines):
    response = client.get("/healthz", headers={"X-Request-Id": "nginx-4f2a9c.17"})
    assert response.headers["X-Request-Id"] == "nginx-4f2a9c.17"
    (access,) = [line for line in log_lines() if line["logger"] == "idp.access"]
    assert access["request_id"] == "nginx-4f2a9c.17"


def test_a_malformed_request_id_is_replaced(client):
    # A client-chosen id must not be able to forge log lines.
    for sent in ("has space", "x" * 65, "evil\\nline", 'a"b', ""):
        response = client.get("/healthz", headers={"X-Request-Id": sent})
        assert response.headers["X-Request-Id"] != sent
        assert len(response.headers["X-Request-Id"]) == 32


def test_log_lines_are_json_with_request_id_and_no_query_string(client, log_lines):
    client.get("/authorize?client_id=abc&state=s3cr3t-state&login_hint=alice%40example.com")
    lines = log_lines()
    access = [line for line in lines if line["logger"] == "idp.access"]
    assert access and access[0]["path"] == "/authorize"
    assert {"ts", "level", "message", "request_id", "status", "duration_ms", "pid"} <= set(
        access[0]
    )
    text = json.dumps(lines)
    assert "s3cr3t-state" not in text and "alice@example.com" not in text
    assert access[0]["method"] == "GET" and access[0]["endpoint"] == "oauth.authorize"
    assert access[0]["remote_addr"] == "127.0.0.1" and access[0]["status"] == 400


def test_an_access_line_masks_a_credential_in_the_path(client, log_lines):
    client.get("/cb/access_token=eyJhbGciOiJSUzI1NiJ9")  # a careless client's URL
    access = [line for line in log_lines() if line["logger"] == "idp.access"]
    assert access[0]["path"] == "/cb/access_token=[redacted]"
    assert "eyJhbGciOiJSUzI1NiJ9" not in json.dumps(access)


@pytest.mark.config(RATELIMIT_ENABLED=False)
def test_a_full_flow_leaves_no_secret_in_the_logs(app, client, auth, user, factory, log_lines):
    # Sign-in, consent, code, tokens, userinfo, refresh, introspection, revocation and
    # client credentials: none of the credentials exchanged may appear in any log line.
    rp = factory.client()
    service = factory.client(grant_types=("client_credentials",), scope="api")
    assert auth.login("alice", PASSWORD).status_code == 302
    code, verifier, _ = auth.get_code(rp)
    exchanged = auth.exchange(rp, code, verifier)
    assert exchanged.status_code == 200
    tokens = exchanged.get_json()
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    assert client.get("/userinfo", headers=bearer).status_code == 200
    refreshed = auth.token(
        rp, {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).get_json()
    introspected = client.post(
        "/introspect",
        data={"token": refreshed["access_token"]},
        headers=basic_auth(rp.client_id, rp.client_secret),
    )
    assert introspected.get_json()["active"] is True
    revoke = client.post(
        "/revoke",
        data={"token": refreshed["refresh_token"]},
        headers=basic_auth(rp.client_id, rp.client_secret),
    )
    assert revoke.status_code == 200
    machine = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(service.client_id, service.client_secret),
    ).get_json()
    # A failed sign-in with a password-looking value must not log it either.
    auth.login("alice", "wrong-" + PASSWORD)

    lines = log_lines()
    assert len(lines) > 10
    assert any(line["logger"] == "idp.security" for line in lines)
    text = json.dumps(lines)
    secrets_seen = {
        "password": PASSWORD,
        "code": code,
        "code_verifier": verifier,
        "access_token": tokens["access_token"],
        "refresh_token": tokens["refresh_token"],
        "id_token": tokens["id_token"],
        "refreshed access_token": refreshed["access_token"],
        "refreshed refresh_token": refreshed["refresh_token"],
        "client_secret": rp.client_secret,
        "service client_secret": service.client_secret,
        "client_credentials access_token": machine["access_token"],
    }
    leaked = [name for name, value in secrets_seen.items() if value in text]
    assert leaked == []
    # Every line written during a request has that request's id.
    assert all("request_id" in line for line in lines if line["logger"] == "idp.access")


def test_formatter_masks_credentials_a_careless_message_might_carry():
    assert scrub("POST /cb?code=abc123&state=x") == "POST /cb?code=[redacted]&state=x"
    # RFC 9126 §2.2: a request_uri, as a parameter or on its own.
    assert scrub("GET /authorize?request_uri=urn%3Aietf%3Aparams&client_id=c") == (
        "GET /authorize?request_uri=[redacted]&client_id=c"
    )
    assert scrub("urn:ietf:params:oauth:request_uri:AbC-123_x") == (
        "urn:ietf:params:oauth:request_uri:[redacted]"
    )
    assert scrub('{"access_token": "eyJhbGciOi"}') == '{"access_token": "[redacted]"}'
    assert scrub("Authorization: Bearer abcdefghijkl") == "Authorization: Bearer [redacted]"
    assert scrub("client_secret=s3cr3t password=hunter2") == (
        "client_secret=[redacted] password=[redacted]"
    )


@pytest.mark.parametrize(
    "text",
    [
        "POST /token 200",
        "GET /userinfo",
        "BEARER /abcdefghijk 200",  # a method is any token: scheme and path in one line
        "GET /x?Authorization=Basic%20abcdefghijkl",
        "dpop\tabcdefghijkl",
        "Baſic abcdefghijkl",  # IGNORECASE matches "ſ" (U+017F) for "s"
        "Bearer\u00a0abcdefghijkl",  # a non-ASCII space
        "bearerabcdefghijkl",
        "::1",
        "",
    ],
)
def test_credentials_are_masked_wherever_the_patterns_find_them(text):
    # scrub scans a pattern only where it could match: the same result as scanning always.
    from idp.logs import CREDENTIALS, SECRET_PAIRS

    expected = SECRET_PAIRS.sub(lambda m: m.group(1) + "[redacted]", text)
    expected = CREDENTIALS.sub(lambda m: m.group(1) + " [redacted]", expected)
    assert scrub(text) == expected


def test_formatter_drops_extra_fields_with_secret_names():
    record = logging.makeLogRecord(
        {"name": "idp", "msg": "hello", "levelname": "INFO", "client_secret": "s3cr3t",
         "refresh_token": "rt", "grant_type": "refresh_token", "status": 200}
    )  # fmt: skip
    line = json.loads(JsonFormatter().format(record))
    assert "client_secret" not in line and "refresh_token" not in line
    assert line["grant_type"] == "refresh_token" and line["status"] == 200


@contextmanager
def background_logger(name: str, writer: logging.Handler):
    """Logger ``name`` writing JSON lines to ``writer`` through a BackgroundHandler."""
    writer.setFormatter(JsonFormatter())
    handler = BackgroundHandler(writer)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_drain_writes_what_is_queued_and_stops_the_writer(monkeypatch):
    # idp serve logs a line and then execs gunicorn: what the writer thread still holds
    # must be written first, or exec drops it.
    stream = io.StringIO()
    with background_logger("idp.test_drain", logging.StreamHandler(stream)) as (log, handler):
        monkeypatch.setattr(logs, "_RUNNING", logs.weakref.WeakSet([handler]))  # only ours
        handler.LINGER_SECONDS = 1.0  # without the drain, nothing would be written yet
        log.info("before exec")
        logs.drain()
        assert handler.thread is None
        assert json.loads(stream.getvalue())["message"] == "before exec"


def test_lines_written_in_the_background_keep_their_request_id_and_order(app):
    # The writer runs in a thread of its own, outside the request: the request id and the
    # message are settled before the hand-over, and closing writes whatever is queued.
    buffer = io.StringIO()
    with background_logger("idp.tests.background", logging.StreamHandler(buffer)) as (logger, _):
        with app.test_request_context("/"):
            g.request_id = "req-7f3a"
            for number in range(300):
                logger.info("line %d of %s", number, "300")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [line["message"] for line in lines] == [f"line {n} of 300" for n in range(300)]
    assert {line["request_id"] for line in lines} == {"req-7f3a"}


class CountingStream(io.StringIO):
    writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


def test_lines_that_arrive_together_are_written_together(app, monkeypatch):
    # Under load the writer thread must not wake (and take the GIL from the request
    # threads) once per line: lines that arrive while it lingers go out in one write.
    monkeypatch.setattr(BackgroundHandler, "LINGER_SECONDS", 0.5)
    stream = CountingStream()
    quiet = logging.StreamHandler(stream)
    quiet.addFilter(lambda record: "skip" not in record.getMessage())
    with background_logger("idp.tests.batch", quiet) as (logger, _):
        for number in range(300):
            logger.info("line %d", number)
        logger.info("skip this one")
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert lines == [f"line {n}" for n in range(300)]  # all, in order, the filter obeyed
    assert stream.writes < 5


def test_a_line_that_cannot_be_formatted_loses_only_itself(app, monkeypatch):
    # A writer that raises on one record (here its filter; its formatter runs in the same
    # guard) must not end the writer thread: every later line would wait in the queue.
    monkeypatch.setattr(logging, "raiseExceptions", False)  # handleError stays quiet
    stream = io.StringIO()

    def refuse(record):
        if "broken" in record.getMessage():
            raise ValueError("cannot format this one")
        return True

    writer = logging.StreamHandler(stream)
    writer.addFilter(refuse)
    with background_logger("idp.tests.broken", writer) as (logger, _):
        logger.info("before")
        logger.info("broken")
        time.sleep(2 * BackgroundHandler.LINGER_SECONDS)  # "after" comes in a later batch
        logger.info("after")
    lines = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    assert lines == ["before", "after"]


def test_a_forked_worker_writes_its_lines_from_a_thread_of_its_own(tmp_path):
    # gunicorn --preload forks workers after the app (and its log thread) exists in the
    # master; threads do not survive a fork, so each child must start its own.
    path = tmp_path / "log"
    with background_logger("idp.tests.fork", logging.FileHandler(path)) as (logger, handler):
        pid = os.fork()
        if pid == 0:  # the child: log, close (drain) and leave at once
            try:
                logger.info("from the child")
                handler.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        logger.info("from the parent")
    messages = [json.loads(line)["message"] for line in path.read_text().splitlines()]
    assert sorted(messages) == ["from the child", "from the parent"]


@contextmanager
def access_lines_to(writer: logging.Handler):
    """The ``idp`` loggers as ``configure`` leaves them in production (one BackgroundHandler,
    no propagation), with the background writer's output in ``writer``."""
    logger = logging.getLogger("idp")
    saved = logger.handlers[:], logger.propagate, logger.level
    handler = BackgroundHandler(writer)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.handlers[:], logger.propagate, _ = saved
        logger.setLevel(saved[2])
        handler.close()  # writes what is queued


ACCESS_FIELDS = [
    ("POST", "/introspect", 200, 0.91, "oauth.introspect", "127.0.0.1", "req-1"),
    ("GET", "/cb/access_token=eyJhbGciOiJSUzI1NiJ9", 404, None, None, None, None),
    ("GET", '/ünïcode/"quoted"/\\/\t', 400, 12.5, None, "2001:db8::1", "req-2"),
    ("GET", "/" + "long/" * 80, 404, 0.1, None, "10.0.0.1", "req-3"),  # path over 256
]


@pytest.mark.parametrize("fields", ACCESS_FIELDS)
def test_an_access_line_queued_as_fields_is_written_as_its_record_would_be(fields):
    # access() queues the fields; the writer formats them without a record. The line must
    # be what JsonFormatter writes for the record itself: the message with the whole path,
    # the path field cut at 256 characters, credentials masked, absent fields as null.
    line = (*fields, 1733500000.4567, 7, "ThreadPoolExecutor-0_1")
    formatter = JsonFormatter()
    assert formatter.format_access(line) == formatter.format(AccessRecord.of(line))
    method, path, status, duration_ms, endpoint, remote_addr, request_id = fields
    written = json.loads(formatter.format_access(line))
    assert written.pop("ts") == "2024-12-06T15:46:40.456+00:00"
    assert written.pop("pid") == os.getpid()
    assert (
        written
        == {
            "level": "INFO",
            "logger": "idp.access",
            "message": scrub(f"{method} {path} {status}"),  # the whole path
            **({"request_id": request_id} if request_id else {}),
            "method": method,
            "path": scrub(path[:256]),
            "status": status,
            "duration_ms": duration_ms,
            "endpoint": endpoint,
            "remote_addr": remote_addr,
        }
    )
    assert "eyJhbGci" not in json.dumps(written)


def test_the_access_line_skips_the_logging_walk_only_when_the_writer_is_alone(app):
    stream = io.StringIO()
    writer = logging.StreamHandler(stream)
    writer.setFormatter(JsonFormatter())
    with access_lines_to(writer) as handler, held_from_the_writer(handler):
        with app.test_request_context("/"):
            g.request_id = "req-9"
            logs.access("GET", "/jwks.json", 200, 0.2, "jwks", "127.0.0.1")
        (queued,) = _drain(handler)
        assert type(queued) is tuple and queued[6] == "req-9"  # the request's id, settled

        # Anything else that would see the record gets it, through Logger.handle.
        seen = []

        def keep(record):
            seen.append(record)
            return True

        access_log = logging.getLogger("idp.access")
        for add, remove in [
            (lambda: access_log.addFilter(keep), lambda: access_log.filters.clear()),
            (lambda: handler.addFilter(keep), lambda: handler.filters.clear()),
        ]:
            add()
            logs.access("GET", "/jwks.json", 200, 0.2, "jwks", "127.0.0.1", "req-10")
            remove()
            (queued,) = _drain(handler)
            assert isinstance(queued, AccessRecord) and seen.pop().path == "/jwks.json"
        other = logging.Handler()
        other.emit = seen.append
        logging.getLogger("idp").addHandler(other)
        logs.access("GET", "/jwks.json", 200, 0.2, "jwks", "127.0.0.1", "req-11")
        logging.getLogger("idp").removeHandler(other)
        assert isinstance(seen.pop(), AccessRecord) and len(_drain(handler)) == 1
        access_log.disabled = True  # dictConfig(disable_existing_loggers=True) does this
        logs.access("GET", "/jwks.json", 200, 0.2, "jwks", "127.0.0.1", "req-12")
        access_log.disabled = False
        assert _drain(handler) == []


@contextmanager
def held_from_the_writer(handler: BackgroundHandler):
    """What is queued stays queued for ``_drain``: the handler gets a queue its writer
    thread does not read (which could otherwise take an item first, on a loaded machine),
    and its own back at the end, so that closing it still ends the thread."""
    kept, handler.queue = handler.queue, SimpleQueue()
    try:
        yield
    finally:
        handler.queue = kept


def _drain(handler: BackgroundHandler) -> list:
    """Take what waits in the handler's queue (``held_from_the_writer``)."""
    items = []
    while not handler.queue.empty():
        items.append(handler.queue.get_nowait())
    return items


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_a_writer_with_a_filter_or_another_format_gets_the_record_of_an_access_line(formatter):
    stream = io.StringIO()
    writer = logging.StreamHandler(stream)
    writer.setFormatter(formatter)
    writer.addFilter(lambda record: record.status != 404)  # a filter reads the fields
    with access_lines_to(writer):
        logs.access("GET", "/a", 200, 0.1, "a", "127.0.0.1", "req-1")
        logs.access("GET", "/b", 404, 0.1, None, "127.0.0.1", "req-2")
    (line,) = stream.getvalue().splitlines()
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["path"] == "/a" and json.loads(line)["request_id"] == "req-1"
    else:
        assert line.endswith("INFO idp.access [req-1] GET /a 200")
    # The record made in the writer's thread names the thread that answered the request.
    stream = io.StringIO()
    writer = logging.StreamHandler(stream)
    writer.setFormatter(logging.Formatter("%(threadName)s %(message)s"))
    with access_lines_to(writer):
        logs.access("GET", "/c", 200, 0.1, "c", "127.0.0.1", "req-3")
    assert stream.getvalue() == f"{threading.current_thread().name} GET /c 200\n"


def test_an_access_line_that_cannot_be_formatted_loses_only_itself(monkeypatch):
    monkeypatch.setattr(logging, "raiseExceptions", False)
    refused = []
    monkeypatch.setattr(logging.StreamHandler, "handleError", lambda self, r: refused.append(r))
    format_access = JsonFormatter.format_access

    def broken(self, line):
        if line[1] == "/broken":
            raise ValueError("cannot format this one")
        return format_access(self, line)

    monkeypatch.setattr(JsonFormatter, "format_access", broken)
    stream = io.StringIO()
    writer = logging.StreamHandler(stream)
    writer.setFormatter(JsonFormatter())
    with access_lines_to(writer):
        for path in ("/before", "/broken", "/after"):
            logs.access("GET", path, 200, 0.1, None, "127.0.0.1", "req-1")
    assert [json.loads(line)["path"] for line in stream.getvalue().splitlines()] == [
        "/before",
        "/after",
    ]
    assert [record.path for record in refused] == ["/broken"]  # reported as its record


def test_logs_are_text_when_configured(app_config):
    from idp import create_app

    app = create_app({**app_config, "LOG_FORMAT": "text", "TESTING": False})
    try:
        handlers = [h for h in logging.getLogger("idp").handlers if getattr(h, "idp_handler", 0)]
        assert len(handlers) == 1
        assert not isinstance(handlers[0].writer.formatter, JsonFormatter)
    finally:
        from idp import logs

        logs.configure(handler=False)  # back to what the other tests expect
        from idp import db

        db.engine(app).dispose()


@pytest.mark.config(REGISTRATION="token", RATELIMIT_ENABLED=False, LOGOUT_WORKER=False)
def test_the_other_flows_leave_no_secret_in_the_logs(app, client, auth, user, factory, log_lines):
    # Every other credential this server hands out or receives: initial and registration
    # access tokens (RFC 7591 §3, RFC 7592 §3), the secret and assertions of a
    # client_secret_jwt client (RFC 7523 §2.2), device and user codes (RFC 8628 §3.2, also
    # typed wrong and replayed), request_uris (RFC 9126 §2.2, also replayed), and logout
    # tokens (Back-Channel Logout 1.0 §2.4, delivered and failed). Many travel in query
    # strings and paths; none may reach a log line, the access lines included.
    seen: dict[str, str] = {"password": PASSWORD}
    assert auth.login().status_code == 302

    # RFC 7591/7592: an initial access token, then the registration access token, rotated.
    with app.app_context():
        session = db.session()
        _, initial = create_initial_access_token(session, max_uses=2)
        session.commit()
    seen["initial access token"] = initial
    registrar = Registrar(client)
    assert registrar.register(token="wrong-" + initial).status_code == 401
    info = registrar.registered(
        token=initial,
        token_endpoint_auth_method="client_secret_jwt",
        grant_types=["authorization_code", "client_credentials"],
        scope="openid",
    )
    seen["registration access token"] = info["registration_access_token"]
    seen["registered client_secret"] = info["client_secret"]
    assert registrar.read(info).status_code == 200
    body = metadata(token_endpoint_auth_method="client_secret_jwt", scope="openid",
                    grant_types=["authorization_code", "client_credentials"],
                    client_id=info["client_id"])  # fmt: skip
    updated = registrar.update(info, body).get_json()
    seen["rotated registration access token"] = updated["registration_access_token"]
    assert registrar.read(info).status_code == 401  # the old one, after rotation

    # RFC 7523: a client_secret_jwt assertion, used and replayed.
    hmac_key = secret_key(updated.get("client_secret") or info["client_secret"])
    signed = assertion(info["client_id"], hmac_key, alg="HS256")
    seen["client_secret_jwt assertion"] = signed
    for _ in range(2):
        client.post("/token", data={"grant_type": "client_credentials", "scope": "openid",
                                    **client_assertion_form(signed)})  # fmt: skip
    assert registrar.delete(info, updated["registration_access_token"]).status_code == 204

    # RFC 8628: device and user codes, a wrong code typed, the grant polled twice.
    device = factory.client(name="TV", grant_types=(DEVICE_GRANT,), redirect_uris=())
    started = device_authorization(client, device).get_json()
    seen["device_code"] = started["device_code"]
    seen["user_code"] = started["user_code"]
    seen["user_code without dash"] = started["user_code"].replace("-", "")
    client.get(started["verification_uri_complete"])
    assert enter_code(client, started["user_code"], typed="BCDF-GHJX").status_code == 400
    assert enter_code(client, started["user_code"]).status_code == 200
    tokens = poll(client, device, started["device_code"]).get_json()
    seen["device access_token"] = tokens["access_token"]
    assert poll(client, device, started["device_code"]).status_code == 400

    # RFC 9126: a request_uri used at /authorize, then again (single use).
    rp = factory.client(name="Pushing RP", first_party=True)
    params, verifier = auth_params(rp)
    request_uri = push(client, rp, params).get_json()["request_uri"]
    seen["request_uri"] = request_uri
    seen["request_uri reference"] = request_uri.rsplit(":", 1)[1]
    answer = authorize_with(client, rp.client_id, request_uri)
    assert answer.status_code == 302, answer.get_data(as_text=True)[:300]
    code = query(answer.headers["Location"])["code"]
    seen["PAR code"] = code
    tokens = auth.exchange(rp, code, verifier).get_json()
    seen["PAR id_token"] = tokens["id_token"]
    authorize_with(client, rp.client_id, request_uri)

    # Back-Channel Logout 1.0: one relying party takes the token, one fails.
    other = factory.client(name="Failing RP", first_party=True)
    seen["other id_token"] = auth.tokens(other)["id_token"]
    with Receiver() as good, Receiver() as failing:
        failing.statuses = [503]
        with app.app_context():
            session = db.session()
            for registered, receiver in ((rp, good), (other, failing)):
                row = session.scalar(select(Client).where(Client.client_id == registered.client_id))
                row.backchannel_logout_uri = receiver.url("/bc")
            session.commit()
        auth.logout()
        with app.app_context():
            logout.deliver_due()
        seen["logout token"] = good.wait().params["logout_token"]
        seen["undelivered logout token"] = failing.wait().params["logout_token"]

    lines = log_lines()
    text = json.dumps(lines)
    assert any(line["logger"] == "idp.access" for line in lines)
    assert "client.registered" in text and "device.approved" in text and "failed" in text
    leaked = [name for name, value in seen.items() if value in text]
    assert leaked == []
