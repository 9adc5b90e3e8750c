"""Admin forms after a failed submit: every problem at once, in an error summary whose links
lead to the fields, the title saying "Error: ", the fields marked invalid; required fields
marked before anyone submits (WCAG 2.2 §3.3.1 error identification, §3.3.2 labels)."""

from __future__ import annotations

import re

from .support import post, user_row


def summary_links(html: str) -> list[str]:
    """The fields the error summary links to, in order."""
    box = re.search(r'<div class="error-summary" id="error-summary".*?</div>', html, re.S)
    assert box, "no error summary"
    return re.findall(r'<a href="#([^"]+)">', box.group(0))


def title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1)


def test_new_client_shows_the_field_and_the_redirect_uri_problems_in_one_answer(admin_client):
    # Before, the redirect URI problem (RFC 6749 §3.1.2) came only after the name was fixed.
    response = post(
        admin_client,
        "/admin/clients/new",
        {"client_name": "", "client_type": "confidential", "grant_types": "authorization_code",
         "token_endpoint_auth_method": "client_secret_basic", "redirect_uris": ""},
    )  # fmt: skip
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert summary_links(html) == ["client_name", "redirect_uris"]
    assert title(html).startswith("Error: ")
    assert re.search(r'<input[^>]*aria-invalid="true"[^>]*id="client_name"', html)
    assert re.search(r'<textarea[^>]*aria-invalid="true"[^>]*id="redirect_uris"', html)


def test_a_group_of_checkboxes_in_error_is_linked_through_its_first_option(admin_client):
    response = post(
        admin_client,
        "/admin/clients/new",
        {"client_name": "Job", "client_type": "confidential",
         "token_endpoint_auth_method": "client_secret_basic"},
    )  # fmt: skip
    html = response.get_data(as_text=True)
    assert "grant_types-0" in summary_links(html)
    assert 'id="grant_types-0"' in html
    assert "Choose at least one grant type." in html


def test_a_taken_username_is_reported_with_the_other_problems(app, admin_client, factory):
    factory.user(username="bob", email="bob@example.com")
    response = post(
        admin_client,
        "/admin/users/new",
        {"username": "bob", "email": "not an email", "password": "short", "confirm": "short"},
    )
    html = response.get_data(as_text=True)
    assert summary_links(html) == ["username", "email", "password"]
    assert "Another user already has this username." in html
    assert user_row(app, "bob").email == "bob@example.com"  # the existing bob, unchanged


def test_resource_problems_found_on_save_are_shown_with_the_fields_problems(admin_client):
    # RFC 8707 §2: an absolute URI; a resource needs a scope of its own (not OpenID's).
    response = post(
        admin_client,
        "/admin/resources/new",
        {
            "identifier": "not-a-uri",
            "name": "",
            "scopes": "openid orders",
            "token_format": "",
            "introspection_client": "",
        },
    )
    html = response.get_data(as_text=True)
    assert summary_links(html) == ["identifier", "name", "scopes"]
    assert "must be an absolute URI" in html
    assert "openid belongs to OpenID Connect" in html


def test_a_page_without_problems_has_no_summary_and_a_plain_title(admin_client):
    html = admin_client.get("/admin/clients/new").get_data(as_text=True)
    assert 'id="error-summary"' not in html
    assert title(html) == "New client · Admin"
    assert "forms.js" in html  # the script that moves focus to a summary, when there is one


def test_a_refused_form_has_an_error_title(admin_client):
    # CSRFProtect answers before the view, with the friendly error page.
    response = post(admin_client, "/admin/groups/new", {"name": "staff"}, csrf=False)
    assert response.status_code == 400
    assert title(response.get_data(as_text=True)).startswith("Error: ")


def test_required_fields_are_marked_before_submitting(admin_client):
    html = admin_client.get("/admin/resources/new").get_data(as_text=True)
    # The scope rule of oauth.resources.save is visible up front, in the label and as required.
    for name in ("identifier", "name", "scopes"):
        assert re.search(rf'<label for="{name}">[^<]*<span class="required">\(required\)', html)
        assert re.search(rf'<input[^>]*id="{name}"[^>]*required', html)
    assert not re.search(r'<input[^>]*id="access_token_lifetime"[^>]*required', html)
    client_form = admin_client.get("/admin/clients/new").get_data(as_text=True)
    assert re.search(r'<legend>Grant types <span class="required">\(required\)', client_form)
    assert "Required with the authorization_code grant." in client_form


def test_a_token_exchange_policy_reports_each_missing_part_at_once(app, admin_client, factory):
    # RFC 8693 §2.1: a policy names the audiences, the subject clients and token types.
    service = factory.client(name="Service", grant_types=["client_credentials"])
    url = f"/admin/clients/{service.client_id}/token-exchange"
    form = admin_client.get(url).get_data(as_text=True)
    assert form.count("At least one, when token exchange is allowed") == 3  # said up front
    response = post(admin_client, url, {"allowed": "y", "subject_clients": ""})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    # No resource exists yet: the link leads to the (empty) group itself.
    assert summary_links(html) == ["audiences", "subject_clients", "subject_token_types-0"]
    assert '<fieldset id="audiences"' in html and 'id="subject_token_types-0"' in html
    assert "Give at least one resource (audience)" in html
