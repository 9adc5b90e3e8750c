"""Devices: a short description from a User-Agent, and the "new device" sign-in notice.

``describe`` guesses "Firefox on Windows" from a User-Agent, for people reading their own
session list or a notice: it is a guess, never used for a decision.

New-device notice (issue 14, flow 7). A browser is recognised by a cookie, not by
fingerprinting: ``idp_device`` holds 256 random bits, HttpOnly, SameSite=Lax, Secure under
https, for 400 days (the longest lifetime browsers keep, RFC 6265bis §5.5). The server
stores, per user, only SHA-256(sub:value), so the rows of two accounts used in one browser
cannot be linked. On every successful sign-in (Flask-Login's ``user_logged_in``, sent by
``auth.session.start``; the sign-in pages are not touched):

* the browser's hash is known for this user -> remembered again (last_seen_at);
* the user has no known device at all -> remembered silently: a brand-new account's first
  sign-in, and every existing account's first sign-in after this feature arrived, would
  otherwise mail a notice about the user's own browser;
* otherwise -> remembered, and the user is mailed (unless they turned notices off on the
  account page, or have no email), with the time, the device guess and, if
  NEW_DEVICE_NOTICE_IP, the IP address. Audited as ``signin.new_device``.

A user keeps at most ``KEEP`` devices (the least recently seen are forgotten, by the sign-in
that counted ``KEEP`` already; two such sign-ins racing may leave one extra until the next).
"""

from __future__ import annotations

import re
import secrets

from flask import Flask, current_app, g, request
from flask_login import user_logged_in
from sqlalchemy import bindparam, case, delete, func, select, update

from .. import audit, db, mail
from ..models import KnownDevice, User, secret_hash, utcnow
from .links import external_url

COOKIE = "idp_device"
COOKIE_MAX_AGE = 400 * 86400
KEEP = 20
TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)

# Checked in order: many browsers also name the ones they descend from.
BROWSERS = (
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("FxiOS/", "Firefox"),
    ("Firefox/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Windows", "Windows"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
)


def describe(user_agent: str | None) -> str:
    """ "Browser on System" when recognisable, else the agent's first product name."""
    ua = user_agent or ""
    browser = next((name for token, name in BROWSERS if token in ua), None)
    system = next((name for token, name in SYSTEMS if token in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    if browser or system:
        return browser or system
    product = ua.split("/", 1)[0].split(" ", 1)[0][:40]
    return product or "Unknown device"


def device_hash(user: User, token: str) -> str:
    return secret_hash(f"{user.sub}:{token}")


def browser_token() -> tuple[str, bool]:
    """This browser's device cookie value, or a new one (set on the response); and whether
    the browser brought it (a value made just now cannot be stored yet)."""
    token = request.cookies.get(COOKIE, "")
    brought = bool(TOKEN.match(token))
    if not brought:
        token = secrets.token_urlsafe(32)
    g.device_cookie = token
    return token, brought


# The statements of a sign-in, built once (per dialect for the INSERT). They run on the
# transaction's connection, not through the ORM: they need nothing it holds unflushed (the
# session row, audit events), which then go in one flush at the caller's commit.
_user_id = bindparam("user_id")
# How many devices the user has, and the id of the one with this hash ("": none).
_COUNT_AND_MATCH = db.Statement(
    select(
        func.count(),
        func.max(case((KnownDevice.token_hash == bindparam("token_hash"), KnownDevice.id))),
    ).where(KnownDevice.user_id == _user_id)
)
_SEEN_AGAIN = db.Statement(
    update(KnownDevice)
    .where(KnownDevice.id == bindparam("device_id"))
    .values(last_seen_at=bindparam("now"))
)
_keep = (
    select(KnownDevice.id)
    .where(KnownDevice.user_id == _user_id)
    .order_by(KnownDevice.last_seen_at.desc(), KnownDevice.id.desc())
    .limit(bindparam("keep"))
)
# One statement: the subquery is evaluated by the database, not sent back as a list.
_FORGET_OLDEST = db.Statement(
    delete(KnownDevice).where(
        KnownDevice.user_id == _user_id, KnownDevice.id.not_in(_keep.scalar_subquery())
    )
)


def _remember_statement(dialect: str):
    insert = db.insert_for(dialect)
    statement = insert(KnownDevice).values(
        user_id=_user_id,
        token_hash=bindparam("token_hash"),
        description=bindparam("description"),
        first_seen_at=bindparam("now"),
        last_seen_at=bindparam("now"),
    )
    statement = statement.on_conflict_do_nothing(index_elements=["user_id", "token_hash"])
    # RETURNING, not rowcount: the insert reports no row count on every driver.
    return statement.returning(KnownDevice.id)


_REMEMBER = db.Statement(_remember_statement)


def remember(user: User, token: str, description: str) -> bool:
    """Store the browser for the user; False if it was there (a racing sign-in, too)."""
    values = {
        "user_id": user.id,
        "token_hash": device_hash(user, token),
        "description": description[:120],
        "now": utcnow(),
    }
    return _REMEMBER.execute(values).fetchone() is not None


def forget_oldest(user: User) -> None:
    _FORGET_OLDEST.execute({"user_id": user.id, "keep": KEEP})


def signed_in(sender, user: User, **_) -> None:
    """Receiver of ``user_logged_in``: remember this browser, mail the user if it is new."""
    if not current_app.config["NEW_DEVICE_NOTICES"]:
        return
    token, brought = browser_token()
    # One statement: how many devices the user has, and (if the browser brought a cookie)
    # which of them is this browser.
    mine = {"user_id": user.id, "token_hash": device_hash(user, token) if brought else ""}
    count, known = _COUNT_AND_MATCH.execute(mine).fetchone()
    if known is not None:
        _SEEN_AGAIN.execute({"device_id": known, "now": utcnow()})
        return
    description = describe(request.headers.get("User-Agent"))
    if not remember(user, token, description):
        return
    if count >= KEEP:  # only then is there one too many now
        forget_oldest(user)
    if not count:  # the user's first device: their own browser, no notice
        return
    notified = bool(user.new_device_notices and user.email) and notify(user, description)
    audit.record("signin.new_device", actor=user.sub, device=description, notified=notified)


def notify(user: User, description: str) -> bool:
    when = utcnow()
    ip = request.remote_addr if current_app.config["NEW_DEVICE_NOTICE_IP"] else None
    try:
        mail.send(
            user.email,
            "New sign-in to your account",
            "new_device",
            name=user.name or user.username,
            username=user.username,
            device=description,
            when=when.strftime("%Y-%m-%d %H:%M UTC"),
            ip=ip,
            account_url=external_url("account.index"),
        )
    except ValueError:  # an address mail cannot go to: the sign-in goes on
        return False
    return True


def set_cookie(response):
    """Give the browser its device cookie (new, or its lifetime renewed) after a sign-in."""
    token = vars(g._get_current_object()).pop("device_cookie", None)  # g.pop, one lookup
    if token:
        response.set_cookie(
            COOKIE,
            token,
            max_age=COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=bool(current_app.config["SESSION_COOKIE_SECURE"]),
        )
    return response


def init_app(app: Flask) -> None:
    user_logged_in.connect(signed_in)  # once: blinker keeps one connection per receiver
    app.after_request(set_cookie)
