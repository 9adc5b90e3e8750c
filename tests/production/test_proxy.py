"""Behind a reverse proxy: trusted hops only, and an issuer that never follows the request.

RFC 8414 §2/§3.3 and OIDC Discovery §4.3: the issuer in the metadata must be exactly the
configured one; RFC 7239 / X-Forwarded-For are trusted only from known proxies.
"""

from __future__ import annotations

import importlib
import sys

import pytest
from sqlalchemy import select

from idp import db, malloc
from idp.models import AuditEvent
from idp.serve import gunicorn_argv

from ..factories import PASSWORD
from ..helpers import run_python

FORGED = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/evil",
    "X-Forwarded-For": "203.0.113.66",
}


@pytest.mark.parametrize(
    "settings",
    [{}, {"PROXY_FIX_X_FOR": 1, "PROXY_FIX_X_PROTO": 1, "PROXY_FIX_X_HOST": 1,
          "PROXY_FIX_X_PORT": 1, "PROXY_FIX_X_PREFIX": 1}],
)  # fmt: skip
def test_issuer_and_published_urls_never_come_from_the_request(app_config, settings):
    # RFC 8414 §3.3: the issuer in the document must equal the configured issuer, whatever
    # Host or X-Forwarded-* headers a request (or a misconfigured proxy) carries.
    from idp import create_app

    app = create_app({**app_config, **settings})
    client = app.test_client()
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        meta = client.get(path, headers=FORGED).get_json()
        assert meta["issuer"] == "http://localhost"
        urls = [v for v in meta.values() if isinstance(v, str) and "://" in v]
        assert urls and all(url.startswith("http://localhost/") or url == "http://localhost"
                            for url in urls)  # fmt: skip
    db.engine(app).dispose()


def login_from(client, forwarded_for: str):
    from ..helpers import csrf_token

    headers = {"X-Forwarded-For": forwarded_for}
    page = client.get("/login", headers=headers)
    data = {
        "csrf_token": csrf_token(page.get_data(as_text=True)),
        "username": "alice",
        "password": PASSWORD,
    }
    return client.post("/login", data=data, headers=headers)


def audited_ips(app) -> list[str]:
    with app.app_context():
        return list(
            db.session().scalars(select(AuditEvent.ip).where(AuditEvent.event == "login.success"))
        )


def test_forwarded_for_is_ignored_without_a_trusted_proxy(app, client, user):
    # A client cannot choose the address that audit records and rate limits see.
    assert login_from(client, "203.0.113.66").status_code == 302
    assert audited_ips(app) == ["127.0.0.1"]


@pytest.mark.config(PROXY_FIX_X_FOR=1)
def test_forwarded_for_of_one_trusted_hop_is_the_client_address(app, client, user):
    # With one trusted proxy, the right-most X-Forwarded-For entry (the one it added) counts;
    # entries a client put before it are ignored.
    assert login_from(client, "198.51.100.1, 203.0.113.66").status_code == 302
    assert audited_ips(app) == ["203.0.113.66"]


@pytest.mark.config(PROXY_FIX_X_FOR=1, RATELIMIT_LOGIN_IP="1/minute")
@pytest.mark.usefixtures("steady_clock")
def test_rate_limits_follow_the_forwarded_client_address(client, user):
    assert login_from(client, "203.0.113.1").status_code == 302
    assert login_from(client, "203.0.113.1").status_code == 429
    assert login_from(client, "203.0.113.2").status_code == 302


def test_idp_serve_runs_gunicorn_with_the_packaged_configuration():
    argv = gunicorn_argv(("--log-level", "debug"))
    assert argv[:3] == [sys.executable, "-m", "gunicorn"]
    assert argv[3:5] == ["--config", "python:idp.gunicorn_conf"]
    assert argv[-1] == "idp:create_app()"
    assert "--log-level" in argv


def test_gunicorn_configuration_reads_its_settings_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IDP_BIND", "127.0.0.1:9999")
    monkeypatch.setenv("IDP_WORKERS", "3")
    monkeypatch.setenv("IDP_THREADS", "4")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    import idp.gunicorn_conf as conf

    conf = importlib.reload(conf)
    assert (conf.bind, conf.workers, conf.threads, conf.worker_class) == (
        "127.0.0.1:9999", 3, 4, "gthread"
    )  # fmt: skip
    assert conf.accesslog is None  # gunicorn's access log would print query strings
    assert conf.secure_scheme_headers == {}  # only the app's ProxyFix trusts headers
    assert conf.preload_app is False  # no connection or key cache shared across fork
    (tmp_path / "counter_1.db").write_bytes(b"stale")
    conf.on_starting(None)
    assert list(tmp_path.iterdir()) == []


def test_gunicorn_defaults_to_one_worker_per_cpu_with_four_threads(monkeypatch, tmp_path):
    import multiprocessing

    for name in ("IDP_BIND", "IDP_WORKERS", "IDP_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    import idp.gunicorn_conf as conf

    conf = importlib.reload(conf)
    assert conf.workers == multiprocessing.cpu_count()
    # gthread with 4 threads: database waits overlap (docs/benchmarks.md); 1 gives sync.
    assert (conf.bind, conf.worker_class, conf.threads) == ("127.0.0.1:8000", "gthread", 4)
    monkeypatch.setenv("IDP_THREADS", "1")
    assert importlib.reload(conf).worker_class == "sync"
    monkeypatch.delenv("IDP_THREADS")
    importlib.reload(conf)


@pytest.mark.config(ISSUER="https://localhost", PROXY_FIX_X_PROTO=1)
def test_forms_work_over_https_behind_a_tls_proxy(client, user):
    # Behind nginx the request is https (X-Forwarded-Proto) and, with Referrer-Policy:
    # no-referrer, the browser sends no Referer: sign-in must still pass its CSRF check.
    from ..helpers import csrf_token

    headers = {"X-Forwarded-Proto": "https"}
    page = client.get("/login", headers=headers)
    assert page.headers["Strict-Transport-Security"].startswith("max-age=")
    data = {"csrf_token": csrf_token(page.get_data(as_text=True)), "username": "alice",
            "password": PASSWORD}  # fmt: skip
    answer = client.post("/login", data=data, headers=headers)
    assert answer.status_code == 302
    assert "Secure" in answer.headers["Set-Cookie"]


def gunicorn_settings():
    """idp.gunicorn_conf read afresh as gunicorn reads it: every module-level name that is a
    setting, set on gunicorn's own Config (which checks each value, hooks included)."""
    from gunicorn.config import Config

    import idp.gunicorn_conf as conf

    module = importlib.reload(conf)
    config = Config()
    for name, value in vars(module).items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_gunicorn_control_socket_is_off_unless_a_path_is_given(monkeypatch, tmp_path):
    # gunicorn's default control socket is one path per user (~/.gunicorn/gunicorn.ctl): a
    # second server of the same user would take it over from the first.
    import idp.gunicorn_conf as conf

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("IDP_CONTROL_SOCKET", raising=False)
    assert gunicorn_settings().control_socket_disable is True
    monkeypatch.setenv("IDP_CONTROL_SOCKET", str(tmp_path / "idp.ctl"))
    config = gunicorn_settings()
    assert config.control_socket_disable is False
    assert config.control_socket == str(tmp_path / "idp.ctl")
    monkeypatch.delenv("IDP_CONTROL_SOCKET")
    importlib.reload(conf)


def test_each_worker_keeps_what_it_built_at_start_out_of_full_collections(monkeypatch, tmp_path):
    # A full pass of the cyclic collector holds the GIL for all of a worker's threads, for a
    # time that grows with the objects it walks: the app built at start (modules, models,
    # compiled statements) is moved out of its reach once loaded, as gunicorn calls it.
    # Garbage made before the freeze is collected first: frozen, a cycle would never be.
    import gc
    import weakref

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = gunicorn_settings()

    class Node:
        pass

    gc.disable()  # no automatic pass may collect the cycle before the hook does
    cycle = Node()
    cycle.itself = cycle
    garbage = weakref.ref(cycle)
    del cycle
    gc.unfreeze()
    assert gc.get_freeze_count() == 0 and garbage() is not None
    try:
        config.post_worker_init(None)
        # Everything alive now is frozen (this test process stands in for the worker).
        assert gc.get_freeze_count() > 1000
        assert len(gc.get_objects()) < gc.get_freeze_count()
        assert garbage() is None
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.skipif(malloc.glibc() is None, reason="glibc's malloc_trim")
def test_each_worker_gives_back_what_its_start_freed():
    # Under idp serve's fixed 32 MiB trim threshold, glibc keeps the pages of blocks freed
    # below the heap's top for good: the garbage of a worker's start. The hook returns them.
    # A fresh interpreter with idp serve's malloc settings stands in for the worker.
    out = run_python(
        """
        import os
        from idp import gunicorn_conf
        from tests.helpers import kib
        freed = [b"x" * 200_000 for _ in range(100)]  # 20 MB on the main heap, written
        top = b"x" * 200_000  # a block above them, still in use: the top cannot shrink
        del freed
        before = kib(os.getpid())
        gunicorn_conf.post_worker_init(None)
        print(before - kib(os.getpid()))
        """,
        env={"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "33554432"},
    )
    assert int(out) > 15 * 1024  # KiB: most of the 19 MiB freed
