"""Admin client form: signed UserInfo, subject type and sector_identifier_uri (issue 16)."""

from __future__ import annotations

import json

from idp.models import AuditEvent, Client
from tests.admin.support import post, row
from tests.admin.test_clients import CONFIDENTIAL


def test_admin_sets_pairwise_with_a_checked_sector_uri(app, admin_client, sector_server):
    # OIDC Core §8.1: the sector document is fetched and must list every redirect URI.
    sector = sector_server.serve("/s.json", json.dumps(CONFIDENTIAL_URIS).encode())
    form = {
        **CONFIDENTIAL,
        "client_name": "Pairwise App",
        "subject_type": "pairwise",
        "sector_identifier_uri": sector,
        "userinfo_signed_response_alg": "ES256",
    }
    response = post(admin_client, "/admin/clients/new", form)
    assert response.status_code == 200, response.text[:2000]
    created = row(app, Client, Client.client_name == "Pairwise App")
    assert created.subject_type == "pairwise"
    assert created.sector_identifier_uri == sector
    assert created.userinfo_signed_response_alg == "ES256"
    event = row(app, AuditEvent, AuditEvent.event == "admin.client.created")
    assert event.details["after"]["subject_type"] == "pairwise"
    page = admin_client.get(f"/admin/clients/{created.client_id}")
    assert "pairwise" in page.text and "Signed, ES256" in page.text


def test_admin_form_shows_a_sector_uri_that_does_not_list_the_redirect_uris(
    app, admin_client, sector_server
):
    sector = sector_server.serve("/s.json", json.dumps(["https://elsewhere.example/cb"]).encode())
    form = {**CONFIDENTIAL, "client_name": "Bad Sector", "subject_type": "pairwise",
            "sector_identifier_uri": sector}  # fmt: skip
    response = post(admin_client, "/admin/clients/new", form)
    # Issue 18: an error summary and a title starting "Error: ".
    assert response.status_code == 400
    assert "<title>Error: " in response.text
    assert "does not list the redirect URI" in response.text
    assert row(app, Client, Client.client_name == "Bad Sector") is None


def test_admin_form_pairwise_on_several_hosts_needs_a_sector_uri(app, admin_client):
    uris = "https://a.example/cb\nhttps://b.example/cb"
    form = {**CONFIDENTIAL, "client_name": "Two Hosts", "subject_type": "pairwise",
            "redirect_uris": uris}  # fmt: skip
    response = post(admin_client, "/admin/clients/new", form)
    assert response.status_code == 400
    assert "is required when redirect URIs use several hosts" in response.text


CONFIDENTIAL_URIS = ["https://billing.example/cb", "https://billing.example/cb2"]
