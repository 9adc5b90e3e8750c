"""Prometheus metrics at /metrics: requests, latency, tokens by grant, failed sign-ins, 429s.

The exposition format is Prometheus' text format 0.0.4; the multi-worker sum is tested with
real gunicorn workers in test_workers.py.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..factories import PASSWORD
from ..helpers import basic_auth


def scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.config(RATELIMIT_LOGIN_IP="1/minute")
@pytest.mark.usefixtures("steady_clock")
def test_metrics_count_requests_tokens_failures_and_rate_limit_hits(client, auth, user, factory):
    service = factory.client(grant_types=("client_credentials",), scope="api")
    before = scrape(client)
    for _ in range(2):
        issued = client.post(
            "/token",
            data={"grant_type": "client_credentials"},
            headers=basic_auth(service.client_id, service.client_secret),
        )
        assert issued.status_code == 200
    assert auth.login("alice", "wrong").status_code == 401
    assert auth.login("alice", PASSWORD).status_code == 429
    after = scrape(client)

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"endpoint": "oauth.token", "method": "POST", "status": "200"}
    assert delta("idp_http_requests_total", **ok) == 2
    assert delta("idp_http_request_duration_seconds_count", endpoint="oauth.token") == 2
    assert delta("idp_tokens_issued_total", grant_type="client_credentials") == 2
    assert delta("idp_login_failures_total", reason="bad_credentials") == 1
    assert delta("idp_rate_limit_hits_total", endpoint="auth.login") == 1
    limited = {"endpoint": "auth.login", "method": "POST", "status": "429"}
    assert delta("idp_http_requests_total", **limited) == 1


def test_unknown_paths_share_one_label(client):
    before = scrape(client)
    client.get("/no/such/page/1")
    client.get("/no/such/page/2")
    after = scrape(client)
    labels = {"endpoint": "unmatched", "method": "GET", "status": "404"}
    assert (
        value(after, "idp_http_requests_total", **labels)
        - value(before, "idp_http_requests_total", **labels)
        == 2
    )
    assert not any("/no/such" in str(key) for key in after)


@pytest.mark.config(METRICS_TOKEN="scrape-secret")
def test_metrics_can_require_a_bearer_token(client):
    refused = client.get("/metrics")
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert scrape(client, headers={"Authorization": "Bearer scrape-secret"})


@pytest.mark.config(METRICS_ALLOW_IPS=["10.0.0.0/8", "192.0.2.7"])
def test_metrics_can_be_limited_to_addresses(client):
    assert client.get("/metrics").status_code == 403  # from 127.0.0.1
    assert scrape(client, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert scrape(client, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    other = client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.8"})
    assert other.status_code == 403


@pytest.mark.config(METRICS_ENABLED=False)
def test_metrics_can_be_turned_off(client):
    assert client.get("/metrics").status_code == 404
