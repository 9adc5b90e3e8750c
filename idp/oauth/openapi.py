"""OpenAPI 3.1 description of the protocol endpoints (https://spec.openapis.org/oas/v3.1.0).

``openapi.json`` beside this module is written by hand and shipped in the wheel; it is
served at ``/openapi.json`` with ``servers`` set to this issuer, so tools (API clients,
schemathesis, gateways) can use it as is. Discovery does not advertise it: no metadata field
names an OpenAPI document, and ``service_documentation`` is for human-readable docs. The
tests check that its paths are exactly the protocol routes and that discovery's URLs match.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from flask import current_app

PATH = "/openapi.json"
SPEC_PATH = Path(__file__).with_name("openapi.json")
MAX_AGE = 3600  # like discovery: it changes only with a new release


@cache
def _shipped() -> dict:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def description() -> dict:
    """The shipped description, with this server's issuer as its base URL."""
    shipped = _shipped()
    head = {key: shipped[key] for key in ("openapi", "info")}
    return {**head, "servers": [{"url": current_app.config["ISSUER"]}], **shipped}


def view():
    # json.dumps, not jsonify: the keys stay in the written order (paths as grouped there).
    response = current_app.response_class(json.dumps(description()), mimetype="application/json")
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE}"
    return response
