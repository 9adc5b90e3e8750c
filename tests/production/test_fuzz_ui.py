"""No page crashes the server: every HTML route of the URL map fuzzed with malformed input.

The routes come from ``app.url_map``, so a new page is fuzzed as soon as it exists; only the
protocol endpoints that tests/production/test_fuzz.py fuzzes with its JSON checks are left
out (``COVERED``, each with its reason). Three passes, each bounded:

* every route gets a few Hypothesis examples (fixed seed: ``derandomize=True``) as an admin,
  a plain user and an anonymous visitor: odd strings (NUL, huge, non-ASCII, control
  characters, SQL, path traversal, markup), ids of the wrong type or out of range in URL
  converters, repeated, unknown and missing fields, oversize, multipart, JSON and raw bodies,
  bad ``next`` targets and paging cursors, wrong methods, and a valid, missing or forged
  CSRF token;
* every page with a form gets it posted back as a browser would (the fields the page shows,
  a valid CSRF token) with a few fields dropped, replaced, repeated or added, so that the
  validation behind the form is what is fuzzed;
* every route gets a fixed set of boundary values (``EDGE_*``), whatever Hypothesis draws.

Every answer must be below 500; an HTML error is the friendly page (rendered from
base.html, no traceback); a redirect or auto-posted form goes to this origin or to a
redirect URI a client registered (RFC 6749 §3.1.2, RFC 9700 §4.11: no open redirect); an
error changes nothing stored; and the database keeps its invariants: an enabled admin
remains, usernames and group names are well-formed, clients are coherent, and every user
or client created through the UI was audited in the same transaction.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from datetime import timedelta
from html.parser import HTMLParser
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

import flask
import pytest
from flask_wtf import FlaskForm
from flask_wtf.csrf import generate_csrf
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey
from sqlalchemy import select
from wtforms.fields.core import UnboundField

from idp import db
from idp.admin.forms import GROUP_NAME
from idp.auth import session as user_session
from idp.auth.forms import USERNAME
from idp.auth.passwords import hash_password
from idp.demo import DEMO_CLIENT_NAME
from idp.errors import JSON_PATHS
from idp.models import (
    AuditEvent,
    Base,
    Client,
    Consent,
    DeletionRequest,
    DeviceCode,
    Group,
    Resource,
    Token,
    User,
    UserSession,
    WebAuthnCredential,
    utcnow,
)
from idp.models.base import secret_hash
from idp.oauth.clients import create_client
from idp.oauth.redirects import invalid_redirect_uri

from ..conftest import ISSUER
from ..factories import PASSWORD
from ..helpers import csrf_refused

pytestmark = pytest.mark.config(
    RATELIMIT_ENABLED=False, PURGE_INTERVAL=0, DEMO=True, MAX_CONTENT_LENGTH=64 * 1024
)

FUZZ = dict(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Protocol endpoints: test_fuzz.py fuzzes each with checks of RFC 6749 §5.2 JSON errors.
COVERED = {
    "oauth.token": "test_fuzz.py PROTOCOL (/token)",
    "oauth.revoke": "test_fuzz.py PROTOCOL (/revoke)",
    "oauth.introspect": "test_fuzz.py PROTOCOL (/introspect)",
    "oauth.userinfo": "test_fuzz.py PROTOCOL (/userinfo)",
    "oauth.register": "test_fuzz.py PROTOCOL (/register)",
    "oauth.client_configuration": "test_fuzz.py PROTOCOL (/register/<client_id>)",
    "oauth.device_authorization": "test_fuzz.py PROTOCOL (/device_authorization)",
    "oauth.pushed_authorization_request": "test_fuzz.py PROTOCOL (/par)",
}
# POST routes outside CSRFProtect, and why (the other POSTs must answer 400 without a token).
CSRF_EXEMPT = {
    "oauth.authorize": "protocol endpoint; the consent form checks its own token",
    "oauth.end_session": "RP-Initiated Logout §2 accepts POSTs from relying parties",
}
NON_HTML = {"/metrics": "Prometheus text format (tests/production/test_metrics.py)"}
# Columns that a refused request may still write: the lockout counter (a wrong password is
# a 401 that counts), and the housekeeping timestamps of the session loader.
VOLATILE = {"failed_logins", "locked_until", "last_login_at", "updated_at", "last_seen_at"}
WATCHED = ("users", "groups", "user_groups", "clients", "resources", "resource_clients",
           "consents", "tokens", "user_sessions", "device_codes")  # fmt: skip
USER_CODE = "BCDF-GHJK"
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")


# --- input ----------------------------------------------------------------------------------

ODD = [
    "", " ", "\x00", "a\x00b", "%00", "null", "None", "[]", "{}", "-1", "0", "1.5", "1e309",
    "2147483648", "9" * 30, "é", "☃" * 3, "\u202e", "\ufeff", "\U0001f600", "ǅ", "İ", "ß",
    "x" * 5000, "\r\nX-Injected: 1", "\t", "\\", "'; DROP TABLE users; --", "' OR 1=1 --",
    "%' OR '%'='", "../../etc/passwd", "..%2f..%2fetc%2fpasswd", "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>', "{{7*7}}", "%s%n", "y", "on", "true", "false",
    "9999-12-31", "0001-01-01", "2026-02-30", "2026-01-31", "*",
]  # fmt: skip
# Where a browser would go if a `next` were followed blindly (WHATWG URL parsing).
OFF_SITE = [
    "//evil.example", "https://evil.example/", "/\\evil.example", "\\\\evil.example",
    "/\t/evil.example", "/\n/evil.example", " //evil.example", "http:evil.example",
    "javascript:alert(1)", "data:text/html,x", "/%2F%2Fevil.example", "//evil.example@localhost",
    "http://localhost@evil.example/", "https:/\\evil.example", "/..//evil.example",
    "\x00//evil.example", "/account/", "/admin/users?q=a", "/authorize?client_id=x",
]  # fmt: skip
PLAUSIBLE = [
    "root", "alice", "bob.fuzz", "bob@example.com", PASSWORD, "https://rp.example/cb",
    "https://rp.example/bye", "http://127.0.0.1:8080/cb", "com.example.app:/cb",
    "https://rp.example/logout", "authorization_code", "refresh_token", "client_credentials",
    "urn:ietf:params:oauth:grant-type:device_code", "openid", "profile", "email",
    "offline_access", "groups", "api:read", "public", "confidential", "client_secret_basic",
    "client_secret_post", "client_secret_jwt", "private_key_jwt", "jwt", "opaque", "RS256",
    "ES256", "3600", "86400", "Europe/Paris", "+33123456789", "en-GB", "staff", "API",
    "https://api.example/", "access_token", "id_token", USER_CODE, "allow", "Allow", "Deny",
    "code", "form_post", "S256", "login", "consent", "none",
]  # fmt: skip
QUERY_NAMES = [
    "next", "after", "before", "last", "q", "login_hint", "user_code", "state", "code", "error",
    "iss", "event", "actor", "target", "since", "until", "client_id", "redirect_uri",
    "response_type", "scope", "prompt", "nonce", "code_challenge", "code_challenge_method",
    "response_mode", "max_age", "id_token_hint", "post_logout_redirect_uri", "request_uri",
]  # fmt: skip


def public_jwks() -> str:
    return json.dumps({"keys": [ECKey.generate_key("P-256").as_dict(private=False)]})


JWKS_TEXTS = [public_jwks(), '{"keys": []}', '{"keys": {"a": 1}}', '{"keys": "abc"}',
              '{"keys": [[]]}', "[" * 3000 + "]" * 3000, '{"keys": [{"kty": "oct", "k": "AA"}]}',
              "not json"]  # fmt: skip


def form_field_names() -> list[str]:
    """Every field of every Flask-WTF form of the app: new forms are fuzzed automatically."""
    names: set[str] = set()
    pending = list(FlaskForm.__subclasses__())
    while pending:
        form = pending.pop()
        pending += form.__subclasses__()
        if form.__module__.startswith("idp."):
            names |= {n for n in dir(form) if isinstance(getattr(form, n, None), UnboundField)}
    return sorted(names - {"csrf_token", "meta"})


def any_text(max_size=40):
    return st.text(st.characters(exclude_categories=("Cs",)), max_size=max_size)


CURSORS = ["0", "-1", "1", "2147483647", "2147483648", "9" * 30, "1e3", "0x10", "abc", "", " ",
           "root", "zzz", "é", "\U0001f600", "a'--", "x" * 400]  # fmt: skip
DATES = ["9999-12-31", "0001-01-01", "2026-02-30", "2026-13-01", "-0001-01-01", "99999-01-01",
         "2026-01-31", "2026-01-31T10:00", "20260131", "now", ""]  # fmt: skip
URIS = ["https://rp.example/cb", "https://rp.example/cb\nhttps://rp.example/two",
        "http://evil.example/cb", "javascript:alert(1)", "https://rp.example/cb#frag",
        "com.example.app:/cb", "myapp:/cb", "http://127.0.0.1/cb", "https://", "https:///x",
        "https://[::1/", "\n\n", "https://rp.example/" + "x" * 3000]  # fmt: skip
# Names whose values matter most: paging cursors, redirect targets, dates, keys, codes.
SPECIAL = {
    "after": CURSORS, "before": CURSORS, "last": ["1", "0", "true", "", "1" * 30],
    "next": OFF_SITE, "post_logout_redirect_uri": OFF_SITE + URIS, "redirect_uri": URIS,
    "since": DATES, "until": DATES, "jwks": JWKS_TEXTS, "jwks_uri": URIS,
    "redirect_uris": URIS, "post_logout_redirect_uris": URIS, "backchannel_logout_uri": URIS,
    "frontchannel_logout_uri": URIS, "picture": URIS, "identifier": URIS,
    "user_code": [USER_CODE, "bcdf ghjk", "BCDF-GHJ", "AAAA-AAAA", "BCDF-GHJK-X", "B" * 40],
    "access_token_lifetime": ["59", "60", "86400", "86401", "-1", "9" * 30, "1e3", "abc"],
    "refresh_token_lifetime": ["299", "300", "31622400", "9" * 30, "-0", "1.5"],
    "groups": ["1", "2", "-1", "9" * 30, "abc"], "zoneinfo": ["Europe/Paris", "Mars/Base", ""],
}  # fmt: skip


# What a person would type into the fields of the forms, so that some forms are accepted.
PLAUSIBLE_BY_NAME = {
    "username": ["bob.fuzz", "carol", "dave+1@x", "root", "Éve"],
    "email": ["bob@example.com", "carol@example.org", "ALICE@example.com", "not-an-email"],
    "password": [PASSWORD], "confirm": [PASSWORD, "other password"],
    "confirm_username": ["alice", "bob.fuzz", "root"], "name": ["Bob Fuzz", "staff two", "API"],
    "client_name": ["Fuzz App"], "identifier": ["https://api2.example/", "urn:example:api"],
    "redirect_uris": ["https://rp.example/cb", "https://rp.example/cb\ncom.example.app:/cb"],
    "post_logout_redirect_uris": ["https://rp.example/bye"], "scopes": ["api:read api:write"],
    "extra_scopes": ["api:read"], "subject_clients": ["*"], "description": ["Fuzzed group"],
    "user_code": [USER_CODE], "locale": ["en-GB"], "zoneinfo": ["Europe/Paris"],
    "phone_number": ["+33123456789"], "picture": ["https://rp.example/me.png"],
}  # fmt: skip
USERISH = ("username", "confirm_username", "actor", "target", "login_hint")
INDEX = st.integers(0, 1023)
# A value as drawn: a source, an index into it and free text. It is resolved against the rows
# of the moment outside Hypothesis, so every example draws the same shapes whatever the
# database holds (Hypothesis replays examples, and the rows change between them).
RAW = st.tuples(st.integers(0, 6), INDEX, any_text())
PAIRS = st.lists(st.tuples(st.integers(0, 4), INDEX, any_text(12), RAW), max_size=4)


def pick(choices: list, index: int):
    return choices[index % len(choices)] if choices else ""


class Values:
    """A parameter's value: odd input, off-site targets, plausible values (so that forms get
    past validation) and real identifiers, the special ones of its name first."""

    def __init__(self, known: dict[str, list]):
        self.real = [str(v) for key in ("user_id", "group_id", "client_id", "usernames",
                                         "identifiers") for v in known[key]]  # fmt: skip

    def of(self, name: str, raw: tuple) -> str:
        source, index, text = raw
        special = SPECIAL.get(name) or (self.real + ["root", "alice"] if name in USERISH else [])
        if special and source < 3:
            return pick(special, index)
        sources = [ODD, OFF_SITE, PLAUSIBLE, self.real, ODD, PLAUSIBLE]
        return text if source == 6 else pick(sources[source], index) or text

    def plausible(self, name: str, index: int) -> str:
        return pick(PLAUSIBLE_BY_NAME.get(name) or PLAUSIBLE, index)

    def pairs(self, names: list[str], drawn: list) -> list[tuple[str, str]]:
        """Known names mostly (free text one time in five), each with its value."""
        result = []
        for free, index, text, raw in drawn:
            name = text if free == 0 else pick(names, index)
            result.append((name, self.of(name, raw)))
        return result


# --- the world every example starts from ----------------------------------------------------


class World:
    """Rows every example can aim at; put back in shape before each example, since the
    previous one may have deleted, renamed, disabled or demoted them."""

    def __init__(self, app):
        self.app = app
        self.ids: dict[str, int | str] = {}
        self.cookies: dict[str, tuple[dict, str]] = {}  # valid until something changes
        self.last: dict[str, dict] = {}  # the previous cookie, to go on with its session
        self.base_users: set[str] = set()
        self.base_clients: set[str] = set()
        self.dirty = True  # something may have changed since the last heal
        self._known: dict[str, list] = {}
        with app.app_context():
            self.password_hash = hash_password(PASSWORD)

    def heal(self) -> None:
        if not self.dirty:
            return
        self.cookies.clear()
        self._known = {}
        self.dirty = False
        with self.app.app_context():
            s = db.session()
            root = self._user(s, "root", admin=True)
            alice = self._user(s, "alice", admin=False)
            rp = self._client(s, "rp", "Fuzz RP", public=False)
            self._client(s, "demo", DEMO_CLIENT_NAME, public=True)
            group = s.get(Group, self.ids.get("group", 0))
            if group is None:
                group = Group(name=f"staff-{secrets.token_hex(3)}", description="fuzz")
                s.add(group)
                s.flush()
                self.ids["group"] = group.id
            if alice not in group.members:
                group.members.append(alice)
            resource = s.get(Resource, self.ids.get("resource", 0))
            if resource is None:
                resource = Resource(identifier=f"https://api{secrets.token_hex(3)}.example/",
                                    name="API", scope="api:read")  # fmt: skip
                s.add(resource)
                s.flush()
                self.ids["resource"] = resource.id
            consent = s.scalar(
                select(Consent).where(Consent.user_id == alice.id, Consent.client_id == rp)
            )
            if consent is None:
                s.add(Consent(user_id=alice.id, client_id=rp, scope="openid profile"))
            token = s.get(Token, self.ids.get("token", 0))
            if token is None or token.revoked_at is not None:
                token = Token(
                    client_id=rp, user_id=alice.id, grant_type="authorization_code",
                    scope="openid", granted_scope="openid",
                    access_token_hash=secret_hash(secrets.token_urlsafe(32)),
                    access_expires_at=utcnow() + timedelta(hours=1),
                    family_id=secrets.token_hex(16),
                )  # fmt: skip
                s.add(token)
                s.flush()
                self.ids["token"] = token.id
            passkey = s.get(WebAuthnCredential, self.ids.get("passkey", 0))
            if passkey is None:
                passkey = WebAuthnCredential(user_id=alice.id, public_key=b"\0", name="Fuzz key",
                                             credential_id=secrets.token_urlsafe(16))  # fmt: skip
                s.add(passkey)
                s.flush()
                self.ids["passkey"] = passkey.id
            deletion = s.get(DeletionRequest, self.ids.get("deletion", 0))
            if deletion is None or deletion.status != "pending":
                deletion = s.scalar(
                    select(DeletionRequest).where(DeletionRequest.user_id == alice.id,
                                                  DeletionRequest.status == "pending")
                ) or DeletionRequest(user_id=alice.id)  # fmt: skip
                s.add(deletion)
                s.flush()
                self.ids["deletion"] = deletion.id
            pending = s.scalar(
                select(DeviceCode.id).where(DeviceCode.status == "pending",
                                            DeviceCode.user_code_hash == secret_hash("BCDFGHJK"))
            )  # fmt: skip
            if pending is None:
                s.add(DeviceCode(
                    device_code_hash=secret_hash(secrets.token_urlsafe(32)),
                    user_code_hash=secret_hash("BCDFGHJK"), client_id=rp, scope="openid",
                    interval=5, expires_at=utcnow() + timedelta(hours=1),
                ))  # fmt: skip
            s.commit()
            self.ids.update(root=root.id, alice=alice.id)
            self.base_users = {root.sub, alice.sub}

    def seed(self, endpoint: str) -> str:
        """A valid query for the pages that need one to show their form."""
        if endpoint == "oauth.authorize":  # alice has consented to less: the consent form
            return urlencode({"response_type": "code", "client_id": self.ids["rp"],
                              "redirect_uri": "https://rp.example/cb", "state": "s",
                              "scope": "openid profile email", "nonce": "n",
                              "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                              "code_challenge_method": "S256"})  # fmt: skip
        if endpoint == "oauth.end_session":  # no hint: the confirmation form
            return urlencode({"client_id": self.ids["rp"], "state": "s",
                              "post_logout_redirect_uri": "https://rp.example/bye"})  # fmt: skip
        if endpoint == "device.verify":
            return urlencode({"user_code": USER_CODE})
        return ""

    def _user(self, s, username: str, admin: bool) -> User:
        user = s.scalar(select(User).where(User.username == username))
        if user is None:
            user = User(username=username, email=f"{username}@example.com", name=username)
            s.add(user)
        user.is_admin, user.disabled = admin, False
        user.password_hash, user.failed_logins, user.locked_until = self.password_hash, 0, None
        s.flush()
        return user

    def _client(self, s, key: str, name: str, public: bool) -> str:
        client = s.scalar(select(Client).where(Client.client_id == self.ids.get(key, "")))
        if client is None:
            client, _ = create_client(s, name=name, redirect_uris=[], grant_types=[], scope="",
                                      public=public, first_party=False)  # fmt: skip
            self.ids[key] = client.client_id
        # Enabled, and with what the seeds rely on, whatever an example changed.
        client.disabled = False
        client.redirect_uris = [ISSUER + "/demo/callback" if public else "https://rp.example/cb"]
        client.post_logout_redirect_uris = ["https://rp.example/bye"]
        client.grant_types = ["authorization_code", "refresh_token",
                              "urn:ietf:params:oauth:grant-type:device_code"]  # fmt: skip
        client.response_types = ["code"]
        client.scope = "openid profile email offline_access groups"
        s.flush()
        self.base_clients.add(client.client_id)
        return client.client_id

    def sign_in(self, browser, who: str) -> str | None:
        """Put a live session of `who` and a CSRF token into the browser's cookie (through
        the app's own ``session.start`` and ``generate_csrf``); returns the token."""
        if who in self.cookies:  # nothing changed since: the same live session
            contents, token = self.cookies[who]
        else:
            contents, token = self._start(who)
            self.cookies[who] = (contents, token)
        with browser.session_transaction() as cookie:
            cookie.clear()
            cookie.update(contents)
        return token

    def _start(self, who: str) -> tuple[dict, str]:
        with self.app.test_request_context("/"):
            if who != "anonymous":
                flask.session.update(self.last.get(who, {}))
                user = db.session().get(User, self.ids[who])
                user_session.start(user, ["pwd"])  # the same live row when it still is one
                db.session().commit()
            token = generate_csrf()
            self.last[who] = dict(flask.session)
            return self.last[who], token

    def known(self) -> dict[str, list]:
        """Values of the URL arguments (real rows, so that requests get past the look-ups)."""
        if not self._known:
            self._known = self._query_known()
        return self._known

    def _query_known(self) -> dict[str, list]:
        with self.app.app_context():
            s = db.session()
            sessions = list(s.scalars(select(UserSession.id).order_by(UserSession.id.desc())
                                      .limit(4)))  # fmt: skip
            return {
                "user_id": list(s.scalars(select(User.id).order_by(User.id).limit(6))),
                "group_id": list(s.scalars(select(Group.id).limit(4))),
                "resource_id": list(s.scalars(select(Resource.id).limit(4))),
                "session_id": sessions,
                "token_id": list(s.scalars(select(Token.id).limit(4))),
                "passkey_id": list(s.scalars(select(WebAuthnCredential.id).limit(4))),
                "request_id": list(s.scalars(select(DeletionRequest.id).limit(4))),
                "client_id": list(s.scalars(select(Client.client_id).limit(6))),
                "filename": ["css/app.css", "js/form_post.js", "../idp/config.py", "img"],
                "usernames": list(s.scalars(select(User.username).limit(6))),
                "identifiers": list(s.scalars(select(Resource.identifier).limit(4))),
            }


@pytest.fixture
def world(app):
    world = World(app)
    world.heal()
    return world


# --- the routes -----------------------------------------------------------------------------


def fuzzed_rules(app) -> list:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint not in COVERED),
        key=lambda r: (r.rule, r.endpoint),
    )


WRONG_IDS = ["0", "-1", "abc", "1.5", "2147483648", "9" * 25, "%00", "..", "%2e%2e", "%2F", "é",
             "x" * 300, "1%20", " 1", "2147483647", "1e3"]  # fmt: skip


def path_for(data, rule, known: dict) -> str:
    def value(match):
        converter, name = match.group(1) or "default", match.group(2)
        real, index, wrong_text, text = data.draw(
            st.tuples(st.integers(0, 2), INDEX, st.booleans(), any_text(20)), label=name
        )
        choices = [str(v) for v in known.get(name, [])]
        if real and choices:
            picked = pick(choices, index)
            return picked if converter == "path" else quote(picked, safe="")
        picked = text if wrong_text else pick(WRONG_IDS, index)
        return picked if picked.startswith("%") else quote(picked, safe="")

    return ARGUMENT.sub(value, rule.rule)


class FormScraper(HTMLParser):
    """The (name, value) pairs a browser would submit from each form of a page."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self.links: list[str] = []
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and "?" in (a.get("href") or ""):
            self.links.append(html.unescape(a["href"]))
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "method": (a.get("method") or
                              "get").lower(), "fields": [], "buttons": []})  # fmt: skip
        if not self.forms or not a.get("name"):
            return
        form = self.forms[-1]
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    form["fields"].append((a["name"], a.get("value") or "y"))
            elif kind == "submit":
                form["buttons"].append((a["name"], a.get("value") or "y"))
            else:
                form["fields"].append((a["name"], a.get("value") or ""))
        elif tag == "button":
            form["buttons"].append((a["name"], a.get("value") or "y"))
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            form["fields"].append((self._select, a.get("value") or ""))
        elif tag == "textarea":
            self._textarea = a["name"]
            form["fields"].append((a["name"], ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, text):
        if self._textarea and self.forms:
            name, before = self.forms[-1]["fields"][-1]
            self.forms[-1]["fields"][-1] = (name, before + text)


def page_parameters(page_html: str, path: str) -> list[str]:
    """Query parameter names the page's GET forms and its links back to itself send."""
    scraper = FormScraper()
    scraper.feed(page_html)
    names = [k for f in scraper.forms if f["method"] == "get" for k, _ in f["fields"]]
    names += [k for link in scraper.links if urlsplit(link).path in ("", path)
              for k, _ in parse_qsl(urlsplit(link).query)]  # fmt: skip
    return sorted(set(names))


def page_form(page_html: str, path: str) -> tuple[list, list]:
    """Fields and buttons of the page's POST form aimed at path (or its only POST form)."""
    scraper = FormScraper()
    scraper.feed(page_html)
    forms = [f for f in scraper.forms if f["method"] == "post"]
    aimed = [f for f in forms if urlsplit(f["action"]).path in ("", path)] or forms[:1]
    if not aimed:
        return [], []
    fields = [(k, v) for k, v in aimed[0]["fields"] if k != "csrf_token"]
    return fields, aimed[0]["buttons"]


def draw_body(data, base: list, buttons: list, field_names: list, pool: Values) -> list:
    """The page's own form with a few mutations (a field dropped, replaced or repeated), a
    button maybe pressed, and a few other fields added."""
    fill_all, fill = data.draw(st.tuples(st.booleans(), st.lists(INDEX, max_size=8)),
                               label="fill empty fields")  # fmt: skip
    mutations = data.draw(
        st.lists(st.tuples(INDEX, st.sampled_from(["drop", "odd", "repeat"]), RAW), max_size=3),
        label="mutations",
    )
    empty, pairs = iter(fill), []
    for name, value in base:  # empty fields filled in with plausible values, as people do
        index = next(empty, 0 if fill_all else None) if value == "" else None
        pairs.append((name, value if index is None else pool.plausible(name, index)))
    for index, action, raw in mutations:
        if not pairs:
            break
        position = index % len(pairs)
        name, value = pairs[position]
        if action == "drop":
            del pairs[position]
        elif action == "odd":
            pairs[position] = (name, pool.of(name, raw))
        else:
            pairs.insert(position, (name, pool.of(name, raw)))
    press, index = data.draw(st.tuples(st.booleans(), INDEX), label="button")
    if press and buttons:
        pairs.append(pick(buttons, index))
    return pairs + pool.pairs(field_names, data.draw(PAIRS, label="extra fields"))


def draw_request(data, app, world: World, rule, browser, csrf_token: str, field_names,
                 focus: bool = False) -> dict:  # fmt: skip
    """One request to rule; with focus, the route's own form posted back with a valid CSRF
    token and a few mutations, so that the validation behind it is what is fuzzed."""
    known = world.known()
    pool = Values(known)
    path = path_for(data, rule, known)
    if data.draw(st.integers(0, 3), label="seed") > 0 and world.seed(rule.endpoint):
        path += "?" + world.seed(rule.endpoint)  # a valid request, for the fuzz to spoil
    allowed = sorted(rule.methods - {"HEAD", "OPTIONS"})
    # A wrong method one time in eight; a route that takes a form mostly gets a POST.
    kind, index = data.draw(st.tuples(st.integers(0, 7), INDEX), label="method")
    if focus:
        method = "POST"
    elif kind == 0 or not allowed:
        method = pick(METHODS, index)
    else:
        method = "POST" if kind > 2 and "POST" in allowed else pick(allowed, index)
    names = QUERY_NAMES
    if data.draw(st.integers(0, 3), label="learn from page") == 0 and method == "GET":
        page = browser.get(path)  # the parameters its own forms and links send
        check_answer(app, page, "GET", path)
        if page.mimetype == "text/html":
            names = page_parameters(page.get_data(as_text=True), urlsplit(path).path) + QUERY_NAMES
    query = pool.pairs(names, data.draw(PAIRS, label="query"))
    request = {"method": method, "headers": {}}
    if method in ("POST", "PUT", "PATCH", "DELETE"):
        base, buttons = [], []
        from_page = focus or data.draw(st.integers(0, 3), label="start from page") > 0
        if from_page and "GET" in rule.methods:
            page = browser.get(path)  # this answer is checked too
            check_answer(app, page, "GET", path)
            if page.mimetype == "text/html":
                base, buttons = page_form(page.get_data(as_text=True), urlsplit(path).path)
        pairs = draw_body(data, base, buttons, field_names, pool)
        csrf = "valid" if focus else data.draw(st.sampled_from(
            ["valid", "valid", "valid", "none", "forged", "twice"]), label="csrf")  # fmt: skip
        forged = ["", "x", csrf_token[:-2] + "AA", csrf_token + "x"]
        request["csrf"] = csrf
        if csrf == "valid":
            pairs.append(("csrf_token", csrf_token))
        elif csrf == "forged":
            pairs.append(("csrf_token", pick(forged, data.draw(INDEX, label="forged"))))
        elif csrf == "twice":
            pairs += [("csrf_token", csrf_token), ("csrf_token", "x")]
        encodings = ["form", "form", "form", "multipart", "json", "raw", "oversize"]
        encoding = data.draw(st.sampled_from(encodings[:4] if focus else encodings),
                             label="encoding")  # fmt: skip
        if encoding == "form":
            request.update(data=urlencode(pairs).encode(),
                           content_type="application/x-www-form-urlencoded")  # fmt: skip
        elif encoding == "multipart":
            multi: dict[str, list[str]] = {}
            for k, v in pairs:
                multi.setdefault(k, []).append(v)
            request.update(data=multi, content_type="multipart/form-data")
        elif encoding == "json":
            request.update(data=json.dumps(dict(pairs)), content_type="application/json")
        elif encoding == "raw":
            request.update(data=data.draw(st.binary(max_size=200), label="raw"),
                           content_type=data.draw(st.sampled_from(
                               ["application/x-www-form-urlencoded", "text/plain", "",
                                "multipart/form-data; boundary=x"])))  # fmt: skip
        else:
            big = urlencode(pairs + [("pad", "x" * (70 * 1024))]).encode()
            request.update(data=big, content_type="application/x-www-form-urlencoded")
    request["path"] = path + (("&" if "?" in path else "?") + urlencode(query) if query else "")
    return request


# --- what every answer must be --------------------------------------------------------------


def registered_targets(app) -> set[tuple[str, str, str]]:
    with app.app_context():
        uris = set()
        for client in db.session().scalars(select(Client)):
            for uri in [*(client.redirect_uris or []), *(client.post_logout_redirect_uris or [])]:
                parts = urlsplit(uri)
                uris.add((parts.scheme, parts.netloc, parts.path))
        return uris


def browser_target(location: str) -> tuple[str, str, str]:
    """Where a browser goes: WHATWG URL parsing drops tabs and newlines, reads backslashes as
    slashes, and strips leading C0 controls and spaces (URL Standard §4.4)."""
    cleaned = re.sub(r"[\t\n\r]", "", location).replace("\\", "/").lstrip("".join(
        map(chr, range(0x21))))  # fmt: skip
    parts = urlsplit(urljoin(ISSUER + "/", cleaned))
    return parts.scheme.lower(), parts.netloc.lower(), parts.path


def assert_goes_nowhere_else(app, target: str, what: str) -> None:
    scheme, netloc, path = browser_target(target)
    if (scheme, netloc) == tuple(urlsplit(ISSUER)[:2]):
        return
    # RFC 6749 §3.1.2 / RP-Initiated Logout §3: only a URI a client registered.
    assert (scheme, netloc, path) in registered_targets(app), f"{what} goes off-site: {target!r}"


def check_answer(app, response, method: str, path: str) -> None:
    body = response.get_data(as_text=True)
    response.close()  # static files are streamed from an open file
    assert response.status_code < 500, (response.status_code, path, body[:300])
    assert "Traceback" not in body and 'File "' not in body, body[:300]
    if 300 <= response.status_code < 400:
        assert_goes_nowhere_else(app, response.headers.get("Location", ""), "a redirect")
    if 'id="form-post"' in body:  # form_post response mode, end_session relay
        action = re.search(r'<form method="post" action="([^"]*)"', body).group(1)
        assert_goes_nowhere_else(app, html.unescape(action), "an auto-posted form")
    route = urlsplit(path).path
    if response.status_code < 400 or method == "HEAD" or route.startswith(JSON_PATHS):
        return
    if route not in NON_HTML:
        assert response.mimetype == "text/html", (path, response.mimetype)
        # Rendered from base.html: the friendly page, not Werkzeug's bare one.
        assert 'class="topbar"' in body, body[:300]


def snapshot(app) -> dict:
    """Every row of the tables the UI changes (except the volatile columns)."""
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    with app.app_context():
        s = db.session()
        result = {}
        for name in WATCHED:
            table = tables[name]
            columns = [c for c in table.columns if c.name not in VOLATILE]
            rows = s.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            result[name] = [tuple(r) for r in rows]
        return result


def check_invariants(app, world: World) -> None:
    with app.app_context():
        s = db.session()
        admins = s.scalar(select(User.id).where(User.is_admin.is_(True),
                                                User.disabled.is_(False)).limit(1))  # fmt: skip
        assert admins is not None, "no enabled admin is left"
        for (username,) in s.execute(select(User.username)):
            assert re.match(USERNAME, username) and len(username) <= 150, username
        for (name,) in s.execute(select(Group.name)):
            assert name.strip() == name and re.match(GROUP_NAME, name), name
        for client in s.scalars(select(Client)):
            assert client.client_name.strip(), client.client_id
            assert client.grant_types, client.client_id
            if "authorization_code" in client.grant_types:
                assert client.redirect_uris, client.client_id
            for uri in client.redirect_uris:
                assert invalid_redirect_uri(uri) is None, uri
        for resource in s.scalars(select(Resource)):
            assert resource.identifier and resource.name.strip(), resource.id
        # The change and its audit event are one transaction: no change without its event.
        audited = set(s.scalars(select(AuditEvent.target).where(
            AuditEvent.event.in_(["admin.user.created", "admin.client.created"]))))  # fmt: skip
        subs = set(s.scalars(select(User.sub))) - world.base_users
        assert subs <= audited, subs - audited
        client_ids = set(s.scalars(select(Client.client_id))) - world.base_clients
        assert client_ids <= audited, client_ids - audited


# --- the tests ------------------------------------------------------------------------------


EXPECTED = ["admin.users", "admin.edit_client", "admin.audit_log", "admin.resource",
            "account.index", "auth.login", "auth.logout", "oauth.authorize", "device.verify",
            "demo.callback", "oauth.end_session", "static"]  # fmt: skip


def test_every_route_is_fuzzed_or_skipped_with_a_reason(app):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    stale = (set(COVERED) | set(CSRF_EXEMPT)) - endpoints
    stale |= set(NON_HTML) - {rule.rule for rule in app.url_map.iter_rules()}
    assert not stale, f"entries for routes that are gone: {stale}"
    fuzzed = {rule.endpoint for rule in fuzzed_rules(app)}
    missing = [e for e in EXPECTED if e not in fuzzed]
    assert missing == []
    assert len(fuzzed) + len(COVERED) == len(endpoints)
    assert len(form_field_names()) > 40


# Examples per route and identity: (a route that takes a form, a GET-only route).
BUDGET = {"root": (5, 2), "alice": (2, 2), "anonymous": (2, 1)}
FORM_EXAMPLES = 8  # per page with a form, posted back by test_forms_posted_back_...


def fuzz_route(app, world: World, who: str, rule, field_names: list[str], examples: int,
               focus: bool = False) -> None:  # fmt: skip
    """A bounded Hypothesis run against one route (every route gets its share)."""

    @settings(max_examples=examples, **FUZZ)
    @given(data=st.data())
    def fuzz(data):
        world.heal()
        browser = app.test_client()
        token = world.sign_in(browser, who)
        request = draw_request(data, app, world, rule, browser, token, field_names, focus)
        csrf = request.pop("csrf", None)
        note(f"{request['method']} {request['path']} {request.get('data')!r:.2000} csrf={csrf}")
        writes = request["method"] not in ("GET", "HEAD", "OPTIONS")
        before = snapshot(app) if writes else None
        response = browser.open(**request)
        check_answer(app, response, request["method"], request["path"])
        if csrf in ("none", "forged") and rule.endpoint not in CSRF_EXEMPT:
            # Without a valid CSRF token no form is ever accepted, whatever else it carries.
            assert response.status_code >= 400, (request["method"], request["path"])
        if writes and response.status_code >= 400:
            # A refused request leaves nothing half-written.
            assert snapshot(app) == before, (request["method"], request["path"])
        elif writes:
            world.dirty = True
            check_invariants(app, world)
        if "Max-Age=0" in response.headers.get("Set-Cookie", ""):  # signed out
            world.dirty = True

    fuzz()


@pytest.mark.parametrize("who", ["root", "alice", "anonymous"])
def test_pages_answer_malformed_input_without_crashing(app, world, who):
    field_names = form_field_names()
    with_form, get_only = BUDGET[who]
    for rule in fuzzed_rules(app):
        examples = with_form if "POST" in rule.methods else get_only
        fuzz_route(app, world, who, rule, field_names, examples)


@pytest.mark.parametrize("who", ["root", "alice"])
def test_forms_posted_back_with_mutations_never_crash(app, world, who):
    # Every page with a form of its own, posted back as a browser would (valid CSRF token),
    # with fields dropped, replaced, repeated or added: the validation code is what is hit.
    field_names = form_field_names()
    for rule in fuzzed_rules(app):
        admin_form = rule.endpoint.startswith("admin.")
        if admin_form != (who == "root"):
            continue  # the admin's forms as the admin, everybody's as a user
        if {"GET", "POST"} <= rule.methods:
            fuzz_route(app, world, who, rule, field_names, FORM_EXAMPLES, focus=True)


def post_routes(app) -> list:
    return [r for r in fuzzed_rules(app) if "POST" in r.methods and r.endpoint not in CSRF_EXEMPT]


# Boundary values every route gets, whatever the random examples draw: ids beyond the
# INTEGER range, cursors and dates at and past the edges, a multipart field that lost its
# name (a CR in it) and NUL in a multipart field.
EDGE_IDS = [str(2**31), "9" * 25, "0", "-1", "abc"]
EDGE_QUERIES = [
    {"after": str(2**31), "before": str(2**31), "last": "1", "since": "0001-01-01",
     "until": "9999-12-31", "user_code": "B" * 40, "login_hint": "x" * 400},
    {"after": "9" * 30, "before": "-1", "since": "2026-02-30", "until": "99999-01-01",
     "q": "\U0001f600", "event": "%", "actor": "' OR 1=1 --", "target": "é"},
    {"after": "é", "before": "abc", "last": "0", "q": "x" * 400, "next": "//evil.example",
     "state": "\r\n", "code": "", "error": "<script>", "client_id": "x" * 300},
]  # fmt: skip
EDGE_BODIES = [{"a\rb": "x"}, {"name": "a\x00b", "username": "a\x00b"}]
DEEP_JSON = "[" * 5000 + "]" * 5000  # json.loads raises RecursionError, not ValueError


def edge_requests(rule, known: dict, token: str):
    """Requests carrying the boundary values to rule (real rows for the other arguments)."""
    names = [match.group(2) for match in ARGUMENT.finditer(rule.rule)]
    real = {name: str((known.get(name) or ["1"])[0]) for name in names}

    def path(**values) -> str:
        args = {**real, **values}
        return ARGUMENT.sub(lambda m: quote(args[m.group(2)], safe=""), rule.rule)

    methods = [m for m in ("GET", "POST") if m in rule.methods]
    for name in real:
        for value in EDGE_IDS:
            for method in methods:
                data = {"csrf_token": token} if method == "POST" else None
                yield {"method": method, "path": path(**{name: value}), "data": data}
    if "GET" in methods:
        for query in EDGE_QUERIES:
            yield {"method": "GET", "path": path() + "?" + urlencode(query)}
    if "POST" in methods:
        for body in EDGE_BODIES:
            yield {"method": "POST", "path": path(), "content_type": "multipart/form-data",
                   "data": {"csrf_token": token, **body}}  # fmt: skip
        yield {"method": "POST", "path": path(), "content_type": "application/json",
               "data": DEEP_JSON, "headers": {"X-CSRFToken": token}}  # fmt: skip


def test_every_route_survives_the_boundary_values(app, world):
    world.heal()
    browser = app.test_client()
    token = world.sign_in(browser, "root")
    for rule in fuzzed_rules(app):
        before, accepted = snapshot(app), False
        for request in edge_requests(rule, world.known(), token):
            response = browser.open(**request)
            check_answer(app, response, request["method"], request["path"])
            if response.status_code < 400 and request["method"] == "POST":
                accepted = True
                check_invariants(app, world)
                world.dirty = True
                world.heal()
                token = world.sign_in(browser, "root")
        if not accepted:  # refused requests leave nothing half-written
            assert snapshot(app) == before, rule.rule


@pytest.mark.parametrize("who", ["root", "alice"])
def test_forms_posted_without_a_valid_csrf_token_get_the_friendly_400(app, world, who):
    # OWASP CSRF Prevention Cheat Sheet: refused before anything is read or written, with the
    # friendly page. Real ids in the URL, so that the refusal is not a 404.
    browser = app.test_client()
    token = world.sign_in(browser, who)
    ids = world.ids
    targets = {"user_id": ids["alice"], "group_id": ids["group"], "token_id": ids["token"],
               "resource_id": ids["resource"], "client_id": ids["rp"],
               "session_id": world.known()["session_id"][0],
               "passkey_id": ids["passkey"], "request_id": ids["deletion"]}  # fmt: skip
    before = snapshot(app)
    wrong = []
    for rule in post_routes(app):
        path = ARGUMENT.sub(lambda m: quote(str(targets[m.group(2)]), safe=""), rule.rule)
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": token + "x"}):
            response = browser.post(path, data=data)
            body = response.get_data(as_text=True)
            if path.startswith(JSON_PATHS):  # a script's endpoint: the refusal in JSON
                refused = response.status_code == 400 and "CSRF" in body
            else:
                # The CSRF check's own refusal (not a form's validation 400), on the friendly
                # page.
                refused = csrf_refused(response) and 'class="topbar"' in body
            if not refused:
                wrong.append((path, data, response.status_code))
    assert wrong == []
    assert snapshot(app) == before


def test_signing_in_never_follows_next_off_site(app, world):
    # RFC 9700 §4.11.1 (open redirectors): after sign-in, `next` is followed only to this site.
    for target in OFF_SITE:
        browser = app.test_client()
        token = world.sign_in(browser, "anonymous")
        response = browser.post("/login", data={"csrf_token": token, "username": "alice",
                                                "password": PASSWORD, "next": target})  # fmt: skip
        if "\x00" in target:  # refused before the view (errors.refuse_malformed)
            assert response.status_code == 400
            continue
        assert response.status_code == 302, target
        assert_goes_nowhere_else(app, response.headers["Location"], "next")
