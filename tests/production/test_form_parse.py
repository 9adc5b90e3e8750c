"""A urlencoded body read at once (``serve.FormRequest``) gives the form Werkzeug's parser
gives, and refuses what Werkzeug refuses; every other body is Werkzeug's own."""

from __future__ import annotations

import io

import flask
import pytest
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from idp.serve import FormRequest, request_class

from ..helpers import basic_auth

LIMITS = {"MAX_CONTENT_LENGTH": 1024, "MAX_FORM_MEMORY_SIZE": 500_000, "MAX_FORM_PARTS": 1000}
URLENCODED = "application/x-www-form-urlencoded"

BODIES = [
    b"grant_type=client_credentials&scope=api",
    b"token=abc&token_type_hint=access_token",
    b"scope=a&scope=b&empty=&bare&=nameless",  # repeats, blanks, no "=", no name
    b"a=1+2&b=%2B%20%26%3D&c=caf%C3%A9",  # plus, escapes, UTF-8
    b"bad=%FF%FE&nul=%00&raw=x\x00y",  # not UTF-8 once unquoted; NUL (refused later)
    b"half=%4&end=%",  # broken escapes stay as sent
    "name=caf\u00e9".encode(),  # raw UTF-8
    b"latin=caf\xe9",  # raw bytes that are not UTF-8: an empty form
    b"a=1;b=2&c=3",  # ";" is not a separator
    b"",
]


def twins():
    """The IdP's request class and Flask's own with the same limits."""
    ours = request_class(LIMITS)
    assert issubclass(ours, FormRequest)
    werkzeugs = type("Plain", (flask.Request,), {
        "parameter_storage_class": ours.parameter_storage_class,
        "_max_content_length": LIMITS["MAX_CONTENT_LENGTH"],
        "_max_form_memory_size": LIMITS["MAX_FORM_MEMORY_SIZE"],
        "_max_form_parts": LIMITS["MAX_FORM_PARTS"],
    })  # fmt: skip
    return ours, werkzeugs


def environ(body: bytes, content_type: str = URLENCODED, **extra) -> dict:
    env = EnvironBuilder(method="POST", data=body, content_type=content_type).get_environ()
    env.update(extra)
    return env


def parsed(cls, env: dict):
    request = cls(env)
    try:
        form = list(request.form.items(multi=True))
    except Exception as error:  # noqa: BLE001 (compared between the two)
        return type(error)
    return form, list(request.files.items()), request.get_data(), type(request.form)


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("terminated", [False, True])  # gunicorn's input is terminated
def test_a_urlencoded_body_is_parsed_as_werkzeug_parses_it(app, body, terminated):
    ours, werkzeugs = twins()
    extra = {"wsgi.input_terminated": True} if terminated else {}
    with app.app_context():
        expected = parsed(werkzeugs, environ(body, **extra))
        assert parsed(ours, environ(body, **extra)) == expected
    if body == b"latin=caf\xe9":
        assert expected[0] == []  # Werkzeug's parser is silent about a body not in UTF-8


def test_the_body_is_read_once_in_one_call(app):
    ours, _ = twins()
    body = b"token=abc&token_type_hint=access_token"

    class Input(io.BytesIO):
        calls: list = []

        def read(self, size=-1):
            self.calls.append(size)
            return super().read(size)

    env = environ(body, **{"wsgi.input": Input(body), "wsgi.input_terminated": True})
    with app.app_context():
        assert ours(env).form["token"] == "abc"
    assert Input.calls == [len(body)]  # exactly the announced length, never "until EOF"


@pytest.fixture
def werkzeug_parses(monkeypatch):
    """The requests whose form went through Flask's and Werkzeug's own parse."""
    parses = []
    original = flask.Request._load_form_data

    def recording(self):
        parses.append(self.environ.get("CONTENT_TYPE"))
        return original(self)

    monkeypatch.setattr(flask.Request, "_load_form_data", recording)
    return parses


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded; charset=utf-8", "multipart/form-data", "text/plain"],
)
def test_other_types_are_werkzeugs(app, content_type, werkzeug_parses):
    ours, werkzeugs = twins()
    if content_type.startswith("multipart"):
        env = lambda: EnvironBuilder(  # noqa: E731
            method="POST", data={"a": "1", "b": "2"}, content_type=content_type
        ).get_environ()
    else:
        env = lambda: environ(b"a=1&b=2", content_type)  # noqa: E731
    with app.app_context():
        assert parsed(ours, env()) == parsed(werkzeugs, env())
    assert len(werkzeug_parses) == 2  # the twin's, and ours handed over


def test_a_plain_urlencoded_body_is_not_werkzeugs(app, werkzeug_parses):
    ours, _ = twins()
    with app.app_context():
        assert ours(environ(b"a=1")).form["a"] == "1"
    assert werkzeug_parses == []


def test_a_body_shorter_than_announced_is_a_disconnected_client(app):
    # Werkzeug's stream of a known length raises ClientDisconnected (a 400) on a short read.
    ours, werkzeugs = twins()
    body = b"token=abc&token_type_hint=access_token"
    with app.app_context():
        for cls in (werkzeugs, ours):
            short = environ(body, CONTENT_LENGTH=str(len(body) + 10))
            assert parsed(cls, short) is ClientDisconnected


@pytest.mark.parametrize("terminated", [False, True])
def test_a_body_over_the_limit_is_refused_unread(app, terminated):
    # RFC 9110 §15.5.14: 413 Content Too Large, from the announced length, nothing read.
    ours, werkzeugs = twins()
    body = b"scope=" + b"x" * LIMITS["MAX_CONTENT_LENGTH"]
    extra = {"wsgi.input_terminated": True} if terminated else {}
    with app.app_context():
        for cls in (ours, werkzeugs):
            env = environ(body, **extra)
            assert parsed(cls, env) is RequestEntityTooLarge
            assert env["wsgi.input"].tell() == 0


@pytest.mark.parametrize("length", ["", "abc", "-5", "\u00b2", " 12"])
def test_an_odd_content_length_is_werkzeugs(app, length):
    ours, werkzeugs = twins()
    body = b"token=abc"
    with app.app_context():
        expected = parsed(werkzeugs, environ(body, CONTENT_LENGTH=length))
        assert parsed(ours, environ(body, CONTENT_LENGTH=length)) == expected


def test_a_chunked_body_is_werkzeugs(app):
    ours, werkzeugs = twins()
    body = b"token=abc&token_type_hint=access_token"
    chunked = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    with app.app_context():
        env = environ(body, **chunked)
        del env["CONTENT_LENGTH"]
        expected = parsed(werkzeugs, dict(env, **{"wsgi.input": io.BytesIO(body)}))
        assert expected[0] == [("token", "abc"), ("token_type_hint", "access_token")]
        assert parsed(ours, dict(env, **{"wsgi.input": io.BytesIO(body)})) == expected
        # A Content-Length beside it counts for nothing (RFC 9112 §6.3): the whole body.
        env["CONTENT_LENGTH"] = "9"
        assert parsed(werkzeugs, dict(env, **{"wsgi.input": io.BytesIO(body)})) == expected
        assert parsed(ours, dict(env, **{"wsgi.input": io.BytesIO(body)})) == expected


def test_data_read_first_is_still_parsed_as_a_form(app):
    ours, werkzeugs = twins()
    body = b"a=1&b=2"
    with app.app_context():
        for cls in (ours, werkzeugs):
            request = cls(environ(body))
            assert request.get_data(cache=True) == body
            assert list(request.form.items(multi=True)) == [("a", "1"), ("b", "2")]


def test_the_token_endpoint_reads_its_form_and_refuses_a_nul(client, factory, werkzeug_parses):
    # RFC 6749 §4.4.2 through the fast read; NUL is valid in no OAuth parameter (Appendix A).
    service = factory.client(grant_types=("client_credentials",), redirect_uris=(), scope="api")
    secret = basic_auth(service.client_id, service.client_secret)
    answer = client.post(
        "/token", data=b"grant_type=client_credentials", headers=secret, content_type=URLENCODED
    )
    assert answer.status_code == 200, answer.get_json()
    nul = client.post(
        "/token", data=b"grant_type=client_credentials%00", headers=secret,
        content_type=URLENCODED,
    )  # fmt: skip
    assert nul.status_code == 400
    assert nul.get_json()["error"] == "invalid_request"
    assert werkzeug_parses == []


def test_debug_mode_keeps_flasks_parse(app, werkzeug_parses):
    # Flask's debug mode explains a missing enctype through its own parse.
    debugging = request_class({**LIMITS, "DEBUG": True})
    with app.app_context():
        assert debugging(environ(b"a=1")).form["a"] == "1"
    assert werkzeug_parses == [URLENCODED]
