"""Security events: record(event, actor=, target=, **details) writes a row and a log line.

``row`` gives the values ``record`` would write, for a caller that writes them in a
statement of its own (then ``logged``), or later (``write``).

Never pass secrets here: details are stored and logged as they are.
"""

from __future__ import annotations

import logging

from flask import has_request_context, request
from sqlalchemy import bindparam, insert

from . import db
from .models import AuditEvent, utcnow

log = logging.getLogger("idp.security")

COLUMNS = ("at", "event", "actor", "target", "ip", "details")  # every column but the id
# One row, INSERTed at once on the session's connection (``db.Statement``): nothing
# reads it back in the request, so it needs no ORM object and no place in the flush (a
# sign-in records two or three).
_INSERT = db.Statement(insert(AuditEvent).values({c: bindparam(c) for c in COLUMNS}))


def record(event: str, *, actor: str | None = None, target: str | None = None, **details):
    """Add the event to the current transaction; it is saved with the caller's commit (and
    undone by its rollback)."""
    write(row(event, actor=actor, target=target, **details))


def write(values: dict) -> None:
    """``record`` of an event's ``row``."""
    _INSERT.execute(values)
    logged(values)


def row(event: str, *, actor: str | None = None, target: str | None = None, **details) -> dict:
    """The values ``record`` writes (every column of COLUMNS), for a caller that writes
    the row in a statement of its own; it then calls ``logged`` once it is written."""
    ip = request.remote_addr if has_request_context() else None
    return {
        "at": utcnow(), "event": event, "actor": actor, "target": target, "ip": ip,
        "details": details,
    }  # fmt: skip


def logged(values: dict) -> None:
    """The event's line in the security log."""
    log.info(
        "%s actor=%s target=%s ip=%s %s",
        values["event"], values["actor"], values["target"], values["ip"], values["details"],
    )  # fmt: skip
