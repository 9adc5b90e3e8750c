"""Structured JSON logs with a request id (X-Request-Id), never containing secrets or tokens.

OWASP Logging Cheat Sheet ("Data to exclude": access tokens, session ids, passwords...);
RFC 6749 §10.3/§10.4 (tokens and codes are credentials); RFC 6819 §5.1.4.1.3.
"""

from __future__ import annotations

import io
import json
import logging
import os
from contextlib import contextmanager

import pytest
from flask import g

from idp.logs import BackgroundHandler, JsonFormatter, scrub

from ..factories import PASSWORD
from ..helpers import basic_auth


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
    assert scrub('{"access_token": "eyJhbGciOi"}') == '{"access_token": "[redacted]"}'
    assert scrub("Authorization: Bearer abcdefghijkl") == "Authorization: Bearer [redacted]"
    assert scrub("client_secret=s3cr3t password=hunter2") == (
        "client_secret=[redacted] password=[redacted]"
    )


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
