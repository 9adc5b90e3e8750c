"""Structured logs: one JSON object a line, each with the request id, never a secret.

Every request gets an id (a well-formed ``X-Request-Id`` from the proxy, or a new one); it is
on every log line written while the request runs and is returned in the ``X-Request-Id``
response header, so an operator can find a user's complaint in the logs. One access line is
written per request: method, path (never the query string, which carries codes, states and
hints), status, duration, endpoint, client address.

Nothing here logs a body, a header value or a query string. As a second line of defence the
formatter drops extra fields with secret-sounding names and masks ``name=value`` pairs of
OAuth parameters (code, tokens, secrets, passwords) and bearer/basic credentials in messages.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import random
import re
import sys
import threading
import time
import traceback
import weakref
from datetime import UTC, datetime
from logging.handlers import QueueHandler
from queue import Empty, SimpleQueue

from flask import Flask, Response, g, has_request_context, request

REQUEST_ID_HEADER = "X-Request-Id"
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

SECRET_WORDS = (
    "password",
    "secret",
    "token",
    "code",
    "assertion",
    "authorization",
    "cookie",
    "verifier",
)
# name=value / "name": "value" for OAuth parameters that carry credentials. A request_uri
# (RFC 9126 §2.2) is a bearer reference to a pushed request: its urn itself ends in
# "request_uri:<reference>", so the reference is masked even where the urn stands alone.
SECRET_PAIRS = re.compile(
    r"(?i)\b((?:access_token|refresh_token|id_token|code|code_verifier|client_secret|password"
    r"|client_assertion|registration_access_token|logout_token|device_code|user_code|"
    r"id_token_hint|subject_token|actor_token|request_uri)\"?\s*[=:]\s*\"?)([^\s&\"',;]+)"
)
SCHEMES = ("Bearer", "Basic", "DPoP")  # HTTP authentication schemes that carry credentials
CREDENTIALS = re.compile(rf"(?i)\b({'|'.join(SCHEMES)})\s+[A-Za-z0-9._~+/=-]{{8,}}")
_SCHEME_NAMES = re.compile("|".join(SCHEMES).lower())  # what scrub looks for on ASCII text

# Attributes every LogRecord has; anything else was passed with extra=.
STANDARD = set(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "access_line",
}


def scrub(text: str) -> str:
    """Mask credentials that a careless message might contain."""
    # Each pattern is scanned only where it could match: most texts (an access line's
    # method, path and address) have neither a "=" or ":" nor a scheme's name, and the two
    # scans cost ~4,000 instructions each. SECRET_PAIRS needs one of "=:", which have no
    # other case. On ASCII text, CREDENTIALS needs its scheme in ASCII letters of either
    # case; elsewhere IGNORECASE also matches non-ASCII letters ("ſ" for "s"), so it runs.
    if "=" in text or ":" in text:
        text = SECRET_PAIRS.sub(lambda m: m.group(1) + "[redacted]", text)
    if not text.isascii() or _SCHEME_NAMES.search(text.lower()):
        text = CREDENTIALS.sub(lambda m: m.group(1) + " [redacted]", text)
    return text


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS) and lowered not in SAFE_NAMES


# Extra fields whose names contain a secret word but carry no secret.
SAFE_NAMES = {"grant_type", "token_type", "token_id", "code_id", "status_code"}


def current_request_id() -> str | None:
    if has_request_context():
        return g.get("request_id")
    return None


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: ts, level, logger, message, request_id, pid, extras."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None) or current_request_id()
        entry = self.head(record.created, record.levelname, record.name, record.getMessage(),
                          record.process, request_id)  # fmt: skip
        if getattr(record, "access_line", False):  # its fields are known, see access()
            r = record
            return self.access_line(entry, r.method, r.path, r.status, r.duration_ms,
                                    r.endpoint, r.remote_addr)  # fmt: skip
        for name, value in vars(record).items():
            if name in STANDARD or name.startswith("_") or name in entry:
                continue
            if is_secret_name(name):
                continue
            entry[name] = (
                value if isinstance(value, int | float | bool | None) else scrub(str(value))
            )
        if record.exc_info:
            entry["exception"] = scrub("".join(traceback.format_exception(*record.exc_info)))
        return _encode(entry)

    @staticmethod
    def head(created, level, logger, message, pid, request_id) -> dict:
        """The fields every line starts with."""
        entry = {
            "ts": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": level,
            "logger": logger,
            "message": scrub(message),
            "pid": pid,
        }
        if request_id:
            entry["request_id"] = request_id
        return entry

    @staticmethod
    def access_line(entry, method, path, status, duration_ms, endpoint, remote_addr) -> str:
        entry.update(method=scrub(method), path=scrub(path), status=status,
                     duration_ms=duration_ms, endpoint=endpoint,
                     remote_addr=remote_addr and scrub(remote_addr))  # fmt: skip
        return _encode(entry)

    def format_access(self, line: tuple) -> str:
        """What ``format`` writes for the AccessRecord of a line that ``access`` queued."""
        method, path, status, duration_ms, endpoint, remote_addr, request_id, created, *_ = line
        message = AccessRecord.MESSAGE % (method, path, status)
        entry = self.head(created, "INFO", access_log.name, message, _PID, request_id)
        path = path[: AccessRecord.PATH_MAX]
        return self.access_line(entry, method, path, status, duration_ms, endpoint, remote_addr)


# json.dumps with these options builds an encoder per call; this one is made once.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = getattr(record, "request_id", None) or current_request_id() or "-"
        return scrub(super().format(record))


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self):
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass


class BackgroundHandler(QueueHandler):
    """Hands records to a thread of their own, which formats and writes them to ``writer``
    (a stream handler: stderr in production, a file or a buffer in tests).

    The request threads of a gthread worker then never wait on the writer's lock or on a
    write to stderr while holding it: under load, with one handler shared by four threads,
    that wait cost a discovery request about as much as gunicorn's own work. What only the
    request's thread knows (its request id, the message with its arguments) is settled
    before the hand-over. The queue is drained when the handler is closed and at exit.
    A forked child (gunicorn with --preload) starts a thread of its own: threads do not
    survive a fork, and its lines would otherwise wait in the queue for ever.

    The thread writes in batches: woken by a line, it lets the lines of the next
    ``LINGER_SECONDS`` gather, then formats them all and writes them with one write and one
    flush. Woken for every line instead (as ``QueueListener`` is), the thread took the GIL
    from the request threads once per request; under load that hand-over, not the
    formatting, was most of what the access line cost (docs/benchmarks.md, seventh round).
    An idle worker's thread sleeps in ``get`` and is never woken.
    """

    LINGER_SECONDS = 0.02

    def __init__(self, writer: logging.StreamHandler):
        super().__init__(SimpleQueue())
        self.writer = writer
        self.thread: threading.Thread | None = None
        self._start()
        _RUNNING.add(self)
        atexit.register(self.close)

    def _start(self) -> None:
        self.queue = SimpleQueue()  # what the parent had queued is the parent's to write
        self.thread = threading.Thread(
            target=self._run, args=(self.queue,), name="idp-log-writer", daemon=True
        )
        self.thread.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        record.msg = record.getMessage()
        record.args = None
        return record

    def _run(self, queue: SimpleQueue) -> None:
        while True:
            batch = [queue.get()]
            if batch[0] is not _STOP:
                time.sleep(self.LINGER_SECONDS)
            while True:
                try:
                    batch.append(queue.get_nowait())
                except Empty:
                    break
            stop = any(record is _STOP for record in batch)
            self._write([record for record in batch if record is not _STOP])
            if stop:
                return

    def _write(self, records: list[logging.LogRecord | tuple]) -> None:
        writer = self.writer
        # An access line comes as the tuple ``access`` queued. Without a filter to hand a
        # record to, a JsonFormatter writes it from the tuple; anything else gets its record.
        direct = not writer.filters and type(writer.formatter) is JsonFormatter
        lines = []
        for record in records:
            try:
                if type(record) is tuple:
                    if direct:
                        lines.append(writer.formatter.format_access(record) + writer.terminator)
                        continue
                    record = AccessRecord.of(record)
                if writer.filter(record):
                    lines.append(writer.format(record) + writer.terminator)
            except Exception:
                if type(record) is tuple:
                    record = AccessRecord.of(record)
                writer.handleError(record)  # this line only; the thread goes on
        if not lines:
            return
        with writer.lock:
            try:
                writer.stream.write("".join(lines))
                writer.flush()
            except Exception:
                writer.handleError(records[-1])

    def close(self) -> None:
        _RUNNING.discard(self)
        thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(_STOP)
            thread.join()  # writes what is queued, then ends
            atexit.unregister(self.close)
            self.writer.close()
        super().close()


_STOP = object()
_RUNNING: weakref.WeakSet[BackgroundHandler] = weakref.WeakSet()


def drain() -> None:
    """Write what each background handler holds and stop its thread, before the process
    becomes another program (``idp serve`` execs gunicorn), which would drop it."""
    for handler in list(_RUNNING):
        handler.close()


def _restart_after_fork() -> None:
    for handler in list(_RUNNING):
        handler._start()


os.register_at_fork(after_in_child=_restart_after_fork)


def formatter(kind: str) -> logging.Formatter:
    return JsonFormatter() if kind == "json" else TextFormatter()


def configure(kind: str = "json", level: str = "INFO", handler: bool = True) -> None:
    """Install one stderr handler on the ``idp`` loggers (idempotent: replaces the last one).

    The handler writes from a background thread (``BackgroundHandler``).

    Without ``handler`` (tests) only the level is set: the test runner captures the records.
    """
    logger = logging.getLogger("idp")
    for existing in list(logger.handlers):
        if getattr(existing, "idp_handler", False):
            logger.removeHandler(existing)
            existing.close()
    if handler:
        stderr = StderrHandler()
        stderr.setFormatter(formatter(kind))
        background = BackgroundHandler(stderr)
        background.idp_handler = True
        logger.addHandler(background)
    logger.setLevel(level.upper())
    # With its own handler, an idp record must not also reach the root logger's handlers:
    # gunicorn's logconfig gives root one, and every line was written twice.
    logger.propagate = not handler
    # The development server logs request lines with their query strings (codes!); the
    # access line below replaces them.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


access_log = logging.getLogger("idp.access")


def request_id_for(incoming: str | None) -> str:
    """The proxy's X-Request-Id when well-formed, else a new one.

    A request id only correlates lines; it is no secret, so it comes from ``random`` (which
    re-seeds in every forked worker) rather than from os.urandom, a system call per request.
    """
    if incoming and VALID_REQUEST_ID.match(incoming):
        return incoming
    return f"{random.getrandbits(128):032x}"


class AccessRecord(logging.LogRecord):
    """The LogRecord of an access line, built without what ``Logger.info`` spends on it.

    ``Logger._log`` walks the stack to find the caller, and ``LogRecord.__init__`` splits
    the caller's file name and asks multiprocessing for the process name: the same answers
    for every access line. This record has the same attributes (in its ``__dict__``, where
    formatters read them), with those constants settled once (the process name again after
    a fork), and goes through ``Logger.handle`` like any record: level, filters, handlers
    and propagation apply as before.
    """

    FILENAME = os.path.basename(__file__)
    MODULE = os.path.splitext(FILENAME)[0]
    LINENO = 0  # access()'s first line, set below
    MESSAGE = "%s %s %s"  # method, path, status
    PATH_MAX = 256  # the path field's length; the message keeps the whole path
    process_name: str | None = None

    def __init__(self, name, method, path, status, duration_ms, endpoint, remote_addr,
                 request_id, created=None, thread=None, thread_name=None):  # fmt: skip
        if created is None:
            created = time.time()
            thread = threading.get_ident()
            thread_name = threading.current_thread().name
        self.name = name
        self.msg = self.MESSAGE
        self.args = (method, path, status)
        self.levelname = "INFO"
        self.levelno = logging.INFO
        self.pathname = __file__
        self.filename = self.FILENAME
        self.module = self.MODULE
        self.exc_info = None
        self.exc_text = None
        self.stack_info = None
        self.lineno = self.LINENO
        self.funcName = "access"
        self.created = created
        self.msecs = int((created - int(created)) * 1000) + 0.0
        self.relativeCreated = (created - logging._startTime) * 1000
        self.thread = thread
        self.threadName = thread_name
        if AccessRecord.process_name is None:
            AccessRecord.process_name = logging.LogRecord(
                "", logging.INFO, "", 0, "", (), None
            ).processName  # fmt: skip
        self.processName = AccessRecord.process_name
        self.process = _PID
        self.method = method
        self.path = path[: self.PATH_MAX]
        self.status = status
        self.duration_ms = duration_ms
        self.endpoint = endpoint
        self.remote_addr = remote_addr
        # JsonFormatter writes these fields without walking every attribute of the record
        # (the generic walk cost about as much again).
        self.access_line = True
        if request_id is not None:
            self.request_id = request_id

    @classmethod
    def of(cls, line: tuple) -> AccessRecord:
        """The record of a line that ``access`` queued (its arguments after the name, in
        their order), as ``access`` would have made it."""
        return cls(access_log.name, *line)


_PID = os.getpid()  # a system call each time; set again in a forked child


def _forget_process_name() -> None:
    global _PID
    AccessRecord.process_name = None
    _PID = os.getpid()


os.register_at_fork(after_in_child=_forget_process_name)


def access(method, path, status, duration_ms, endpoint, remote_addr, request_id=None) -> None:
    """The one access line of a request (also written by idp.published, outside Flask).

    Where the record would only reach the BackgroundHandler that ``configure`` installs (no
    filter, no other handler on the way), its fields go to that handler's queue as a tuple:
    the writer thread formats the same line from them (``JsonFormatter.format_access``) or
    makes the record (``AccessRecord.of``). The request thread then spends ~1 µs on its line
    instead of ``Logger.handle``'s walk, the handler's lock and the record.
    """
    if not access_log.isEnabledFor(logging.INFO):
        return
    handler = _sole_handler()
    if handler is None:
        access_log.handle(AccessRecord(access_log.name, method, path, status, duration_ms,
                                       endpoint, remote_addr, request_id))  # fmt: skip
        return
    # What QueueHandler.prepare would add: the request id of the request being answered.
    request_id = request_id or current_request_id()
    thread = threading.current_thread()
    handler.queue.put((method, path, status, duration_ms, endpoint, remote_addr, request_id,
                       time.time(), thread.ident, thread.name))  # fmt: skip


def _sole_handler() -> BackgroundHandler | None:
    """The handler an access record would reach alone, when it is a BackgroundHandler that
    would take it as it is; else None. Read on every line: the logging configuration may
    change while the worker runs (a test's handler, an operator's filter)."""
    log = access_log
    parent = log.parent
    if log.disabled or log.filters or log.handlers or not log.propagate or parent is None:
        return None
    if parent.filters or parent.propagate:
        return None
    try:
        (handler,) = parent.handlers  # one step: the list may change in another thread
    except ValueError:
        return None
    if type(handler) is not BackgroundHandler or handler.filters or handler.level > logging.INFO:
        return None
    return handler


AccessRecord.LINENO = access.__code__.co_firstlineno


def start_request() -> None:
    values = vars(g._get_current_object())  # flask.g keeps its attributes there
    values["request_started"] = time.perf_counter()
    values["request_id"] = request_id_for(
        request._get_current_object().environ.get("HTTP_X_REQUEST_ID")
    )


def finish_request(response: Response) -> Response:
    values = vars(g._get_current_object())
    req = request._get_current_object()
    request_id = values.get("request_id")
    if request_id:
        # Well-formed (request_id_for), so appended as it is, unless a view set one.
        headers = response.headers
        for key, _value in headers._list:
            if key.lower() == "x-request-id":
                headers[REQUEST_ID_HEADER] = request_id
                break
        else:
            headers._list.append((REQUEST_ID_HEADER, request_id))
    started = values.get("request_started")
    duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
    access(
        req.method,
        req.path,
        response.status_code,
        duration_ms,
        req.endpoint,
        req.remote_addr,
        request_id,
    )
    return response


def init_app(app: Flask) -> None:
    configure(str(app.config["LOG_FORMAT"]), str(app.config["LOG_LEVEL"]), not app.testing)
    # First of all before-request hooks, so an early refusal (rate limit) still has an id.
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)
    app.after_request(finish_request)


__all__ = ["JsonFormatter", "configure", "init_app", "scrub"]
