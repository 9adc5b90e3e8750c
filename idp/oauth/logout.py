"""Back-Channel Logout 1.0 and Front-Channel Logout 1.0: telling relying parties a session ended.

Back-channel (https://openid.net/specs/openid-connect-backchannel-1_0.html):

    session.terminate ──► queue_backchannel: one signed logout token (§2.4) per client the
        │                 session signed into, a ``logout_deliveries`` row each, same transaction
        └─ commit ──► Dispatcher.kick ──► background thread: deliver_due()
                          claim a due row (conditional UPDATE: attempts+1, next try later)
                          POST logout_token (§2.5), timeout, no redirects followed
                          2xx → delivered │ 4xx → given up │ else retry, delay doubled,
                          until BACKCHANNEL_LOGOUT_ATTEMPTS or the token expires

The user's request never waits for a relying party; failures are logged and audited.

Front-channel (https://openid.net/specs/openid-connect-frontchannel-1_0.html): the page
shown after sign-out embeds each client's ``frontchannel_logout_uri`` in an iframe, with
``iss`` and ``sid`` when the client registered ``frontchannel_logout_session_required`` (§2).
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from authlib.common.urls import add_params_to_uri
from flask import Flask, current_app
from sqlalchemy import select, update

from .. import audit, db, outbound
from ..background import Worker, seconds_until_due
from ..models import Client, LogoutDelivery, SessionClient, User, UserSession, utcnow
from ..urls import is_loopback
from .subjects import subject_for

log = logging.getLogger("idp.logout")

EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYP = "logout+jwt"  # §2.4: explicit typing of logout tokens
REFUSED = "address refused"  # last_error of a delivery to an address never called


# --- logout tokens (§2.4) ---------------------------------------------------------------


def logout_token(client: Client, sub: str, sid: str) -> str:
    """A signed logout token for client about the session sid of user sub (never a nonce)."""
    from .oidc import sign, signing_alg  # oidc imports the grants, which import the session

    now = int(time.time())
    claims = {
        "iss": current_app.config["ISSUER"],
        "aud": client.client_id,
        "iat": now,
        "exp": now + int(current_app.config["LOGOUT_TOKEN_LIFETIME"]),
        "jti": secrets.token_urlsafe(24),
        "events": {EVENT: {}},
        "sub": sub,
        "sid": sid,
    }
    return sign(claims, signing_alg(client), typ=LOGOUT_TOKEN_TYP)


def session_clients(row: UserSession) -> list[Client]:
    """The enabled clients this session signed into."""
    return list(
        db.session().scalars(
            select(Client)
            .join(SessionClient, SessionClient.client_id == Client.client_id)
            .where(SessionClient.session_id == row.id, Client.disabled.is_(False))
            .order_by(SessionClient.first_at, Client.client_id)
        )
    )


def queue_backchannel(row: UserSession) -> int:
    """Queue a logout token for every client of the session that has a back-channel URI."""
    s = db.session()
    user = s.get(User, row.user_id)
    queued = 0
    for client in session_clients(row):
        if not client.backchannel_logout_uri:
            continue
        try:
            token = logout_token(client, subject_for(client, user), row.sid)
        except Exception:  # e.g. no signing key: the user's sign-out must still succeed
            log.exception("no logout token for client %s", client.client_id)
            continue
        s.add(
            LogoutDelivery(
                client_id=client.client_id, uri=client.backchannel_logout_uri, logout_token=token
            )
        )
        queued += 1
    if queued:
        kick_after_commit()
    return queued


def kick_after_commit() -> None:
    """Wake this worker's dispatcher once the current transaction commits."""
    dispatcher(current_app._get_current_object()).kick_after_commit()


# --- delivery (§2.5, §2.8) ----------------------------------------------------------------


def post_logout_token(uri: str, token: str, timeout: float) -> tuple[bool, str | None]:
    """POST the token; (delivered, error). §2.8: the RP answers 200 (204 accepted too).
    A redirect answer is a failed delivery: the token goes only to the registered URI; an
    address outbound requests may not reach (idp/outbound.py) is never called."""
    try:
        answer = outbound.fetch(
            uri,
            data=urlencode({"logout_token": token}).encode("ascii"),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
            timeout=timeout,
            max_bytes=0,
        )
    except outbound.Refused as exc:
        return False, f"{REFUSED}: {exc}"
    except TimeoutError:
        return False, "timed out"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, "timed out" if isinstance(reason, TimeoutError) else str(reason)[:200]
    if answer.ok:
        return True, None
    return False, f"HTTP {answer.status}"


def permanent(error: str) -> bool:
    """A 4xx answer (but 408/429) says the RP refused the token: sending it again won't help;
    nor will it when the URI's address is one the server does not call."""
    if error.startswith(REFUSED):
        return True
    if not error.startswith("HTTP 4"):
        return False
    return error not in ("HTTP 408", "HTTP 429")


def retry_delay(attempt: int) -> timedelta:
    """Delay after the given (1-based) failed attempt: the base delay, doubled each time."""
    base = float(current_app.config["BACKCHANNEL_LOGOUT_RETRY_DELAY"])
    return timedelta(seconds=base * 2 ** (attempt - 1))


def deliver_due(limit: int = 100) -> int:
    """Attempt every delivery that is due now; returns how many were delivered."""
    s = db.session()
    ids = s.scalars(
        select(LogoutDelivery.id)
        .where(
            LogoutDelivery.delivered_at.is_(None),
            LogoutDelivery.gave_up_at.is_(None),
            LogoutDelivery.next_attempt_at <= utcnow(),
        )
        .order_by(LogoutDelivery.next_attempt_at, LogoutDelivery.id)
        .limit(limit)
    ).all()
    s.commit()  # no transaction stays open while we talk to relying parties
    return sum(deliver_one(i) for i in ids)


def deliver_one(delivery_id: int) -> bool:
    config = current_app.config
    s = db.session()
    row = s.get(LogoutDelivery, delivery_id, populate_existing=True)
    now = utcnow()
    if row is None or row.delivered_at or row.gave_up_at or row.next_attempt_at > now:
        return False
    if row.created_at + timedelta(seconds=int(config["LOGOUT_TOKEN_LIFETIME"])) <= now:
        give_up(row, "the logout token expired before it could be delivered")
        return False
    attempt = row.attempts + 1
    timeout = float(config["BACKCHANNEL_LOGOUT_TIMEOUT"])
    # Claim the row: the single worker whose UPDATE matches sends it; the new
    # next_attempt_at doubles as a lease should this worker die mid-delivery.
    lease = max(retry_delay(attempt), timedelta(seconds=timeout + 1))
    won = s.execute(
        update(LogoutDelivery)
        .where(
            LogoutDelivery.id == row.id,
            LogoutDelivery.attempts == row.attempts,
            LogoutDelivery.delivered_at.is_(None),
            LogoutDelivery.gave_up_at.is_(None),
        )
        .values(attempts=attempt, next_attempt_at=now + lease)
    ).rowcount
    s.commit()
    if won != 1:
        return False
    delivered, error = post_logout_token(row.uri, row.logout_token, timeout)
    s.refresh(row)
    if delivered:
        row.delivered_at = utcnow()
        row.last_error = None
        audit.record("logout.backchannel_delivered", target=row.client_id, attempts=attempt)
        s.commit()
        return True
    row.last_error = error
    log.warning(
        "back-channel logout to client %s failed (attempt %d): %s", row.client_id, attempt, error
    )
    if permanent(error) or attempt >= int(config["BACKCHANNEL_LOGOUT_ATTEMPTS"]):
        give_up(row, error)
    else:
        row.next_attempt_at = utcnow() + retry_delay(attempt)
        s.commit()
    return False


def give_up(row: LogoutDelivery, error: str | None) -> None:
    row.gave_up_at = utcnow()
    row.last_error = error
    log.warning("back-channel logout to client %s given up: %s", row.client_id, error)
    audit.record(
        "logout.backchannel_failed", target=row.client_id, attempts=row.attempts, error=error
    )
    db.session().commit()


def seconds_until_next() -> float | None:
    """Seconds until the next pending delivery is due; None when nothing is pending."""
    return seconds_until_due(
        LogoutDelivery.next_attempt_at,
        LogoutDelivery.delivered_at.is_(None),
        LogoutDelivery.gave_up_at.is_(None),
    )


class Dispatcher(Worker):
    """A worker's delivery thread; it runs only while deliveries are pending."""

    thread_name = "idp-logout-delivery"

    def __init__(self, app: Flask):
        super().__init__(app)
        self._sweep = False
        self.last_sweep = time.monotonic()

    @property
    def enabled(self) -> bool:
        return bool(self.app.config["LOGOUT_WORKER"]) and super().enabled

    def kick(self, sweep: bool = False) -> None:
        """Look for due work now (starting the thread if it is not running)."""
        if not self.enabled:
            return
        with self._lock:
            self._sweep = self._sweep or sweep
        super().kick()

    def maybe_sweep(self) -> None:
        """Called on requests: every SESSION_SWEEP_INTERVAL, look for timed-out sessions."""
        interval = float(self.app.config["SESSION_SWEEP_INTERVAL"])
        if time.monotonic() - self.last_sweep >= interval:
            self.last_sweep = time.monotonic()
            self.kick(sweep=True)

    def retry_after_error(self) -> float:
        return float(self.app.config["BACKCHANNEL_LOGOUT_RETRY_DELAY"])

    def round(self) -> float | None:
        with self._lock:
            sweep, self._sweep = self._sweep, False
        if sweep:
            from ..auth.session import expire_timed_out

            expire_timed_out()
        deliver_due()
        return seconds_until_next()


def dispatcher(app: Flask | None = None) -> Dispatcher:
    return (app or current_app).extensions["idp.logout"]


# --- front-channel (Front-Channel Logout 1.0 §2, §3) --------------------------------------


def frontchannel_uris(rows: list[UserSession]) -> list[str]:
    """The iframe URLs that tell this browser's relying parties the session ended."""
    issuer = current_app.config["ISSUER"]
    uris = []
    for row in rows:
        for client in session_clients(row):
            uri = client.frontchannel_logout_uri
            if not uri or urlsplit(uri).scheme not in ("https", "http"):
                continue
            if client.frontchannel_logout_session_required:
                uri = add_params_to_uri(uri, [("iss", issuer), ("sid", row.sid)])
            uris.append(uri)
    return list(dict.fromkeys(uris))


def origin(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


# --- client metadata checks (used by the CLI and dynamic registration) ------------------


def _web_uri_problem(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "not a valid URI"
    if parts.fragment or "#" in uri:
        return "must not contain a fragment"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return None
    return "must be an absolute https URL (http only on loopback hosts)"


def invalid_backchannel_logout_uri(uri: str) -> str | None:
    """None if uri may be a backchannel_logout_uri (Back-Channel Logout 1.0 §2.2) that the
    server will call (not on a private address, idp/outbound.py)."""
    return _web_uri_problem(uri) or outbound.problem(uri)


def invalid_frontchannel_logout_uri(uri: str, redirect_uris: list[str]) -> str | None:
    """None if uri may be a frontchannel_logout_uri (Front-Channel Logout 1.0 §2): an
    absolute URL whose scheme, host and port are those of a registered redirect URI."""
    problem = _web_uri_problem(uri)
    if problem:
        return problem
    if origin(uri) not in {origin(r) for r in redirect_uris}:
        return "must have the scheme, host and port of a registered redirect URI"
    return None


def init_app(app: Flask) -> None:
    app.extensions["idp.logout"] = worker = Dispatcher(app)
    app.before_request(worker.maybe_sweep)  # a time check on each request
