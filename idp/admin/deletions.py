"""Admin: users' requests to delete their account (``account.data``): the pending list, and
approve (the account is deleted through ``users.remove_user``) or reject. Each decision is
a GET confirmation page and a POST, audited, and mailed to the user."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from .. import audit, db, mail
from ..models import DeletionRequest, User, utcnow
from ..models.own_data import APPROVED, PENDING, REJECTED
from .access import admin_required, bp
from .confirm import confirmation_page
from .users import posted, refuse_last_admin, remove_user, signs_out


def pending_requests() -> list[DeletionRequest]:
    return list(
        db.session().scalars(
            select(DeletionRequest)
            .where(DeletionRequest.status == PENDING)
            .order_by(DeletionRequest.requested_at, DeletionRequest.id)
        )
    )


def pending_count() -> int:
    """How many requests wait for a decision (the users list points to them)."""
    return db.session().scalar(
        select(func.count(DeletionRequest.id)).where(DeletionRequest.status == PENDING)
    )


def pending_for(user: User) -> DeletionRequest | None:
    """The user's pending request, for the user detail page (templates/admin/users/)."""
    return db.session().scalar(
        select(DeletionRequest).where(
            DeletionRequest.user_id == user.id, DeletionRequest.status == PENDING
        )
    )


def find_pending(request_id: int) -> DeletionRequest:
    row = db.session().get(DeletionRequest, request_id)
    if row is None:
        abort(404)
    return row


def decided_already(row: DeletionRequest):
    flash(f"This request is no longer pending: it was {row.status}.", "error")
    return redirect(url_for("admin.deletions"))


def tell_user(user: User, approved: bool) -> None:
    if user.email:
        mail.send(
            user.email,
            "Your account was deleted" if approved else "Your deletion request was declined",
            "deletion_decided",
            name=user.name or user.username,
            username=user.username,
            approved=approved,
        )


def confirm(row: DeletionRequest, title: str, consequences: list[str], button: str, note=""):
    return confirmation_page(
        section="users",
        crumbs=[("Deletion requests", url_for("admin.deletions"))],
        title=title,
        consequences=consequences,
        button=button,
        action=request.path,
        cancel=url_for("admin.deletions"),
        note=note,
    )


@bp.get("/deletions")
@admin_required
def deletions():
    return render_template("admin/deletions.html", requests=pending_requests())


@bp.route("/deletions/<int:request_id>/approve", methods=["GET", "POST"])
@admin_required
def approve_deletion(request_id: int):
    row = find_pending(request_id)
    user = row.user
    if row.status != PENDING:
        return decided_already(row)
    if request.method == "GET":
        return confirm(
            row,
            f"Delete the account of {user.username}, as they asked?",
            [
                f"delete {user.username}'s account and profile, for good;",
                *signs_out(user),
                f"email {user.username} that the account was deleted.",
            ],
            f"Delete {user.username}",
        )
    posted()
    row.status, row.decided_at, row.decided_by = APPROVED, utcnow(), current_user.username
    audit.record("account.deletion_approved", actor=current_user.sub, target=user.sub)
    tell_user(user, approved=True)
    db.session().flush()
    db.session().expunge(row)  # goes with the user row (ON DELETE CASCADE)
    snapshot = remove_user(user, requested_by_user=True)
    if snapshot is None:
        return refuse_last_admin(user)
    db.session().commit()
    flash(f"User {snapshot['username']} deleted, as they asked.")
    return redirect(url_for("admin.deletions"))


@bp.route("/deletions/<int:request_id>/reject", methods=["GET", "POST"])
@admin_required
def reject_deletion(request_id: int):
    row = find_pending(request_id)
    user = row.user
    if row.status != PENDING:
        return decided_already(row)
    if request.method == "GET":
        return confirm(
            row,
            f"Decline the deletion request of {user.username}?",
            [
                f"keep {user.username}'s account as it is;",
                f"email {user.username} that the request was declined.",
            ],
            "Decline the request",
            note=f"{user.username} can ask again later.",
        )
    posted()
    row.status, row.decided_at, row.decided_by = REJECTED, utcnow(), current_user.username
    audit.record("account.deletion_rejected", actor=current_user.sub, target=user.sub)
    tell_user(user, approved=False)
    db.session().commit()
    flash(f"The deletion request of {user.username} is declined.")
    return redirect(url_for("admin.deletions"))
