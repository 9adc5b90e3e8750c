"""Response headers for every response: CSP, anti-framing, no-referrer, nosniff, HSTS.

The CSP allows no inline script or style; the only script the pages use is served from
/static. Pages are never framed (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``)
and HTML pages are not cached, since they show personal data and carry CSRF tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_wtf.csrf import CSRFProtect

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{img}; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'{extra}"
)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def allow_form_action(response: Response, target: str, image: str | None = None) -> None:
    """Let this one page post a form to target's origin (and show one image from elsewhere)."""
    img = f" {_origin(image)}" if image else ""
    response.headers["Content-Security-Policy"] = CSP.format(extra=f" {_origin(target)}", img=img)


# Serialised once: the headers every response carries unless its view set its own.
EVERY_RESPONSE = (
    ("Content-Security-Policy", CSP.format(extra="", img="")),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
_LOWER = tuple((name.lower(), (name, value)) for name, value in EVERY_RESPONSE)
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
NO_STORE = ("Cache-Control", "no-store")


def headers_hook(config) -> Callable[[Response], Response]:
    """The after-request hook that sets the headers, for the app of ``config``."""

    def set_headers(response: Response) -> Response:
        headers = response.headers
        # One pass over the response's headers, without Werkzeug's generator (a setdefault
        # per header scanned them each time, a fifth of a UserInfo request's Werkzeug time);
        # the first Content-Type wins, as in ``response.mimetype``.
        present = {}
        for name, value in reversed(headers._list):
            present[name.lower()] = value
        missing = [pair for lower, pair in _LOWER if lower not in present]
        if "cache-control" not in present and (
            present.get("content-type", "").partition(";")[0].strip() == "text/html"
        ):
            missing.append(NO_STORE)
        if "strict-transport-security" not in present and config["ISSUER"].startswith("https://"):
            missing.append(HSTS)
        # Constant, already valid header values: appended as they are (``extend`` would
        # check and convert each one again, on every response).
        headers._list.extend(missing)
        return response

    return set_headers


def init_app(app: Flask) -> None:
    app.after_request(headers_hook(app.config))


def init_csrf(app: Flask) -> CSRFProtect:
    """Flask-WTF's CSRFProtect on every form, its check reached only when it can matter.

    CSRFProtect's before-request hook looks up the view and its blueprint in the exemption
    lists before it looks at the method, on every request. In front of it: a method that
    is never checked (GET) passes at once, and so does an endpoint that Flask-WTF itself
    once found exempt (the protocol endpoints). Everything else goes to Flask-WTF's hook as
    it is, so it decides, checks the token and refuses exactly as before.
    """
    csrf = CSRFProtect(app)
    hooks = app.before_request_funcs[None]
    protect = hooks[-1]  # the hook CSRFProtect.init_app has just added
    config = app.config
    exempt: set[str] = set()  # endpoints Flask-WTF answered "exempt" for (never revoked)

    def csrf_protect() -> None:
        req = request._get_current_object()
        if req.method not in config["WTF_CSRF_METHODS"]:  # protect() returns for these
            return None
        endpoint = req.endpoint
        if endpoint in exempt:
            return None
        if endpoint and csrf._is_exempt():  # Flask-WTF's own rule (views and blueprints)
            exempt.add(endpoint)
            return None
        return protect()

    hooks[-1] = csrf_protect
    return csrf
