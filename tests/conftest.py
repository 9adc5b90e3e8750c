"""Shared fixtures: app -> client -> auth; user -> oauth clients -> tokens.

The suite runs on SQLite by default and on PostgreSQL when IDP_TEST_DATABASE_URL is set
(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test). The schema is built once per
run with the real Alembic migrations; each test then gets an empty database (a copy of the
migrated SQLite file, or emptied PostgreSQL tables).

Run in parallel with ``pytest -n auto`` (pytest-xdist, as the README and CI do): each worker
process then has a PostgreSQL database of its own, ``<db>_gw0``, ``<db>_gw1`` ... (created
on first use next to the configured one), and its own SQLite template. docs/testing.md has
the measurements behind these fixtures.
"""

from __future__ import annotations

import functools
import gc
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import jinja2
import jinja2.bccache
import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from werkzeug.routing.rules import Rule

from idp import background, create_app, db
from idp.migrate import upgrade
from idp.models import Base, SigningKey
from idp.oauth import keys

from .factories import Factory
from .helpers import Auth

ISSUER = "http://localhost"
# pytest-xdist names its worker processes gw0, gw1 ... (unset without -n).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
MAX_AUTO_WORKERS = 4


def worker_database_url(url: str | None) -> str | None:
    """The configured test database, or under pytest-xdist one of this worker's own."""
    if not url or not XDIST_WORKER:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{XDIST_WORKER}").render_as_string(
        hide_password=False
    )


CONFIGURED_PG_URL = os.environ.get("IDP_TEST_DATABASE_URL")
PG_URL = worker_database_url(CONFIGURED_PG_URL)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per core, at most MAX_AUTO_WORKERS (each holds a database's
    connections and a Chromium). PYTEST_XDIST_AUTO_NUM_WORKERS still overrides it."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(1, min(len(os.sched_getaffinity(0)), MAX_AUTO_WORKERS))


def pytest_collection_finish(session):
    """What collection loaded (the package, the test modules, their libraries) lives for the
    whole run: frozen out of the garbage collector's reach, as gunicorn's workers do
    (idp/gunicorn_conf.py), so that its full passes stop walking it again and again.
    Each test's app and its garbage stay collectable."""
    gc.collect()
    gc.freeze()


def touches_the_database(item: pytest.Item) -> bool:
    """Whether a test reaches the configured test database: through the fixtures (every app
    fixture rests on ``migrated_database``) or through ``PG_URL`` in its module."""
    if "migrated_database" in getattr(item, "fixturenames", ()):
        return True
    return hasattr(getattr(item, "module", None), "PG_URL")


def pytest_collection_modifyitems(config, items):
    """On the PostgreSQL pass (IDP_TEST_DATABASE_URL), a test that never touches the
    configured database would run exactly as on the SQLite pass (its own SQLite file, or no
    storage at all): it is skipped there rather than run twice. CI runs both passes."""
    if not CONFIGURED_PG_URL:
        return
    skip = pytest.mark.skip(reason="touches no database: run on the SQLite pass")
    for item in items:
        if not touches_the_database(item):
            item.add_marker(skip)


# A test module defining a fixture shared by its tests (a gunicorn pair, a Redis server).
SHARED_FIXTURE = re.compile(r"""scope\s*=\s*["'](?:module|class|package)["']""")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup`` (pyproject addopts): xdist's ``load`` (tests go in small batches
    to whichever worker is free), except that the tests of a module with a module- or
    class-scoped fixture all go to one worker, so that the fixture is set up once. Items
    are tracked by index, as in ``load``: schemathesis yields several items with one node
    id, which a scope-keyed scheduler (loadscope, loadfile, loadgroup) silently runs once.
    (xdist's own ``xdist_group`` marks rewrite node ids, which pytest 9.2 no longer allows:
    pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScheduling

    @functools.cache
    def shared_module(nodeid: str) -> str | None:
        module = nodeid.split("::")[0]
        path = config.rootpath / module
        shares = path.is_file() and SHARED_FIXTURE.search(path.read_text())
        return module if shares else None

    class SharedFixtureScheduling(LoadScheduling):
        def _send_tests(self, node, num: int) -> None:
            tests = self.pending[:num]
            modules = {shared_module(self.collection[i]) for i in tests} - {None}
            if modules:  # the rest of such a module goes along
                tests += [
                    i for i in self.pending[num:] if shared_module(self.collection[i]) in modules
                ]
            if tests:
                chosen = set(tests)
                self.pending[:] = [i for i in self.pending if i not in chosen]
                self.node2pending[node].extend(tests)
                node.send_runtest_some(tests)

    return SharedFixtureScheduling(config, log)


def base_config(tmp_path, database_url) -> dict:
    return {
        "TESTING": True,
        "ISSUER": ISSUER,
        "SECRET_KEY": "test-secret-key-not-for-production",
        "DATABASE_URL": database_url,
        "KEY_CACHE_SECONDS": 0,
    }


@pytest.fixture(scope="session", autouse=True)
def url_builders_compiled_once():
    """Werkzeug compiles two URL builders (Python source, ``compile()``) for every route of
    every app: three quarters of create_app's time once argon2's dummy hash is shared, and
    every test builds an app. A builder depends only on its rule (the rule text, its parsed
    parts, defaults and converters), so the compiled function is shared between apps;
    binding it to each app's Rule object is still Werkzeug's own code."""
    original = Rule._compile_builder
    compiled: dict = {}

    def compile_builder(self, append_unknown=True):
        key = (
            self.rule,
            append_unknown,
            tuple(self._trace),
            tuple(sorted((name, repr(value)) for name, value in (self.defaults or {}).items())),
            tuple(sorted((name, type(conv)) for name, conv in self._converters.items())),
        )
        if key not in compiled:
            compiled[key] = original(self, append_unknown)
        return compiled[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Rule, "_compile_builder", compile_builder)
        yield


class CompiledAcrossEngines:
    """A compiled-statement cache shared by every engine of the run.

    SQLAlchemy caches a statement's compiled form per engine: its key holds the dialect
    object, and every test builds an app, so an engine, so each test compiled every
    statement it ran again (18 % of the flow tests' CPU). Production has one engine per
    process and compiles once. Here the dialect in the key is replaced by what its
    compilation depends on (its class, server version and parameter style): the engines of
    a run differ only in which file or database they reach. Each engine still runs on its
    own connections and dialect."""

    def __init__(self, size: int = 5000) -> None:
        from sqlalchemy.util import LRUCache

        self._cache = LRUCache(size)

    @staticmethod
    def _key(key: tuple) -> tuple:
        dialect = key[0]
        return (type(dialect), dialect.server_version_info, dialect.paramstyle, *key[1:])

    def get(self, key, default=None):
        return self._cache.get(self._key(key), default)

    def __setitem__(self, key, value) -> None:
        self._cache[self._key(key)] = value

    def clear(self) -> None:  # Engine.clear_compiled_cache()
        self._cache.clear()


@pytest.fixture(scope="session", autouse=True)
def statements_compiled_once():
    shared = CompiledAcrossEngines()
    original = db.make_engine

    def make_engine(url, config=None):
        engine = original(url, config)
        engine.update_execution_options(compiled_cache=shared)
        return engine

    # The unit of work's INSERTs and UPDATEs go through each mapper's own cache, keyed the
    # same way (SQLAlchemy memoizes it on the mapper as ``_compiled_cache``).
    for mapper in Base.registry.mappers:
        mapper.__dict__["_compiled_cache"] = CompiledAcrossEngines(100)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(db, "make_engine", make_engine)
        yield


class TemplatesInMemory(jinja2.BytecodeCache):
    """Jinja's compiled templates kept for the run: each test's app has its own Jinja
    environment, which parsed and compiled every template it rendered again (9 % of the
    flow tests' CPU). Jinja checks each entry against its template's source."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = bucket.bytecode_to_string()


@pytest.fixture(scope="session", autouse=True)
def templates_compiled_once():
    cache = TemplatesInMemory()
    original = Flask.create_jinja_environment

    def create_jinja_environment(self):
        environment = original(self)
        environment.bytecode_cache = cache
        return environment

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Flask, "create_jinja_environment", create_jinja_environment)
        yield


@pytest.fixture(autouse=True)
def instance_folder(tmp_path_factory, monkeypatch):
    """An instance folder of each test's own (IDP_INSTANCE_PATH): nothing a test writes
    there (mail outbox, config) is seen by another test or a parallel worker, and a
    developer's instance/config.py never changes a test. A conftest may override it.
    Outside tmp_path, which a test may expect to find empty."""
    folder = tmp_path_factory.mktemp("instance")
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(folder))
    return folder


def create_database(url: str) -> None:
    """CREATE DATABASE for a worker's URL, from a connection to the configured database."""
    name = make_url(url).database
    admin = create_engine(CONFIGURED_PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).scalar()
            if not exists:
                # template0: CREATE DATABASE from template1 fails while anyone is connected
                # to template1, as a parallel worker creating its own database may be.
                conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    finally:
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory, sqlite_folder):
    """A database at the head migration: the SQLite template file, or the PG URL."""
    if PG_URL:
        if PG_URL != CONFIGURED_PG_URL:
            create_database(PG_URL)
        engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
            # A commit here need not wait for the disk (a crash loses test data only);
            # every reader still sees it at once. Set on the database, as an owner may.
            try:
                name = make_url(PG_URL).database
                conn.exec_driver_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
            except DBAPIError:
                pass
        engine.dispose()
        app = create_app(base_config(None, PG_URL))
        upgrade(app)
        db.engine(app).dispose()
        return PG_URL
    url = f"sqlite:///{sqlite_folder}/template.sqlite3"
    app = create_app(base_config(None, url))
    upgrade(app)
    db.engine(app).dispose()
    return str(sqlite_folder / "template.sqlite3")


@pytest.fixture(scope="session")
def sqlite_folder(tmp_path_factory):
    """Where the SQLite test databases live: in memory (/dev/shm) when it has room, where a
    commit costs no fsync (5-20 ms each on a busy disk, several per test), else in tmp."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2**30:
        folder = Path(tempfile.mkdtemp(prefix="idp-tests-", dir=shm))
        yield folder
        shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp("databases")


@pytest.fixture(scope="session")
def signing_key_rows():
    """Keys generated once per run (RSA generation is slow) and copied into each test."""
    return [keys.generate(alg) for alg in keys.ALGORITHMS]


@pytest.fixture(scope="session")
def emptying(migrated_database):
    """Empty every table of the PG test database, sequences back to 1, in one round trip.

    A superuser empties the tables with DELETE in replication-replica mode, which skips
    triggers: the append-only trigger of audit_events (so no TRUNCATE, whose per-table file
    work cost 40-60 ms) and the foreign-key checks. Others DELETE in reverse dependency
    order and TRUNCATE audit_events only when it has rows. Only the sequences used are
    reset, with setval (ALTER SEQUENCE ... RESTART took 25-50 ms for all of them)."""
    engine = create_engine(PG_URL, pool_pre_ping=True)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.connect() as conn:
        superuser = conn.execute(
            text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()
    deletes = [f'DELETE FROM "{name}";' for name in tables if name != "audit_events"]
    if superuser:
        preamble = "SET LOCAL session_replication_role = replica;"
        audit = 'DELETE FROM "audit_events";'
    else:
        preamble = ""
        audit = 'IF EXISTS (SELECT FROM "audit_events") THEN TRUNCATE "audit_events"; END IF;'
    empty_sql = f"""
        SET LOCAL synchronous_commit = off;
        {preamble}
        DO $$
        BEGIN
            {audit}
            {" ".join(deletes)}
            PERFORM setval(quote_ident(sequencename)::regclass, 1, false)
               FROM pg_sequences WHERE schemaname = 'public' AND last_value IS NOT NULL;
        END $$;
    """

    def empty() -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(empty_sql)

    yield empty
    engine.dispose()


@pytest.fixture
def database_url(migrated_database, sqlite_folder, request):
    if PG_URL:
        empty = request.getfixturevalue("emptying")
        yield PG_URL
        empty()
        return
    path = sqlite_folder / f"{uuid.uuid4().hex}.sqlite3"
    shutil.copy(migrated_database, path)
    yield f"sqlite:///{path}"
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


@pytest.fixture
def app_config(tmp_path, database_url, request) -> dict:
    config = base_config(tmp_path, database_url)
    for marker in request.node.iter_markers("config"):
        config.update(marker.kwargs)
    return config


@pytest.fixture
def app(app_config, signing_key_rows):
    app = create_app(app_config)
    with app.app_context():
        session = db.session()
        for row in signing_key_rows:
            session.add(SigningKey(kid=row.kid, alg=row.alg, private_jwk=row.private_jwk))
        session.commit()
    yield app
    # Mail queued by a test (a notice after a sign-in, a password change...) wakes the
    # app's sender thread, an ended session the back-channel logout thread; they must stop
    # before the engine they use is disposed (a connection given back to a disposed pool
    # stays open, and its garbage collection fails whichever test it lands in).
    background.stop_workers(app)
    db.engine(app).dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def db_session(app):
    """A database session of the test's own, outside any app context (each request the test
    client makes gets its own context and session, as in production)."""
    session = app.extensions["idp.db"]()
    yield session
    session.close()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def factory(app):
    # No app context is held open here: the test client's requests would share its flask.g
    # (database session, Flask-Login's user, Flask-WTF's CSRF flag). Each call opens its own.
    return Factory(app)


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def user(factory):
    return factory.user(username="alice", email="alice@example.com", name="Alice Liddell")


@pytest.fixture
def oauth_client(factory):
    """A confidential client (client_secret_basic) allowed code + refresh tokens."""
    return factory.client()


@pytest.fixture
def public_client(factory):
    return factory.client(public=True, name="Public SPA")


@pytest.fixture
def steady_clock(monkeypatch):
    """The wall clock held in the middle of a minute while a test counts "N/minute".

    The sliding-window counter weighs the previous window's hits by how much of it is
    left, so a test that crossed a minute boundary saw one attempt too many pass (a flaky
    401 instead of 429 on a loaded machine). Counters in memory read time.time().
    """
    now = time.time()
    frozen = now - now % 60 + 30
    monkeypatch.setattr(time, "time", lambda: frozen)
