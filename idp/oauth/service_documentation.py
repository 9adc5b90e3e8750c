"""The page that discovery's ``service_documentation`` names (RFC 8414 §2): what a developer
of a relying party needs to know beyond the metadata, in words.

Its facts come from the same constants the server runs on (client authentication methods,
response modes, PKCE), and the redirect URI rule is ``idp.urls.redirect_uri_matches``'s.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template

from .grants import CLIENT_AUTH, RESPONSE_MODES
from .paths import SERVICE_DOCUMENTATION

bp = Blueprint("docs", __name__)


@bp.get(SERVICE_DOCUMENTATION)
def relying_parties():
    issuer = current_app.config["ISSUER"]
    return render_template(
        "oauth/relying_parties.html",
        issuer=issuer,
        auth_methods=CLIENT_AUTH,
        response_modes=RESPONSE_MODES,
    )
