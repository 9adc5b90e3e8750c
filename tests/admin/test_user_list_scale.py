"""The user list at 100,000 users: keyset pages (no OFFSET, no COUNT) served by indexes.

No timing is asserted (machines differ); what makes the list fast is asserted instead: the
queries the pages run, and that the database plans them as index scans. Measured timings
are in docs/architecture.md ("Admin UI").
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event, insert

from idp import db
from idp.models import User, utcnow

USERS = 100_000


@pytest.fixture
def many_users(app, admin) -> list[str]:
    """100,000 users in one Core executemany; returns every username in list order."""
    now = utcnow()
    names = [f"user{n:06d}" for n in range(USERS)]
    with app.app_context():
        with db.engine().begin() as connection:
            connection.execute(
                insert(User),
                [
                    {
                        "username": name,
                        "sub": f"sub-{name}",
                        "email": f"{name}@example.com",
                        "name": f"User {name[4:]}",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for name in names
                ],
            )
    return sorted(["root", *names])


@pytest.fixture
def statements(app):
    """The SQL that reaches the database, with its parameters."""
    seen: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    engine = db.engine(app)
    event.listen(engine, "before_cursor_execute", capture)
    yield seen
    event.remove(engine, "before_cursor_execute", capture)


def listed(response) -> list[str]:
    assert response.status_code == 200
    return re.findall(r'<a href="/admin/users/\d+">([^<]+)</a>', response.text)


def link(response, rel: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" rel="{rel}">', response.text)
    return match.group(1).replace("&amp;", "&") if match else None


def plan(app, statement: str, parameters) -> str:
    with app.app_context(), db.engine().connect() as connection:
        if connection.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        else:
            rows = connection.exec_driver_sql("EXPLAIN " + statement, parameters)
        return "\n".join(str(row[-1]) for row in rows)


def offset_of(statement: str, parameters) -> int:
    """The OFFSET a query skips (SQLAlchemy's SQLite dialect always writes OFFSET ?, = 0)."""
    match = re.search(r"OFFSET (\S+)", statement)
    if match is None:
        return 0
    return int(parameters[-1] if match.group(1) == "?" else match.group(1))


def list_queries(seen) -> list[tuple[str, object]]:
    return [(s, p) for s, p in seen if s.lstrip().startswith("SELECT users.id") and "LIMIT" in s]


def test_100000_users_first_middle_and_last_pages_and_search(
    app, admin_client, many_users, statements
):
    # One test, because inserting 100,000 users is the slow part.
    first = admin_client.get("/admin/users")
    assert listed(first) == many_users[:50]
    assert link(first, "prev") is None

    second = admin_client.get(link(first, "next"))
    assert listed(second) == many_users[50:100]

    middle = admin_client.get("/admin/users?after=user049999")
    assert listed(middle) == [f"user{n:06d}" for n in range(50_000, 50_050)]
    assert listed(admin_client.get(link(middle, "next"))) == many_users[50_051:50_101]
    assert listed(admin_client.get(link(middle, "prev"))) == many_users[49_951:50_001]

    last = admin_client.get("/admin/users?last=1")
    assert listed(last) == many_users[-50:]
    assert link(last, "next") is None
    assert listed(admin_client.get(link(last, "prev"))) == many_users[-100:-50]

    # Keyset pages: no OFFSET to skip rows, no COUNT over the table, each an index scan.
    queries = list_queries(statements)
    assert len(queries) == 7
    # (The one COUNT is of pending deletion requests, a small table the list links to.)
    assert not any("count(" in s.lower() and "deletion_requests" not in s for s, _ in statements)
    for statement, parameters in queries:
        assert offset_of(statement, parameters) == 0
        steps = plan(app, statement, parameters)
        assert "Seq Scan" not in steps and not re.search(r"SCAN users$", steps, re.M), steps

    # Search: a prefix of username, email or name, through the search indexes.
    statements.clear()
    page = admin_client.get("/admin/users?q=USER0500")
    assert listed(page) == [f"user{n:06d}" for n in range(50_000, 50_050)]
    following = admin_client.get(link(page, "next"))
    assert "q=USER0500" in link(page, "next")
    assert listed(following) == [f"user{n:06d}" for n in range(50_050, 50_100)]
    assert link(following, "next") is None

    assert listed(admin_client.get("/admin/users?q=User 07777")) == ["user077770"] + [
        f"user{n:06d}" for n in range(77_771, 77_780)
    ]
    assert listed(admin_client.get("/admin/users?q=nobody")) == []

    for statement, parameters in list_queries(statements):
        steps = plan(app, statement, parameters)
        assert "ix_users_lower_" in steps, steps
        assert "Seq Scan" not in steps and not re.search(r"SCAN users", steps), steps
