"""Who may use the admin UI: every route under /admin, found by enumerating the URL map.

OWASP ASVS 4.0 §4.1.1/§4.2.1: access control is enforced on the server for every request;
§4.2.2 and the OWASP CSRF Prevention Cheat Sheet: every state-changing request needs a
CSRF token.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from idp import db
from idp.models import (
    AuditEvent,
    DeletionRequest,
    Group,
    Resource,
    Token,
    User,
    UserSession,
    WebAuthnCredential,
)

from ..helpers import Auth, csrf_refused, query, stored_rows
from .support import post, row, user_row

ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


def admin_routes(app) -> list[tuple[str, str]]:
    """(method, rule) for every GET and POST of the admin blueprint."""
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            routes += [(method, rule.rule) for method in ("GET", "POST") if method in rule.methods]
    return sorted(routes)


@pytest.fixture
def targets(app, factory, user, oauth_client):
    """Real objects for every URL argument, so that a refusal cannot be a 404 in disguise."""
    alice = Auth(app.test_client())
    alice.login()
    alice.tokens(oauth_client, scope="openid")
    with app.app_context():
        session = db.session()
        group = Group(name="staff")
        resource = Resource(identifier="https://api.example", name="API")
        passkey = WebAuthnCredential(
            user_id=user.id, credential_id="AAAA", public_key=b"\0", name="Key"
        )
        deletion = DeletionRequest(user_id=user.id)
        session.add_all([group, resource, passkey, deletion])
        session.commit()
        return {
            "user_id": user.id,
            "group_id": group.id,
            "resource_id": resource.id,
            "client_id": oauth_client.client_id,
            "session_id": session.scalar(
                select(UserSession.id).where(UserSession.user_id == user.id)
            ),
            "token_id": session.scalar(select(Token.id).where(Token.user_id == user.id)),
            "passkey_id": passkey.id,
            "request_id": deletion.id,
        }


def url(rule: str, targets: dict) -> str:
    def value(match):
        name = match.group(2)
        assert name in targets, f"no test value for <{name}> in {rule}: add one to `targets`"
        return str(targets[name])

    return ARGUMENT.sub(value, rule)


# Written by the session loader on any signed-in request, refused or not.
SESSION_HOUSEKEEPING = ("last_seen_at", "updated_at")


def admin_events(app) -> list[str]:
    with app.app_context():
        return list(
            db.session().scalars(select(AuditEvent.event).where(AuditEvent.event.like("admin.%")))
        )


def test_the_enumeration_finds_every_admin_area(app):
    routes = admin_routes(app)
    paths = {rule for _, rule in routes}
    for expected in ("/admin/users", "/admin/groups", "/admin/clients", "/admin/audit"):
        assert expected in paths
    assert sum(method == "POST" for method, _ in routes) >= 20


def test_anonymous_visitors_are_sent_to_sign_in_on_every_admin_route(app, client, targets):
    # OWASP ASVS §4.1.1: no admin page or action without authentication.
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text)
    wrong = []
    for method, rule in admin_routes(app):
        path = url(rule, targets)
        data = {"csrf_token": token.group(1)} if method == "POST" else None
        response = client.open(path, method=method, data=data)
        location = response.headers.get("Location", "")
        if response.status_code != 302 or urlsplit(location).path != "/login":
            wrong.append((method, path, response.status_code))
        elif method == "GET":
            assert query(location)["next"].startswith("/admin")
    assert wrong == []
    assert admin_events(app) == []


def test_signed_in_users_without_the_admin_role_get_403_on_every_admin_route(
    app, client, auth, factory, targets
):
    # OWASP ASVS §4.2.1: the role is checked on the server; a valid CSRF token is sent so
    # that the refusal comes from the role check and not from the CSRF check. (Bob signs in:
    # Alice owns the target passkey, so her sign-in would stop at the second factor.)
    factory.user(username="bob", email="bob@example.com")
    assert auth.login("bob").status_code == 302
    wrong = []
    for method, rule in admin_routes(app):
        path = url(rule, targets)
        response = post(client, path) if method == "POST" else client.get(path)
        if response.status_code != 403:
            wrong.append((method, path, response.status_code))
    assert wrong == []
    assert admin_events(app) == []
    assert not user_row(app, "alice").is_admin and not user_row(app, "alice").disabled


def test_every_admin_form_requires_the_csrf_token(app, admin_client, targets):
    # OWASP CSRF Prevention Cheat Sheet (synchronizer token): a POST without it changes nothing.
    # The refusal must be the CSRF check's own page: an empty form also fails validation
    # with 400, so a status check alone would pass with the CSRF check gone.
    before = stored_rows(app, ignore_columns=SESSION_HOUSEKEEPING)
    wrong = []
    for method, rule in admin_routes(app):
        if method != "POST":
            continue
        path = url(rule, targets)
        response = post(admin_client, path, csrf=False)
        if not csrf_refused(response):
            wrong.append((path, response.status_code))
        response = post(admin_client, path, {"csrf_token": "forged"}, csrf=False)
        if not csrf_refused(response):
            wrong.append((path, response.status_code))
    assert wrong == []
    assert stored_rows(app, ignore_columns=SESSION_HOUSEKEEPING) == before
    assert admin_events(app) == []
    alice = user_row(app, "alice")
    assert alice is not None and not alice.disabled and alice.password_hash
    assert row(app, Group, Group.id == targets["group_id"]) is not None


def test_admins_reach_the_admin_pages_and_see_the_admin_link(client, auth, admin_client, user):
    page = admin_client.get("/admin/users")
    assert page.status_code == 200
    assert 'href="/admin/"' in page.text  # the top bar's "Admin" link
    auth.login()
    assert 'href="/admin/"' not in client.get("/account/").text


def test_taking_the_admin_role_away_shuts_the_admin_ui_at_the_next_request(
    app, admin_client, admin
):
    # OWASP ASVS §4.1.3: the role is read from the database on each request, not the cookie.
    assert admin_client.get("/admin/users").status_code == 200
    with app.app_context():
        session = db.session()
        session.get(User, admin.id).is_admin = False
        session.commit()
    assert admin_client.get("/admin/users").status_code == 403


def test_ids_beyond_the_integer_range_are_not_found(app, admin_client, targets):
    # Found by fuzzing: /admin/users/2147483648 reached the database, which PostgreSQL
    # refused (integer out of range) and SQLite could not bind: a 500 instead of a 404.
    huge = {name: 2**31 if isinstance(value, int) else value for name, value in targets.items()}
    wrong = []
    for method, rule in admin_routes(app):
        if "<int:" not in rule:
            continue
        for value in (2**31, 10**25):
            path = url(rule, {**huge, **{k: value for k, v in huge.items() if v == 2**31}})
            response = post(admin_client, path) if method == "POST" else admin_client.get(path)
            if response.status_code != 404:
                wrong.append((method, path, response.status_code))
    assert wrong == []
    assert admin_client.get(f"/admin/users/{2**31 - 1}").status_code == 404  # the largest id
