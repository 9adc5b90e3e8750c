"""The OpenAPI 3.1 description (idp/oauth/openapi.json) says what the server really does.

Its paths and methods are exactly the protocol routes, discovery's URLs are among its paths,
and its enumerations are the server's own constants. Whether the answers match it is
tests/production/test_schemathesis.py.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from idp.oauth import client_auth, keys, openapi, token_exchange
from idp.oauth.client_metadata import OpenIDClientMetadata
from idp.oauth.grants import RESPONSE_MODES
from idp.oauth.server import GRANT_TYPES
from idp.oauth.subjects import SUBJECT_TYPES

ISSUER = "http://localhost"
SPEC = json.loads(openapi.SPEC_PATH.read_text(encoding="utf-8"))
SCHEMAS = SPEC["components"]["schemas"]
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# Routes every app has that the description leaves out: the UI and its blueprints.
NOT_PROTOCOL = ("static", "auth.", "account.", "admin.", "device.", "demo.", "docs.")
# The pages' own packages (sign-in, account flows, admin): their routes are the UI's.
PAGE_MODULES = ("idp.account.", "idp.admin.", "idp.demo")


def described() -> dict[str, set[str]]:
    """Flask rule -> the methods the description gives it."""
    return {
        re.sub(r"\{(\w+)\}", r"<\1>", path): {m.upper() for m in item if m in HTTP_METHODS}
        for path, item in SPEC["paths"].items()
    }


def routes(app) -> dict[str, set[str]]:
    """Flask rule -> methods, for every route that is not a page of the UI."""
    found: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        module = getattr(app.view_functions[rule.endpoint], "__module__", "")
        if rule.endpoint.startswith(NOT_PROTOCOL) or module.startswith(PAGE_MODULES):
            continue
        found.setdefault(rule.rule, set()).update(rule.methods - {"HEAD", "OPTIONS"})
    return found


def test_openapi_json_is_the_shipped_description_with_this_issuer(client):
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == f"public, max-age={openapi.MAX_AGE}"
    body = response.get_json()
    assert body.pop("servers") == [{"url": ISSUER}]
    assert body == SPEC
    assert SPEC["openapi"].startswith("3.1.")


def test_every_described_operation_is_a_route(app):
    # A path or method the description names must exist, with that method.
    served = routes(app)
    for rule, methods in described().items():
        assert rule in served, rule
        assert methods <= served[rule], (rule, methods - served[rule])


def test_every_protocol_route_is_described(app):
    # The reverse: a protocol route added without its description fails here.
    spec = described()
    for rule, methods in routes(app).items():
        assert rule in spec, rule
        assert methods == spec[rule], (rule, methods ^ spec[rule])


@pytest.mark.config(REGISTRATION="open")
def test_every_endpoint_discovery_names_is_a_described_path(client):
    # OIDC Discovery §3 / RFC 8414 §2: each *_endpoint and jwks_uri is a URL of this issuer.
    metadata = client.get("/.well-known/openid-configuration").get_json()
    urls = {k: v for k, v in metadata.items() if k.endswith("_endpoint") or k == "jwks_uri"}
    assert "registration_endpoint" in urls and "pushed_authorization_request_endpoint" in urls
    for name, url in urls.items():
        assert url.startswith(ISSUER + "/"), name
        assert urlsplit(url).path in SPEC["paths"], name


def test_the_enumerations_are_the_servers_own():
    grants = {s["properties"]["grant_type"]["const"]
              for s in (SCHEMAS[ref["$ref"].rsplit("/", 1)[1]]
                        for ref in SCHEMAS["TokenRequest"]["oneOf"])}  # fmt: skip
    assert grants == set(GRANT_TYPES)
    metadata = SCHEMAS["ClientMetadata"]["properties"]
    assert set(metadata["grant_types"]["items"]["enum"]) == set(GRANT_TYPES)
    assert set(metadata["token_endpoint_auth_method"]["enum"]) - {None} == set(
        client_auth.ALL_METHODS
    )
    assert set(metadata["id_token_signed_response_alg"]["enum"]) - {None} == set(keys.ALGORITHMS)
    assert set(metadata["userinfo_signed_response_alg"]["enum"]) - {None} == set(keys.ALGORITHMS)
    assert set(metadata["subject_type"]["enum"]) - {None} == set(SUBJECT_TYPES)
    refused = {name for name, schema in metadata.items() if schema.get("type") == "null"}
    assert refused == set(OpenIDClientMetadata.UNSUPPORTED)
    assert set(SCHEMAS["TokenType"]["enum"]) == set(token_exchange.TOKEN_TYPES.values())
    requested = SCHEMAS["TokenExchangeGrant"]["properties"]["requested_token_type"]["enum"]
    assert set(requested) == set(token_exchange.REQUESTED_TOKEN_TYPES)
    modes = SCHEMAS["AuthorizationRequest"]["properties"]["response_mode"]["enum"]
    assert set(modes) == set(RESPONSE_MODES)


def test_version_is_the_package_version():
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    version = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    assert SPEC["info"]["version"] == version


@pytest.mark.config(REGISTRATION="off")
def test_registration_off_is_the_documented_404(client):
    # The description documents 404 for POST /register while REGISTRATION is off.
    assert "404" in SPEC["paths"]["/register"]["post"]["responses"]
    response = client.post("/register", json={"redirect_uris": ["https://rp.example/cb"]})
    assert response.status_code == 404
    assert response.mimetype == "application/json"
