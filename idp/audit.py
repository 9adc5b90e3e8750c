"""Security events: record(event, actor=, target=, **details) writes a row and a log line.

Never pass secrets here: details are stored and logged as they are.
"""

from __future__ import annotations

import logging

from flask import has_request_context, request
from sqlalchemy import bindparam, insert

from . import db
from .models import AuditEvent

log = logging.getLogger("idp.security")

COLUMNS = ("event", "actor", "target", "ip", "details")  # and ``at``, its default
# One row, INSERTed at once on the session's connection (``db.Statement``): nothing
# reads it back in the request, so it needs no ORM object and no place in the flush (a
# sign-in records two or three).
_INSERT = db.Statement(insert(AuditEvent).values({c: bindparam(c) for c in COLUMNS}))


def record(event: str, *, actor: str | None = None, target: str | None = None, **details):
    """Add the event to the current transaction; it is saved with the caller's commit (and
    undone by its rollback)."""
    ip = request.remote_addr if has_request_context() else None
    values = {"event": event, "actor": actor, "target": target, "ip": ip, "details": details}
    _INSERT.execute(values)
    log.info("%s actor=%s target=%s ip=%s %s", event, actor, target, ip, details)
