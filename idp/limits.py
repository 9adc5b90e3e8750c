"""Rate limits against brute force and abuse (RFC 6749 §10.10, RFC 6819 §4.3.3, RFC 8628 §5.1).

Flask-Limiter counts requests per key in ``RATELIMIT_STORAGE_URI``, else ``REDIS_URL`` (so
every worker and machine shares the counters), else in each worker's memory. What is limited,
and by what key, is the table ``LIMITS`` below; a limit is attached to whichever view serves
that endpoint name or path, so an endpoint added by another part of the server (registration,
device-code entry) is limited as soon as it exists. ``create_app`` calls ``init_app`` last.

A request over a limit gets 429 Too Many Requests with ``Retry-After`` (RFC 6585 §4,
RFC 9110 §10.2.3): JSON on protocol endpoints, a friendly page in the UI (``errors.py``).

Each limited view is wrapped once per worker by ``ViewLimits``, which does per request what
Flask-Limiter's ``limiter.limit`` decorator did, without re-resolving which limits apply
(that resolution was about 100 Python calls, 12 % of a token request). Flask-Limiter stays
the provider of everything that counts: the ``Limiter``'s strategy (sliding window counter)
and storage, its key layout (``prefix/key/endpoint``), its in-memory fallback with the switch
and back-off it uses for a storage outage, ``swallow_errors``, ``on_breach``,
``current_limit`` and ``RateLimitExceeded``. The limit strings are read from the app's config
on every request and parsed once per distinct string, so a changed setting applies at once.
Where an operator enables a Flask-Limiter feature the wrapper does not implement (see
``lean_enough``), the views keep Flask-Limiter's decorators.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from urllib.parse import unquote

from flask import Flask, Response, current_app, request, session
from flask.globals import _cv_request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit
from flask_limiter._limits import RuntimeLimit
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage

from . import metrics


def by_ip() -> str:
    """The client's address (as ProxyFix established it from trusted hops only)."""
    return f"ip:{request.remote_addr or 'unknown'}"


def _digest(value: str) -> str:
    # Counters may live in Redis: keep usernames and client ids out of its key space.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def by_account() -> str:
    """The account a sign-in names, whether or not it exists (so limits reveal nothing)."""
    identifier = (request.form.get("username") or "").strip().lower()[:320]
    return f"account:{_digest(identifier)}" if identifier else ""


def by_address() -> str:
    """The mail address a form names (a link is mailed to it), whether or not it is known."""
    address = (request.form.get("email") or "").strip().lower()[:320]
    return f"address:{_digest(address)}" if address else ""


def by_pending_account() -> str:
    """The account of a half-finished sign-in (auth.mfa's pending state), whatever its IP."""
    pending = session.get("mfa_pending")
    sub = pending.get("sub") if isinstance(pending, dict) else None
    return f"pending:{_digest(str(sub))}" if sub else by_ip()


def presented_client_id() -> str | None:
    """client_id from HTTP Basic (RFC 6749 §2.3.1) or the form body, unauthenticated."""
    req = request._get_current_object()
    header = req.environ.get("HTTP_AUTHORIZATION", "")  # req.headers.get("Authorization")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        return unquote(decoded.partition(":")[0]) or None
    if req.mimetype == "application/x-www-form-urlencoded":
        return req.form.get("client_id") or None
    return None


def by_client() -> str:
    """Per client at the token endpoint; requests naming no client count per IP."""
    client_id = presented_client_id()
    return f"client:{_digest(client_id)}" if client_id else by_ip()


@dataclass(frozen=True)
class Rule:
    setting: str  # config key holding the limit string
    key: Callable[[], str]
    methods: tuple[str, ...] = ("POST",)


# endpoint name or URL path -> limits. Paths cover views registered under other names.
LOGIN = (Rule("RATELIMIT_LOGIN_IP", by_ip), Rule("RATELIMIT_LOGIN_ACCOUNT", by_account))
TOKEN = (Rule("RATELIMIT_TOKEN", by_client),)
REGISTRATION = (Rule("RATELIMIT_REGISTRATION", by_ip),)
DEVICE_ENTRY = (Rule("RATELIMIT_DEVICE_ENTRY", by_ip),)
RESET = (Rule("RATELIMIT_RESET_IP", by_ip), Rule("RATELIMIT_RESET_ACCOUNT", by_account))
EMAIL_LINK = (
    Rule("RATELIMIT_EMAIL_LINK_IP", by_ip),
    Rule("RATELIMIT_EMAIL_LINK_ADDRESS", by_address),
)
# Second factors (auth.mfa): per IP like the password, and per account being signed in.
SECOND_FACTOR = (
    Rule("RATELIMIT_LOGIN_IP", by_ip),
    Rule("RATELIMIT_SECOND_FACTOR", by_pending_account),
)
LIMITS: dict[str, tuple[Rule, ...]] = {
    "account_register.start": EMAIL_LINK,  # self-registration mails a link
    "account_email.change": EMAIL_LINK,  # so does an email change
    "auth.login": LOGIN,
    "password.forgot": RESET,  # per IP and per submitted account, like the sign-in
    "password.change": (Rule("RATELIMIT_LOGIN_IP", by_ip),),  # checks a current password
    "passkeys.sign_in": (Rule("RATELIMIT_LOGIN_IP", by_ip),),
    "passkeys.second_factor": LOGIN[:1],
    "oauth.token": TOKEN,
    "oauth.registration": REGISTRATION,
    "oauth.register": REGISTRATION,
    "/register": REGISTRATION,
    "/connect/register": REGISTRATION,
    "oauth.device_verify": DEVICE_ENTRY,
    "device.verify": DEVICE_ENTRY,
    "/device": DEVICE_ENTRY,
    "/activate": DEVICE_ENTRY,
    "factors.totp_sign_in": SECOND_FACTOR,
    "factors.recovery_sign_in": SECOND_FACTOR,
    "factors.enrol": SECOND_FACTOR,
}


class MemoryCounters(MemoryStorage):
    """``memory://`` without a timer thread per counted request.

    limits' MemoryStorage starts a ``threading.Timer`` to sweep expired counters whenever
    none is running, i.e. on nearly every hit under load (about 0.7 ms of a token request).
    Expired counters are already ignored when read, so the sweep only frees memory: here it
    runs inline, at most once a second.
    """

    STORAGE_SCHEME = ["idp-memory"]
    SWEEP_SECONDS = 1.0

    def _MemoryStorage__schedule_expiry(self) -> None:  # overrides the name-mangled hook
        now = time.monotonic()
        if now - getattr(self, "_swept_at", 0.0) >= self.SWEEP_SECONDS:
            self._swept_at = now
            self._MemoryStorage__expire_events()


# limits' storage classes wrap their methods in its error translation in every subclass, so a
# subclass of MemoryStorage ran each get, incr and sliding-window call through it twice: keep
# MemoryStorage's one layer (the same translation, once).
for _name, _method in list(vars(MemoryCounters).items()):
    if getattr(_method, "__wrapped__", None) is vars(MemoryStorage).get(_name, _name):
        setattr(MemoryCounters, _name, vars(MemoryStorage)[_name])


def storage_uri(config) -> str:
    return config.get("RATELIMIT_STORAGE_URI") or config.get("REDIS_URL") or "memory://"


def limiter_storage_uri(uri: str) -> str:
    return "idp-memory://" if uri == "memory://" else uri


def _on_breach(limit: RequestLimit) -> None:
    metrics.rate_limited(request.endpoint or "unknown")
    current_app.logger.warning(
        "rate limit exceeded", extra={"limit": str(limit.limit), "endpoint": request.endpoint}
    )


def rules_for(app: Flask) -> dict[str, tuple[Rule, ...]]:
    """endpoint -> rules, for the endpoints of this app that LIMITS names."""
    found: dict[str, tuple[Rule, ...]] = {}
    for rule in app.url_map.iter_rules():
        rules = LIMITS.get(rule.endpoint) or LIMITS.get(rule.rule)
        if rules and rule.endpoint in app.view_functions:
            found[rule.endpoint] = rules
    return found


def init_app(app: Flask) -> None:
    """Attach the limits to the views; call after every blueprint is registered."""
    app.config["RATELIMIT_STORAGE_URI"] = storage_uri(app.config)
    limiter = Limiter(
        key_func=by_ip,
        storage_uri=limiter_storage_uri(app.config["RATELIMIT_STORAGE_URI"]),
        strategy="sliding-window-counter",
        # A Redis outage must not take sign-in down: count in memory until it is back.
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        headers_enabled=False,  # Retry-After is set on 429 answers only (errors.py)
        key_prefix=app.config.get("RATELIMIT_KEY_PREFIX") or "idp",
        on_breach=_on_breach,
    )
    limiter.init_app(app)
    app.extensions["idp.limiter"] = limiter
    # Flask-Limiter also checks application, default and blueprint limits before every
    # request. This server sets none (each limit is on its view and checked by the view's
    # decorator), so that check found nothing, on every request, for 0.1-0.2 ms of CPU.
    manager = limiter.limit_manager
    hooks = app.before_request_funcs.get(None, [])
    unused = not (manager.application_limits or manager.default_limits or limiter._meta_limits)
    if unused and limiter._check_request_limit in hooks:  # not there when limits are off
        hooks.remove(limiter._check_request_limit)
    trim_hooks(app, limiter)
    lean = limiter.initialized and unused and lean_enough(limiter)
    for endpoint, rules in rules_for(app).items():
        view = original = app.view_functions[endpoint]
        for rule in rules:
            # Registered with Flask-Limiter as before (its ``flask limiter limits`` listing
            # and its before-request check see them); the decorator it returns is used only
            # when the lean check below cannot stand in for it.
            view = limiter.limit(
                lambda setting=rule.setting: current_app.config[setting],
                key_func=rule.key,
                methods=list(rule.methods),
            )(view)
        if lean:
            view = ViewLimits(app, limiter, endpoint, rules).wrap(original)
        app.view_functions[endpoint] = view


def lean_enough(limiter: Limiter) -> bool:
    """Whether ``ViewLimits`` does all that Flask-Limiter's decorator would for this limiter.

    It does what this server configures (per-view limits, a key each, methods, the storage
    with its in-memory fallback, swallowed errors, ``on_breach``). An operator who sets one
    of Flask-Limiter's other features through its ``RATELIMIT_*`` settings (request filters,
    fallback limits of its own, headers, counting past the first breach) keeps its decorator.
    """
    return not (
        limiter._request_filters
        or limiter._in_memory_fallback
        or limiter._headers_enabled
        or not limiter._fail_on_first_breach
    )


_parsed: dict[str, tuple[RateLimitItem, ...]] = {}  # limit string -> its limits, per worker


def parse(text: str) -> tuple[RateLimitItem, ...]:
    """The limits of a setting such as ``"30/minute;300/hour"``, each string parsed once."""
    items = _parsed.get(text)
    if items is None:
        items = _parsed[text] = tuple(parse_many(text)) if text else ()
    return items


class ViewLimits:
    """The rate-limit check of one view, built once per worker: Flask-Limiter's decorator
    without its per-request resolution.

    Flask-Limiter's decorator resolved, on every request, which limits apply (parsing the
    limit strings, walking exemption and blueprint scopes, building ordered sets). Here the
    limits of the view are fixed at start-up (``LIMITS``); per request only the settings'
    strings are read from the app's config, and a plan per combination of strings (its
    limits, smallest window first, as Flask-Limiter orders them) is built once, so changing
    a setting still takes effect. Each limit is counted exactly as the decorator counted it:
    the Limiter's own strategy (sliding window counter) and storage, the same key
    (``prefix/key/endpoint``), first breach wins. The Limiter's fallback state is shared: when
    the storage fails the Limiter is switched to its in-memory counters, and its backoff
    decides when to try the storage again.
    """

    def __init__(self, app: Flask, limiter: Limiter, endpoint: str, rules: tuple[Rule, ...]):
        self.app = app
        self.config = app.config
        self.limiter = limiter
        self.endpoint = endpoint
        self.rules = rules
        self.settings = tuple(rule.setting for rule in rules)
        self.methods = tuple(frozenset(m.upper() for m in rule.methods) for rule in rules)
        self.prefix = limiter._key_prefix
        self.plans: dict[tuple[str, ...], tuple[tuple[RateLimitItem, int], ...]] = {}

    def wrap(self, view: Callable) -> Callable:
        check, limiter, run = self.check, self.limiter, self.app.ensure_sync(view)

        @wraps(view)
        def limited(*args, **kwargs):
            if limiter.enabled:  # may be switched off at run time, like Flask-Limiter's
                check()
            return run(*args, **kwargs)

        return limited

    def plan(self, strings: tuple[str, ...]) -> tuple[tuple[RateLimitItem, int], ...]:
        """The limits of these settings' strings, smallest window first (stable, like the
        sort Flask-Limiter applies), each with the index of its rule."""
        pairs, valid = [], True
        for index, text in enumerate(strings):
            try:
                pairs += [(item, index) for item in parse(text)]
            except ValueError as error:  # as Flask-Limiter: logged, the others still apply
                self.limiter.logger.error(f"failed to load ratelimit for {self.endpoint}: {error}")
                valid = False
        pairs.sort(key=lambda pair: pair[0].GRANULARITY.seconds)
        plan = tuple(pairs)
        if valid:  # an invalid string is reported on every request, as it was
            self.plans[strings] = plan
        return plan

    def check(self) -> None:
        limiter = self.limiter
        try:
            if limiter._storage_dead:
                recover(limiter)
            self.count()
        except RateLimitExceeded:
            raise
        except Exception:
            # Flask-Limiter's _check_request_limit: switch to memory once, else swallow.
            if limiter._in_memory_fallback_enabled and not limiter._storage_dead:
                limiter.logger.warning(
                    "Rate limit storage unreachable - falling back to in-memory storage"
                )
                limiter._storage_dead = True
                self.check()
            elif limiter._swallow_errors:
                limiter.logger.exception("Failed to rate limit. Swallowing error")
            else:
                raise

    def count(self) -> None:
        strings = tuple(map(self.config.__getitem__, self.settings))
        plan = self.plans.get(strings)
        if plan is None:
            plan = self.plan(strings)
        limiter = self.limiter
        strategy = limiter.limiter if limiter._storage_dead else limiter._limiter
        method = request._get_current_object().method
        endpoint = self.endpoint
        keys: dict[int, str] = {}
        counted: list[tuple[RateLimitItem, list[str]]] = []
        for item, index in plan:
            if method not in self.methods[index]:
                continue
            key = keys.get(index)
            if key is None:
                key = keys[index] = self.rules[index].key()
            if not key:
                limiter.logger.error(f"Skipping limit: {item}. Empty value found in parameters.")
                continue
            args = [self.prefix, key, endpoint] if self.prefix else [key, endpoint]
            counted.append((item, args))
            if not strategy.hit(item, *args):
                limiter.logger.info(
                    "ratelimit %s (%s) exceeded at endpoint: %s", item, key, endpoint
                )
                self.refuse(counted, self.rules[index])

    def refuse(self, counted: list[tuple[RateLimitItem, list[str]]], rule: Rule) -> None:
        """As Flask-Limiter's decorator: the request's limits recorded (``current_limit`` is
        the breached one, for Retry-After), ``on_breach`` called, RateLimitExceeded raised."""
        limiter = self.limiter
        item, args = counted[-1]
        evaluated = [RequestLimit(limiter, i, a, False, False) for i, a in counted[:-1]]
        breached = RequestLimit(limiter, item, args, True, False)
        limiter.context.view_rate_limit = breached
        limiter.context.view_rate_limits = [*evaluated, breached]
        response = None
        if limiter._on_breach:
            try:
                answer = limiter._on_breach(breached)
                if isinstance(answer, Response):
                    response = answer
            except Exception as err:
                if not limiter._swallow_errors:
                    raise
                limiter.logger.exception("on_breach callback failed with error %s", err)
        limit = RuntimeLimit(item, rule.key, None, methods=rule.methods, override_defaults=True)
        raise RateLimitExceeded(limit, response=response)


def recover(limiter: Limiter) -> None:
    """Flask-Limiter's recovery check while its storage is marked dead: with its backoff
    (1, 2, 4 ... 32 s between checks), ask the storage whether it is back."""
    if not limiter._fallback_limiter:
        return
    if limiter._Limiter__should_check_backend() and limiter._storage and limiter._storage.check():
        limiter.logger.info("Rate limit storage recovered")
        limiter._storage_dead = False
        limiter._Limiter__check_backend_count = 0


STATE = "_limiter_request_context"  # Flask-Limiter's per-request state on the request context


def trim_hooks(app: Flask, limiter: Limiter) -> None:
    """Flask-Limiter's hooks after each request, reduced to what this configuration uses.

    Its after-request hook deducts conditional costs (``deduct_when``: no limit here has one)
    and adds X-RateLimit headers (``headers_enabled=False``): with neither it did nothing but
    resolve the current limit, on every request. Its teardown resets the per-request limiter
    state, which it first creates on requests that had none; here it resets only state that
    exists (a request context is not reused, so the outcome is the same).
    """
    after = app.after_request_funcs.get(None, [])
    for hook in list(after):
        if getattr(hook, "func", None) is Limiter._Limiter__inject_headers and not (
            limiter._headers_enabled
        ):
            after.remove(hook)
    teardown = app.teardown_request_funcs.get(None, [])
    if limiter._Limiter__release_context in teardown:
        index = teardown.index(limiter._Limiter__release_context)

        def release_context(_exc: BaseException | None = None) -> None:
            # The request context itself, not through the request_ctx proxy (two calls less).
            if hasattr(_cv_request.get(None), STATE):
                limiter.context.reset()

        teardown[index] = release_context


def retry_after(error) -> int:
    """Whole seconds until the breached limit lets a request through again (at least 1)."""
    limiter = current_app.extensions.get("idp.limiter")
    current = limiter.current_limit if limiter is not None else None
    if current is not None and current.breached:
        try:
            return max(1, int(current.reset_at - time.time()))
        except Exception:  # storage unreachable: fall back to the window length
            pass
    limit = getattr(getattr(error, "limit", None), "limit", None)
    return max(1, int(limit.get_expiry())) if limit is not None else 60
