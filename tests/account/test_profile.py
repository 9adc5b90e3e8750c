"""Editing one's own profile (issue 14, flow 8): only the OIDC Core §5.1 claims the admin
allows (ACCOUNT_EDITABLE_CLAIMS), validated like the admin form, audited by claim name."""

from __future__ import annotations

import re

import pytest

from idp import create_app, db
from idp.config import ConfigError

from ..helpers import csrf_refused
from .own import events, stored_user, token_from


@pytest.fixture
def signed_in(auth, user):
    assert auth.login().status_code == 302
    return user


def save(client, **fields):
    data = {"csrf_token": token_from(client, "/account/profile"), **fields}
    return client.post("/account/profile", data=data)


def test_profile_pages_need_a_signed_in_user(client):
    for response in (client.get("/account/profile"), client.post("/account/profile")):
        assert response.status_code in (302, 400)
    assert client.get("/account/profile").headers["Location"].startswith("/login")


def test_the_form_offers_the_allowed_claims_and_never_email_or_username(client, signed_in):
    page = client.get("/account/profile")
    assert page.status_code == 200
    for name in ("name", "given_name", "family_name", "nickname", "locale", "zoneinfo"):
        assert f'name="{name}"' in page.text
    for name in ("email", "email_verified", "username", "sub", "phone_number_verified"):
        assert f'name="{name}"' not in page.text
    # The account page shows the profile and links to the form.
    account = client.get("/account/")
    assert "Your profile" in account.text and "/account/profile" in account.text
    assert "Alice Liddell" in account.text


def test_saving_changes_the_claims_and_audits_their_names_not_values(app, client, signed_in):
    response = save(
        client,
        name="Alice Pleasance Liddell",
        given_name="Alice",
        nickname="Al",
        locale="en-GB",
        zoneinfo="Europe/London",
        website="https://alice.example/",
        birthdate="0000-05-04",
    )
    assert response.status_code == 302 and response.headers["Location"] == "/account/"
    user = stored_user(app, "alice")
    assert (user.name, user.given_name, user.nickname) == ("Alice Pleasance Liddell", "Alice", "Al")
    assert (user.locale, user.zoneinfo, user.birthdate) == ("en-GB", "Europe/London", "0000-05-04")
    (event,) = events(app, "profile.updated")
    assert event.actor == user.sub
    assert sorted(event.details["claims"]) == sorted(
        ["name", "given_name", "nickname", "locale", "zoneinfo", "website", "birthdate"]
    )
    assert "Liddell" not in str(event.details) and "London" not in str(event.details)


def test_an_empty_field_removes_the_claim_and_an_unchanged_form_is_not_audited(
    app, client, signed_in
):
    assert save(client, name="").status_code == 302
    assert stored_user(app, "alice").name is None
    assert events(app, "profile.updated")[0].details["claims"] == ["name"]
    assert save(client).status_code == 302
    assert len(events(app, "profile.updated")) == 1


def test_forged_fields_for_forbidden_claims_are_ignored(app, client, signed_in):
    # Only claims with a field are read: email needs verification (flow 3), the rest are
    # the server's own (OIDC Core §5.1 sub; the admin role).
    response = save(
        client,
        nickname="Al",
        email="mallory@example.com",
        email_verified="y",
        is_admin="y",
        username="root",
        sub="someone-else",
        phone_number_verified="y",
        disabled="",
    )
    assert response.status_code == 302
    user = stored_user(app, "alice")
    assert user.nickname == "Al"
    assert user.email == "alice@example.com" and not user.email_verified
    assert not user.is_admin and user.username == "alice"
    assert user.sub != "someone-else" and not user.phone_number_verified
    assert events(app, "profile.updated")[0].details["claims"] == ["nickname"]


@pytest.mark.config(ACCOUNT_EDITABLE_CLAIMS=["nickname"])
def test_a_claim_the_admin_did_not_allow_cannot_be_changed(app, client, signed_in):
    page = client.get("/account/profile")
    assert 'name="nickname"' in page.text and 'name="name"' not in page.text
    assert save(client, nickname="Al", name="Mallory").status_code == 302
    user = stored_user(app, "alice")
    assert user.nickname == "Al" and user.name == "Alice Liddell"


@pytest.mark.config(ACCOUNT_EDITABLE_CLAIMS=[])
def test_no_editable_claim_means_no_profile_form(client, signed_in):
    assert client.get("/account/profile").status_code == 404
    assert "/account/profile" not in client.get("/account/").text


@pytest.mark.config(ACCOUNT_EDITABLE_CLAIMS=["name", "phone_number"])
def test_a_new_phone_number_is_no_longer_verified(app, client, signed_in, factory):
    with app.app_context():
        from idp import db
        from idp.models import User

        row = db.session().get(User, signed_in.id)
        row.phone_number, row.phone_number_verified = "+33123456789", True
        db.session().commit()
    assert save(client, name="Alice Liddell", phone_number="+33123456789").status_code == 302
    assert stored_user(app, "alice").phone_number_verified  # unchanged: still verified
    assert save(client, name="Alice Liddell", phone_number="+33999999999").status_code == 302
    user = stored_user(app, "alice")
    assert user.phone_number == "+33999999999" and not user.phone_number_verified


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("zoneinfo", "Mars/Olympus", "IANA"),
        ("locale", "english please", "en-GB"),
        ("website", "javascript:alert(1)", "http(s) URL"),
        ("picture", "ftp://alice.example/me.png", "http(s) URL"),
        ("birthdate", "1990-02-30", "calendar"),
        ("birthdate", "04/05/1852", "YYYY-MM-DD"),
        ("name", "x" * 256, "255"),
    ],
)
def test_invalid_values_are_refused_with_an_error_summary(
    app, client, signed_in, field, value, message
):
    response = save(client, **{field: value})
    assert response.status_code == 400
    assert "<title>Error: " in response.text
    assert 'id="error-summary"' in response.text and f'href="#{field}"' in response.text
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    assert events(app, "profile.updated") == []
    assert getattr(stored_user(app, "alice"), field) != value


def test_saving_without_the_csrf_token_is_refused(app, client, signed_in):
    response = client.post("/account/profile", data={"name": "Mallory"})
    assert csrf_refused(response)
    assert stored_user(app, "alice").name == "Alice Liddell"


def test_config_refuses_claims_users_must_not_edit(app_config):
    for claim in ("email", "email_verified", "sub", "username", "phone_number_verified"):
        with pytest.raises(ConfigError, match=claim):
            create_app({**app_config, "ACCOUNT_EDITABLE_CLAIMS": ["name", claim]})


def test_the_setting_can_be_a_string_of_names(app_config):
    app = create_app({**app_config, "ACCOUNT_EDITABLE_CLAIMS": "nickname, locale"})
    try:
        assert app.config["ACCOUNT_EDITABLE_CLAIMS"] == ["nickname", "locale"]
    finally:
        db.engine(app).dispose()


# --- the new-device notice setting -----------------------------------------------------


def test_the_new_device_notice_can_be_turned_off_and_on(app, client, signed_in):
    def checkbox() -> str:
        return re.search(
            r"<input[^>]*id=\"new_device_notices\"[^>]*>", client.get("/account/").text
        )[0]

    assert "checked" in checkbox()  # on by default
    token = token_from(client)
    assert client.post("/account/notices", data={"csrf_token": token}).status_code == 302
    assert stored_user(app, "alice").new_device_notices is False
    assert "checked" not in checkbox()
    (event,) = events(app, "account.notices_changed")
    assert event.details == {"new_device": False}
    data = {"csrf_token": token, "new_device_notices": "y"}
    assert client.post("/account/notices", data=data).status_code == 302
    assert stored_user(app, "alice").new_device_notices is True


def test_the_notice_setting_needs_the_csrf_token(app, client, signed_in):
    assert csrf_refused(client.post("/account/notices", data={}))
    assert stored_user(app, "alice").new_device_notices is True
