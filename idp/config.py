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

from urllib.parse import urlsplit

from flask import Config, Flask

from .outbound import LOOPBACK_NETWORKS, parse_networks
from .urls import is_loopback

# NIST SP 800-63B rev. 4 §3.1.1.2: "a minimum of 8 characters"; PASSWORD_MIN_LENGTH may only
# raise it (auth.policy also relies on it: shorter blocklist entries are never checked).
PASSWORD_MIN_LENGTH_FLOOR = 8

DEFAULTS: dict[str, object] = {
    # The issuer identifier (OIDC Discovery §3, RFC 8414 §2). Every URL the server
    # publishes is built from it, never from the request's Host header. There is no
    # default: a wrong issuer breaks every relying party, so `idp init --issuer URL` writes
    # it into instance/config.py (or set IDP_ISSUER); only `idp demo` and `idp run` derive
    # one from their --host and --port.
    "ISSUER": None,
    # SQLAlchemy URL; None means SQLite in the instance folder.
    "DATABASE_URL": None,
    # Flask's signing key for the session cookie and CSRF tokens. Required outside
    # development; `idp init` writes a random one into instance/config.py.
    "SECRET_KEY": None,
    # The key of pairwise subject identifiers (OIDC Core §8, oauth/subjects.py); None: one
    # derived from SECRET_KEY. Changing it (or SECRET_KEY without it) changes every pairwise
    # sub, so relying parties see new users: set it once, and keep it when rotating SECRET_KEY.
    "PAIRWISE_SECRET": None,
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
    # Seconds a worker keeps client and resource registrations in memory (oauth/cache.py):
    # a change made in another process takes effect within this time; 0 turns it off.
    "REGISTRY_CACHE_SECONDS": 5,
    # Default ID token algorithm; clients may ask for another (id_token_signed_response_alg).
    "ID_TOKEN_SIGNING_ALG": "RS256",
    # Access token format (RFC 9068): "jwt" (signed at+jwt, verifiable with the JWKS) or
    # "opaque" (random strings, introspection only). Resources and clients may override it.
    "ACCESS_TOKEN_FORMAT": "jwt",
    # Algorithm of JWT access tokens (RS256 or ES256), signed with the server's keys.
    "ACCESS_TOKEN_SIGNING_ALG": "RS256",
    # argon2id parameters (OWASP minimum: 19 MiB, t=2, p=1; lower values are refused).
    "ARGON2_MEMORY_COST": 19456,  # KiB
    "ARGON2_TIME_COST": 2,
    "ARGON2_PARALLELISM": 1,
    # Seconds without a password check after which a worker gives argon2's memory back to
    # the system; while sign-ins keep coming it stays in place (auth.passwords).
    "ARGON2_RELEASE_AFTER_IDLE": 10,
    # Passwords longer than this many UTF-8 bytes are refused before hashing.
    "PASSWORD_MAX_BYTES": 1024,
    # Shortest password a user may choose, in characters (Unicode code points after NFKC).
    # NIST SP 800-63B rev. 4 §3.1.1.2: at least 8, and 15 where the password is the only
    # factor; 64 at most, so that a 64-character password is always allowed.
    "PASSWORD_MIN_LENGTH": 8,
    # Seconds a mailed password-reset link stays valid (single use; only its hash is stored).
    "PASSWORD_RESET_TTL": 1800,
    # Browser session cookie; Secure follows the issuer scheme unless set explicitly.
    "SESSION_COOKIE_NAME": "idp_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": None,
    # Server-side browser sessions end after this long without a request, and in any case
    # this long after sign-in.
    "SESSION_IDLE_LIFETIME": 12 * 3600,
    "SESSION_ABSOLUTE_LIFETIME": 7 * 86400,
    # Sign-out policy: tokens issued in a session are revoked when it ends, except refresh
    # tokens granted with offline_access while this is true (their access tokens still end).
    "SIGN_OUT_KEEPS_OFFLINE_ACCESS": True,
    # Back-Channel Logout 1.0: the logout token's lifetime (§2.4 suggests two minutes), the
    # timeout of one POST, how many attempts, and the delay before the first retry (doubled
    # after each failure). Retries stop when the token expires, whichever comes first.
    "LOGOUT_TOKEN_LIFETIME": 120,
    "BACKCHANNEL_LOGOUT_TIMEOUT": 5,
    "BACKCHANNEL_LOGOUT_ATTEMPTS": 4,
    "BACKCHANNEL_LOGOUT_RETRY_DELAY": 10,
    # Each worker runs a background thread (only while it has work) that delivers logout
    # tokens and, every SESSION_SWEEP_INTERVAL seconds of traffic, ends sessions that timed
    # out (telling their relying parties). Off: nothing is sent (tests drive it by hand).
    "LOGOUT_WORKER": True,
    "SESSION_SWEEP_INTERVAL": 60,
    # Dynamic client registration (RFC 7591/7592): "off" (no registration endpoint),
    # "token" (an initial access token from `idp registration-tokens create` is required,
    # RFC 7591 §3) or "open" (anyone may register a client; it still needs user consent).
    "REGISTRATION": "off",
    # Issue a new registration access token on every RFC 7592 update (the old one stops
    # working at once); false keeps the token issued at registration.
    "REGISTRATION_ACCESS_TOKEN_ROTATION": True,
    # Device authorization grant (RFC 8628 §3.2): lifetime of a device_code/user_code pair
    # and the polling interval a device starts with (slow_down adds 5 s each time, §3.5).
    "DEVICE_CODE_LIFETIME": 600,
    "DEVICE_POLL_INTERVAL": 5,
    # Pushed authorization requests (RFC 9126): lifetime of a request_uri (§2.2), and
    # whether every client must push its authorization requests (§5; also per client).
    "PAR_LIFETIME": 60,
    "REQUIRE_PUSHED_AUTHORIZATION_REQUESTS": False,
    # JWT-secured authorization requests (RFC 9101): the longest a request object may live
    # (exp at most this far ahead, nbf at most this far back, exp - nbf at most this;
    # FAPI 2.0 caps it at 60 minutes), and whether every client must send one (§10.5).
    "REQUEST_OBJECT_MAX_LIFETIME": 3600,
    "REQUIRE_SIGNED_REQUEST_OBJECT": False,
    # JWT client authentication (RFC 7523 §3, OIDC Core §9): the furthest in the future a
    # client assertion's exp may lie (seconds; its jti is remembered until then), and the
    # timeout and cache lifetime for fetching a client's jwks_uri.
    "CLIENT_ASSERTION_MAX_LIFETIME": 300,
    "CLIENT_JWKS_TIMEOUT": 3,
    "CLIENT_JWKS_CACHE_SECONDS": 300,
    # Networks (CIDRs) the server may call at URLs clients register (jwks_uri,
    # sector_identifier_uri, backchannel_logout_uri; idp/outbound.py). Every other address
    # that is not public unicast (loopback, private, link-local, CGNAT...) is refused, so
    # nobody can make the server fetch from its own network (SSRF). None: no network, but
    # loopback when the issuer is itself on loopback (`idp demo`, `idp run`); [] is none.
    "OUTBOUND_ALLOWED_NETWORKS": None,
    # DPoP (RFC 9449): how old a proof's iat may be (§4.3 item 11; its jti is remembered that
    # long), the clock skew allowed either way, whether proofs must carry a server nonce
    # (§8, §9: use_dpop_nonce, DPoP-Nonce) and how long one nonce lives (seconds).
    "DPOP_PROOF_MAX_AGE": 60,
    "DPOP_CLOCK_SKEW": 5,
    "DPOP_REQUIRE_NONCE": False,
    "DPOP_NONCE_LIFETIME": 300,
    # Largest request body accepted (bytes).
    "MAX_CONTENT_LENGTH": 64 * 1024,
    # CSRF tokens of Flask-WTF live as long as the session.
    "WTF_CSRF_TIME_LIMIT": None,
    # Flask-WTF's extra https check wants a Referer matching the host, but every page sends
    # `Referrer-Policy: no-referrer`, so under https it would refuse every form. The CSRF
    # token (and the SameSite=Lax cookie) protect the forms (found deploying behind nginx).
    "WTF_CSRF_SSL_STRICT": False,
    # Outgoing mail (idp/mail/). Without SMTP_HOST, messages are written to instance/outbox/
    # as .eml files (development). SMTP_SECURITY: "starttls" (upgrade, refused if the server
    # cannot), "ssl" (TLS from the first byte) or "none" (loopback relays only when a
    # password is set). SMTP_PORT None means 587, 465 or 25 by SMTP_SECURITY.
    "SMTP_HOST": None,
    "SMTP_PORT": None,
    "SMTP_USERNAME": None,
    "SMTP_PASSWORD": None,
    "SMTP_SECURITY": "starttls",
    "SMTP_TIMEOUT": 10,
    # The From address (RFC 5322 mailbox, "Name <addr>" allowed); required with SMTP_HOST.
    "MAIL_FROM": None,
    # Queued mail is delivered by a background thread per worker (only while mail waits):
    # attempts per message, and the delay before the first retry (doubled after each).
    "MAIL_ATTEMPTS": 5,
    "MAIL_RETRY_DELAY": 30,
    "MAIL_WORKER": True,
    # A worker's delivery rounds start at most this often (seconds): mail queued sooner after
    # a round waits for the next, and goes out with the rest over one SMTP session.
    "MAIL_ROUND_INTERVAL": 0.25,
    # Email verification, invitations, self-registration (idp/account/email.py, register.py):
    # how long a mailed link works, in seconds.
    "EMAIL_VERIFY_TTL": 24 * 3600,
    "INVITATION_TTL": 7 * 86400,
    "REGISTRATION_TTL": 24 * 3600,
    # Self-registration of end users: "off" (the default), "open" (anyone with a mailbox) or
    # "domains:example.com,example.org" (addresses of these domains only). Not to be confused
    # with REGISTRATION, which is dynamic *client* registration (RFC 7591).
    "REGISTRATION_USERS": "off",
    # Passkeys (WebAuthn Level 3, idp/auth/passkeys.py). The RP ID is the issuer's host and
    # the origin the issuer's scheme://host[:port]. RP name: what authenticators show (None:
    # the issuer's host). Attestation: "none" (no device make or model asked for), or
    # "indirect"/"direct". User verification asked of the authenticator: "preferred",
    # "required" (responses without the UV flag are refused) or "discouraged". Resident key:
    # "required" (every passkey is discoverable: usernameless sign-in) or "preferred".
    # Timeout: seconds a ceremony's challenge is good for (and the browser's timeout hint).
    "WEBAUTHN_RP_NAME": None,
    "WEBAUTHN_ATTESTATION": "none",
    "WEBAUTHN_USER_VERIFICATION": "preferred",
    "WEBAUTHN_RESIDENT_KEY": "required",
    "WEBAUTHN_TIMEOUT": 300,
    # The user's own data (idp/account/profile.py, data.py). The OIDC Core §5.1 claims a
    # user may edit on the account page; allowed: those of EDITABLE_CLAIMS below. Never
    # email (it needs verification), username, sub or a *_verified flag.
    "ACCOUNT_EDITABLE_CLAIMS": [
        "name",
        "given_name",
        "family_name",
        "middle_name",
        "nickname",
        "profile",
        "picture",
        "website",
        "gender",
        "birthdate",
        "zoneinfo",
        "locale",
    ],  # fmt: skip
    # Mail the user after a sign-in from a browser not seen before for them (each user can
    # turn it off on the account page); whether the mail shows the sign-in's IP address.
    "NEW_DEVICE_NOTICES": True,
    "NEW_DEVICE_NOTICE_IP": True,
    # Mount the demo relying party at /demo (set by `idp demo`).
    "DEMO": False,
    # --- production: defence, operations, deployment (docs/deploy.md) ---
    # Redis, shared by every worker and machine: rate-limit counters (and replay caches).
    # None: counters live in each worker's memory, everything else in the database.
    "REDIS_URL": None,
    # Rate limits (Flask-Limiter; RFC 6585 §4 429 + Retry-After). Storage: this URI, else
    # REDIS_URL, else memory:// (per worker). Limits are "N/period" strings joined by ";".
    "RATELIMIT_ENABLED": True,
    "RATELIMIT_STORAGE_URI": None,
    "RATELIMIT_KEY_PREFIX": "idp",  # distinguishes servers sharing one Redis
    "RATELIMIT_LOGIN_IP": "30/minute;300/hour",  # sign-in POSTs per client IP
    "RATELIMIT_LOGIN_ACCOUNT": "10/minute;50/hour",  # sign-in POSTs per submitted username
    "RATELIMIT_TOKEN": "100/second",  # token requests per client_id
    "RATELIMIT_REGISTRATION": "20/minute;200/hour",  # dynamic registration POSTs per IP
    "RATELIMIT_DEVICE_ENTRY": "10/minute;100/hour",  # user-code entry POSTs per IP
    # "Forgot your password?" POSTs per client IP, and per username or email submitted
    # (counted whether or not the account exists, so a limit reveals nothing).
    "RATELIMIT_RESET_IP": "10/minute;100/hour",
    "RATELIMIT_RESET_ACCOUNT": "3/minute;10/hour",
    # Forms that mail a link (self-registration, email change): per IP, and per address
    # typed (so that nobody can flood one mailbox).
    "RATELIMIT_EMAIL_LINK_IP": "10/minute;50/hour",
    "RATELIMIT_EMAIL_LINK_ADDRESS": "3/minute;10/hour",
    "RATELIMIT_SECOND_FACTOR": "10/minute;50/hour",  # second-factor POSTs per account
    # Progressive lockout: after LOCKOUT_THRESHOLD consecutive failures an account is locked
    # for LOCKOUT_BASE_SECONDS, doubling with each further failure up to LOCKOUT_MAX_SECONDS.
    # A locked account answers exactly like a wrong password. 0 turns lockout off.
    "LOCKOUT_THRESHOLD": 5,
    "LOCKOUT_BASE_SECONDS": 60,
    "LOCKOUT_MAX_SECONDS": 3600,
    # Multi-factor authentication (auth/mfa.py): admins (is_admin) must use a second factor
    # and are led through enrolment at their next sign-in; a half-finished sign-in (password
    # right, second factor pending) lasts MFA_PENDING_LIFETIME seconds and at most
    # MFA_MAX_ATTEMPTS wrong codes (each also counts toward the lockout above).
    "MFA_REQUIRED_FOR_ADMINS": True,
    "MFA_PENDING_LIFETIME": 300,
    "MFA_MAX_ATTEMPTS": 5,
    # The account name's issuer in authenticator apps (otpauth URI); None: ISSUER's host.
    "TOTP_ISSUER_NAME": None,
    # Purging of expired codes, tokens, ended sessions, logout deliveries and replay entries:
    # rows are kept PURGE_RETENTION seconds past their end; each worker purges at most every
    # PURGE_INTERVAL seconds, after a response (0: only `idp purge`).
    "PURGE_INTERVAL": 3600,
    "PURGE_RETENTION": 86400,
    # Logs: "json" (one object a line, with request_id) or "text"; level name.
    "LOG_FORMAT": "json",
    "LOG_LEVEL": "INFO",
    # Prometheus metrics at /metrics; optionally only with this bearer token and/or only from
    # these addresses or networks (list of CIDR strings).
    "METRICS_ENABLED": True,
    "METRICS_TOKEN": None,
    "METRICS_ALLOW_IPS": None,
    # Reverse proxies in front of the server whose X-Forwarded-* headers are trusted (hop
    # counts for werkzeug's ProxyFix). 0 = ignore the header (the default: no proxy).
    "PROXY_FIX_X_FOR": 0,
    "PROXY_FIX_X_PROTO": 0,
    "PROXY_FIX_X_HOST": 0,
    "PROXY_FIX_X_PORT": 0,
    "PROXY_FIX_X_PREFIX": 0,
    # Connection pool per worker process (PostgreSQL): steady connections, extra under
    # bursts, seconds to wait for one, seconds before a connection is replaced.
    "DATABASE_POOL_SIZE": 5,
    "DATABASE_MAX_OVERFLOW": 5,
    "DATABASE_POOL_TIMEOUT": 10,
    "DATABASE_POOL_RECYCLE": 1800,
    # Seconds to wait for a database connection to open before answering 503.
    "DATABASE_CONNECT_TIMEOUT": 5,
    # A pooled connection idle longer than this is pinged (SELECT 1) before use, so one
    # the server or a firewall dropped is replaced; busy connections skip the round trip.
    "DATABASE_PING_AFTER_IDLE": 2,
}

# Claims the account page can offer for editing; phone_number resets phone_number_verified.
EDITABLE_CLAIMS = (
    "name", "given_name", "family_name", "middle_name", "nickname", "profile", "picture",
    "website", "gender", "birthdate", "zoneinfo", "locale", "phone_number",
)  # fmt: skip
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
    if app.config["ISSUER"]:
        app.config["ISSUER"] = str(app.config["ISSUER"]).rstrip("/")
    if app.config["OUTBOUND_ALLOWED_NETWORKS"] is None:
        # A server reachable only on this machine may call relying parties on it.
        local = bool(app.config["ISSUER"]) and is_loopback(urlsplit(app.config["ISSUER"]).hostname)
        app.config["OUTBOUND_ALLOWED_NETWORKS"] = list(LOOPBACK_NETWORKS) if local else []
    if app.config["SESSION_COOKIE_SECURE"] is None and app.config["ISSUER"]:
        app.config["SESSION_COOKIE_SECURE"] = app.config["ISSUER"].startswith("https://")
    check(app.config)


NO_ISSUER = (
    "No issuer is configured: it is the URL relying parties use to reach this server, and "
    "every URL it publishes is built from it. Run `idp init --issuer https://id.example.com` "
    "(writes ISSUER into instance/config.py) or set IDP_ISSUER."
)


def configured(name: str, instance_path: str) -> object:
    """A setting as instance/config.py and IDP_* set it, without building an app."""
    probe = Config(instance_path)
    probe.from_pyfile("config.py", silent=True)
    probe.from_prefixed_env("IDP")
    return probe.get(name)


def check_issuer(value: str, development: bool = False) -> None:
    """The issuer rules of OIDC Discovery §3 and RFC 8414 §2, and TLS outside loopback."""
    issuer = urlsplit(value)
    if issuer.scheme not in ("http", "https") or not issuer.hostname:
        raise ConfigError(f"IDP_ISSUER must be an absolute https URL, got {value!r}")
    if issuer.query or issuer.fragment:
        raise ConfigError("IDP_ISSUER must not have a query or fragment (RFC 8414 §2)")
    if not development and issuer.scheme == "http" and not is_loopback(issuer.hostname):
        raise ConfigError(
            f"IDP_ISSUER {value!r} uses http on a non-loopback host; "
            "use https (OAuth 2.0 requires TLS, RFC 6749 §3.1)."
        )


def check(config) -> None:
    """Stop start-up with a clear message on unsafe settings."""
    if not config["ISSUER"]:
        raise ConfigError(NO_ISSUER)
    check_issuer(config["ISSUER"], development=bool(config["DEVELOPMENT"]))
    if not config["DEVELOPMENT"] and not config["SECRET_KEY"]:
        raise ConfigError(
            "IDP_SECRET_KEY is not set. Run `idp init` (writes one into instance/config.py) "
            "or set IDP_SECRET_KEY to a long random value."
        )
    if config.get("PAIRWISE_SECRET") is not None and len(str(config["PAIRWISE_SECRET"])) < 32:
        raise ConfigError("IDP_PAIRWISE_SECRET must be at least 32 characters (a random value)")
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
    for name in (
        "DEVICE_CODE_LIFETIME",
        "DEVICE_POLL_INTERVAL",
        "PAR_LIFETIME",
        "REQUEST_OBJECT_MAX_LIFETIME",
        "CLIENT_ASSERTION_MAX_LIFETIME",
        "CLIENT_JWKS_TIMEOUT",
        "CLIENT_JWKS_CACHE_SECONDS",
        "SESSION_IDLE_LIFETIME",
        "SESSION_ABSOLUTE_LIFETIME",
        "LOGOUT_TOKEN_LIFETIME",
        "BACKCHANNEL_LOGOUT_TIMEOUT",
        "BACKCHANNEL_LOGOUT_ATTEMPTS",
        "BACKCHANNEL_LOGOUT_RETRY_DELAY",
        "SESSION_SWEEP_INTERVAL",
        "PASSWORD_RESET_TTL",
        "MFA_PENDING_LIFETIME",
        "MFA_MAX_ATTEMPTS",
    ):
        if float(config[name]) <= 0:
            raise ConfigError(f"IDP_{name} must be a positive number")
    for name in (
        "LOCKOUT_THRESHOLD", "LOCKOUT_BASE_SECONDS", "LOCKOUT_MAX_SECONDS", "PURGE_INTERVAL",
        "PURGE_RETENTION", "PROXY_FIX_X_FOR", "PROXY_FIX_X_PROTO", "PROXY_FIX_X_HOST",
        "PROXY_FIX_X_PORT", "PROXY_FIX_X_PREFIX", "DATABASE_POOL_SIZE", "DATABASE_MAX_OVERFLOW",
        "DATABASE_PING_AFTER_IDLE",
    ):  # fmt: skip
        if int(config[name]) < 0:
            raise ConfigError(f"IDP_{name} must not be negative")
    for name in ("KEY_CACHE_SECONDS", "REGISTRY_CACHE_SECONDS", "MAIL_ROUND_INTERVAL"):
        if float(config[name]) < 0:
            raise ConfigError(f"IDP_{name} must not be negative")
    check_dpop(config)
    check_outbound(config)
    check_password_policy(config)
    check_mail(config)
    check_user_registration(config)
    check_webauthn(config)
    check_editable_claims(config)
    if config["LOG_FORMAT"] not in ("json", "text"):
        raise ConfigError("IDP_LOG_FORMAT must be json or text")
    if config["REGISTRATION"] not in ("off", "token", "open"):
        raise ConfigError(
            f"IDP_REGISTRATION must be off, token or open, got {config['REGISTRATION']!r}"
        )
    if config["ID_TOKEN_SIGNING_ALG"] not in ("RS256", "ES256"):
        raise ConfigError("IDP_ID_TOKEN_SIGNING_ALG must be RS256 or ES256")
    if config["ACCESS_TOKEN_SIGNING_ALG"] not in ("RS256", "ES256"):
        raise ConfigError("IDP_ACCESS_TOKEN_SIGNING_ALG must be RS256 or ES256")
    if config["ACCESS_TOKEN_FORMAT"] not in ("jwt", "opaque"):
        raise ConfigError(
            f"IDP_ACCESS_TOKEN_FORMAT must be jwt or opaque, got {config['ACCESS_TOKEN_FORMAT']!r}"
        )


def check_dpop(config) -> None:
    """RFC 9449 §11.1: a proof is accepted only for a short while."""
    if not 1 <= int(config["DPOP_PROOF_MAX_AGE"]) <= 600:
        raise ConfigError("IDP_DPOP_PROOF_MAX_AGE must be 1..600 seconds")
    if not 0 <= int(config["DPOP_CLOCK_SKEW"]) <= 60:
        raise ConfigError("IDP_DPOP_CLOCK_SKEW must be 0..60 seconds")
    if not 10 <= int(config["DPOP_NONCE_LIFETIME"]) <= 3600:
        raise ConfigError("IDP_DPOP_NONCE_LIFETIME must be 10..3600 seconds")


def check_outbound(config) -> None:
    """OUTBOUND_ALLOWED_NETWORKS: CIDRs (a list, or a comma-separated string), kept as a list."""
    try:
        networks = parse_networks(config.get("OUTBOUND_ALLOWED_NETWORKS"))
    except ValueError as exc:
        raise ConfigError(f"IDP_OUTBOUND_ALLOWED_NETWORKS: {exc}") from None
    config["OUTBOUND_ALLOWED_NETWORKS"] = [str(n) for n in networks]


def check_password_policy(config) -> None:
    """NIST SP 800-63B rev. 4 §3.1.1.2: a minimum of 8 at least, room for 64 characters."""
    minimum = int(config["PASSWORD_MIN_LENGTH"])
    if not PASSWORD_MIN_LENGTH_FLOOR <= minimum <= 64:
        raise ConfigError(f"IDP_PASSWORD_MIN_LENGTH must be 8..64 characters, got {minimum}")
    if int(config["PASSWORD_MAX_BYTES"]) < 4 * 64:
        raise ConfigError(
            "IDP_PASSWORD_MAX_BYTES must be at least 256, so that any 64 characters fit "
            "(a character takes up to 4 bytes in UTF-8)"
        )


def registration_domains(value) -> tuple[str, ...] | None:
    """REGISTRATION_USERS parsed: None when off, () when open, else the allowed domains."""
    value = str(value or "off").strip()
    if value == "off":
        return None
    if value == "open":
        return ()
    kind, _, listed = value.partition(":")
    domains = tuple(d.strip().lower().rstrip(".") for d in listed.split(",") if d.strip())
    if (
        kind != "domains"
        or not domains
        or any(" " in d or "@" in d or "." not in d for d in domains)
    ):
        raise ConfigError(
            "IDP_REGISTRATION_USERS must be off, open or domains:example.com,example.org, "
            f"got {value!r}"
        )
    return domains


def check_user_registration(config) -> None:
    """Self-registration's mode and the lifetimes of the links it and invitations mail."""
    registration_domains(config["REGISTRATION_USERS"])
    for name in ("EMAIL_VERIFY_TTL", "INVITATION_TTL", "REGISTRATION_TTL"):
        if int(config[name]) <= 0:
            raise ConfigError(f"IDP_{name} must be a positive number of seconds")


WEBAUTHN_CHOICES = {
    "WEBAUTHN_ATTESTATION": ("none", "indirect", "direct"),
    "WEBAUTHN_USER_VERIFICATION": ("preferred", "required", "discouraged"),
    "WEBAUTHN_RESIDENT_KEY": ("required", "preferred"),
}


def check_webauthn(config) -> None:
    """Passkey settings (WebAuthn L3 §5.4): known values, a sane ceremony timeout."""
    for name, allowed in WEBAUTHN_CHOICES.items():
        if config[name] not in allowed:
            choices = ", ".join(allowed)
            raise ConfigError(f"IDP_{name} must be one of {choices}, got {config[name]!r}")
    if not 30 <= int(config["WEBAUTHN_TIMEOUT"]) <= 600:
        raise ConfigError("IDP_WEBAUTHN_TIMEOUT must be 30..600 seconds")


def check_editable_claims(config) -> None:
    """Only profile claims a user may state about themselves (never email, sub, *_verified)."""
    claims = config["ACCOUNT_EDITABLE_CLAIMS"]
    if isinstance(claims, str):  # IDP_ACCOUNT_EDITABLE_CLAIMS="name locale"
        claims = config["ACCOUNT_EDITABLE_CLAIMS"] = claims.replace(",", " ").split()
    unknown = [c for c in claims if c not in EDITABLE_CLAIMS]
    if unknown:
        raise ConfigError(
            f"IDP_ACCOUNT_EDITABLE_CLAIMS: {', '.join(map(str, unknown))} cannot be edited by "
            f"users; choose among {', '.join(EDITABLE_CLAIMS)}"
        )


def check_mail(config) -> None:
    """SMTP settings that cannot work, or would send the SMTP password in the clear."""
    security = config["SMTP_SECURITY"]
    if security not in ("none", "starttls", "ssl"):
        raise ConfigError(f"IDP_SMTP_SECURITY must be none, starttls or ssl, got {security!r}")
    port = config["SMTP_PORT"]
    if port is not None and not (isinstance(port, int) and 1 <= port <= 65535):
        raise ConfigError(f"IDP_SMTP_PORT must be a port number 1..65535, got {port!r}")
    for name in ("SMTP_TIMEOUT", "MAIL_ATTEMPTS", "MAIL_RETRY_DELAY"):
        if float(config[name]) <= 0:
            raise ConfigError(f"IDP_{name} must be a positive number")
    if bool(config["SMTP_USERNAME"]) != bool(config["SMTP_PASSWORD"]):
        raise ConfigError("IDP_SMTP_USERNAME and IDP_SMTP_PASSWORD are set together")
    sender = config["MAIL_FROM"]
    if sender is not None and not mailbox_ok(str(sender)):
        raise ConfigError(f"IDP_MAIL_FROM must be an address like idp@example.com, got {sender!r}")
    host = config["SMTP_HOST"]
    if not host:
        return
    if not sender:
        raise ConfigError("IDP_MAIL_FROM is required when IDP_SMTP_HOST is set")
    if security == "none" and config["SMTP_PASSWORD"] and not is_loopback(str(host)):
        raise ConfigError(
            "IDP_SMTP_SECURITY=none would send the SMTP password in the clear to "
            f"{host}; use starttls or ssl (none is for a relay on this machine)"
        )


def mailbox_ok(value: str) -> bool:
    """One RFC 5322 mailbox, no header injection."""
    from email.utils import parseaddr

    if "\r" in value or "\n" in value:
        return False
    _, address = parseaddr(value)
    local, _, domain = address.rpartition("@")
    return bool(local and domain) and " " not in address
