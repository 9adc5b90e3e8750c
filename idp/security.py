"""Response headers for every response: CSP, anti-framing, no-referrer, nosniff, HSTS.

The CSP allows no inline script or style; the only script the pages use is served from
/static. Pages are never framed (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``)
and HTML pages are not cached, since they show personal data and carry CSRF tokens.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app

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


def set_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP.format(extra="", img=""))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if response.mimetype == "text/html":
        headers.setdefault("Cache-Control", "no-store")
    if current_app.config["ISSUER"].startswith("https://"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    return response


def init_app(app: Flask) -> None:
    app.after_request(set_headers)
