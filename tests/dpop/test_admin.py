"""The admin client form sets and shows dpop_bound_access_tokens (RFC 9449 §5.2)."""

from __future__ import annotations

import re

import pytest

from idp.models import Client

from ..admin.support import post, row
from ..admin.test_clients import CONFIDENTIAL, shown_secret
from ..helpers import basic_auth


@pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)  # the admin UI here, not admin MFA
def test_admin_requires_dpop_for_a_client_and_token_requests_follow(app, client, admin_client,
                                                                    prover):  # fmt: skip
    response = post(admin_client, "/admin/clients/new", {**CONFIDENTIAL, "require_dpop": "y"})
    assert response.status_code in (200, 302), response.text[:300]
    created = row(app, Client, Client.client_name == "Billing API")
    assert created.client_metadata["dpop_bound_access_tokens"] is True
    # The token endpoint follows the setting (RFC 9449 §5.2).
    headers = basic_auth(created.client_id, shown_secret(response))
    data = {"grant_type": "client_credentials", "scope": "invoices.read"}
    refused = client.post("/token", data=data, headers=headers)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    bound = client.post("/token", data=data, headers={**headers, **prover.headers()})
    assert bound.status_code == 200 and bound.get_json()["token_type"] == "DPoP"
    page = admin_client.get(f"/admin/clients/{created.client_id}")
    assert "DPoP-bound access tokens" in page.text and "Required" in page.text
    form = admin_client.get(f"/admin/clients/{created.client_id}/edit").text
    checkbox = re.search(r"<input[^>]*name=\"require_dpop\"[^>]*>", form).group(0)
    assert "checked" in checkbox
    # Unticked on edit: the requirement goes, other metadata stays.
    edit = {**CONFIDENTIAL}
    assert post(admin_client, f"/admin/clients/{created.client_id}/edit", edit).status_code == 302
    edited = row(app, Client, Client.client_id == created.client_id)
    assert "dpop_bound_access_tokens" not in edited.client_metadata
