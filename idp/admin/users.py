"""Admin: users. Search and keyset pages, create, profile claims (OIDC Core §5.1), password,
disable/enable, unlock, admin role, groups, sessions, consents, tokens, delete.

Invariants kept here:

* a disabled or deleted user's sessions end (``auth.session.end_all``, which also tells the
  relying parties) and their tokens are revoked in the same transaction;
* at least one enabled admin remains: a change that would leave none is rolled back
  (``keeps_an_admin``), so the last admin cannot drop their role, disable or delete
  themselves, even when two admins try it at the same moment.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from wtforms.fields.choices import SelectChoice

from .. import db
from ..account import email as verification
from ..account.devices import describe
from ..auth import session as sessions
from ..auth import users as accounts
from ..auth.forms import ConfirmForm
from ..auth.passwords import hash_password
from ..auth.users import notify_password_changed
from ..models import Consent, Group, Token, User, UserSession, utcnow
from ..oauth import tokens
from . import changes, invitations  # noqa: F401  (invitations: its views register on bp)
from .access import admin_required, bp
from .confirm import confirmation_page
from .forms import (
    DeleteUserForm,
    GroupsForm,
    PasswordForm,
    UserCreateForm,
    UserProfileForm,
)
from .paging import keyset_page

SEARCH_COLUMNS = (User.username, User.email, User.name, User.given_name, User.family_name)
ACTIVE_ADMIN = and_(User.is_admin.is_(True), User.disabled.is_(False))


# --- search -------------------------------------------------------------------------------


def lowered(column):
    """lower(column) as the search indexes of migration 0003 hold it."""
    expression = func.lower(column)
    if db.session().get_bind().dialect.name == "postgresql":
        expression = expression.collate("C")
    return expression


def next_prefix(term: str) -> str | None:
    """The smallest string above every string that starts with term (None: no bound)."""
    while term:
        following = ord(term[-1]) + 1
        if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters
            following = 0xE000
        if following <= 0x10FFFF:
            return term[:-1] + chr(following)
        term = term[:-1]
    return None


def starts_with(column, term: str):
    """lower(column) begins with the lowered term: an index range scan, not a table scan."""
    expression = lowered(column)
    upper = next_prefix(term)
    return and_(expression >= term, expression < upper) if upper else expression >= term


def search_condition(term: str):
    """Case-insensitive prefix match on username, email and the names."""
    # The database lowers the term itself, so both sides use the same case mapping.
    term = db.session().scalar(select(func.lower(term)))
    return or_(*(starts_with(column, term) for column in SEARCH_COLUMNS))


def user_list_statement(term: str = ""):
    statement = select(User)
    return statement.where(search_condition(term)) if term else statement


def user_list_key(term: str = ""):
    """The keyset column: username. When searching, username || '' (same order): a database
    would otherwise walk the username index for ``username > ? ... LIMIT``, testing every
    row against the search, instead of reading the few rows the search indexes point to."""
    return User.username.concat("") if term else User.username


def identity_taken(username: str | None, email: str | None, except_id: int | None = None):
    """Which of username/email another user already has, ignoring case (sign-in ignores
    the case of emails, and two usernames differing only in case would confuse people)."""
    session = db.session()
    for field, column, value in (
        ("username", User.username, username),
        ("email", User.email, email),
    ):
        if not value:
            continue
        query = select(User.id).where(lowered(column) == session.scalar(select(func.lower(value))))
        if except_id is not None:
            query = query.where(User.id != except_id)
        if session.scalar(query.limit(1)) is not None:
            return field
    return None


# --- what actions do ----------------------------------------------------------------------


def lock_admins() -> None:
    """PostgreSQL: lock the enabled admins' rows so that concurrent demotions run one after
    the other and the second sees the first one's result (SQLite serializes writers)."""
    db.session().execute(select(User.id).where(ACTIVE_ADMIN).with_for_update())


def keeps_an_admin() -> bool:
    """After this transaction's changes, is there still an enabled admin?"""
    session = db.session()
    session.flush()
    return (session.scalar(select(func.count(User.id)).where(ACTIVE_ADMIN)) or 0) > 0


def sign_out_everywhere(user: User, reason: str) -> dict:
    """End every session of the user and revoke every token (RFC 7009 §2.1 semantics).

    The caller changed the user first (disabled, password removed): written before the
    tokens are revoked, so a token issued meanwhile sees it (tokens.settle).
    """
    db.session().flush()
    ended = sessions.end_all(user.id, reason)
    return {
        "sessions_ended": len(ended),
        "tokens_revoked": tokens.revoke_grants(reason, user_id=user.id),
    }


def active_tokens(user_id: int) -> list[Token]:
    now = utcnow()
    usable = or_(
        Token.access_expires_at > now,
        and_(Token.refresh_expires_at > now, Token.refresh_used_at.is_(None)),
    )
    return list(
        db.session().scalars(
            select(Token)
            .where(Token.user_id == user_id, Token.revoked_at.is_(None), usable)
            .order_by(Token.issued_at.desc(), Token.id.desc())
            .limit(200)
        )
    )


def live_sessions(user_id: int) -> list[UserSession]:
    return list(
        db.session().scalars(
            select(UserSession)
            .where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
            .order_by(UserSession.created_at.desc())
        )
    )


def profile_data(user: User) -> dict:
    data = {name: getattr(user, name) for name in UserProfileForm.CLAIMS}
    data.update({name: (user.address or {}).get(name) for name in UserProfileForm.ADDRESS})
    return data


def address_from(form: UserProfileForm) -> dict | None:
    """OIDC Core §5.1.1 address claim, without empty members; None when all are empty."""
    address = {n: getattr(form, n).data for n in form.ADDRESS if getattr(form, n).data}
    return address or None


def group_choices() -> list[SelectChoice]:
    groups = db.session().scalars(select(Group).order_by(Group.name))
    return [SelectChoice(group.id, group.name) for group in groups]


# --- helpers for views --------------------------------------------------------------------


def find_user(user_id: int) -> User:
    user = db.session().get(User, user_id)
    if user is None:
        abort(404)
    return user


def posted() -> None:
    """A bare button form must carry its CSRF token (CSRFProtect checks it first, too)."""
    if not ConfirmForm().validate_on_submit():
        abort(400)


def back_to(user: User):
    return redirect(url_for("admin.user", user_id=user.id))


def confirm(user: User, title: str, consequences: list[str], button: str, note: str = ""):
    """The confirmation page of an action on this user (GET of the action's URL)."""
    return confirmation_page(
        section="users",
        crumbs=[
            ("Users", url_for("admin.users")),
            (user.username, url_for("admin.user", user_id=user.id)),
        ],
        title=title,
        consequences=consequences,
        button=button,
        action=request.path,
        cancel=url_for("admin.user", user_id=user.id),
        note=note,
    )


def signs_out(user: User) -> list[str]:
    """What signing the user out everywhere does, counted."""
    return [
        f"end {user.username}'s {len(live_sessions(user.id))} live session(s) and tell the "
        "applications they signed in to;",
        f"revoke {len(active_tokens(user.id))} active token(s).",
    ]


def remove_user(user: User, **details) -> dict | None:
    """Delete the account: sessions ended, tokens revoked, consents removed, then the row
    (codes, tokens, sessions and group memberships go with it: ON DELETE CASCADE). Audited
    as ``admin.user.deleted``. Returns the user's last snapshot; None (nothing done, the
    caller rolls back) when it would leave no enabled admin. The caller commits."""
    session = db.session()
    lock_admins()
    sub, snapshot = user.sub, changes.user_snapshot(user)
    user.disabled, user.is_admin = True, False
    if not keeps_an_admin():
        return None
    effects = sign_out_everywhere(user, "user deleted")
    effects["consents_removed"] = session.execute(
        delete(Consent).where(Consent.user_id == user.id)
    ).rowcount
    session.flush()
    session.execute(delete(User).where(User.id == user.id))
    session.expunge(user)
    changes.record("user.deleted", sub, before=snapshot, **effects, **details)
    return snapshot


def refuse_last_admin(user: User):
    db.session().rollback()
    flash("There must be at least one enabled administrator: this would leave none.", "error")
    return back_to(user)


# --- views --------------------------------------------------------------------------------


@bp.get("/")
@admin_required
def index():
    return redirect(url_for("admin.users"))


@bp.get("/users")
@admin_required
def users():
    term = request.args.get("q", "").strip()[:320]
    page = keyset_page(
        user_list_statement(term),
        user_list_key(term),
        lambda u: u.username,
        after=request.args.get("after") or None,
        before=request.args.get("before") or None,
        last=request.args.get("last") == "1",
    )
    page.args = {"q": term} if term else {}
    return render_template("admin/users/list.html", page=page, q=term, now=utcnow())


@bp.route("/users/new", methods=["GET", "POST"])
@admin_required
def create_user():
    form = UserCreateForm()
    if form.is_submitted():
        # Every problem at once: a name already taken is shown with the fields' own errors.
        fields_ok = form.validate()
        taken = identity_taken(
            None if form.username.errors else form.username.data,
            None if form.email.errors else form.email.data,
        )
        if taken:
            getattr(form, taken).errors.append(f"Another user already has this {taken}.")
        elif fields_ok:
            session = db.session()
            user = accounts.create_user(
                session,
                username=form.username.data,
                email=form.email.data,
                email_verified=form.email_verified.data,
                name=form.name.data,
                is_admin=form.is_admin.data,
                password=form.password.data,
            )
            try:
                session.flush()
            except IntegrityError:  # created by someone else a moment ago
                session.rollback()
                form.username.errors.append("Another user already has this username or email.")
            else:
                changes.record(
                    "user.created",
                    user.sub,
                    after=changes.user_snapshot(user),
                    password_set=bool(form.password.data),
                )
                if user.email and not user.email_verified:
                    verification.send_verification(user, actor=current_user.sub)
                session.commit()
                flash(f"User {user.username} created.")
                return back_to(user)
    status = 400 if form.errors else 200
    return render_template("admin/users/new.html", form=form), status


@bp.get("/users/<int:user_id>")
@admin_required
def user(user_id: int):
    user = find_user(user_id)
    groups = GroupsForm(groups=[g.id for g in user.groups])
    groups.groups.choices = group_choices()
    consents = db.session().scalars(
        select(Consent).where(Consent.user_id == user.id).order_by(Consent.granted_at)
    )
    return render_template(
        "admin/users/detail.html",
        user=user,
        groups_form=groups,
        form=ConfirmForm(),
        sessions=live_sessions(user.id),
        describe=describe,
        consents=list(consents),
        tokens=active_tokens(user.id),
        now=utcnow(),
    )


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@admin_required
def edit_user(user_id: int):
    user = find_user(user_id)
    form = UserProfileForm(data=profile_data(user))
    if form.is_submitted():
        fields_ok = form.validate()
        email = None if form.email.errors else form.email.data
        if identity_taken(None, email, except_id=user.id):
            form.email.errors.append("Another user already has this email.")
        elif fields_ok:
            before = changes.user_snapshot(user)
            for name in form.CLAIMS:
                setattr(user, name, getattr(form, name).data)
            user.address = address_from(form)
            # A new address waits for its owner to follow a link (old one kept meanwhile).
            note = verification.after_admin_edit(
                user, before["email"], before["email_verified"], actor=current_user.sub
            )
            changes.record("user.updated", user.sub, before, changes.user_snapshot(user))
            try:
                db.session().commit()
            except IntegrityError:
                db.session().rollback()
                form.email.errors.append("Another user already has this email.")
            else:
                flash("Profile saved." + (f" {note}" if note else ""))
                return back_to(user)
    status = 400 if form.errors else 200
    return render_template("admin/users/edit.html", user=user, form=form), status


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
@admin_required
def set_password(user_id: int):
    user = find_user(user_id)
    form = PasswordForm()
    form.password_context = {"username": user.username, "email": user.email, "name": user.name}
    if form.validate_on_submit():
        user.password_hash = hash_password(form.password.data)
        effects = (
            sign_out_everywhere(user, "password set by admin") if form.end_sessions.data else {}
        )
        changes.record("user.password_set", user.sub, **effects)
        notify_password_changed(user, "set by an administrator")
        db.session().commit()
        flash("Password set." + (" The user was signed out everywhere." if effects else ""))
        return back_to(user)
    status = 400 if form.errors else 200
    return render_template("admin/users/password.html", user=user, form=form), status


@bp.route("/users/<int:user_id>/password/reset", methods=["GET", "POST"])
@admin_required
def reset_password(user_id: int):
    """Remove the password: nobody can sign in as the user until a new one is set."""
    if request.method == "GET":
        user = find_user(user_id)
        return confirm(
            user,
            f"Reset the password of {user.username}?",
            [
                f"remove the password: nobody can sign in as {user.username} until an "
                "administrator sets a new one;",
                *signs_out(user),
            ],
            "Reset password",
            note="To give the user a new password instead, use “Set password”.",
        )
    posted()
    user = find_user(user_id)
    user.password_hash = None
    effects = sign_out_everywhere(user, "password reset by admin")
    changes.record("user.password_reset", user.sub, **effects)
    db.session().commit()
    flash("Password removed and the user signed out everywhere. Set a new password to let them in.")
    return back_to(user)


@bp.route("/users/<int:user_id>/disable", methods=["GET", "POST"])
@admin_required
def disable_user(user_id: int):
    if request.method == "GET":
        user = find_user(user_id)
        return confirm(
            user,
            f"Disable {user.username}?",
            [f"stop {user.username} from signing in until the account is enabled again;"]
            + signs_out(user),
            f"Disable {user.username}",
            note="Enabling the account later does not bring the sessions or tokens back.",
        )
    posted()
    user = find_user(user_id)
    lock_admins()
    before = changes.user_snapshot(user)
    user.disabled = True
    if not keeps_an_admin():
        return refuse_last_admin(user)
    effects = sign_out_everywhere(user, "user disabled")
    changes.record("user.disabled", user.sub, before, changes.user_snapshot(user), **effects)
    db.session().commit()
    flash(f"{user.username} is disabled: signed out everywhere and their tokens revoked.")
    return back_to(user)


@bp.post("/users/<int:user_id>/enable")
@admin_required
def enable_user(user_id: int):
    posted()
    user = find_user(user_id)
    before = changes.user_snapshot(user)
    user.disabled = False
    changes.record("user.enabled", user.sub, before, changes.user_snapshot(user))
    db.session().commit()
    flash(f"{user.username} is enabled.")
    return back_to(user)


@bp.post("/users/<int:user_id>/unlock")
@admin_required
def unlock_user(user_id: int):
    posted()
    user = find_user(user_id)
    before = changes.user_snapshot(user)
    user.failed_logins = 0
    user.locked_until = None
    changes.record("user.unlocked", user.sub, before, changes.user_snapshot(user))
    db.session().commit()
    flash(f"{user.username} is unlocked.")
    return back_to(user)


@bp.post("/users/<int:user_id>/admin/grant")
@admin_required
def grant_admin(user_id: int):
    posted()
    user = find_user(user_id)
    before = changes.user_snapshot(user)
    user.is_admin = True
    changes.record("user.admin_granted", user.sub, before, changes.user_snapshot(user))
    db.session().commit()
    flash(f"{user.username} is now an administrator.")
    return back_to(user)


@bp.post("/users/<int:user_id>/admin/revoke")
@admin_required
def revoke_admin(user_id: int):
    posted()
    user = find_user(user_id)
    lock_admins()
    before = changes.user_snapshot(user)
    user.is_admin = False
    if not keeps_an_admin():
        return refuse_last_admin(user)
    changes.record("user.admin_revoked", user.sub, before, changes.user_snapshot(user))
    db.session().commit()
    flash(f"{user.username} is no longer an administrator.")
    if user.id == current_user.id:
        return redirect(url_for("account.index"))
    return back_to(user)


@bp.post("/users/<int:user_id>/groups")
@admin_required
def set_groups(user_id: int):
    user = find_user(user_id)
    session = db.session()
    form = GroupsForm()
    form.groups.choices = group_choices()
    if not form.validate_on_submit():
        abort(400)
    before = changes.user_snapshot(user)
    chosen = set(form.groups.data or [])
    user.groups = [g for g in session.scalars(select(Group).order_by(Group.name)) if g.id in chosen]
    changes.record("user.groups_changed", user.sub, before, changes.user_snapshot(user))
    session.commit()
    flash("Groups saved.")
    return back_to(user)


@bp.post("/users/<int:user_id>/sessions/<int:session_id>/end")
@admin_required
def end_session(user_id: int, session_id: int):
    posted()
    user = find_user(user_id)
    row = db.session().get(UserSession, session_id)
    if row is None or row.user_id != user.id or row.ended_at is not None:
        abort(404)
    sessions.terminate([row], "ended by admin")
    changes.record("session.ended", user.sub, session_id=row.id)
    db.session().commit()
    flash("Session ended.")
    return back_to(user)


@bp.route("/users/<int:user_id>/sessions/end-all", methods=["GET", "POST"])
@admin_required
def end_all_sessions(user_id: int):
    if request.method == "GET":
        user = find_user(user_id)
        return confirm(
            user,
            f"End all sessions of {user.username}?",
            [
                f"end {user.username}'s {len(live_sessions(user.id))} live session(s), so "
                "that every browser must sign in again;",
                "tell the applications signed in through them, and revoke the tokens "
                "issued in them.",
            ],
            "End all sessions",
        )
    posted()
    user = find_user(user_id)
    ended = sessions.end_all(user.id, "ended by admin")
    changes.record("session.ended_all", user.sub, sessions_ended=len(ended))
    db.session().commit()
    flash(f"{len(ended)} session(s) ended.")
    return back_to(user)


@bp.post("/users/<int:user_id>/consents/<client_id>/revoke")
@admin_required
def revoke_consent(user_id: int, client_id: str):
    posted()
    user = find_user(user_id)
    session = db.session()
    consent = session.scalar(
        select(Consent).where(Consent.user_id == user.id, Consent.client_id == client_id)
    )
    if consent is None:
        abort(404)
    scope = consent.scope
    session.delete(consent)
    session.flush()  # the state first: a token issued meanwhile sees it (tokens.settle)
    count = tokens.revoke_grants("consent revoked by admin", user_id=user.id, client_id=client_id)
    changes.record(
        "consent.revoked", user.sub, client_id=client_id, scope=scope, tokens_revoked=count
    )
    session.commit()
    flash("Consent revoked; the application's tokens for this user no longer work.")
    return back_to(user)


@bp.post("/users/<int:user_id>/tokens/<int:token_id>/revoke")
@admin_required
def revoke_token(user_id: int, token_id: int):
    posted()
    user = find_user(user_id)
    row = db.session().get(Token, token_id)
    if row is None or row.user_id != user.id:
        abort(404)
    # The whole grant goes: a refresh token left alive would just mint a new access token.
    count = tokens.revoke_family(row.family_id, reason="revoked by admin")
    changes.record(
        "token.revoked", user.sub, client_id=row.client_id, token_id=row.id, tokens_revoked=count
    )
    db.session().commit()
    flash("Token revoked.")
    return back_to(user)


@bp.route("/users/<int:user_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_user(user_id: int):
    user = find_user(user_id)
    form = DeleteUserForm()
    if form.validate_on_submit():
        if form.confirm_username.data != user.username:
            form.confirm_username.errors.append("This is not the username of this account.")
        else:
            snapshot = remove_user(user)
            if snapshot is None:
                return refuse_last_admin(user)
            db.session().commit()
            flash(f"User {snapshot['username']} deleted.")
            return redirect(url_for("admin.users"))
    counts = {
        "sessions": len(live_sessions(user.id)),
        "tokens": len(active_tokens(user.id)),
        "consents": db.session().scalar(
            select(func.count(Consent.id)).where(Consent.user_id == user.id)
        ),
    }
    status = 400 if form.errors else 200
    return render_template("admin/users/delete.html", user=user, form=form, counts=counts), status
