"""Configuration: documented defaults, then instance/config.py, then IDP_* variables.

Load order (later wins):

1. ``DEFAULTS`` below, each setting documented where it is defined;
2. ``instance/config.py`` (the instance folder is ``IDP_INSTANCE_PATH`` or ``./instance``);
3. environment variables ``IDP_<NAME>`` (Flask's ``from_prefixed_env``: values are parsed
   as JSON when they can be, so ``IDP_ACCESS_TOKEN_LIFETIME=600`` is an int);
4. the ``config`` mapping passed to ``create_app`` (tests).

``check(config)`` then refuses settings that would make the server unsafe, with a message
that names the setting; see docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask import Flask

DEFAULTS: dict[str, object] = {
    # The issuer identifier (OIDC Discovery §3, RFC 8414 §2). Every URL the server
    # publishes is built from it, never from the request's Host header.
    "ISSUER": "http://127.0.0.1:5000",
    # SQLAlchemy URL; None means SQLite in the instance folder.
    "DATABASE_URL": None,
    # Flask's signing key for the session cookie and CSRF tokens. Required outside
    # development; `idp init` writes a random one into instance/config.py.
    "SECRET_KEY": None,
    # Development mode relaxes the start-up checks (no secret key: a random one per process).
    "DEVELOPMENT": False,
    # Lifetimes in seconds.
    "AUTHORIZATION_CODE_LIFETIME": 60,  # RFC 6749 §4.1.2: short; capped at 600 below
    "ACCESS_TOKEN_LIFETIME": 3600,
    "ID_TOKEN_LIFETIME": 3600,
    "REFRESH_TOKEN_LIFETIME": 30 * 86400,
    # How long a rotated-out signing key stays in the JWKS so that tokens it signed verify.
    "KEY_GRACE_PERIOD": 2 * 86400,
    # Seconds a worker may serve signing keys from memory before re-reading the table.
    "KEY_CACHE_SECONDS": 5,
    # Default ID token algorithm; clients may ask for another (id_token_signed_response_alg).
    "ID_TOKEN_SIGNING_ALG": "RS256",
    # argon2id parameters (OWASP minimum: 19 MiB, t=2, p=1; lower values are refused).
    "ARGON2_MEMORY_COST": 19456,  # KiB
    "ARGON2_TIME_COST": 2,
    "ARGON2_PARALLELISM": 1,
    # Passwords longer than this many UTF-8 bytes are refused before hashing.
    "PASSWORD_MAX_BYTES": 1024,
    # Browser session cookie; Secure follows the issuer scheme unless set explicitly.
    "SESSION_COOKIE_NAME": "idp_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": None,
    # Server-side browser sessions end after this long without a request, and in any case
    # this long after sign-in.
    "SESSION_IDLE_LIFETIME": 12 * 3600,
    "SESSION_ABSOLUTE_LIFETIME": 7 * 86400,
    # Largest request body accepted (bytes).
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # CSRF tokens of Flask-WTF live as long as the session.
    "WTF_CSRF_TIME_LIMIT": None,
    # Mount the demo relying party at /demo (set by `idp demo`).
    "DEMO": False,
}

MIN_ARGON2 = {"ARGON2_MEMORY_COST": 19456, "ARGON2_TIME_COST": 2, "ARGON2_PARALLELISM": 1}
MAX_CODE_LIFETIME = 600


class ConfigError(RuntimeError):
    """A setting that would make the server unsafe or broken."""


def load(app: Flask, overrides: dict | None) -> None:
    """Fill app.config in the documented order."""
    app.config.from_mapping(DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("IDP")
    if overrides:
        app.config.from_mapping(overrides)
    if not app.config["DATABASE_URL"]:
        app.config["DATABASE_URL"] = f"sqlite:///{app.instance_path}/idp.sqlite3"
    app.config["ISSUER"] = str(app.config["ISSUER"]).rstrip("/")
    if app.config["SESSION_COOKIE_SECURE"] is None:
        app.config["SESSION_COOKIE_SECURE"] = app.config["ISSUER"].startswith("https://")
    check(app.config)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(config) -> None:
    """Stop start-up with a clear message on unsafe settings."""
    issuer = urlsplit(config["ISSUER"])
    if issuer.scheme not in ("http", "https") or not issuer.hostname:
        raise ConfigError(f"IDP_ISSUER must be an absolute https URL, got {config['ISSUER']!r}")
    if issuer.query or issuer.fragment:
        raise ConfigError("IDP_ISSUER must not have a query or fragment (RFC 8414 §2)")
    if not config["DEVELOPMENT"]:
        if not config["SECRET_KEY"]:
            raise ConfigError(
                "IDP_SECRET_KEY is not set. Run `idp init` (writes one into instance/config.py) "
                "or set IDP_SECRET_KEY to a long random value."
            )
        if issuer.scheme == "http" and not is_loopback(issuer.hostname):
            raise ConfigError(
                f"IDP_ISSUER {config['ISSUER']!r} uses http on a non-loopback host; "
                "use https (OAuth 2.0 requires TLS, RFC 6749 §3.1)."
            )
    for name, minimum in MIN_ARGON2.items():
        if int(config[name]) < minimum:
            raise ConfigError(f"IDP_{name}={config[name]} is below the OWASP minimum {minimum}")
    lifetime = int(config["AUTHORIZATION_CODE_LIFETIME"])
    if not 1 <= lifetime <= MAX_CODE_LIFETIME:
        raise ConfigError(
            f"IDP_AUTHORIZATION_CODE_LIFETIME must be 1..{MAX_CODE_LIFETIME} s, got {lifetime}"
        )
    for name in ("ACCESS_TOKEN_LIFETIME", "ID_TOKEN_LIFETIME", "REFRESH_TOKEN_LIFETIME"):
        if int(config[name]) <= 0:
            raise ConfigError(f"IDP_{name} must be a positive number of seconds")
    if config["ID_TOKEN_SIGNING_ALG"] not in ("RS256", "ES256"):
        raise ConfigError("IDP_ID_TOKEN_SIGNING_ALG must be RS256 or ES256")
