"""Admin: the audit log. Security events with actor, target, IP and time; a filterable viewer
with keyset pages; the table is append-only; no passwords or token values in it."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, insert, update
from sqlalchemy.exc import DBAPIError

from idp import db
from idp.models import AuditEvent
from idp.oauth import keys

from ..factories import PASSWORD
from ..helpers import Auth
from .support import rows


def listed_events(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'<th scope="row" data-label="Event"><code>([^<]+)</code>', response.text)


def test_security_events_of_real_flows_are_listed_with_who_and_where(
    app, auth, admin_client, user, oauth_client
):
    # Sign-in failure and success, consent, code and sign-out, as they happen, appear
    # newest first with the actor's username and the IP.
    assert auth.login(password="wrong password").status_code == 401
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid")
    auth.logout()
    page = admin_client.get("/admin/audit")
    shown = listed_events(page)
    for event in ("login.failure", "login.success", "consent.granted", "code.issued", "logout"):
        assert event in shown
    assert shown.index("logout") < shown.index("consent.granted") < shown.index("login.success")
    assert ">alice<" in page.text  # the actor's sub shown as the username
    assert "127.0.0.1" in page.text
    # OWASP Logging Cheat Sheet: never passwords or tokens.
    for secret in (PASSWORD, "wrong password", tokens["access_token"], tokens["refresh_token"]):
        assert secret not in page.text
        for event in rows(app, AuditEvent):
            assert secret not in json.dumps(event.details)


def test_the_viewer_filters_by_event_actor_target_and_date(app, admin_client, admin, user):
    day = datetime(2026, 3, 10, 12, tzinfo=UTC)
    with app.app_context():
        session = db.session()
        session.execute(
            insert(AuditEvent),
            [
                {"event": "login.failure", "actor": "mallory", "at": day, "details": {}},
                {"event": "login.success", "actor": user.sub, "at": day, "details": {}},
                {
                    "event": "admin.user.disabled",
                    "actor": admin.sub,
                    "target": user.sub,
                    "at": day + timedelta(days=2),
                    "details": {},
                },
            ],
        )
        session.commit()
    by_event = admin_client.get("/admin/audit?event=login.")
    assert set(listed_events(by_event)) == {"login.failure", "login.success"}
    assert "login.success" in listed_events(admin_client.get("/admin/audit?actor=alice"))
    assert listed_events(admin_client.get("/admin/audit?actor=mallory")) == ["login.failure"]
    assert listed_events(admin_client.get("/admin/audit?target=alice")) == ["admin.user.disabled"]
    dated = admin_client.get("/admin/audit?since=2026-03-11&until=2026-03-12")
    assert listed_events(dated) == ["admin.user.disabled"]
    assert listed_events(admin_client.get("/admin/audit?until=2026-03-10")) == [
        "login.success",
        "login.failure",
    ]
    bad = admin_client.get("/admin/audit?since=yesterday")
    assert bad.status_code == 200 and "Use a date such as" in bad.text
    assert listed_events(admin_client.get("/admin/audit?event=%25")) == []  # no wildcards


def test_the_viewer_pages_by_id_newest_first(app, admin_client):
    with app.app_context():
        session = db.session()
        session.execute(
            insert(AuditEvent), [{"event": f"test.{n:03d}", "details": {}} for n in range(120)]
        )
        session.commit()
    first = admin_client.get("/admin/audit?event=test.")
    assert listed_events(first) == [f"test.{n:03d}" for n in range(119, 69, -1)]
    after = re.search(r'href="([^"]+)" rel="next"', first.text).group(1).replace("&amp;", "&")
    assert "event=test." in after
    assert listed_events(admin_client.get(after)) == [f"test.{n:03d}" for n in range(69, 19, -1)]
    last = admin_client.get("/admin/audit?event=test.&last=1")
    assert listed_events(last) == [f"test.{n:03d}" for n in range(49, -1, -1)]
    assert 'rel="next"' not in last.text


@pytest.mark.parametrize("query", ["until=9999-12-31", "since=0001-01-01&until=9999-12-31"])
def test_the_first_and_last_days_of_the_calendar_are_valid_filters(app, admin_client, query):
    # Found by fuzzing: until=9999-12-31 overflowed computing the day after it: a 500.
    with app.app_context():
        session = db.session()
        session.execute(insert(AuditEvent), [{"event": "test.one", "details": {}}])
        session.commit()
    assert listed_events(admin_client.get(f"/admin/audit?event=test.&{query}")) == ["test.one"]


@pytest.mark.parametrize("cursor", ["after", "before"])
@pytest.mark.parametrize("value", [str(2**31), "9" * 25, "-1", "abc"])
def test_a_cursor_that_cannot_be_an_id_shows_the_first_page(app, admin_client, cursor, value):
    # Found by fuzzing: ?after=2147483648 reached PostgreSQL (integer out of range): a 500.
    with app.app_context():
        session = db.session()
        session.execute(insert(AuditEvent), [{"event": "test.one", "details": {}}])
        session.commit()
    response = admin_client.get(f"/admin/audit?event=test.&{cursor}={value}")
    assert listed_events(response) == ["test.one"]


@pytest.mark.parametrize(
    "change", [update(AuditEvent).values(event="tampered"), delete(AuditEvent)]
)
def test_the_audit_table_is_append_only(app, user, change):
    # OWASP Logging Cheat Sheet "Protection": a log entry cannot be altered or removed, not
    # even by the application's own database account through an ordinary statement.
    Auth(app.test_client()).login()
    with app.app_context():
        session = db.session()
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(change)
        session.rollback()
    assert [e.event for e in rows(app, AuditEvent)] == ["login.success"]


def test_key_rotation_is_audited(app):
    with app.app_context():
        session = db.session()
        new = keys.rotate(session, 3600)
        session.commit()
    [event] = [e for e in rows(app, AuditEvent) if e.event == "keys.rotated"]
    assert sorted(event.details["kids"]) == sorted(k.kid for k in new)
    assert event.details["grace_seconds"] == 3600
    assert "private" not in json.dumps(event.details) and '"d"' not in json.dumps(event.details)
