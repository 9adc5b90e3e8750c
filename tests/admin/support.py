"""Small helpers of the admin tests: posting forms with the CSRF token, reading rows back."""

from __future__ import annotations

import re

from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, User

from ..helpers import csrf_token


def token_of(browser) -> str:
    """The session's CSRF token, read from a page that always has a form."""
    return csrf_token(browser.get("/logout").get_data(as_text=True))


def post(browser, url: str, data: dict | None = None, csrf: bool = True, **kwargs):
    data = dict(data or {})
    if csrf:
        data["csrf_token"] = token_of(browser)
    return browser.post(url, data=data, **kwargs)


def row(app, model, *conditions):
    with app.app_context():
        return db.session().scalar(select(model).where(*conditions))


def rows(app, model, *conditions):
    with app.app_context():
        return list(db.session().scalars(select(model).where(*conditions)))


def user_row(app, username: str) -> User | None:
    return row(app, User, User.username == username)


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(
            db.session().scalars(
                select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)
            )
        )


def text_of(response) -> str:
    """The page's visible text, roughly (tags removed, spaces collapsed)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
