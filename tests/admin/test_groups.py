"""Admin: groups (create, rename, delete, membership) and the ``groups`` claim they feed."""

from __future__ import annotations

from urllib.parse import urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from idp import db
from idp.models import Group, User

from ..helpers import Auth
from .support import events, post, row, text_of


def group_id(app, name: str) -> int | None:
    group = row(app, Group, Group.name == name)
    return group.id if group else None


def members(app, name: str) -> list[str]:
    with app.app_context():
        group = db.session().query(Group).filter_by(name=name).one()
        return [user.username for user in group.members]


def test_admin_creates_a_group(app, admin_client, admin):
    response = post(
        admin_client, "/admin/groups/new", {"name": "staff", "description": "Everyone paid"}
    )
    assert response.status_code == 302
    staff = row(app, Group, Group.name == "staff")
    assert urlsplit(response.headers["Location"]).path == f"/admin/groups/{staff.id}"
    assert staff.description == "Everyone paid"
    assert "staff" in admin_client.get("/admin/groups").text
    [event] = events(app, "admin.group.created")
    assert (event.actor, event.target) == (admin.sub, "group:staff")
    assert event.details["after"] == {"name": "staff", "description": "Everyone paid"}


def test_group_names_are_unique_ignoring_case_and_must_be_plain(app, admin_client):
    post(admin_client, "/admin/groups/new", {"name": "staff"})
    taken = post(admin_client, "/admin/groups/new", {"name": "Staff"})
    assert taken.status_code == 400 and "exists" in taken.text
    odd = post(admin_client, "/admin/groups/new", {"name": "<script>"})
    assert odd.status_code == 400
    assert [e.target for e in events(app, "admin.group.created")] == ["group:staff"]


def test_admin_renames_a_group(app, admin_client):
    post(admin_client, "/admin/groups/new", {"name": "staff"})
    staff = group_id(app, "staff")
    response = post(
        admin_client, f"/admin/groups/{staff}", {"name": "employees", "description": ""}
    )
    assert response.status_code == 302
    assert row(app, Group, Group.id == staff).name == "employees"
    [event] = events(app, "admin.group.updated")
    assert event.details == {"before": {"name": "staff"}, "after": {"name": "employees"}}


def test_membership_is_added_and_removed_by_username(app, admin_client, user):
    post(admin_client, "/admin/groups/new", {"name": "staff"})
    staff = group_id(app, "staff")
    response = post(admin_client, f"/admin/groups/{staff}/members", {"username": "alice"})
    assert response.status_code == 302
    assert members(app, "staff") == ["alice"]
    page = admin_client.get(f"/admin/groups/{staff}")
    assert "Remove alice from staff" in page.text

    unknown = post(admin_client, f"/admin/groups/{staff}/members", {"username": "nobody"})
    assert "There is no user" in text_of(admin_client.get(unknown.headers["Location"]))

    removed = post(admin_client, f"/admin/groups/{staff}/members/{user.id}/remove")
    assert removed.status_code == 302
    assert members(app, "staff") == []
    assert events(app, "admin.group.member_added")[0].details == {"user": user.sub}
    assert events(app, "admin.group.member_removed")[0].details == {"user": user.sub}
    again = post(admin_client, f"/admin/groups/{staff}/members/{user.id}/remove")
    assert again.status_code == 404


def test_deleting_a_group_keeps_its_members(app, admin_client, user):
    post(admin_client, "/admin/groups/new", {"name": "staff"})
    staff = group_id(app, "staff")
    post(admin_client, f"/admin/groups/{staff}/members", {"username": "alice"})
    page = admin_client.get(f"/admin/groups/{staff}/delete")
    assert page.status_code == 200 and "1 member(s)" in page.text
    response = post(admin_client, f"/admin/groups/{staff}/delete")
    assert urlsplit(response.headers["Location"]).path == "/admin/groups"
    assert group_id(app, "staff") is None
    assert row(app, User, User.username == "alice") is not None
    [event] = events(app, "admin.group.deleted")
    assert event.details["before"] == {"name": "staff", "description": "", "members": 1}


def test_groups_scope_releases_the_groups_claim(app, client, auth, admin_client, user, factory):
    # The groups scope (this server's, beside OIDC Core §5.4's) releases the group names at
    # UserInfo (§5.3) and in the ID token (§5.4: claims by scope when no access token... here
    # always); discovery lists it (OIDC Discovery §3 scopes_supported, claims_supported).
    oauth_client = factory.client(scope="openid profile groups")
    for name in ("staff", "ops"):
        post(admin_client, "/admin/groups/new", {"name": name})
        post(admin_client, f"/admin/groups/{group_id(app, name)}/members", {"username": "alice"})
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid groups")
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.get_json()["groups"] == ["ops", "staff"]
    keys = KeySet.import_key_set(client.get("/jwks.json").get_json())
    claims = jwt.decode(tokens["id_token"], keys).claims
    assert claims["groups"] == ["ops", "staff"]

    without = Auth(client).tokens(oauth_client, scope="openid profile")
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + without["access_token"]})
    assert "groups" not in info.get_json()

    meta = client.get("/.well-known/openid-configuration").get_json()
    assert "groups" in meta["scopes_supported"] and "groups" in meta["claims_supported"]


def test_a_user_in_no_group_gets_no_groups_claim(client, auth, user, factory):
    # OIDC Core §5.3.2: claims without a value are omitted.
    oauth_client = factory.client(scope="openid groups")
    auth.login()
    tokens = auth.tokens(oauth_client, scope="openid groups")
    info = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.status_code == 200 and "groups" not in info.get_json()
