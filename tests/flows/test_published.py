"""Discovery and the JWKS answered from prepared bytes (idp/published.py).

The answers must be exactly what the Flask views give (OpenID Connect Discovery 1.0 §4,
RFC 8414 §3, RFC 7517 §5), keep every security header, get their own request id, access
line and metrics, and never publish a key set older than the one the server signs with.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from idp import create_app, db
from idp.cli import cli
from idp.oauth import keys

# The test default is 0 (keys re-read on every request); here the worker keeps them.
pytestmark = pytest.mark.config(KEY_CACHE_SECONDS=5)

DISCOVERY = "/.well-known/openid-configuration"


def headers_without_request_id(response) -> dict:
    return {k: v for k, v in response.headers.items() if k != "X-Request-Id"}


@pytest.mark.parametrize(
    "path", [DISCOVERY, "/.well-known/oauth-authorization-server", "/jwks.json"]
)
def test_prepared_answer_is_the_flask_answer(app, client, path):
    first = client.get(path)  # Flask's answer, kept
    assert path in app.extensions["idp.published"].prepared
    second = client.get(path)
    assert first.status_code == second.status_code == 200
    assert second.data == first.data
    assert headers_without_request_id(second) == headers_without_request_id(first)
    # Origin -> Flask with CORS handling: the same document.
    assert client.get(path, headers={"Origin": "https://spa.example"}).data == first.data
    assert second.headers["Content-Security-Policy"] and second.headers["Cache-Control"]
    assert second.headers["X-Content-Type-Options"] == "nosniff"


def test_each_prepared_answer_has_its_own_request_id(client):
    client.get(DISCOVERY)
    ids = {client.get(DISCOVERY).headers["X-Request-Id"] for _ in range(3)}
    assert len(ids) == 3
    given = client.get(DISCOVERY, headers={"X-Request-Id": "proxy-1234"})
    assert given.headers["X-Request-Id"] == "proxy-1234"
    odd = client.get(DISCOVERY, headers={"X-Request-Id": "bad id\x7f"})
    assert odd.headers["X-Request-Id"] != "bad id\x7f"


def test_prepared_answers_are_logged_and_counted(client, caplog):
    def count() -> float:
        text = client.get("/metrics").get_data(as_text=True)
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "idp_http_requests_total" and sample.labels == {
                    "endpoint": "oauth.jwks", "method": "GET", "status": "200"
                }:  # fmt: skip
                    return sample.value
        return 0.0

    client.get("/jwks.json")
    before = count()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="idp.access"):
        answer = client.get("/jwks.json")
    assert count() - before == 1
    lines = [r for r in caplog.records if r.name == "idp.access" and r.path == "/jwks.json"]
    assert len(lines) == 1
    assert lines[0].status == 200 and lines[0].endpoint == "oauth.jwks"
    assert lines[0].request_id == answer.headers["X-Request-Id"]


def kids(client) -> set[str]:
    return {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}


def test_rotation_in_this_worker_is_published_at_once(client, runner):
    before = kids(client)
    assert kids(client) == before  # prepared
    runner.invoke(cli, args=["keys", "rotate", "--json"])
    after = kids(client)
    assert len(after - before) == 2  # RS256 and ES256; the old keys stay for the grace period


def test_rotation_elsewhere_is_published_within_the_key_cache_lifetime(
    app, app_config, client, monkeypatch
):
    now = [1000.0]
    monkeypatch.setattr(keys.time, "monotonic", lambda: now[0])
    before = kids(client)
    elsewhere = create_app(app_config)  # another worker: its own key store
    with elsewhere.app_context():
        keys.rotate(db.session(), grace_seconds=3600)
        db.session().commit()
    assert kids(client) == before  # both caches still fresh
    now[0] += app.config["KEY_CACHE_SECONDS"] + 0.1
    assert len(kids(client) - before) == 2
    db.engine(elsewhere).dispose()


def test_head_and_queries_are_left_to_flask(client):
    client.get(DISCOVERY)
    head = client.head(DISCOVERY)
    assert head.status_code == 200 and head.data == b""
    assert client.get(DISCOVERY + "?x=1").get_json()["issuer"]
    assert client.post(DISCOVERY).status_code == 405
