"""Prometheus metrics at /metrics (prometheus-client), correct under several gunicorn workers.

The metric objects are process-wide, as prometheus-client requires; under gunicorn
``PROMETHEUS_MULTIPROC_DIR`` is set (``idp serve`` does it) so each worker writes its values
to files there and /metrics, answered by any worker, adds up all of them.

    idp_http_requests_total{endpoint,method,status}     every response
    idp_http_request_duration_seconds{endpoint}          latency histogram
    idp_tokens_issued_total{grant_type}                  successful token responses
    idp_login_failures_total{reason}                     refused sign-ins
    idp_rate_limit_hits_total{endpoint}                  requests refused with 429
    idp_mail_sent_total{transport}                       messages sent (smtp) or written (outbox)
    idp_mail_failed_total{reason}                        messages given up: refused, attempts

Labels are endpoint names, never paths, so their number is bounded. /metrics can be limited
to a bearer token (``METRICS_TOKEN``) and/or to addresses (``METRICS_ALLOW_IPS``).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import time

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "idp_http_requests_total", "HTTP responses by endpoint, method and status",
    ["endpoint", "method", "status"],
)  # fmt: skip
LATENCY = Histogram(
    "idp_http_request_duration_seconds",
    "Time from the first request hook to the response, by endpoint",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TOKENS_ISSUED = Counter(
    "idp_tokens_issued_total", "Successful token endpoint responses by grant type", ["grant_type"]
)
LOGIN_FAILURES = Counter("idp_login_failures_total", "Refused sign-ins by reason", ["reason"])
RATE_LIMIT_HITS = Counter(
    "idp_rate_limit_hits_total", "Requests refused by a rate limit, by endpoint", ["endpoint"]
)

# Labelled, like every metric here: an unlabelled metric opens its file in
# PROMETHEUS_MULTIPROC_DIR at import, before `idp serve` has created that folder.
MAIL_SENT = Counter(
    "idp_mail_sent_total", "Messages accepted by the SMTP server, or written to the outbox",
    ["transport"],
)  # fmt: skip
MAIL_FAILED = Counter(
    "idp_mail_failed_total", "Messages given up: refused (5xx) or out of attempts", ["reason"]
)


def login_failed(reason: str) -> None:
    LOGIN_FAILURES.labels(reason=reason).inc()


def rate_limited(endpoint: str) -> None:
    RATE_LIMIT_HITS.labels(endpoint=endpoint).inc()


def mail_sent(transport: str) -> None:
    MAIL_SENT.labels(transport=transport).inc()


def mail_failed(reason: str) -> None:
    MAIL_FAILED.labels(reason=reason).inc()


def start_timer() -> None:
    vars(g._get_current_object())["metrics_started"] = time.perf_counter()


# (endpoint, method, status) -> the labelled counter and histogram children. ``labels``
# rebuilds the label tuple under a lock on every call; the children are the same objects
# every time (prometheus_client keeps them, and handles a fork itself), so each is found
# once. Bounded like the label sets themselves; past MAX_CHILDREN it starts over.
_children: dict[tuple[str, str, int], tuple] = {}
MAX_CHILDREN = 4096


def record(endpoint: str, method: str, status: int, seconds: float | None) -> None:
    """Count one response (also called by idp.published, outside Flask)."""
    key = (endpoint, method, status)
    children = _children.get(key)
    if children is None:
        children = (
            REQUESTS.labels(endpoint=endpoint, method=method, status=str(status)),
            LATENCY.labels(endpoint=endpoint),
        )
        if len(_children) >= MAX_CHILDREN:
            _children.clear()
        _children[key] = children
    children[0].inc()
    if seconds is not None:
        children[1].observe(seconds)


# grant_type -> its child of TOKENS_ISSUED, found once like _children (grant types the server
# runs: a handful).
_issued: dict[str, Counter] = {}


def observe(response: Response) -> Response:
    req = request._get_current_object()
    endpoint = req.endpoint or "unmatched"
    started = vars(g._get_current_object()).get("metrics_started")
    seconds = time.perf_counter() - started if started is not None else None
    status = response.status_code
    record(endpoint, req.method, status, seconds)
    if endpoint == "oauth.token" and status == 200:
        # Only grants the server runs answer 200, so the label set stays bounded.
        grant_type = req.form.get("grant_type", "unknown")[:64]
        child = _issued.get(grant_type)
        if child is None:
            if len(_issued) >= MAX_CHILDREN:
                _issued.clear()
            child = _issued[grant_type] = TOKENS_ISSUED.labels(grant_type=grant_type)
        child.inc()
    return response


def allowed() -> bool:
    """The scrape passes METRICS_TOKEN and METRICS_ALLOW_IPS, where they are set."""
    config = current_app.config
    token = config.get("METRICS_TOKEN")
    if token:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode(), str(token).encode()
        ):
            return False
    networks = config.get("METRICS_ALLOW_IPS")
    if networks:
        if isinstance(networks, str):
            networks = [n.strip() for n in networks.split(",") if n.strip()]
        try:
            address = ipaddress.ip_address(request.remote_addr or "")
        except ValueError:
            return False
        if not any(address in ipaddress.ip_network(n, strict=False) for n in networks):
            return False
    return True


def registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def metrics_view():
    if not allowed():
        response = Response("forbidden\n", status=403, mimetype="text/plain")
        if current_app.config.get("METRICS_TOKEN"):
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = Response(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    if not app.config["METRICS_ENABLED"]:
        return
    app.before_request_funcs.setdefault(None, []).insert(0, start_timer)
    app.after_request(observe)
    app.add_url_rule("/metrics", "metrics", metrics_view)
