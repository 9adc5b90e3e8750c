"""Security events: record(event, actor=, target=, **details) writes a row and a log line.

Never pass secrets here: details are stored and logged as they are.
"""

from __future__ import annotations

import logging

from flask import has_request_context, request

from . import db
from .models import AuditEvent

log = logging.getLogger("idp.security")


def record(event: str, *, actor: str | None = None, target: str | None = None, **details):
    """Add the event to the current transaction; it is saved with the caller's commit."""
    ip = request.remote_addr if has_request_context() else None
    row = AuditEvent(event=event, actor=actor, target=target, ip=ip, details=details)
    db.session().add(row)
    log.info("%s actor=%s target=%s ip=%s %s", event, actor, target, ip, details)
    return row
