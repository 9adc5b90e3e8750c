"""Database engine and the per-request SQLAlchemy session.

The engine is built once per app from ``DATABASE_URL``; a session is opened lazily the
first time a request (or CLI command) asks for one, kept on ``flask.g`` and closed at
teardown, so every worker shares nothing but the database itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask, current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, make_transient_to_detached, sessionmaker
from sqlalchemy.sql import sqltypes


def make_engine(url: str, config=None) -> Engine:
    config = config or {}
    if url.startswith("sqlite"):
        # timeout = busy timeout: concurrent writers wait for the lock instead of failing.
        # hide_parameters: SQL errors in the log never show values (hashes, claims).
        engine = create_engine(url, connect_args={"timeout": 15}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    # One pool per worker process: DATABASE_POOL_SIZE steady connections plus
    # DATABASE_MAX_OVERFLOW under bursts (docs/deploy.md sizes them against max_connections).
    connect_args = {}
    if url.startswith("postgresql"):
        connect_args["connect_timeout"] = int(config.get("DATABASE_CONNECT_TIMEOUT", 5))
    engine = create_engine(
        url,
        pool_size=int(config.get("DATABASE_POOL_SIZE", 5)),
        max_overflow=int(config.get("DATABASE_MAX_OVERFLOW", 5)),
        pool_timeout=float(config.get("DATABASE_POOL_TIMEOUT", 10)),
        pool_recycle=int(config.get("DATABASE_POOL_RECYCLE", 1800)),
        hide_parameters=True,
        connect_args=connect_args,
    )
    ping_after_idle(engine, float(config.get("DATABASE_PING_AFTER_IDLE", 2)))
    return engine


def ping_after_idle(engine: Engine, seconds: float) -> None:
    """Ping a pooled connection before use only when it sat idle longer than ``seconds``.

    SQLAlchemy's ``pool_pre_ping`` costs a round trip on every checkout, the largest single
    overhead of a token request under load. A connection in steady use is known good; one
    left idle may have been dropped by a restarted server or a firewall, so it is pinged
    and, if dead, replaced (DisconnectionError makes the pool retry with a new one). A
    connection that breaks mid-request raises a disconnect error: the request answers 503
    and SQLAlchemy invalidates every older pooled connection, so the next request reconnects.
    """

    @event.listens_for(engine, "connect")
    def _fresh(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record):
        if record is not None:
            record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy):
        if time.monotonic() - record.info.get("idle_since", 0) <= seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise DisconnectionError("pooled connection is dead") from exc


def init_app(app: Flask) -> None:
    engine = make_engine(app.config["DATABASE_URL"], app.config)
    app.extensions["idp.db"] = factory = sessionmaker(engine, expire_on_commit=False)
    event.listen(factory, "after_begin", _began)
    event.listen(factory, "after_transaction_end", _ended)
    config = app.config  # config.DEFAULTS has every DATABASE_* setting
    capacity = int(config["DATABASE_POOL_SIZE"]) + int(config["DATABASE_MAX_OVERFLOW"])
    ping_after = float(config["DATABASE_PING_AFTER_IDLE"])
    app.extensions["idp.db.held"] = HeldConnections(engine, ping_after, capacity)
    app.teardown_appcontext(close_session)


def engine(app: Flask | None = None) -> Engine:
    factory = (app or current_app._get_current_object()).extensions["idp.db"]
    return factory.kw["bind"]


def session() -> Session:
    """The session of the current request or CLI command."""
    values = vars(g._get_current_object())  # flask.g's attributes, without the proxy
    found = values.get("db_session")
    if found is None:
        app = current_app._get_current_object()
        app.extensions["idp.db.held"].make_room()
        found = values["db_session"] = app.extensions["idp.db"]()
    return found


def open_session() -> Session | None:
    """The request's session if it has opened one, else None (opening one costs a commit)."""
    return vars(g._get_current_object()).get("db_session")  # g.get, without the proxy


# In a session's ``info`` while one of its connections is in a transaction. A session's own
# ``in_transaction()`` is true from its first ``add`` on (SQLAlchemy's autobegin), before
# anything was sent to the database.
BEGAN = "idp.db.began"


def _began(session: Session, _transaction, _connection) -> None:
    session.info[BEGAN] = True


def _ended(session: Session, transaction) -> None:
    if transaction.parent is None:  # the outermost: committed or rolled back
        session.info.pop(BEGAN, None)


def nothing_pending() -> bool:
    """Whether the request's session has neither a database transaction nor a change to
    flush: a statement autocommitted now then commits nothing but itself."""
    current = open_session()
    return current is None or not (
        BEGAN in current.info or current.new or current.dirty or current.deleted
    )


def read_only() -> None:
    """Mark this request as one that only reads (introspection, UserInfo).

    Its statements then run in autocommit mode: no BEGIN before the first and no ROLLBACK
    at the end, two of the three round trips of a one-query request. Call it before the
    request's first statement; a request that already began a transaction keeps it.
    """
    current = session()
    if not current.in_transaction():
        current.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def driver_path() -> bool:
    """Whether the hot paths run their statements on the driver (PostgreSQL with psycopg).

    SQLite keeps the SQLAlchemy path for them (docs/architecture.md, "Hot paths").
    """
    return engine().dialect.driver == "psycopg"


class _Held:
    """A thread's checked-out connection (``HeldConnections``)."""

    __slots__ = ("proxied", "conn", "thread", "since", "last_used", "depth")

    def __init__(self, proxied) -> None:
        self.proxied = proxied  # None once back in the pool
        self.conn = proxied.driver_connection
        self.thread = threading.current_thread()
        self.since = self.last_used = time.monotonic()
        self.depth = 0


class HeldConnections:
    """One pooled psycopg connection per thread, kept checked out in autocommit mode between
    requests, for the hot paths' one-statement transactions (``autocommit``).

    Checking a connection out of SQLAlchemy's pool and back in, with the autocommit switch
    both ways, cost ~90 Python calls and 7-8 % of the instructions of an introspection
    (docs/benchmarks.md). The pool stays the only source of connections and keeps its rules:

    * a held connection unused for longer than ``DATABASE_PING_AFTER_IDLE`` seconds is
      pinged before use, as the pool pings an idle one, and replaced if dead;
    * it goes back to the pool after ``HOLD_SECONDS`` at most, so that the pool's recycling
      and its invalidation after a disconnect reach it; a fresh checkout follows;
    * one that fails mid-statement is invalidated (the request answers 503, errors.py);
      one whose thread has ended goes back at the next checkout, and ``Engine.dispose`` (a
      worker's shutdown, a test's teardown) returns them all.

    A request thread holds at most one beside its session's connection (docs/deploy.md sizes
    the pool for two per thread); where the pool is smaller, or spent, ``make_room`` gives the
    held one back before the thread waits for another.
    """

    HOLD_SECONDS = 30.0

    def __init__(self, engine: Engine, ping_after: float, capacity: int) -> None:
        self.engine = engine
        self.ping_after = ping_after
        self.capacity = capacity  # DATABASE_POOL_SIZE + DATABASE_MAX_OVERFLOW
        self.local = threading.local()
        self.lock = threading.Lock()
        self.holders: dict[threading.Thread, _Held] = {}
        event.listen(engine, "engine_disposed", self._release_all)

    @contextmanager
    def connection(self) -> Iterator:
        held = getattr(self.local, "held", None)
        if held is None or not self._usable(held):
            held = self._check_out()
        held.depth += 1
        try:
            yield held.conn
        except Exception as exc:
            wrapped = wrap_driver_error(exc, held.proxied)
            if held.depth == 1:  # the outermost use: whatever state the error left, the
                self._release(held)  # pool's reset clears it
            if wrapped is exc:
                raise
            raise wrapped from exc
        finally:
            held.depth -= 1
            held.last_used = time.monotonic()

    def give_back(self) -> None:
        """Give this thread's connection back to the pool now: a background thread whose
        rounds have ended (the mail sender), rather than at another thread's next checkout."""
        held = getattr(self.local, "held", None)
        if held is not None and not held.depth:
            self._release(held)

    def make_room(self) -> None:
        """Give this thread's connection back when the pool has none left to lend, before
        the thread takes a second one (its session): a thread must never wait on the pool
        for the connection it holds itself (a pool sized below two per thread, or every
        thread busy at once)."""
        held = getattr(self.local, "held", None)
        if held is None or held.depth:
            return
        pool = self.engine.pool
        if pool.checkedin() == 0 and pool.checkedout() >= self.capacity:
            self._release(held)

    def _usable(self, held: _Held) -> bool:
        now = time.monotonic()
        if held.conn.closed or now - held.since > self.HOLD_SECONDS:
            self._release(held)
            return False
        if now - held.last_used > self.ping_after:
            try:
                self.engine.dialect.do_ping(held.conn)
            except Exception as exc:
                held.proxied.invalidate(exc)
                self._release(held)
                return False
        return True

    def _check_out(self) -> _Held:
        with self.lock:  # first give back what ended threads held (a thread per request
            ended = [held for thread, held in self.holders.items() if not thread.is_alive()]
        for held in ended:  # in the development server), to be reused here
            self._release(held)
        try:
            proxied = self.engine.raw_connection()
        except Exception as exc:  # the pool does not wrap a refused connection as connect() does
            raise wrap_driver_error(exc) from exc
        try:
            proxied.driver_connection.autocommit = True
        except Exception as exc:
            proxied.close()
            raise wrap_driver_error(exc, proxied) from exc
        held = _Held(proxied)
        with self.lock:
            self.holders[held.thread] = held
        self.local.held = held
        return held

    def _release(self, held: _Held, close: bool = False) -> None:
        """Back to the pool (once), with autocommit off as the pool's other users expect;
        a broken connection, or any with ``close``, is invalidated: closed, and the pool
        opens a new one in its place."""
        proxied, held.proxied = held.proxied, None
        if proxied is None:
            return
        if getattr(self.local, "held", None) is held:
            self.local.held = None
        with self.lock:
            if self.holders.get(held.thread) is held:
                del self.holders[held.thread]
        if proxied.dbapi_connection is not None:  # else invalidated already
            try:
                if close or held.conn.closed:
                    proxied.invalidate()
                else:
                    held.conn.autocommit = False
            except Exception as exc:  # noqa: BLE001 (broken: the pool replaces it)
                proxied.invalidate(exc)
        proxied.close()

    def _release_all(self, _engine: Engine) -> None:
        # After the pool's dispose: a connection returned to it now would stay open.
        with self.lock:
            holders = list(self.holders.values())
        for held in holders:
            self._release(held, close=True)


def autocommit():
    """A pooled psycopg connection in autocommit mode, for one statement that is the whole
    transaction (no BEGIN, no COMMIT: one round trip). Not the request's session.

    The connection is this thread's own, kept between requests (``HeldConnections``).
    Driver errors come out as SQLAlchemy's (a dropped connection answers 503, errors.py),
    and a connection the driver reports broken is dropped from the pool.
    """
    return current_app._get_current_object().extensions["idp.db.held"].connection()


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s")


@functools.cache
def _libpq():
    """psycopg's libpq layer and its parameter formats, imported on first use (a process on
    SQLite never loads psycopg) and then once, not per statement."""
    from psycopg import pq
    from psycopg.adapt import PyFormat

    return pq, PyFormat


class Prepared:
    """One hot-path statement on an autocommitted connection, as a server-side prepared
    statement under a name of its own, run through psycopg's libpq layer (``psycopg.pq``).

    ``connection.execute(sql, params, prepare=True)`` costs ~45 µs of Python per statement
    on top of libpq (a cursor, the query's parse and cache look-up, dumpers chosen by type,
    the result's wait generator), about a tenth of an introspection. Here the statement's
    text is converted once, it is prepared on a connection on first use, and each run is
    ``PQexecPrepared`` (blocking, without the GIL) with the parameters in text format, typed
    by the server from the statement as a prepared statement's are, and the row loaded by
    psycopg's own loaders (``Transformer``, binary results): the same values as the cursor's.

    Only on connections in autocommit mode (``autocommit()``), where a failed statement
    leaves no transaction behind: psycopg deallocates every prepared statement of a
    connection after a ROLLBACK (its pool's reset), so a name this process believes
    prepared may be gone. The server's "prepared statement does not exist" is then answered
    by preparing it again and running it once more. Errors are psycopg's own, as
    ``execute`` raises them (``autocommit()`` turns them into SQLAlchemy's).
    """

    _named: dict[bytes, bytes] = {}  # a name is one statement in every connection

    def __init__(self, name: str, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match) -> str:
            key = match.group(1)
            if key is None:  # positional: one parameter per %s
                names.append(str(len(names)))
                return f"${len(names)}"
            if key not in names:
                names.append(key)
            return f"${names.index(key) + 1}"

        self.name = name.encode()
        self.sql = _PLACEHOLDER.sub(number, sql).replace("%%", "%").encode()
        self.names = tuple(names)
        self.positional = sql.count("%(") == 0
        if self._named.setdefault(self.name, self.sql) != self.sql:
            raise ValueError(f"{name} is already the name of another statement")

    def run(self, conn, params):
        """The PGresult of the statement with ``params`` (a sequence in placeholder order
        for ``%s`` statements, else a mapping by name)."""
        pq, PyFormat = _libpq()
        try:
            prepared, transformer = conn._idp_prepared
        except AttributeError:  # this connection's first: kept on it, and gone with it
            from psycopg.adapt import Transformer

            prepared, transformer = conn._idp_prepared = (set(), Transformer(conn))
        values = params if self.positional else [params[key] for key in self.names]
        sent = transformer.dump_sequence(values, (PyFormat.TEXT,) * len(values))
        pgconn = conn.pgconn
        for attempt in (1, 2):
            if self.name not in prepared:
                result = pgconn.prepare(self.name, self.sql, None)
                if result.status != pq.ExecStatus.COMMAND_OK:
                    raise _error(conn, result)
                prepared.add(self.name)
            result = pgconn.exec_prepared(self.name, sent, None, pq.Format.BINARY)
            if result.status in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
                return result
            error = _error(conn, result)
            if attempt == 1 and error.sqlstate == "26000":  # invalid_sql_statement_name
                prepared.discard(self.name)  # deallocated behind this process's back
                continue
            raise error
        raise AssertionError("unreachable")

    def one(self, conn, params) -> tuple | None:
        """The first row of the statement's result, or None: ``execute(...).fetchone()``."""
        result = self.run(conn, params)
        if not result.ntuples:
            return None
        transformer = conn._idp_prepared[1]
        transformer.set_pgresult(result)
        return transformer.load_row(0, tuple)

    def rowcount(self, conn, params) -> int:
        """The rows the statement changed: ``execute(...).rowcount``."""
        return self.run(conn, params).command_tuples or 0

    def all(self, conn, params) -> list[tuple]:
        """Every row of the statement's result (none for a statement without rows)."""
        result = self.run(conn, params)
        if not result.ntuples:
            return []
        transformer = conn._idp_prepared[1]
        transformer.set_pgresult(result)
        return transformer.load_rows(0, result.ntuples, tuple)


def _error(conn, result) -> Exception:
    """The psycopg error (its class by SQLSTATE) that ``execute`` raises for ``result``."""
    from psycopg import errors

    return errors.error_from_result(result, encoding=conn.info.encoding)


def as_loaded(model, values: dict):
    """The ORM object of a row read without the ORM (``values``: every column, by key), as
    a query would have loaded it into the request's session: persistent, nothing to flush,
    its relationships loaded when first read. If the session already holds that row's
    object, that one is returned, as a query returns it."""
    s = session()
    key = model.__mapper__.identity_key_from_primary_key((values["id"],))
    held = s.identity_map.get(key)
    if held is not None:
        return held
    obj = model._sa_class_manager.new_instance()  # filled directly: no attribute events
    obj.__dict__.update(values)
    make_transient_to_detached(obj)
    s.add(obj)
    return obj


@contextmanager
def in_session() -> Iterator:
    """The psycopg connection under the request's session, inside its transaction (the
    caller commits), for a hot path's statement that must commit with what the session
    holds. Driver errors come out as SQLAlchemy's, as from ``autocommit()``."""
    pooled = session().connection().connection
    try:
        yield pooled.driver_connection
    except Exception as exc:
        wrapped = wrap_driver_error(exc, pooled)  # a dropped connection leaves the pool
        if wrapped is exc:
            raise
        raise wrapped from exc


class Statement:
    """One statement run without the ORM, built once from a Core statement (``build``, or
    ``build(dialect_name)`` for one that differs by database, such as ON CONFLICT):

        execute(values)           on the request session's connection, in its transaction:
                                  a row the caller needs no ORM object of (an audit event, a
                                  code), or a narrow read
        run(connection, values)   on a SQLAlchemy connection of the caller's
        alone(values)             as a transaction of its own, autocommitted (the mail
                                  sender's): every row of its result, as tuples

    On PostgreSQL it runs as psycopg's own prepared statement (``execute(prepare=True)``;
    psycopg prepares it again after a ROLLBACK deallocated it), compiled once: a sign-in
    runs about a dozen, and each cost ~300 µs of Python through SQLAlchemy Core and ~570 µs
    as an ORM object flushed at commit, against ~175 µs here (the statement's round trip
    included; docs/benchmarks.md). Values of JSON columns are sent as their text, which the
    statement's ``::JSON`` casts type. Elsewhere (SQLite) it is the Core statement.

    ``alone`` runs on PostgreSQL as a ``Prepared`` statement on the thread's held
    autocommitted connection (``autocommit()``: no pool checkout, autocommit switch, BEGIN or
    COMMIT per statement), elsewhere on a pooled connection in autocommit mode.

    Columns the statement leaves out get the model's Python-side defaults (``default=``;
    ``onupdate=`` in an UPDATE), as SQLAlchemy gives them; a context-sensitive one (a
    function of one argument) gets a ``DefaultContext``, whose ``get_current_parameters()``
    answers the statement's parameters as SQLAlchemy's execution context does. Both return
    a cursor-like result: ``fetchone()``, ``fetchall()``, ``rowcount``; rows are tuples
    (read them by position). Driver errors come out as SQLAlchemy's. Nothing is flushed
    first: the statement must not need what the ORM holds unflushed.
    """

    def __init__(self, build) -> None:
        self.build = build
        self._built: dict[str, object] = {}
        self._prepared: Prepared | None = None  # alone()'s, made on first use
        statement = self.statement("postgresql")
        compiled = statement.compile(dialect=postgresql.psycopg.dialect())
        self.sql = str(compiled)
        # The model's Python-side defaults (``default=``, and ``onupdate=`` of an UPDATE) of
        # the columns the statement leaves out: SQLAlchemy compiles each as a parameter and
        # fills it in at execution, so this path fills it in too, where the caller has not.
        self.defaults = {
            column.key: (default, column)
            for columns, attribute in (
                (compiled.insert_prefetch, "default"),
                (compiled.update_prefetch, "onupdate"),
            )
            for column in columns
            if (default := getattr(column, attribute)) is not None
        }
        # Values the statement holds itself (``.values(status="pending", sent_at=None)``),
        # sent with each; the others are the caller's.
        self.fixed = {
            name: value
            for name, value in compiled.params.items()
            if not compiled.binds[name].required and name not in self.defaults
        }
        self.json = frozenset(
            name for name, bind in compiled.binds.items() if isinstance(bind.type, sqltypes.JSON)
        )

    def statement(self, dialect: str):
        built = self._built.get(dialect)
        if built is None:
            built = self.build(dialect) if callable(self.build) else self.build
            self._built[dialect] = built
        return built

    def execute(self, values: dict):
        return self.run(session().connection(), values)

    def alone(self, values: dict) -> list[tuple]:
        if not driver_path():
            with engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                result = self.run(conn, values)
                return [tuple(row) for row in result] if result.returns_rows else []
        prepared = self._prepared
        if prepared is None:  # named by its text: one name per statement in every process
            name = "idp_s_" + hashlib.sha256(self.sql.encode()).hexdigest()[:20]
            prepared = self._prepared = Prepared(name, self.sql)
        with autocommit() as conn:
            return prepared.all(conn, self._values(values))

    def run(self, connection, values: dict):
        if connection.dialect.driver != "psycopg":
            return connection.execute(self.statement(connection.dialect.name), values)
        values = self._values(values)
        proxied = connection.connection
        try:
            return proxied.driver_connection.execute(self.sql, values, prepare=True)
        except Exception as exc:  # a dropped connection is invalidated, as SQLAlchemy would
            raise wrap_driver_error(exc, proxied) from exc

    def _values(self, values: dict) -> dict:
        """The statement's parameters on the driver: its fixed values, the defaults the
        caller left out, JSON as text."""
        if self.fixed or self.defaults:
            values = {**self.fixed, **values}
            for name, (default, column) in self.defaults.items():
                if name in values:  # the caller's value wins, as in SQLAlchemy's execution
                    continue
                if default.is_callable:  # in the statement's order, as SQLAlchemy calls them
                    values[name] = default.arg(DefaultContext(values, column))
                else:
                    values[name] = default.arg
        if self.json:
            values = json_as_text({**values}, self.json)
        return values


def json_as_text(values: dict, names) -> dict:
    """``values`` (the caller's own dict, changed in place) with each of ``names`` that is
    set replaced by its JSON text, as psycopg's Json would send it: the statement's
    ``::JSON`` cast types it. Returns ``values``."""
    for name in names:
        value = values.get(name)
        if value is not None:
            values[name] = json.dumps(value)
    return values


class DefaultContext:
    """What a context-sensitive column default (``default=fn``, ``fn(context)``) reads of
    SQLAlchemy's execution context when ``Statement`` fills it in: the statement's
    parameters so far (``get_current_parameters()``, ``current_parameters``) and the column
    (``current_column``). Defaults of no argument are called without it, by SQLAlchemy's
    own wrapper."""

    __slots__ = ("current_parameters", "current_column")

    def __init__(self, parameters: dict, column) -> None:
        self.current_parameters = parameters
        self.current_column = column

    def get_current_parameters(self, isolate_multiinsert_groups: bool = True) -> dict:
        return self.current_parameters


def wrap_driver_error(exc: Exception, proxied=None) -> Exception:
    """A psycopg error as the SQLAlchemy error the rest of the app handles."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return exc
    if proxied is not None and proxied.driver_connection.closed:
        proxied.invalidate(exc)
    return DBAPIError.instance(None, None, exc, psycopg.Error)


def close_session(_exc: BaseException | None = None) -> None:
    values = vars(g._get_current_object())  # flask.g keeps its attributes there
    db_session = values.pop("db_session", None)
    if db_session is not None:
        db_session.close()


def insert_for(dialect: str):
    """The INSERT construct with ON CONFLICT (``on_conflict_do_nothing``) of ``dialect``:
    PostgreSQL's, else SQLite's (the two databases this server runs on)."""
    return (postgresql if dialect == "postgresql" else sqlite).insert
