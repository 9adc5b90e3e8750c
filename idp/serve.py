"""Serving in production: gunicorn (``idp serve``) and the trusted reverse-proxy hops.

``idp serve`` replaces itself with ``gunicorn -c python:idp.gunicorn_conf 'idp:create_app()'``,
so what runs is exactly what an operator could type. The Flask development server is for
``idp run`` and ``idp demo`` only.

Behind a proxy, werkzeug's ProxyFix takes the client address, scheme, host, port and prefix
from X-Forwarded-* headers, but only as many hops deep as ``PROXY_FIX_X_*`` trust (0 = the
header is ignored, so a client cannot forge its address to dodge rate limits). The issuer and
every URL the server publishes come from ``ISSUER``, never from these headers or from Host.
"""

from __future__ import annotations

import io
import os
import re
import sys
import zlib
from typing import NamedTuple
from urllib.parse import parse_qsl

import flask
from flask import Flask, request, session
from flask.globals import request_ctx
from flask.sessions import SecureCookieSessionInterface
from flask.signals import request_tearing_down
from flask_login import LoginManager
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.url_safe import URLSafeSerializerMixin
from markupsafe import Markup, escape
from werkzeug import urls as _urls  # noqa: F401 (registers the "werkzeug.url_quote" handler)
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.exceptions import ClientDisconnected
from werkzeug.middleware.proxy_fix import ProxyFix
from wtforms import widgets
from wtforms.widgets import core as widgets_core

HOPS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def init_app(app: Flask) -> None:
    hops = {name: int(app.config[f"PROXY_FIX_{name.upper()}"]) for name in HOPS}
    if any(hops.values()):
        app.wsgi_app = ProxyFix(app.wsgi_app, **hops)
    remember_ensure_sync(app)
    hook_chains(app)
    app.session_interface = CookieSessions()
    app.response_class = Response
    app.request_class = request_class(app.config)
    gate_remember_cookie(app)
    install_html_params()


# WTForms' own, for the test that compares the two.
LIBRARY_HTML_PARAMS = widgets_core.html_params
_QUOTE = (Markup('"'), Markup("&quot;"))


def html_params(**kwargs) -> Markup:
    """WTForms' ``html_params`` (every field's attributes on a page), the same text at a
    third of the CPU.

    WTForms writes each attribute as ``Markup('{k}="{v}"').format(k=k, v=v)``: a pass of
    ``string.Formatter`` that escapes the key and the already escaped value again, ~5 µs an
    attribute; the sign-in page's fields took ~130 µs of its ~1 ms. Here each key and value
    is escaped once, as there (the value's double quotes as ``&quot;`` too), and the pairs
    are joined as the markup they are."""
    params = []
    for key, value in sorted(kwargs.items()):
        if value is False:
            continue
        key = escape(widgets_core.clean_key(key))
        params.append(key if value is True else f'{key}="{escape(value).replace(*_QUOTE)}"')
    return Markup(" ".join(params))


def install_html_params() -> None:
    """Put ``html_params`` where WTForms' widgets and labels look theirs up: the module's
    function (lists, tables, text areas, selects, options), the package's (labels), and
    the two widget classes that hold it as a static method (every input, every button)."""
    widgets_core.html_params = widgets.html_params = html_params
    widgets_core.Input.html_params = widgets_core.Button.html_params = staticmethod(html_params)


def request_class(config) -> type[flask.Request]:
    """Flask's request, with this app's body and form limits and its parameters' class set on
    a class of its own.

    Flask reads each of ``max_content_length``, ``max_form_memory_size`` and
    ``max_form_parts`` from ``current_app.config`` every time Werkzeug asks, through the
    context proxy: ten proxy look-ups per form POST, each an attribute miss that formats an
    AttributeError on CPython 3.11 (~1 µs). A value set on the request comes first (Flask
    3.1); the configured ones are fixed at start, so they are set once here. A limit
    configured as None (none) is left to Flask, which then reads the config as before.
    Its query and form parameters are ``Parameters``.
    """
    limits = {
        "_max_content_length": config["MAX_CONTENT_LENGTH"],
        "_max_form_memory_size": config["MAX_FORM_MEMORY_SIZE"],
        "_max_form_parts": config["MAX_FORM_PARTS"],
    }
    # Flask's debug mode swaps in a ``files`` that explains a missing enctype: its own parse.
    base = flask.Request if config.get("DEBUG") else FormRequest
    return type(
        "Request",
        (base,),
        {"__module__": __name__, "parameter_storage_class": Parameters, **limits},
    )


URLENCODED = "application/x-www-form-urlencoded"


class FormRequest(flask.Request):
    """Flask's request, which reads a urlencoded body of known length straight from the
    server's input.

    Werkzeug parses every form through a ``FormDataParser`` made per request, reading a
    ``LimitedStream`` in chunks, ~14 µs of a token request's form beside the ~3 µs of
    ``parse_qsl``. For ``application/x-www-form-urlencoded`` (the exact type, as every OAuth
    client sends it) with a Content-Length within ``max_content_length``, this reads those
    bytes at once and parses them as Werkzeug does (``parse_qsl``, blank values kept,
    undecodable percent-escapes kept quoted, a body that is not UTF-8 an empty form). Fewer
    bytes than announced: the client went away (400, ``ClientDisconnected``), as Werkzeug's
    stream of a known length raises. Anything else (other types, parameters on the type,
    no length, over the limit, a body read before) goes to Werkzeug as before.
    """

    def _load_form_data(self) -> None:
        values = self.__dict__
        environ = self.environ
        announced = environ.get("CONTENT_LENGTH")
        if (
            "form" in values
            or environ.get("CONTENT_TYPE") != URLENCODED
            or not announced  # streamed (chunked) or none: Werkzeug's reads
            or not (announced.isascii() and announced.isdigit())
            or "HTTP_TRANSFER_ENCODING" in environ
            or "stream" in values
            or "_cached_data" in values
            or self.shallow
        ):
            return super()._load_form_data()
        length = int(announced)
        limit = self.max_content_length
        if limit is not None and length > limit:
            return super()._load_form_data()  # Werkzeug's 413
        body = environ["wsgi.input"].read(length) if length else b""
        if len(body) != length:
            raise ClientDisconnected()
        try:
            pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        except ValueError:  # not UTF-8: Werkzeug's parser is silent and gives an empty form
            pairs = ()
        storage = self.parameter_storage_class
        values["stream"], values["form"], values["files"] = io.BytesIO(), storage(pairs), storage()


class Parameters(ImmutableMultiDict):
    """The query's and the form's parameters (``request.args``, ``request.form``).

    Werkzeug's ``get`` looks a key up through ``__getitem__``, which raises a
    ``BadRequestKeyError`` (an HTTPException, built with its description) for a key that is
    absent; ``get`` then catches it. OAuth requests ask for optional parameters that are
    mostly absent (``client_secret``, ``client_assertion``, ``token_type_hint``): 1.9 µs a
    miss, against 0.15 µs here. The answers are Werkzeug's: the first value, else
    ``default``; with ``type``, Werkzeug's own ``get``. ``params["name"]`` still raises.
    """

    def get(self, key, default=None, type=None):  # noqa: A002 (Werkzeug's signature)
        if type is not None:
            return super().get(key, default, type)
        values = dict.get(self, key)
        return values[0] if values else default


class Response(flask.Response):
    """Flask's response, whose headers reach the WSGI server without a second validation.

    Werkzeug hands the server a copy of the headers (``get_wsgi_headers``), rebuilt one
    ``add`` at a time, each value checked and converted again although it was checked when
    it was set. For an answer that Werkzeug would not change (a status with a body, its
    Content-Length known, no Location or Content-Location to make absolute) the copy is
    made of the same lines directly; any other answer is Werkzeug's.
    """

    def get_wsgi_headers(self, environ):
        status = self.status_code
        if status >= 200 and status != 204 and status != 304:
            lines = self.headers._list
            length = False
            for key, _value in lines:
                lower = key.lower()
                if lower == "content-length":
                    length = True
                elif lower == "location" or lower == "content-location":
                    break
            else:
                if length:
                    headers = Headers()
                    headers._list.extend(lines)
                    return headers
        return super().get_wsgi_headers(environ)


def gate_remember_cookie(app: Flask) -> None:
    """Reach Flask-Login's after-request hook only when it has something to do.

    It sets or clears the remember-me cookie when the session holds ``_remember`` (or
    REMEMBER_COOKIE_REFRESH_EACH_REQUEST is on) and does nothing otherwise; on every
    other response it still looked the session up twice through Flask's proxies.
    """
    hooks = app.after_request_funcs.get(None, [])
    found = [
        index
        for index, hook in enumerate(hooks)
        if isinstance(getattr(hook, "__self__", None), LoginManager)
        and hook.__name__ == "_update_remember_cookie"
    ]
    if not found:
        return
    index = found[0]
    hook = hooks[index]
    config = app.config

    def update_remember_cookie(response):
        if "_remember" in session._get_current_object() or config.get(
            "REMEMBER_COOKIE_REFRESH_EACH_REQUEST"
        ):
            return hook(response)
        return response

    hooks[index] = update_remember_cookie


# A Vary value as Werkzeug writes one: tokens joined by ", " (parsed and written back
# unchanged, so a name can be appended to it as it stands).
PLAIN_VARY = re.compile(r"[A-Za-z0-9-]+(?:, [A-Za-z0-9-]+)*")


def add_vary(response, name: str) -> None:
    """``response.vary.add(name)``, without its parse and rewrite of the header.

    ``response.vary`` parses the header into a set and writes it back on every ``add``.
    Answers have no Vary yet (one appended line) or one plain Vary that this adds to (CORS
    and then the session); any other form is left to Werkzeug.
    """
    lines = response.headers._list
    found = -1
    for index in range(len(lines)):
        if lines[index][0].lower() == "vary":
            if found >= 0:  # several Vary lines: Werkzeug merges them
                response.vary.add(name)
                return
            found = index
    if found < 0:
        lines.append(("Vary", name))  # a constant, valid header value
        return
    value = lines[found][1]
    if not PLAIN_VARY.fullmatch(value):
        response.vary.add(name)
    elif name.lower() not in value.lower().split(", "):
        lines[found] = ("Vary", f"{value}, {name}")


class SessionSerializer(URLSafeTimedSerializer):
    """itsdangerous's serializer of the session cookie, compressing with a small deflate
    state. ``zlib.compress`` sets up a 32 KiB window and its tables for every cookie (~55 µs
    on the issue's host, for a ~400-byte payload); a 4 KiB window (a cookie is at most that)
    and memLevel 4 compress a session to the same length in ~7 µs. The result is a zlib
    stream any ``zlib.decompress`` reads, so cookies stay readable both ways."""

    def dump_payload(self, obj) -> bytes:
        json = super(URLSafeSerializerMixin, self).dump_payload(obj)  # the JSON, as bytes
        deflate = zlib.compressobj(6, zlib.DEFLATED, 12, 4)
        compressed = deflate.compress(json) + deflate.flush()
        if len(compressed) < len(json) - 1:  # itsdangerous's own rule and format
            return b"." + base64_encode(compressed)
        return base64_encode(json)


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signing serializer built once per key.

    Flask builds a new serializer (and its signer settings) when each request opens its
    session, cookie or not; it depends only on SECRET_KEY and SECRET_KEY_FALLBACKS, so it is
    rebuilt only when they change.

    Most requests (every API call) bring no cookie and leave the session empty: opening
    then skips parsing the cookies, and saving only adds ``Vary: Cookie`` when the session
    was read, as Flask does; anything else is Flask's own code.
    """

    _cached: tuple = (None, None)

    def open_session(self, app: Flask, request):
        if "HTTP_COOKIE" not in request.environ and app.secret_key:
            return self.session_class()  # what Flask returns for a missing cookie
        return super().open_session(app, request)

    def save_session(self, app: Flask, session, response) -> None:
        if not session and not session.modified:  # nothing to write and nothing to delete
            if session.accessed:
                add_vary(response, "Cookie")
            return
        super().save_session(app, session, response)

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        cached_keys, serializer = self._cached
        if cached_keys != keys:
            serializer = super().get_signing_serializer(app)
            if type(serializer) is URLSafeTimedSerializer:  # Flask's, cheaper compression
                serializer.__class__ = SessionSerializer
            self._cached = (keys, serializer)
        return serializer


MEMO_SIZE = 512  # hooks, views and error handlers are far fewer; past it the memo starts over


def remember_ensure_sync(app: Flask) -> None:
    """Decide once per function whether it is a coroutine function.

    Flask passes the view, error handlers and app-context teardowns through
    ``app.ensure_sync`` on every request (twice a token request; the request hooks are
    resolved once, in ``hook_chains``), and each time ``inspect.iscoroutinefunction``
    unwraps and inspects the function again. The answer for a given function object does
    not change, so the first one is kept (per-request closures such as ``after_this_request``
    functions only fill the memo until it starts over).
    """
    decide = app.ensure_sync
    memo: dict = {}

    def ensure_sync(func):
        try:
            return memo[func]
        except KeyError:
            pass
        except TypeError:  # unhashable callable
            return decide(func)
        result = decide(func)
        if len(memo) >= MEMO_SIZE:
            memo.clear()
        memo[func] = result
        return result

    app.ensure_sync = ensure_sync


HOOK_CHAINS = "idp.serve.hook_chains"
_UNSET = object()  # no exception passed: as Flask's own default, read sys.exc_info()


class Hooks(NamedTuple):
    """A blueprint's request hooks, in the order Flask runs them."""

    url_values: list  # URL value preprocessors, from the app down
    before: list  # before-request hooks, from the app down
    after: list  # after-request hooks, from the blueprint up, each list reversed
    teardown: list  # teardown hooks, from the blueprint up, each list reversed


def hook_chains(app: Flask) -> None:
    """Run the request hooks from lists made once per blueprint, in Flask's order.

    Flask's ``preprocess_request``, ``process_response`` and ``do_teardown_request`` walk
    the hook dictionaries on every request: the blueprint names through the request proxy,
    a membership test per name and dictionary, and ``ensure_sync`` on each hook (callgrind:
    60,000-100,000 of an introspection's 1.19 million instructions). The hooks are fixed once
    the app has handled a request (Flask refuses its setup methods from then on), so each
    blueprint's lists are made at its first request and reused: URL value preprocessors and
    before-request hooks from the app down to the blueprint, after-request and teardown
    hooks from the blueprint up, each list reversed. ``after_this_request`` functions, the
    session's save and the teardown signal stay as Flask has them. Code that changes a hook
    list in place after the first request (bench/components.py) clears
    ``app.extensions[HOOK_CHAINS]``.
    """
    chains: dict[str | None, Hooks] = {}
    app.extensions[HOOK_CHAINS] = chains

    def chain_for(req) -> Hooks:
        try:
            return chains[req.blueprint]
        except KeyError:
            pass
        down = (None, *reversed(req.blueprints))
        up = down[::-1]
        sync = app.ensure_sync
        chains[req.blueprint] = found = Hooks(
            [f for name in down for f in app.url_value_preprocessors.get(name, ())],
            [sync(f) for name in down for f in app.before_request_funcs.get(name, ())],
            [sync(f) for name in up for f in reversed(app.after_request_funcs.get(name, ()))],
            [sync(f) for name in up for f in reversed(app.teardown_request_funcs.get(name, ()))],
        )
        return found

    def preprocess_request():
        req = request._get_current_object()
        hooks = chain_for(req)
        if hooks.url_values:
            endpoint, view_args = req.endpoint, req.view_args
            for url_func in hooks.url_values:
                url_func(endpoint, view_args)
        for before_func in hooks.before:
            rv = before_func()
            if rv is not None:
                return rv
        return None

    def process_response(response):
        ctx = request_ctx._get_current_object()
        for func in ctx._after_request_functions:
            response = app.ensure_sync(func)(response)
        for func in chain_for(ctx.request).after:
            response = func(response)
        if not app.session_interface.is_null_session(ctx._session):
            app.session_interface.save_session(app, ctx._session, response)
        return response

    def do_teardown_request(exc=_UNSET):
        if exc is _UNSET:
            exc = sys.exc_info()[1]
        for func in chain_for(request._get_current_object()).teardown:
            func(exc)
        request_tearing_down.send(app, _async_wrapper=app.ensure_sync, exc=exc)

    app.preprocess_request = preprocess_request
    app.process_response = process_response
    app.do_teardown_request = do_teardown_request


def gunicorn_argv(extra: tuple[str, ...] = ()) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:idp.gunicorn_conf",
        *extra,
        "idp:create_app()",
    ]


def exec_gunicorn(settings: dict[str, object], extra: tuple[str, ...] = ()) -> None:
    """Set IDP_BIND/IDP_WORKERS/... for gunicorn_conf, then become gunicorn."""
    for name, value in settings.items():
        if value is not None:
            os.environ[f"IDP_{name.upper()}"] = str(value)
    # argon2 runs on one thread per worker (auth.passwords), so a worker holds at most one
    # ARGON2_MEMORY_COST buffer (19 MiB) at a time. Fixed malloc thresholds keep it in that
    # thread's arena between sign-ins (mmap and trimming above 32 MiB only): mapped afresh
    # for each sign-in it cost ~800 page faults and the zeroing of 19 MiB each time, huge
    # pages or not (docs/benchmarks.md, thirteenth round). The worker gives it back once
    # idle (ARGON2_RELEASE_AFTER_IDLE, auth.passwords). Set either variable yourself to
    # choose otherwise. (No transparent huge pages: glibc's hugetlb=1 tunable madvises only
    # the main heap, not the argon2 thread's arena, and cost 1-2 MB of RSS for no measured
    # speed; docs/benchmarks.md, twenty-first round.)
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(32 * 1024 * 1024))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(32 * 1024 * 1024))
    argv = gunicorn_argv(extra)
    os.execv(argv[0], argv)
