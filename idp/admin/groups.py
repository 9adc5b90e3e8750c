"""Admin: groups. Create, rename, delete, membership; their names are the ``groups`` claim
released under the ``groups`` scope (idp.oauth.claims)."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from .. import db
from ..models import Group, User, user_groups
from . import changes
from .access import admin_required, bp
from .forms import DeleteForm, GroupForm, MemberForm
from .paging import keyset_page
from .users import posted


def find_group(group_id: int) -> Group:
    group = db.session().get(Group, group_id)
    if group is None:
        abort(404)
    return group


def name_taken(name: str, except_id: int | None = None) -> bool:
    """Group names are unique ignoring case: a claim of "Admins" and "admins" would mislead."""
    query = select(Group.id).where(func.lower(Group.name) == func.lower(name))
    if except_id is not None:
        query = query.where(Group.id != except_id)
    return db.session().scalar(query.limit(1)) is not None


def group_snapshot(group: Group) -> dict:
    return {"name": group.name, "description": group.description}


def target(group: Group) -> str:
    return f"group:{group.name}"


def member_count(group_id: int) -> int:
    return db.session().scalar(
        select(func.count()).select_from(user_groups).where(user_groups.c.group_id == group_id)
    )


@bp.get("/groups")
@admin_required
def groups():
    page = keyset_page(
        select(Group),
        Group.name,
        lambda g: g.name,
        after=request.args.get("after") or None,
        before=request.args.get("before") or None,
        last=request.args.get("last") == "1",
    )
    ids = [g.id for g in page.rows]
    rows = db.session().execute(
        select(user_groups.c.group_id, func.count())
        .where(user_groups.c.group_id.in_(ids))
        .group_by(user_groups.c.group_id)
    )
    counts = {group_id: count for group_id, count in rows}
    return render_template("admin/groups/list.html", page=page, counts=counts)


@bp.route("/groups/new", methods=["GET", "POST"])
@admin_required
def create_group():
    form = GroupForm()
    if form.validate_on_submit():
        if name_taken(form.name.data):
            form.name.errors.append("A group with this name exists.")
        else:
            session = db.session()
            group = Group(name=form.name.data, description=form.description.data or "")
            session.add(group)
            try:
                session.flush()
            except IntegrityError:
                session.rollback()
                form.name.errors.append("A group with this name exists.")
            else:
                changes.record("group.created", target(group), after=group_snapshot(group))
                session.commit()
                flash(f"Group {group.name} created.")
                return redirect(url_for("admin.group", group_id=group.id))
    status = 400 if form.errors else 200
    return render_template("admin/groups/new.html", form=form), status


@bp.route("/groups/<int:group_id>", methods=["GET", "POST"])
@admin_required
def group(group_id: int):
    """The group page; POST renames it or changes its description."""
    group = find_group(group_id)
    form = GroupForm(data=group_snapshot(group))
    if form.validate_on_submit():
        if name_taken(form.name.data, except_id=group.id):
            form.name.errors.append("A group with this name exists.")
        else:
            before = group_snapshot(group)
            group.name, group.description = form.name.data, form.description.data or ""
            changes.record("group.updated", target(group), before, group_snapshot(group))
            try:
                db.session().commit()
            except IntegrityError:
                db.session().rollback()
                form.name.errors.append("A group with this name exists.")
            else:
                flash("Group saved.")
                return redirect(url_for("admin.group", group_id=group.id))
    members = keyset_page(
        select(User).join(user_groups).where(user_groups.c.group_id == group.id),
        User.username,
        lambda u: u.username,
        after=request.args.get("after") or None,
        before=request.args.get("before") or None,
        last=request.args.get("last") == "1",
    )
    status = 400 if form.errors else 200
    return render_template(
        "admin/groups/detail.html",
        group=group,
        form=form,
        member_form=MemberForm(formdata=None),
        members=members,
        confirm=DeleteForm(formdata=None),
    ), status


@bp.post("/groups/<int:group_id>/members")
@admin_required
def add_member(group_id: int):
    group = find_group(group_id)
    form = MemberForm()
    if not form.validate_on_submit():
        abort(400)
    session = db.session()
    user = session.scalar(select(User).where(User.username == form.username.data))
    if user is None:
        flash(f"There is no user {form.username.data!r}.", "error")
    elif group in user.groups:
        flash(f"{user.username} is already a member.")
    else:
        user.groups.append(group)
        changes.record("group.member_added", target(group), user=user.sub)
        session.commit()
        flash(f"{user.username} added.")
    return redirect(url_for("admin.group", group_id=group.id))


@bp.post("/groups/<int:group_id>/members/<int:user_id>/remove")
@admin_required
def remove_member(group_id: int, user_id: int):
    posted()
    group = find_group(group_id)
    session = db.session()
    user = session.get(User, user_id)
    if user is None or group not in user.groups:
        abort(404)
    user.groups.remove(group)
    changes.record("group.member_removed", target(group), user=user.sub)
    session.commit()
    flash(f"{user.username} removed.")
    return redirect(url_for("admin.group", group_id=group.id))


@bp.route("/groups/<int:group_id>/delete", methods=["GET", "POST"])
@admin_required
def delete_group(group_id: int):
    group = find_group(group_id)
    form = DeleteForm()
    if form.validate_on_submit():
        session = db.session()
        snapshot = {**group_snapshot(group), "members": member_count(group.id)}
        session.execute(delete(Group).where(Group.id == group.id))  # memberships cascade
        session.expunge(group)
        changes.record("group.deleted", target(group), before=snapshot)
        session.commit()
        flash(f"Group {snapshot['name']} deleted.")
        return redirect(url_for("admin.groups"))
    return render_template(
        "admin/groups/delete.html", group=group, form=form, members=member_count(group.id)
    )
