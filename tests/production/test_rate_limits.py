"""Rate limits: sign-in per IP and per account, token endpoint per client, registration and
device-code entry per IP; 429 with Retry-After (RFC 6585 §4); counters in Redis when set.

RFC 6749 §10.10 and RFC 6819 §4.3.3/§5.1.4.2.3 ask servers to limit credential guessing;
RFC 8628 §5.1 asks the same of user-code entry.
"""

from __future__ import annotations

import os
import secrets

import pytest
import redis

from idp import create_app, db
from idp.metrics import RATE_LIMIT_HITS

from ..factories import PASSWORD
from ..helpers import basic_auth

REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
WRONG = "not the password at all"


@pytest.fixture
def app_config(app_config):
    # Every test counts in its own key space, even in a shared Redis.
    return {**app_config, "RATELIMIT_KEY_PREFIX": "idp-test-" + secrets.token_hex(6)}


def redis_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


needs_redis = pytest.mark.skipif(
    not redis_available() and not os.environ.get("CI"),
    reason="no Redis on 127.0.0.1:6379 (CI starts one)",
)


def client_credentials(client, registered):
    return client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(registered.client_id, registered.client_secret),
    )


def assert_one_allowance_for_both(client, other_client, registered):
    """With a limit of 2 per minute shared through Redis, two workers' requests add up."""
    assert client_credentials(client, registered).status_code == 200
    assert client_credentials(other_client, registered).status_code == 200
    assert client_credentials(client, registered).status_code == 429
    assert client_credentials(other_client, registered).status_code == 429


def hits(endpoint: str) -> float:
    return RATE_LIMIT_HITS.labels(endpoint=endpoint)._value.get()


@pytest.mark.config(RATELIMIT_LOGIN_IP="3/minute", RATELIMIT_LOGIN_ACCOUNT="100/minute")
@pytest.mark.usefixtures("steady_clock")
def test_sign_in_attempts_are_limited_per_client_address(browser, user):
    # RFC 6819 §5.1.4.2.3 (lock out / throttle password guessing), RFC 6585 §4.
    before = hits("auth.login")
    for name in ("alice", "bob", "carol"):
        assert browser.login(name, WRONG, ip="203.0.113.7").status_code == 401
    refused = browser.login("alice", PASSWORD, ip="203.0.113.7")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.mimetype == "text/html"
    page = refused.get_data(as_text=True)
    assert "Too many attempts" in page and "Traceback" not in page
    assert hits("auth.login") == before + 1
    # Another address is not affected, and showing the form is never limited.
    assert browser.login("alice", PASSWORD, ip="198.51.100.9").status_code == 302
    assert (
        browser.client.get("/login", environ_base={"REMOTE_ADDR": "203.0.113.7"}).status_code == 200
    )


@pytest.mark.config(
    RATELIMIT_LOGIN_IP="100/minute", RATELIMIT_LOGIN_ACCOUNT="2/minute", LOCKOUT_THRESHOLD=0
)
@pytest.mark.parametrize("account", ["alice", "nobody-by-this-name"])
@pytest.mark.usefixtures("steady_clock")
def test_sign_in_attempts_are_limited_per_account_across_addresses(browser, user, account):
    # Distributed guessing against one account (OWASP Credential Stuffing Prevention): the
    # limit follows the submitted name, whether or not such an account exists, so the 429
    # itself does not tell which names exist.
    assert browser.login(account, WRONG, ip="192.0.2.1").status_code == 401
    assert browser.login(account.upper(), WRONG, ip="192.0.2.2").status_code == 401
    refused = browser.login(f" {account} ", WRONG, ip="192.0.2.3")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    # Other accounts from the same addresses still get through.
    factory_user_ok = browser.login("bob-does-not-exist", WRONG, ip="192.0.2.3")
    assert factory_user_ok.status_code == 401


@pytest.mark.config(RATELIMIT_TOKEN="2/minute")
@pytest.mark.usefixtures("steady_clock")
def test_token_requests_are_limited_per_client(client, factory):
    # RFC 6749 §10.10: limit guessing at the token endpoint; the answer is JSON like any
    # token error (RFC 6749 §5.2 shape) with Retry-After (RFC 6585 §4).
    first = factory.client(grant_types=("client_credentials",), scope="api")
    second = factory.client(grant_types=("client_credentials",), scope="api")
    assert client_credentials(client, first).status_code == 200
    assert client_credentials(client, first).status_code == 200
    refused = client_credentials(client, first)
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "temporarily_unavailable"
    assert "error_description" in refused.get_json()
    assert refused.headers["Cache-Control"] == "no-store"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The limit is per client: another client from the same address is served.
    assert client_credentials(client, second).status_code == 200


@pytest.mark.config(RATELIMIT_TOKEN="1/minute")
@pytest.mark.usefixtures("steady_clock")
def test_token_limit_counts_the_named_client_even_with_a_wrong_secret(client, factory):
    # Guessing a client's secret uses up that client's allowance.
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    wrong = client.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(registered.client_id, "guess"),
    )
    assert wrong.status_code == 401
    assert client_credentials(client, registered).status_code == 429


@pytest.mark.config(REGISTRATION="open", RATELIMIT_REGISTRATION="2/minute")
@pytest.mark.usefixtures("steady_clock")
def test_registration_is_limited_per_address(client):
    # RFC 7591 §5 leaves abuse of open registration to the server: limited per IP.
    body = {"redirect_uris": ["https://rp.example/cb"], "client_name": "RP"}
    assert client.post("/register", json=body).status_code == 201
    assert client.post("/register", json=body).status_code == 201
    refused = client.post("/register", json=body)
    assert refused.status_code == 429
    assert refused.get_json()["error"] == "temporarily_unavailable"
    assert int(refused.headers["Retry-After"]) >= 1
    other = client.post("/register", json=body, environ_base={"REMOTE_ADDR": "192.0.2.50"})
    assert other.status_code == 201


@pytest.mark.config(RATELIMIT_DEVICE_ENTRY="2/minute")
@pytest.mark.usefixtures("steady_clock")
def test_device_code_entry_is_limited_per_address(app, client, auth, user):
    # RFC 8628 §5.1: user codes are short, so their entry must be rate limited.
    auth.login()
    page = client.get("/device").get_data(as_text=True)
    from ..helpers import csrf_token

    token = csrf_token(page)
    for _ in range(2):
        answer = client.post("/device", data={"csrf_token": token, "user_code": "BCDF-GHJK"})
        assert answer.status_code == 400
    refused = client.post("/device", data={"csrf_token": token, "user_code": "BCDF-GHJK"})
    assert refused.status_code == 429
    assert "Too many attempts" in refused.get_data(as_text=True)


@pytest.mark.config(RATELIMIT_ENABLED=False, RATELIMIT_TOKEN="1/minute")
def test_limits_can_be_turned_off(client, factory):
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    assert [client_credentials(client, registered).status_code for _ in range(3)] == [200] * 3


@pytest.mark.config(RATELIMIT_DEFAULT="2/minute")
@pytest.mark.usefixtures("steady_clock")
def test_an_operators_flask_limiter_default_limit_still_applies(client):
    # IDP_RATELIMIT_DEFAULT reaches Flask-Limiter's own setting; its before-request check,
    # which this server drops while no such limit is set, must then stay.
    answers = [client.get("/userinfo").status_code for _ in range(3)]
    assert answers == [401, 401, 429]


@needs_redis
@pytest.mark.config(REDIS_URL=REDIS_URL, RATELIMIT_TOKEN="2/minute")
def test_redis_counters_are_shared_by_every_worker(app, app_config, client, factory):
    # Two app instances stand for two workers (or machines): with Redis configured the
    # limit holds across them, not per process.
    assert app.config["RATELIMIT_STORAGE_URI"] == REDIS_URL
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    other_worker = create_app(app_config)
    try:
        assert_one_allowance_for_both(client, other_worker.test_client(), registered)
    finally:
        db.engine(other_worker).dispose()


@pytest.mark.config(RATELIMIT_TOKEN="2/minute")
@pytest.mark.usefixtures("steady_clock")
def test_memory_counters_are_per_worker_without_redis(app, app_config, client, factory):
    # Without Redis the counters live in each worker (documented in docs/deploy.md).
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    other_worker = create_app(app_config)
    try:
        assert client_credentials(client, registered).status_code == 200
        assert client_credentials(client, registered).status_code == 200
        assert client_credentials(client, registered).status_code == 429
        assert client_credentials(other_worker.test_client(), registered).status_code == 200
    finally:
        db.engine(other_worker).dispose()


@pytest.mark.config(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_LOGIN_IP="2/minute")
@pytest.mark.usefixtures("steady_clock")
def test_unreachable_redis_falls_back_to_memory_and_sign_in_still_works(browser, user):
    # A Redis outage must not take sign-in down; limits are then kept per worker.
    assert browser.login("alice", PASSWORD).status_code == 302
    assert browser.login("alice", WRONG).status_code == 401
    assert browser.login("alice", WRONG).status_code == 429


def test_memory_counters_start_no_thread_per_request_and_still_expire(app):
    # The in-memory store must not spawn a timer thread per counted request (it did: limits'
    # MemoryStorage), and expired counters must still be swept so memory stays bounded.
    import threading
    import time

    from idp.limits import MemoryCounters

    assert isinstance(app.extensions["idp.limiter"]._storage, MemoryCounters)
    store = MemoryCounters("idp-memory://")
    store.incr("warm", 60)
    threads = threading.active_count()
    for i in range(200):
        store.incr(f"key-{i % 7}", 60)
    assert threading.active_count() <= threads
    store.incr("short", 0.001)
    store.expirations["short"] = time.time() - 1  # as if its window had passed
    store._swept_at = 0.0
    store.incr("other", 60)
    assert "short" not in store.storage
    assert store.get("key-1") > 0


@pytest.mark.config(RATELIMIT_TOKEN="100/minute")
@pytest.mark.usefixtures("steady_clock")
def test_a_changed_limit_setting_takes_effect_in_the_running_app(app, app_config, client, factory):
    # Limits are read from each app's settings on every request (parsed once per string), so
    # an operator's change applies at once and each app keeps its own (RFC 6749 §10.10).
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    assert client_credentials(client, registered).status_code == 200
    app.config["RATELIMIT_TOKEN"] = "1/minute"
    assert [client_credentials(client, registered).status_code for _ in range(2)] == [200, 429]
    other_worker = create_app({**app_config, "RATELIMIT_TOKEN": "3/minute"})
    try:
        other = other_worker.test_client()
        answers = [client_credentials(other, registered).status_code for _ in range(4)]
        assert answers == [200, 200, 200, 429]
    finally:
        db.engine(other_worker).dispose()
    app.config["RATELIMIT_TOKEN"] = "100/minute"
    assert client_credentials(client, registered).status_code == 200


@pytest.mark.config(RATELIMIT_TOKEN="2/minute")
@pytest.mark.usefixtures("steady_clock")
def test_token_limit_follows_the_client_however_it_is_named(client, factory):
    # RFC 6749 §2.3.1: a client names itself in HTTP Basic or in the body's client_id; both
    # use up the same allowance. Requests naming no client count per address, apart from it.
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    anonymous = [
        client.post("/token", data={"grant_type": "client_credentials"}).status_code
        for _ in range(3)
    ]
    assert anonymous == [401, 401, 429]
    in_body = client.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": registered.client_id,
            "client_secret": "guess",
        },
    )
    assert in_body.status_code == 401
    assert client_credentials(client, registered).status_code == 200
    refused = client_credentials(client, registered)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1


@pytest.mark.config(RATELIMIT_TOKEN="1/minute")
@pytest.mark.usefixtures("steady_clock")
def test_limits_can_be_switched_off_and_on_at_run_time(app, client, factory):
    # Flask-Limiter's documented switch (Limiter.enabled) still governs every limit.
    registered = factory.client(grant_types=("client_credentials",), scope="api")
    limiter = app.extensions["idp.limiter"]
    limiter.enabled = False
    assert [client_credentials(client, registered).status_code for _ in range(2)] == [200] * 2
    limiter.enabled = True
    assert [client_credentials(client, registered).status_code for _ in range(2)] == [200, 429]


@needs_redis
@pytest.mark.config(REDIS_URL=REDIS_URL, RATELIMIT_TOKEN="2/hour")
@pytest.mark.usefixtures("steady_clock")
def test_a_redis_outage_counts_in_memory_until_redis_answers_again(
    app, app_config, client, factory, monkeypatch
):
    # A Redis outage must not take the token endpoint down, nor lift its limit: meanwhile
    # each worker counts in memory; once Redis answers, counting is shared again.
    import time

    registered = factory.client(grant_types=("client_credentials",), scope="api")
    store = app.extensions["idp.limiter"]._storage
    other_worker = create_app(app_config)

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(store, "acquire_sliding_window_entry", unreachable)
    monkeypatch.setattr(store, "check", lambda: False)
    try:
        answers = [client_credentials(client, registered) for _ in range(3)]
        assert [answer.status_code for answer in answers] == [200, 200, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        # Redis is back; the worker asks it again after Flask-Limiter's back-off (at most a
        # minute), then counts there: the other worker's hits and its own add up.
        monkeypatch.delattr(store, "acquire_sliding_window_entry")
        monkeypatch.delattr(store, "check")
        later = time.time() + 120
        monkeypatch.setattr(time, "time", lambda: later)
        assert_one_allowance_for_both(client, other_worker.test_client(), registered)
    finally:
        db.engine(other_worker).dispose()
