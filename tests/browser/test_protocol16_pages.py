"""The admin pages of issue 16 in Chromium, each state checked with axe-core: the client form
with the subject and UserInfo settings (and a refused sector_identifier_uri), and the
resource page with its RFC 9728 metadata download."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from idp import db
from idp.models import Resource
from tests.browser.a11y import expect
from tests.browser.test_pages import sign_in
from tests.protocol16.conftest import sector_server  # noqa: F401, F811

pytestmark = [pytest.mark.browser, pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)]


@pytest.fixture
def root(factory):
    return factory.user(username="root", email="root@example.com", is_admin=True)


def test_client_form_refuses_a_sector_uri_that_lists_other_redirect_uris(
    live_server,
    page,
    root,
    sector_server,  # noqa: F811
):
    sector = sector_server.serve("/s.json", json.dumps(["https://other.example/cb"]).encode())
    sign_in(page, live_server, "root")
    page.goto(live_server + "/admin/clients/new")
    expect(page.get_by_label("Subject identifier")).to_be_visible()
    page.locator("#client_name").fill("Pairwise RP")
    page.locator("#redirect_uris").fill("https://rp.example/cb")
    page.get_by_label("Subject identifier").select_option("pairwise")
    page.get_by_label("Sector identifier URI").fill(sector)
    page.get_by_label("UserInfo answer").select_option("ES256")
    page.get_by_role("button", name="Create client").click()
    # Issue 18: the summary takes focus, the title says Error, the field shows why.
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Error: "))
    expect(page.locator("#error-summary")).to_contain_text("does not list the redirect URI")


def test_resource_page_offers_the_metadata_document(app, live_server, page, root):
    with app.app_context():
        row = Resource(identifier="https://api.example.com/", name="API", scope="api:read")
        db.session().add(row)
        db.session().commit()
        resource_id = row.id
    sign_in(page, live_server, "root")
    page.goto(f"{live_server}/admin/resources/{resource_id}")
    link = page.get_by_role("link", name="Download the metadata document")
    expect(link).to_be_visible()
    expect(
        page.get_by_text("https://api.example.com/.well-known/oauth-protected-resource")
    ).to_be_visible()
    with page.expect_download() as download:
        link.click()
    doc = json.loads(Path(download.value.path()).read_text())
    assert doc["resource"] == "https://api.example.com/"
    assert doc["authorization_servers"] == [live_server]
