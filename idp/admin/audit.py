"""Admin: the audit log viewer. Filter by event (prefix), actor, target and dates; newest
first, keyset pages on the id. Read-only: the table itself refuses UPDATE and DELETE."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

from flask import render_template, request
from sqlalchemy import select

from .. import db
from ..models import AuditEvent, User
from .access import admin_required, bp
from .forms import AuditFilterForm
from .paging import id_cursor, keyset_page

FILTERS = ("event", "actor", "target", "since", "until")


def who(value: str) -> list[str]:
    """An actor or target as typed, plus the sub of the user of that name."""
    sub = db.session().scalar(select(User.sub).where(User.username == value))
    return [value, sub] if sub else [value]


def day(form, name: str) -> datetime | None:
    field = getattr(form, name)
    if not field.data:
        return None
    try:
        return datetime.combine(date.fromisoformat(field.data), datetime.min.time(), UTC)
    except ValueError:
        field.errors = ["Use a date such as 2026-01-31."]
        return None


def filtered(form: AuditFilterForm):
    statement = select(AuditEvent)
    if form.event.data:
        statement = statement.where(AuditEvent.event.startswith(form.event.data, autoescape=True))
    if form.actor.data:
        statement = statement.where(AuditEvent.actor.in_(who(form.actor.data)))
    if form.target.data:
        statement = statement.where(AuditEvent.target.in_(who(form.target.data)))
    since, until = day(form, "since"), day(form, "until")
    if since:
        statement = statement.where(AuditEvent.at >= since)
    if until and until.date() < date.max:  # the last day has no day after it (found by fuzzing)
        statement = statement.where(AuditEvent.at < until + timedelta(days=1))
    return statement


def usernames(events: list[AuditEvent]) -> dict[str, str]:
    """sub -> username for the actors and targets on the page (one query)."""
    subs = {e.actor for e in events if e.actor} | {e.target for e in events if e.target}
    if not subs:
        return {}
    rows = db.session().execute(select(User.sub, User.username).where(User.sub.in_(subs)))
    return {sub: username for sub, username in rows}


@bp.get("/audit")
@admin_required
def audit_log():
    form = AuditFilterForm(request.args)
    form.validate()
    page = keyset_page(
        filtered(form),
        AuditEvent.id,
        lambda e: e.id,
        after=id_cursor("after"),
        before=id_cursor("before"),
        last=request.args.get("last") == "1",
        descending=True,
    )
    page.args = {name: request.args[name] for name in FILTERS if request.args.get(name)}
    return render_template(
        "admin/audit.html",
        form=form,
        page=page,
        names=usernames(page.rows),
        as_json=lambda value: json.dumps(value, sort_keys=True, default=str),
    )
