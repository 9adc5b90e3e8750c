"""Second-factor sign-in (NIST SP 800-63B §4.2, §5.1.3-§5.1.5; RFC 8176 amr values).

    password ok ──begin()──> no factor, not required ─────────────────> session.start
        │                    has factors ──> pending ──factor page──> finish() ──> session
        │                    must enrol  ──> pending ──enrolment────> finish() ──> session
    /authorize needs more ──begin(need=...)──> pending (the session stays as it was) ──┘

A pending sign-in lives only in the Flask session (user id, amr so far, time, next, a fresh
nonce); it is not a session: flask-login's ``current_user`` stays anonymous, so /authorize,
/account and /admin all still send the browser to /login. It expires after
``MFA_PENDING_LIFETIME`` seconds and after ``MFA_MAX_ATTEMPTS`` wrong codes; every wrong
code also counts toward the account lockout (``login.record_failure``).

Factors register themselves in ``FACTORS``, in order of preference: passkey ("webauthn"),
then "totp", then "recovery". A factor page calls ``pending_user()`` to know whom it checks,
``fail(user)`` on a wrong answer and ``finish(amr, kind=...)`` on a right one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app, redirect, session, url_for
from flask.wrappers import Response
from sqlalchemy import ColumnElement, bindparam, exists, select

from .. import audit, db, mail
from ..models import Group, User, user_groups
from . import login
from . import session as user_session

PENDING = "mfa_pending"
ORDER = ("webauthn", "totp", "recovery")
# Factors whose proof is bound to the origin, so a phishing site cannot relay it.
PHISHING_RESISTANT = frozenset({"webauthn"})
# RFC 8176 §2 values by factor category (NIST SP 800-63B §4: know, have, are); "mfa" is
# added only when the methods used span two categories.
CATEGORY = {
    "pwd": "know", "pin": "know", "kba": "know",
    "otp": "have", "hwk": "have", "swk": "have", "sms": "have", "tel": "have", "sc": "have",
    "fpt": "are", "face": "are", "iris": "are", "retina": "are", "vbm": "are",
}  # fmt: skip


@dataclass(frozen=True)
class Factor:
    kind: str  # "webauthn", "totp", "recovery"
    label: str  # link text on the other factors' pages ("Use an authenticator app")
    endpoint: str  # the sign-in page of this factor (a Flask endpoint name)
    has: Callable[[User], bool]  # whether the user can sign in with it
    # ``has`` as a SQL condition on a user id (a bind parameter): with it, every factor and
    # the group policy are asked in one statement (``survey``) instead of one each.
    present: Callable[[Any], ColumnElement[bool]] | None = None
    # A backup factor (recovery codes) counts only while the user has a non-backup one.
    backup: bool = False


FACTORS: list[Factor] = []
# The statement of ``survey`` for the registered factors, built once (registering resets it).
_SURVEY: dict[str, db.Statement] = {}


def register_factor(
    kind: str,
    label: str,
    endpoint: str,
    has: Callable[[User], bool],
    *,
    present: Callable[[Any], ColumnElement[bool]] | None = None,
    backup: bool = False,
) -> None:
    """Add (or replace) a factor; FACTORS stays in the order of preference of ``ORDER``."""
    factor = Factor(kind, label, endpoint, has, present, backup)
    FACTORS[:] = [f for f in FACTORS if f.kind != kind] + [factor]
    FACTORS.sort(key=lambda f: ORDER.index(f.kind) if f.kind in ORDER else len(ORDER))
    _SURVEY.clear()


def survey(user: User) -> tuple[dict[str, bool], bool]:
    """({factor kind: the user has it}, whether one of the user's groups requires MFA), in
    one statement for every factor with a ``present`` condition (the others ask ``has``)."""
    statement = _SURVEY.get("statement")
    if statement is None:
        user_id = bindparam("user_id")
        group = exists().where(
            user_groups.c.user_id == user_id,
            user_groups.c.group_id == Group.id,
            Group.mfa_required.is_(True),
        )
        conditions = [f.present(user_id) for f in FACTORS if f.present is not None]
        statement = _SURVEY["statement"] = db.Statement(select(group, *conditions))
    current = db.session()
    if current.autoflush:  # as Session.execute would: a factor added just now counts
        current.flush()
    row = iter(statement.execute({"user_id": user.id}).fetchone())
    group_requires = bool(next(row))
    has = {f.kind: bool(next(row)) if f.present is not None else f.has(user) for f in FACTORS}
    primary = any(has[f.kind] for f in FACTORS if not f.backup)
    for f in FACTORS:
        if f.backup and not primary:
            has[f.kind] = False
    return has, group_requires


def _choose(has: dict[str, bool], need: str | None) -> list[Factor]:
    found = [f for f in FACTORS if has[f.kind]]
    if need == "phr":
        found = [f for f in found if f.kind in PHISHING_RESISTANT]
    return found


def available(user: User, need: str | None = None) -> list[Factor]:
    """The factors the user can sign in with now; for ``need="phr"`` phishing-resistant ones."""
    return _choose(survey(user)[0], need)


def required(user: User, *, group_requires: bool | None = None) -> bool:
    """MFA policy: the user, one of their groups, or (by default) being an admin.
    ``group_requires``: the group answer when the caller has it already (``survey``)."""
    if user.mfa_required:
        return True
    if group_requires is None:
        group_requires = any(g.mfa_required for g in user.groups)
    if group_requires:
        return True
    return bool(user.is_admin and current_app.config["MFA_REQUIRED_FOR_ADMINS"])


def combine(previous: list[str], added: list[str]) -> list[str]:
    """amr after adding methods: each once, and "mfa" only for two distinct categories."""
    methods = [m for m in dict.fromkeys([*previous, *added]) if m != "mfa"]
    if len({CATEGORY[m] for m in methods if m in CATEGORY}) >= 2:
        methods.append("mfa")
    return methods


def begin(user: User, amr: list[str], next_url: str, *, need: str | None = None) -> Response:
    """After a correct password (or when /authorize needs more, ``need``="mfa"|"phr"):
    sign in now, or keep a pending sign-in and send the browser to a factor page.

    The caller commits. ``next_url`` must already be a safe same-site path.
    """
    # One statement: the factors and the group policy. Nothing unflushed concerns them (the
    # lockout fields), so they go with the commit's flush.
    with db.session().no_autoflush:
        has, group_requires = survey(user)
    factors = _choose(has, need)
    if need is None and not factors and not required(user, group_requires=group_requires):
        login.clear_failures(user)
        now = int(time.time())
        user_session.start(user, amr, [{"kind": k, "at": now} for k in amr_kinds(amr)])
        return redirect(next_url)
    previous = []
    if need is not None and user_session.current() is not None:
        previous = list(user_session.current().factors or [])  # step-up keeps the first ones
    session[PENDING] = {
        "user_id": user.id,
        "sub": user.sub,
        "amr": list(amr),
        "at": time.time(),
        "next": next_url,
        "nonce": secrets.token_urlsafe(16),
        "attempts": 0,
        "need": need,
        "factors": previous or [{"kind": k, "at": int(time.time())} for k in amr_kinds(amr)],
    }
    audit.record("mfa.started", actor=user.sub, need=need or "sign-in")
    if factors:
        return redirect(url_for(factors[0].endpoint))
    return redirect(url_for("factors.enrol"))


def amr_kinds(amr: list[str]) -> list[str]:
    return [m for m in amr if m != "mfa"]


def pending() -> dict | None:
    """The pending sign-in of this browser, if it has not expired."""
    state = session.get(PENDING)
    if not isinstance(state, dict):
        return None
    if time.time() - float(state.get("at", 0)) > int(current_app.config["MFA_PENDING_LIFETIME"]):
        session.pop(PENDING, None)
        return None
    return state


def pending_user() -> User | None:
    """Whom the factor pages are checking: the user of a live pending sign-in, else None."""
    state = pending()
    if state is None:
        return None
    user = db.session().get(User, state["user_id"])
    if user is None or user.sub != state["sub"] or not user.is_active:
        cancel()
        return None
    return user


def need() -> str | None:
    state = pending()
    return state.get("need") if state else None


def nonce() -> str | None:
    """A value a factor may bind its challenge to (e.g. a WebAuthn challenge's context)."""
    state = pending()
    return state["nonce"] if state else None


def cancel() -> None:
    session.pop(PENDING, None)


def locked(user: User) -> bool:
    """The account is locked: the pending sign-in ends (the same answer as at /login)."""
    if login.is_locked(user):
        cancel()
        return True
    return False


def fail(user: User, kind: str) -> bool:
    """Count a wrong second factor; False when the pending sign-in is over (too many tries,
    or the account is now locked), and the user must start again with the password."""
    login.record_failure(user)
    audit.record("mfa.failure", actor=user.sub, factor=kind)
    state = pending()
    if state is None:
        return False
    state["attempts"] = int(state.get("attempts", 0)) + 1
    session[PENDING] = state
    if state["attempts"] >= int(current_app.config["MFA_MAX_ATTEMPTS"]) or login.is_locked(user):
        cancel()
        return False
    return True


def finish(added_amr: list[str], *, kind: str | None = None) -> Response:
    """The factor was right: start (or, for step-up, raise) the session and go on to next.

    ``added_amr`` are the RFC 8176 values the factor proved (["otp"], ["hwk", "user"]...);
    ``kind`` names the factor for the session record and the audit log. The caller commits.
    """
    state = pending()
    user = pending_user()
    if state is None or user is None:
        return redirect(url_for("auth.login"))
    amr = combine(state["amr"], added_amr)
    now = int(time.time())
    used = list(state.get("factors") or []) + [{"kind": kind or "+".join(added_amr), "at": now}]
    login.clear_failures(user)
    user_session.start(user, amr, used)  # clears the Flask session, the pending state with it
    audit.record("mfa.success", actor=user.sub, factor=kind, amr=amr)
    return redirect(state["next"])


def complete(user: User, amr: list[str], next_url: str, *, kind: str) -> Response:
    """A sign-in whose single step is enough on its own (a passwordless passkey with user
    verification, amr e.g. ["hwk", "user"]): start the session now, recording the factor.
    The caller decides that the step is enough (and, under ``required``, multi-factor).
    The caller commits."""
    methods = combine([], amr)
    login.clear_failures(user)
    cancel()
    user_session.start(user, methods, [{"kind": kind, "at": int(time.time())}])
    audit.record("mfa.success", actor=user.sub, factor=kind, amr=methods)
    return redirect(next_url)


def notify(user: User, subject: str, text: str) -> None:
    """Tell the user a factor was added, removed or used (NIST SP 800-63B §4.6, §6.1.2.3)."""
    if user.email:
        mail.send(user.email, subject, "factor_changed", name=user.name or user.username, text=text)


__all__ = [
    "FACTORS",
    "Factor",
    "available",
    "begin",
    "cancel",
    "combine",
    "complete",
    "fail",
    "finish",
    "locked",
    "need",
    "nonce",
    "notify",
    "pending",
    "pending_user",
    "register_factor",
    "required",
    "survey",
]
