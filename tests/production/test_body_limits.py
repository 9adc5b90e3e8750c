"""The request body limits (MAX_CONTENT_LENGTH, MAX_FORM_MEMORY_SIZE, MAX_FORM_PARTS), which
``serve.request_class`` sets once per app instead of Flask reading them per request."""

from __future__ import annotations

import pytest
from flask import request

from idp import create_app, db

from ..helpers import basic_auth


def test_a_body_over_the_limit_is_refused_before_it_is_read(client, oauth_client):
    secret = basic_auth(oauth_client.client_id, oauth_client.client_secret)
    big = {"grant_type": "client_credentials", "scope": "x" * (64 * 1024)}
    refused = client.post("/token", data=big, headers=secret)
    assert refused.status_code == 413  # RFC 9110 §15.5.14 Content Too Large
    assert "Traceback" not in refused.get_data(as_text=True)


@pytest.mark.config(MAX_CONTENT_LENGTH=2048, MAX_FORM_PARTS=3, MAX_FORM_MEMORY_SIZE=100)
def test_each_app_keeps_its_own_limits(app, client, oauth_client):
    secret = basic_auth(oauth_client.client_id, oauth_client.client_secret)
    with app.test_request_context():
        assert request.max_content_length == 2048
        assert request.max_form_parts == 3
        assert request.max_form_memory_size == 100
    over = {"grant_type": "client_credentials", "scope": "x" * 3000}
    assert client.post("/token", data=over, headers=secret).status_code == 413
    parts = {f"field{n}": "v" for n in range(5)}  # multipart: more parts than allowed
    many = client.post("/account/profile", data=parts, content_type="multipart/form-data")
    assert many.status_code == 413
    field = client.post(
        "/login", data={"username": "u" * 200}, content_type="multipart/form-data"
    )  # one field longer than MAX_FORM_MEMORY_SIZE
    assert field.status_code == 413


def test_a_limit_of_none_is_flasks_default_again_and_other_apps_keep_theirs(app, app_config):
    other = create_app({**app_config, "MAX_FORM_PARTS": None, "MAX_CONTENT_LENGTH": 10})
    try:
        with other.test_request_context():
            assert request.max_form_parts is None  # no limit, as Flask reads it from the config
            assert request.max_content_length == 10
        with app.test_request_context():
            assert request.max_form_parts == 1000  # Flask's default, this app's own
            assert request.max_content_length == 64 * 1024
    finally:
        db.engine(other).dispose()
