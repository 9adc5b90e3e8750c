"""A worker's background thread for queued work (back-channel logout, mail).

The only shared state is the database, so each queue is a table; a ``Worker`` is one thread
per process that runs rounds while its queue has work and ends when it has none, leaving no
open transaction between rounds. Rows another process left behind are found by the next
``kick`` (the owners kick on requests, every so often).

    kick() ──► thread (started if not running) ──► round() in an app context
                 └─ returns seconds until the next due row (wait, or be woken by kick)
                    or None (nothing pending: the thread ends)

A round may ``pause()`` first (the mail sender spaces its rounds); ``stop()`` ends a pause.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import event, func, select

from . import db

log = logging.getLogger("idp.background")

# In a session's ``info``: the workers to wake once its transaction commits.
WAKE_AFTER_COMMIT = "idp.background.wake"
# In ``app.extensions``: the app's sessionmaker has the listener that reads it.
LISTENING = "idp.background.listening"


def _wake_committed(session) -> None:
    for worker in session.info.pop(WAKE_AFTER_COMMIT, ()):
        worker.kick()


def seconds_until_due(due_column, *pending) -> float | None:
    """Seconds until the earliest due row of a queue (0 if overdue); None when no row is
    ``pending``. What a ``Worker.round`` returns once it has done what was due."""
    s = db.session()
    due = s.scalar(select(func.min(due_column)).where(*pending))
    s.commit()
    if due is None:
        return None
    if due.tzinfo is None:  # SQLite returns aggregates without the column's type
        due = due.replace(tzinfo=UTC)
    return max((due - datetime.now(UTC)).total_seconds(), 0.0)


def stop_workers(app: Flask, timeout: float = 5) -> None:
    """Stop every background thread of ``app``, waiting for the round each is in: before its
    engine is disposed, since a connection given back to a disposed pool stays open."""
    for worker in app.extensions.get("idp.workers", ()):
        worker.stop(timeout)


class Worker:
    """A per-process thread that runs ``round()`` only while there is work."""

    thread_name = "idp-worker"

    def __init__(self, app: Flask):
        self.app = app
        app.extensions.setdefault("idp.workers", []).append(self)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._halt = threading.Event()  # set by stop(): no more rounds, and a pause() ends
        self._running = False
        self._thread: threading.Thread | None = None
        # One listener on the app's sessionmaker (db.init_app's), however many workers.
        # Not asked of event.contains: SQLAlchemy's registry keys a target by its id(), and
        # a sessionmaker's class made after another was collected may get the old one's id,
        # so it answered "listening" for a new app's sessionmaker that was not (a kick lost
        # in 6 of 400 apps made in one process).
        if not app.extensions.get(LISTENING):
            event.listen(app.extensions["idp.db"], "after_commit", _wake_committed)
            app.extensions[LISTENING] = True

    @property
    def enabled(self) -> bool:
        return not self._halt.is_set()

    @property
    def running(self) -> bool:
        """Whether the thread is in its rounds (it ends when the queue has no work)."""
        return self._running

    def round(self) -> float | None:
        """One pass over the queue; seconds until the next due row, None when none is left."""
        raise NotImplementedError

    def retry_after_error(self) -> float:
        """Seconds to wait after a round failed (a database hiccup)."""
        return 10.0

    def kick(self) -> None:
        """Look for due work now (starting the thread if it is not running)."""
        if not self.enabled:
            return
        with self._lock:
            self._wake.set()
            if not self._running:
                self._running = True
                self._thread = threading.Thread(
                    target=self._run, name=self.thread_name, daemon=True
                )
                self._thread.start()

    def kick_after_commit(self) -> None:
        """Look for due work once the request's transaction commits (what it queued is then
        visible). A mark on the session, read by one listener on every session: a listener
        added per call cost ~20 µs warm and ~100 µs inside a sign-in."""
        db.session().info.setdefault(WAKE_AFTER_COMMIT, set()).add(self)

    def pause(self, seconds: float) -> None:
        """Wait ``seconds`` within a round; stop() ends the wait (a kick does not)."""
        if seconds > 0:
            self._halt.wait(seconds)

    def stop(self, timeout: float = 5) -> None:
        self._halt.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        # At least one round per start, so a kick is never lost to a concurrent stop().
        while True:
            with self._lock:
                self._wake.clear()
            wait = self._pass()
            with self._lock:
                if self._halt.is_set() or (wait is None and not self._wake.is_set()):
                    self._running = False
                    break
            self._wake.wait(timeout=wait)
        # The connection a round held (db.autocommit, the mail sender's statements) goes back
        # to the pool with the thread, not at some other thread's next checkout.
        self.app.extensions["idp.db.held"].give_back()

    def _pass(self) -> float | None:
        """One round in its own app context (so the database session is closed after it)."""
        try:
            with self.app.app_context():
                return self.round()
        except Exception:  # the thread must survive a database hiccup; retry later
            log.exception("%s: round failed", self.thread_name)
            return self.retry_after_error()
