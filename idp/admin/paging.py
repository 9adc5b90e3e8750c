"""Keyset pagination: pages are found by the last key seen, never by OFFSET.

``?after=K`` is the page following key K, ``?before=K`` the page preceding it and ``?last=1``
the final page. Each costs one index range scan of ``size + 1`` rows however deep the page
is, and no page counts the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import request
from sqlalchemy import Select, literal_column

from .. import db
from ..models.base import MAX_ID

PAGE_SIZE = 50


@dataclass
class Page:
    rows: list
    has_prev: bool = False
    has_next: bool = False
    prev_key: Any = None  # link "previous": ?before=prev_key
    next_key: Any = None  # link "next": ?after=next_key
    args: dict = field(default_factory=dict)  # other query arguments the links keep (search)


def id_cursor(name: str) -> int | None:
    """?after= or ?before= as an id; a value that cannot be one is ignored (found by fuzzing:
    a number beyond the INTEGER range made PostgreSQL fail)."""
    value = request.args.get(name, type=int)
    return value if value is not None and 0 <= value <= MAX_ID else None


def keyset_page(
    stmt: Select,
    key,
    key_of: Callable[[Any], Any],
    *,
    after=None,
    before=None,
    last: bool = False,
    size: int = PAGE_SIZE,
    descending: bool = False,
) -> Page:
    """One page of stmt ordered by the unique column key (newest first when descending)."""
    forward, backward = (key.desc(), key.asc()) if descending else (key.asc(), key.desc())

    def beyond(value):
        return key < value if descending else key > value

    def behind(value):
        return key > value if descending else key < value

    # The limit is written into the SQL, not bound: SQLite plans a bound LIMIT as if it were
    # tiny and then walks the whole username index instead of using the search indexes.
    limit = literal_column(str(int(size) + 1))
    session = db.session()
    if before is not None or last:
        query = stmt.where(behind(before)) if before is not None else stmt
        rows = list(session.scalars(query.order_by(backward).limit(limit)))
        has_prev = len(rows) > size
        rows = rows[:size][::-1]
        has_next = before is not None
    else:
        query = stmt.where(beyond(after)) if after is not None else stmt
        rows = list(session.scalars(query.order_by(forward).limit(limit)))
        has_next = len(rows) > size
        rows = rows[:size]
        has_prev = after is not None
    page = Page(rows, has_prev=has_prev and bool(rows), has_next=has_next and bool(rows))
    if rows:
        page.prev_key, page.next_key = key_of(rows[0]), key_of(rows[-1])
    return page
