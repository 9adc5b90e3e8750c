"""Schemathesis against the shipped OpenAPI description (idp/oauth/openapi.json).

Every operation of the description is fuzzed in process through the Flask WSGI app, with a
fixed seed, ``derandomize=True`` and a bounded example budget: schemathesis' examples,
coverage (boundary values, missing parameters, undeclared methods) and fuzzing phases, with
both schema-valid and schema-violating data. Each answer must be documented (status code,
content type, required headers such as ``WWW-Authenticate``, ``Cache-Control`` and
``Retry-After``), match its documented schema, never be a 5xx, reject what violates the
schema with a 4xx, and, at the JSON endpoints, be an RFC 6749 §5.2 error. One run uses the
credentials schemathesis generates (wrong ones), the other real ones: a registered client
(HTTP Basic), a user's access token and a registration access token, so that the fuzzing
reaches what lies behind client and bearer authentication.

Left out: ``positive_data_acceptance``. A schema-valid OAuth request still carries codes,
tokens and client ids that random data cannot guess, and RFC 6749 §5.2 answers those with 400.
"""

from __future__ import annotations

import json
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

from idp.oauth.openapi import SPEC_PATH

from ..conftest import ISSUER
from ..helpers import basic_auth

pytestmark = pytest.mark.config(RATELIMIT_ENABLED=False, REGISTRATION="open", PURGE_INTERVAL=0)

SEED = 7  # fixed: the same requests on every run, on every machine
SPEC = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
FUZZ = settings(
    max_examples=20,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
EXCLUDED_CHECKS = [positive_data_acceptance]


def load(modes: list[GenerationMode]):
    config = SchemathesisConfig(seed=SEED)
    config.projects.default.update(base_url=ISSUER)
    config.projects.default.generation.update(modes=modes, database="none")
    return schemathesis.openapi.from_path(SPEC_PATH, config=config)


# The security schemes the second run has real credentials for (class Credentials).
REAL = {"clientSecretBasic", "bearerAccessToken", "registrationAccessToken"}


def takes_real_credentials(ctx) -> bool:
    item = SPEC["paths"][ctx.operation.path][ctx.operation.method.lower()]
    return any(REAL & set(requirement) for requirement in item.get("security", []))


ANY_DATA = load(list(GenerationMode))
# With real credentials only schema-valid data (a credential put over a deliberately broken
# parameter would turn a negative case into a valid one), and only where they go.
VALID_DATA = load([GenerationMode.POSITIVE]).include(takes_real_credentials)


def call(case, app, headers=None):
    """Sends the case to this test's app through WSGI; so do the checks that re-send it."""
    case.operation.app = case.operation.schema.app = app
    return case.call(headers=headers)


ERROR = SPEC["components"]["schemas"]["OAuthError"]["properties"]
ERROR_CODES = set(ERROR["error"]["enum"])
DESCRIPTION = re.compile(ERROR["error_description"]["pattern"])  # RFC 6749 §5.2 NQSCHAR


def operation(case) -> dict:
    return SPEC["paths"][case.operation.path][case.operation.method.lower()]


def is_page(case) -> bool:
    """/authorize and /end_session are navigated to: their errors are HTML pages."""
    return "authorization" in operation(case)["tags"]


def assert_spec_shaped(case, response) -> None:
    """Also for statuses the description leaves out (405 to an undeclared method...): a JSON
    RFC 6749 §5.2 error from every protocol endpoint, never a 5xx."""
    assert response.status_code < 500, response.text[:500]
    if response.status_code < 400 or is_page(case) or case.operation.path == "/metrics":
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/json"), (content_type, response.text[:300])
    body = response.json()
    assert isinstance(body, dict), body
    if response.status_code == 401 and not body:
        return  # RFC 6750 §3.1: a request without credentials gets no error code
    assert body.get("error") in ERROR_CODES, body
    assert DESCRIPTION.match(body.get("error_description", "")), body


def test_the_description_is_valid_openapi_3_1():
    # Against the OpenAPI 3.1 schema (https://spec.openapis.org/oas/3.1/schema), and every
    # operation loads, so none is silently left out of the fuzzing below.
    OPENAPI_31_VALIDATOR.validate(SPEC)
    results = list(ANY_DATA.get_all_operations())
    assert all(isinstance(result, Ok) for result in results)
    assert len(results) == sum(
        1 for item in SPEC["paths"].values() for method in item if method != "parameters"
    )


@ANY_DATA.parametrize()
@FUZZ
def test_generated_requests_get_documented_answers(case, app):
    response = call(case, app)
    case.validate_response(response, excluded_checks=EXCLUDED_CHECKS)
    assert_spec_shaped(case, response)


class Credentials:
    """Real credentials for the security schemes of the description, made when first needed
    (a user's access token takes a sign-in and a code flow)."""

    def __init__(self, factory, auth, client):
        self.http = client
        self.auth = auth
        self.client = factory.client(
            grant_types=(
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
            )
        )
        self.access_token: str | None = None
        self.registered_client_id: str | None = None
        self.registration_access_token: str | None = None

    def register(self) -> None:
        """A dynamically registered client for the RFC 7592 operations."""
        registered = self.http.post(
            "/register", json={"redirect_uris": ["https://rp.example/cb"]}
        ).get_json()
        self.registered_client_id = registered["client_id"]
        self.registration_access_token = registered["registration_access_token"]

    def observe(self, case, response) -> None:
        """Follows what the request changed: a rotated registration access token (RFC 7592
        §2.2) or a deleted registration (§2.3), so later examples still get past the token."""
        if case.operation.path != "/register/{client_id}":
            return
        if case.method == "PUT" and response.status_code == 200:
            self.registration_access_token = response.json()["registration_access_token"]
        if case.method == "DELETE" and response.status_code == 204:
            self.register()

    def headers(self, scheme: str) -> dict:
        if scheme == "clientSecretBasic":
            return basic_auth(self.client.client_id, self.client.client_secret)
        if scheme == "bearerAccessToken":
            if self.access_token is None:
                self.auth.login()
                self.access_token = self.auth.tokens(self.client)["access_token"]
            return {"Authorization": f"Bearer {self.access_token}"}
        if scheme == "registrationAccessToken":
            if self.registration_access_token is None:
                self.register()
            return {"Authorization": f"Bearer {self.registration_access_token}"}
        return {}

    def apply(self, case) -> dict:
        """Sets the first security scheme of the operation that has a credential here."""
        for requirement in operation(case).get("security", []):
            for scheme in requirement:
                headers = self.headers(scheme)
                if not headers:
                    continue
                if scheme == "clientSecretBasic" and isinstance(case.body, dict):
                    # RFC 6749 §2.3: one authentication method per request.
                    for name in ("client_id", "client_secret", "client_assertion",
                                 "client_assertion_type"):  # fmt: skip
                        case.body.pop(name, None)
                if scheme == "registrationAccessToken":
                    case.path_parameters["client_id"] = self.registered_client_id
                    if isinstance(case.body, dict):  # RFC 7592 §2.2: the client's own id
                        case.body["client_id"] = self.registered_client_id
                return headers
        return {}


@pytest.fixture
def credentials(factory, user, auth, client):
    return Credentials(factory, auth, client)


@VALID_DATA.parametrize()
@FUZZ
def test_generated_requests_with_real_credentials_get_documented_answers(case, app, credentials):
    headers = credentials.apply(case)
    response = call(case, app, headers)
    # Passed as the request's explicit credentials: ignored_auth re-sends without them and
    # with wrong ones, and expects a 401.
    case.validate_response(response, excluded_checks=EXCLUDED_CHECKS, headers=headers)
    assert_spec_shaped(case, response)
    credentials.observe(case, response)
