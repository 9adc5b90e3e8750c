"""Configuration: documented defaults, instance/config.py, IDP_* variables, start-up checks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from idp import create_app
from idp.config import DEFAULTS, ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


@pytest.fixture
def instance(tmp_path, monkeypatch) -> Path:
    """An empty instance folder and no IDP_* variables from the outside environment."""
    for name in list(os.environ):
        if name.startswith("IDP_"):
            monkeypatch.delenv(name)
    folder = tmp_path / "instance"
    folder.mkdir()
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(folder))
    return folder


LOCAL_ISSUER = "http://127.0.0.1:8000"


@pytest.fixture
def make_app(instance, tmp_path):
    """create_app with a throw-away SQLite URL (no database is touched by these tests), and
    a loopback issuer unless the test configures one itself."""

    def make(config: dict | None = None, **settings):
        merged = {"DATABASE_URL": f"sqlite:///{tmp_path}/idp.sqlite3"}
        file = instance / "config.py"
        if not os.environ.get("IDP_ISSUER") and not (
            file.exists() and "ISSUER" in file.read_text()
        ):
            merged["ISSUER"] = LOCAL_ISSUER
        merged.update(config or {})
        merged.update(settings)
        return create_app(merged)

    return make


def write_instance_config(instance: Path, text: str) -> None:
    (instance / "config.py").write_text(text)


# --- defaults -----------------------------------------------------------------------------


def test_defaults_apply_when_nothing_is_configured(make_app):
    app = make_app(SECRET_KEY="k")
    for name in (
        "AUTHORIZATION_CODE_LIFETIME",
        "ACCESS_TOKEN_LIFETIME",
        "ID_TOKEN_LIFETIME",
        "REFRESH_TOKEN_LIFETIME",
        "ARGON2_MEMORY_COST",
        "ARGON2_TIME_COST",
        "ARGON2_PARALLELISM",
        "PASSWORD_MAX_BYTES",
        "ID_TOKEN_SIGNING_ALG",
    ):
        assert app.config[name] == DEFAULTS[name], name
    assert app.config["AUTHORIZATION_CODE_LIFETIME"] <= 600  # RFC 6749 §4.1.2
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_SECURE"] is False  # http issuer


def test_no_issuer_is_never_a_silent_default(instance):
    # OIDC Discovery §3: every published URL derives from the issuer; a guessed one points
    # relying parties at a port where nothing listens. Start-up stops and says what to do.
    assert DEFAULTS["ISSUER"] is None
    with pytest.raises(ConfigError, match=r"idp init --issuer"):
        create_app({"SECRET_KEY": "k"})


def test_database_defaults_to_sqlite_in_the_instance_folder(instance):
    app = create_app({"SECRET_KEY": "k", "ISSUER": LOCAL_ISSUER})
    assert app.config["DATABASE_URL"] == f"sqlite:///{instance.resolve()}/idp.sqlite3"


def test_every_default_in_the_docs_matches_the_code():
    # docs/configuration.md is what operators read: its defaults must be the real ones.
    table_row = r"^\| (`[A-Z0-9_]+`(?: / `[A-Z0-9_]+`)*) \| ([^|]+) \|"
    rows = re.findall(table_row, DOCS.read_text(), re.M)
    assert len(rows) >= 10
    checked = 0
    for names_cell, default_cell in rows:
        names = re.findall(r"`([A-Z0-9_]+)`", names_cell)
        values = re.findall(r"`([^`]+)`", default_cell)
        for name in names:
            assert name in DEFAULTS, f"docs mention unknown setting {name}"
        if not re.fullmatch(r"`[^`]+`( / `[^`]+`)*", default_cell.strip()):
            continue  # described in words ("none", "SQLite file ...", "follows the issuer ...")
        for name, value in zip(names, values, strict=True):
            expected = DEFAULTS[name]
            shown = str(expected).lower() if isinstance(expected, bool) else str(expected)
            assert value == shown, f"{name}: docs say {value}, code says {expected}"
            checked += 1
    assert checked >= 10


# --- load order ---------------------------------------------------------------------------


def test_instance_config_file_is_read(instance, make_app):
    write_instance_config(
        instance,
        'SECRET_KEY = "from-file"\nACCESS_TOKEN_LIFETIME = 900\n'
        'ISSUER = "https://id.example.com/"\n',
    )
    app = make_app()
    assert app.config["SECRET_KEY"] == "from-file"
    assert app.config["ACCESS_TOKEN_LIFETIME"] == 900
    # OIDC Discovery §3: the issuer is compared as a string; no trailing slash.
    assert app.config["ISSUER"] == "https://id.example.com"
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_environment_variables_override_the_instance_file(instance, make_app, monkeypatch):
    write_instance_config(instance, 'SECRET_KEY = "from-file"\nACCESS_TOKEN_LIFETIME = 900\n')
    monkeypatch.setenv("IDP_ACCESS_TOKEN_LIFETIME", "600")
    monkeypatch.setenv("IDP_SECRET_KEY", "from-env")
    monkeypatch.setenv("IDP_DEVELOPMENT", "false")
    app = make_app()
    assert app.config["ACCESS_TOKEN_LIFETIME"] == 600
    assert isinstance(app.config["ACCESS_TOKEN_LIFETIME"], int)
    assert app.config["SECRET_KEY"] == "from-env"
    assert app.config["DEVELOPMENT"] is False


def test_create_app_mapping_wins_over_environment_and_file(instance, make_app, monkeypatch):
    write_instance_config(instance, 'SECRET_KEY = "from-file"\nACCESS_TOKEN_LIFETIME = 900\n')
    monkeypatch.setenv("IDP_ACCESS_TOKEN_LIFETIME", "600")
    app = make_app(ACCESS_TOKEN_LIFETIME=1200)
    assert app.config["ACCESS_TOKEN_LIFETIME"] == 1200


def test_environment_issuer_is_checked_like_any_other(make_app, monkeypatch):
    monkeypatch.setenv("IDP_ISSUER", "http://idp.example")
    with pytest.raises(ConfigError, match="IDP_ISSUER"):
        make_app(SECRET_KEY="k")


# --- start-up checks ----------------------------------------------------------------------


def test_missing_secret_key_stops_start_up_outside_development(make_app):
    with pytest.raises(ConfigError, match="IDP_SECRET_KEY"):
        make_app()
    with pytest.raises(ConfigError, match="IDP_SECRET_KEY"):
        make_app(SECRET_KEY="")


def test_development_without_a_secret_key_starts_with_a_random_one(make_app):
    first = make_app(DEVELOPMENT=True)
    second = make_app(DEVELOPMENT=True)
    assert len(first.config["SECRET_KEY"]) >= 32
    assert first.config["SECRET_KEY"] != second.config["SECRET_KEY"]


@pytest.mark.parametrize(
    "issuer", ["http://idp.example", "http://idp.example:8080", "http://10.0.0.5", "http://[::2]"]
)
def test_http_issuer_on_a_non_loopback_host_stops_start_up(make_app, issuer):
    # RFC 6749 §3.1 / §10.9 and RFC 8414 §2: the issuer uses https.
    with pytest.raises(ConfigError, match="IDP_ISSUER"):
        make_app(SECRET_KEY="k", ISSUER=issuer)


@pytest.mark.parametrize(
    "issuer",
    [
        "http://127.0.0.1:5000",
        "http://localhost",
        "http://localhost:8000",
        "http://[::1]:5000",
        "http://127.0.0.2",
        "https://idp.example",
        "https://idp.example/tenant",
    ],
)
def test_https_or_loopback_http_issuer_is_allowed(make_app, issuer):
    app = make_app(SECRET_KEY="k", ISSUER=issuer)
    assert app.config["ISSUER"] == issuer


@pytest.mark.parametrize(
    "issuer", ["https://idp.example/?tenant=1", "https://idp.example/#x", "ftp://idp.example", "/x"]
)
def test_issuer_with_query_fragment_or_other_scheme_is_refused(make_app, issuer):
    # RFC 8414 §2: https URL with no query or fragment components.
    with pytest.raises(ConfigError, match="IDP_ISSUER"):
        make_app(SECRET_KEY="k", ISSUER=issuer)


@pytest.mark.parametrize(
    ("name", "value"),
    [("ARGON2_MEMORY_COST", 19455), ("ARGON2_TIME_COST", 1), ("ARGON2_PARALLELISM", 0)],
)
def test_argon2_parameters_below_the_owasp_minimum_are_refused(make_app, name, value):
    # OWASP Password Storage Cheat Sheet: argon2id with m >= 19 MiB, t >= 2, p >= 1.
    with pytest.raises(ConfigError, match=f"IDP_{name}"):
        make_app(SECRET_KEY="k", **{name: value})


def test_argon2_parameters_above_the_minimum_are_used(make_app):
    app = make_app(SECRET_KEY="k", ARGON2_TIME_COST=3, ARGON2_MEMORY_COST=19456 * 2)
    hasher = app.extensions["idp.passwords"]
    assert hasher.time_cost == 3 and hasher.memory_cost == 19456 * 2


@pytest.mark.parametrize("lifetime", [601, 3600, 0, -1])
def test_authorization_code_lifetime_outside_1_to_600_seconds_is_refused(make_app, lifetime):
    # RFC 6749 §4.1.2: "A maximum authorization code lifetime of 10 minutes is RECOMMENDED."
    with pytest.raises(ConfigError, match="IDP_AUTHORIZATION_CODE_LIFETIME"):
        make_app(SECRET_KEY="k", AUTHORIZATION_CODE_LIFETIME=lifetime)


def test_authorization_code_lifetime_of_600_seconds_is_allowed(make_app):
    assert make_app(SECRET_KEY="k", AUTHORIZATION_CODE_LIFETIME=600)


@pytest.mark.parametrize("name", ["ACCESS_TOKEN_LIFETIME", "ID_TOKEN_LIFETIME"])
def test_non_positive_token_lifetimes_are_refused(make_app, name):
    with pytest.raises(ConfigError, match=f"IDP_{name}"):
        make_app(SECRET_KEY="k", **{name: 0})


def test_unknown_id_token_algorithm_is_refused(make_app):
    # OIDC Core §3.1.3.7: RS256 is the default; "none" must never be configured.
    with pytest.raises(ConfigError, match="IDP_ID_TOKEN_SIGNING_ALG"):
        make_app(SECRET_KEY="k", ID_TOKEN_SIGNING_ALG="none")


# --- mail ---------------------------------------------------------------------------------


def test_mail_settings_come_from_the_environment_with_the_idp_prefix(make_app, monkeypatch):
    monkeypatch.setenv("IDP_SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("IDP_SMTP_PORT", "2525")
    monkeypatch.setenv("IDP_SMTP_SECURITY", "ssl")
    monkeypatch.setenv("IDP_MAIL_FROM", "Identity <idp@example.com>")
    app = make_app(SECRET_KEY="k")
    assert app.config["SMTP_HOST"] == "smtp.example.com"
    assert app.config["SMTP_PORT"] == 2525
    assert app.config["SMTP_SECURITY"] == "ssl"
    assert DEFAULTS["SMTP_SECURITY"] == "starttls"


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"SMTP_SECURITY": "tls"}, "IDP_SMTP_SECURITY"),
        ({"SMTP_PORT": 70000}, "IDP_SMTP_PORT"),
        ({"SMTP_PORT": "587"}, "IDP_SMTP_PORT"),
        ({"SMTP_HOST": "smtp.example.com"}, "IDP_MAIL_FROM"),  # required with a host
        ({"MAIL_FROM": "idp@example.com\r\nBcc: x@example.com"}, "IDP_MAIL_FROM"),
        ({"MAIL_FROM": "not an address"}, "IDP_MAIL_FROM"),
        ({"SMTP_USERNAME": "user"}, "IDP_SMTP_USERNAME"),
        ({"MAIL_ATTEMPTS": 0}, "IDP_MAIL_ATTEMPTS"),
        ({"MAIL_ROUND_INTERVAL": -1}, "IDP_MAIL_ROUND_INTERVAL"),
    ],
)
def test_unusable_mail_settings_stop_start_up(make_app, settings, named):
    with pytest.raises(ConfigError, match=named):
        make_app(SECRET_KEY="k", **settings)


def test_smtp_password_is_never_sent_in_the_clear_to_another_host(make_app):
    relay = {
        "SMTP_USERNAME": "u",
        "SMTP_PASSWORD": "p",
        "MAIL_FROM": "idp@example.com",
        "SMTP_SECURITY": "none",
    }
    with pytest.raises(ConfigError, match="in the clear"):
        make_app(SECRET_KEY="k", SMTP_HOST="smtp.example.com", **relay)
    assert make_app(SECRET_KEY="k", SMTP_HOST="127.0.0.1", **relay)  # a relay on this machine
