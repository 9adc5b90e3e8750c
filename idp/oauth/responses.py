"""Delivering authorization responses: query or form_post, always with ``iss``.

RFC 9207 §2: ``iss`` is added to every authorization response, success or error.
OAuth 2.0 Form Post Response Mode: the parameters are POSTed by an auto-submitting form
(script served from /static, so the CSP needs no inline script).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from authlib.common.urls import add_params_to_uri
from flask import current_app, render_template

from ..security import allow_form_action


def deliver(redirect_uri: str, params: list[tuple[str, str]], response_mode: str):
    params = [(k, v) for k, v in params if k != "iss"]
    params.append(("iss", current_app.config["ISSUER"]))
    if response_mode == "form_post":
        response = current_app.make_response(
            render_template("oauth/form_post.html", action=redirect_uri, params=params)
        )
        allow_form_action(response, redirect_uri)
        return response
    response = current_app.make_response(("", 302))
    response.headers["Location"] = add_params_to_uri(redirect_uri, params)
    return response


def added_params(location: str, redirect_uri: str) -> list[tuple[str, str]]:
    """The parameters Authlib appended to redirect_uri in a Location header."""
    own = parse_qsl(urlsplit(redirect_uri).query, keep_blank_values=True)
    return parse_qsl(urlsplit(location).query, keep_blank_values=True)[len(own) :]
