"""Admin UI: resources (RFC 8707) and client token exchange policies (RFC 8693)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, Resource

from ..helpers import Auth, csrf_token
from .conftest import INVENTORY, ORDERS, make_resource, token_request

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
# Admins sign in with the password alone here (MFA for admins: tests/mfa/test_policy.py).
pytestmark = pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)


@pytest.fixture
def admin_browser(app, factory):
    factory.user(username="root", email="root@example.com", is_admin=True)
    browser = app.test_client()
    assert Auth(browser).login("root").status_code == 302
    return browser


def post_form(browser, url: str, data: dict):
    token = csrf_token(browser.get(url).get_data(as_text=True))
    return browser.post(url, data={"csrf_token": token, **data})


def resource_form(**fields) -> dict:
    """What a browser submits from the resource form (selects always send a value)."""
    return {"token_format": "", "introspection_client": "", **fields}


def resource_row(app, identifier: str) -> Resource | None:
    with app.app_context():
        session = db.session()
        row = session.scalar(select(Resource).where(Resource.identifier == identifier))
        if row is not None:
            row.client_ids = [c.client_id for c in row.clients]
        session.expunge_all()
        return row


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_admin_creates_edits_and_deletes_a_resource(app, client, admin_browser, service):
    # Issue 4: the admin UI registers resources with scopes, format, lifetime and clients.
    created = post_form(
        admin_browser,
        "/admin/resources/new",
        {
            "identifier": ORDERS,
            "name": "Orders",
            "scopes": "orders:read orders:write",
            "token_format": "opaque",
            "access_token_lifetime": "600",
            "clients": [service.client_id],
            "introspection_client": "",
        },
    )
    assert created.status_code == 302, created.get_data(as_text=True)
    row = resource_row(app, ORDERS)
    assert row.scope == "orders:read orders:write" and row.token_format == "opaque"
    assert row.access_token_lifetime == 600 and row.client_ids == [service.client_id]
    [event] = events(app, "admin.resource.created")
    assert event.details["after"]["identifier"] == ORDERS
    listing = admin_browser.get("/admin/resources").get_data(as_text=True)
    assert ORDERS in listing and "Orders" in listing
    # The token endpoint follows what the admin saved.
    body = token_request(client, service, grant_type="client_credentials", resource=ORDERS)
    assert body.get_json()["expires_in"] == 600

    edited = post_form(
        admin_browser,
        f"/admin/resources/{row.id}",
        {
            "identifier": ORDERS,
            "name": "Orders API",
            "scopes": "orders:read",
            "token_format": "",
            "access_token_lifetime": "",
            "clients": [],
            "introspection_client": service.client_id,
        },
    )
    assert edited.status_code == 302, edited.get_data(as_text=True)
    row = resource_row(app, ORDERS)
    assert row.name == "Orders API" and row.scope == "orders:read" and row.token_format is None
    assert row.client_ids == [] and row.introspection_client_id == service.client_id
    [event] = events(app, "admin.resource.updated")
    assert event.details["before"]["scopes"] == ["orders:read", "orders:write"]
    refused = token_request(client, service, grant_type="client_credentials", resource=ORDERS)
    assert refused.get_json()["error"] == "invalid_target"  # RFC 8707 §2: no longer allowed

    deleted = post_form(admin_browser, f"/admin/resources/{row.id}/delete", {})
    assert deleted.status_code == 302
    assert resource_row(app, ORDERS) is None
    assert events(app, "admin.resource.deleted")


def test_admin_form_explains_invalid_resources(app, admin_browser):
    # RFC 8707 §2: an absolute URI without fragment; OIDC scopes are not resource scopes.
    fragment = post_form(
        admin_browser,
        "/admin/resources/new",
        resource_form(identifier=ORDERS + "#x", name="Orders", scopes="orders:read"),
    )
    assert fragment.status_code == 400 and "fragment" in fragment.get_data(as_text=True)
    oidc = post_form(
        admin_browser,
        "/admin/resources/new",
        resource_form(identifier=ORDERS, name="Orders", scopes="openid"),
    )
    assert oidc.status_code == 400 and "OpenID Connect" in oidc.get_data(as_text=True)
    assert resource_row(app, ORDERS) is None


def test_resources_pages_are_for_admins_only(app, client, auth, user):
    # The admin role is checked on the server for every request (idp.admin.access).
    anonymous = client.get("/admin/resources")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    auth.login()
    assert client.get("/admin/resources").status_code == 403
    assert client.get("/admin/resources/new").status_code == 403


def test_admin_sets_and_withdraws_a_token_exchange_policy(
    app, admin_browser, service, oauth_client
):
    # Issue 4 / RFC 8693: the per-client policy from the admin UI.
    make_resource(app, INVENTORY, ["inventory:read"], [])
    url = f"/admin/clients/{service.client_id}/token-exchange"
    saved = post_form(
        admin_browser,
        url,
        {
            "allowed": "y",
            "audiences": [INVENTORY],
            "subject_clients": oauth_client.client_id,
            "subject_token_types": ["access_token", "id_token"],
        },
    )
    assert saved.status_code == 302, saved.get_data(as_text=True)
    with app.app_context():
        from idp.models import Client

        row = db.session().scalar(select(Client).where(Client.client_id == service.client_id))
        assert row.token_exchange_policy == {
            "audiences": [INVENTORY],
            "subject_clients": [oauth_client.client_id],
            "subject_token_types": ["access_token", "id_token"],
        }
        assert GRANT in row.grant_types
    assert events(app, "admin.client.policy_updated")
    page = admin_browser.get(f"/admin/clients/{service.client_id}").get_data(as_text=True)
    assert INVENTORY in page and "token-exchange" in page

    withdrawn = post_form(admin_browser, url, {"subject_clients": ""})
    assert withdrawn.status_code == 302
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == service.client_id))
        assert row.token_exchange_policy is None and GRANT not in row.grant_types


def test_admin_policy_refuses_what_cannot_work(app, admin_browser, service, public_client):
    # RFC 8693 §2.1: the client must authenticate, and targets must be registered resources.
    unknown = post_form(
        admin_browser,
        f"/admin/clients/{service.client_id}/token-exchange",
        {"allowed": "y", "subject_clients": "*", "subject_token_types": ["access_token"]},
    )
    assert unknown.status_code == 400 and "audience" in unknown.get_data(as_text=True)
    make_resource(app, INVENTORY, ["inventory:read"], [])
    public = post_form(
        admin_browser,
        f"/admin/clients/{public_client.client_id}/token-exchange",
        {"allowed": "y", "audiences": [INVENTORY], "subject_clients": "*"},
    )
    assert public.status_code == 400 and "Public clients" in public.get_data(as_text=True)
