"""``request.args`` and ``request.form`` answer as Werkzeug's ImmutableMultiDict does
(``serve.Parameters``), without an exception for each parameter that is absent."""

from __future__ import annotations

import pytest
from flask import request
from werkzeug import exceptions

from idp.serve import Parameters

from ..helpers import basic_auth


@pytest.fixture
def key_errors(monkeypatch):
    """The keys of the BadRequestKeyError built (a missing header raises one too)."""
    built = []
    original = exceptions.BadRequestKeyError.__init__

    def counting(self, *args, **kwargs):
        built.append(args[0] if args else None)
        original(self, *args, **kwargs)

    monkeypatch.setattr(exceptions.BadRequestKeyError, "__init__", counting)
    return built


def test_parameters_answer_as_werkzeug_does(app, key_errors):
    body = "grant_type=client_credentials&scope=a&scope=b&empty=&n=42&bad=x"
    with app.test_request_context(
        "/token?state=s", method="POST", data=body,
        content_type="application/x-www-form-urlencoded",
    ):  # fmt: skip
        form, args = request.form, request.args
        assert isinstance(form, Parameters) and isinstance(args, Parameters)
        assert form.get("grant_type") == "client_credentials"
        assert form.get("scope") == "a"  # the first value, as RFC 6749 §3.2 refuses repeats
        assert form.getlist("scope") == ["a", "b"]
        assert form.get("empty") == ""
        assert form.get("client_secret") is None
        assert form.get("client_secret", "default") == "default"
        assert args.get("state") == "s" and args.get("code") is None
        assert not {"client_secret", "code"} & set(key_errors)  # none for an absent parameter
        assert form.get("n", type=int) == 42
        assert form.get("bad", -1, type=int) == -1  # Werkzeug's: the default on ValueError
        with pytest.raises(exceptions.BadRequestKeyError):
            form["client_secret"]  # a view's form["x"] is still a 400


def test_an_absent_optional_parameter_costs_no_exception_on_the_token_endpoint(
    client, factory, key_errors
):
    # RFC 6749 §4.4.2 with client_secret_basic: client_secret, client_assertion, resource
    # and the other optional parameters are absent, and each was a BadRequestKeyError.
    service = factory.client(grant_types=("client_credentials",), redirect_uris=(), scope="api")
    secret = basic_auth(service.client_id, service.client_secret)
    answer = client.post("/token", data={"grant_type": "client_credentials"}, headers=secret)
    assert answer.status_code == 200, answer.get_json()
    assert "access_token" in answer.get_json()
    # Parameter names are lower case; a header's (Content-Length in the test client) is not.
    assert [key for key in key_errors if key.islower()] == []
