"""Device authorization grant (RFC 8628) through the HTTP interface: the device authorization
endpoint, the user-code page, and polling at the token endpoint."""

from __future__ import annotations

import re
import time
from collections import Counter
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from idp import db
from idp.models import AuditEvent, Consent, DeviceCode, Token, secret_hash, utcnow

from ..helpers import basic_auth, csrf_refused, csrf_token
from .conftest import DEVICE_GRANT, device_authorization, poll, race, set_row

USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")


def row_for(app, device_code: str) -> DeviceCode:
    with app.app_context():
        return db.session().scalar(
            select(DeviceCode).where(DeviceCode.device_code_hash == secret_hash(device_code))
        )


def events(app, name: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == name)))


def enter_code(http, user_code: str, decision: str | None = "allow", typed: str | None = None):
    """The user's browser: open /device, type the code, continue, then allow or deny."""
    page = http.get("/device")
    token = csrf_token(page.get_data(as_text=True))
    confirm = http.post(
        "/device", data={"csrf_token": token, "user_code": user_code if typed is None else typed}
    )
    if decision is None or confirm.status_code != 200:
        return confirm
    token = csrf_token(confirm.get_data(as_text=True))
    return http.post(
        "/device", data={"csrf_token": token, "user_code": user_code, decision: decision.title()}
    )


@pytest.fixture
def started(client, device_client):
    response = device_authorization(client, device_client)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


# --- §3.1, §3.2: device authorization request and response -------------------------------


def test_device_authorization_response_has_every_field(app, client, device_client):
    # RFC 8628 §3.2: device_code, user_code, verification_uri, verification_uri_complete,
    # expires_in, interval; §6.1: a short code from a consonant alphabet.
    response = device_authorization(client, device_client)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert USER_CODE.match(body["user_code"])
    assert body["verification_uri"] == "http://localhost/device"
    complete = urlsplit(body["verification_uri_complete"])
    assert complete.path == "/device"
    assert parse_qs(complete.query) == {"user_code": [body["user_code"]]}
    assert body["expires_in"] == 600
    assert body["interval"] == 5
    assert len(body["device_code"]) >= 43
    # Stored as hashes only (like codes and tokens); the audit log names the client.
    row = row_for(app, body["device_code"])
    assert row.user_code_hash == secret_hash(body["user_code"].replace("-", ""))
    assert row.status == "pending" and row.scope == "openid profile"
    [event] = events(app, "device.code_issued")
    assert event.target == device_client.client_id


@pytest.mark.config(DEVICE_CODE_LIFETIME=120, DEVICE_POLL_INTERVAL=8)
def test_lifetime_and_interval_come_from_configuration(client, device_client):
    # RFC 8628 §3.2: expires_in and interval are the server's to choose.
    body = device_authorization(client, device_client).get_json()
    assert (body["expires_in"], body["interval"]) == (120, 8)


def test_public_client_starts_with_its_client_id(client, public_device_client):
    # RFC 8628 §3.1: client_id is enough for a client that does not authenticate.
    response = device_authorization(client, public_device_client)
    assert response.status_code == 200
    assert USER_CODE.match(response.get_json()["user_code"])


def test_client_not_registered_for_the_grant_is_refused(client, oauth_client):
    # RFC 8628 §3.1 with RFC 6749 §5.2: unauthorized_client.
    response = device_authorization(client, oauth_client)
    assert response.status_code == 400
    assert response.get_json()["error"] == "unauthorized_client"


def test_wrong_secret_is_invalid_client(client, device_client):
    # RFC 8628 §3.1: the client authenticates as at the token endpoint (RFC 6749 §3.2.1).
    response = client.post(
        "/device_authorization",
        data={"scope": "openid"},
        headers=basic_auth(device_client.client_id, "wrong"),
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_scope_is_narrowed_to_the_clients_scopes(app, client, device_client):
    # As at the authorization endpoint: only scopes the client may have are kept.
    body = device_authorization(client, device_client, scope="openid admin:everything").get_json()
    assert row_for(app, body["device_code"]).scope == "openid"


# --- §3.3: user interaction ---------------------------------------------------------------


def test_verification_page_requires_sign_in_and_keeps_the_code(client, started):
    # RFC 8628 §3.3: the user signs in first, then sees the code again (§3.3.1).
    response = client.get(f"/device?user_code={started['user_code']}")
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    assert parse_qs(urlsplit(location).query)["next"] == [
        f"/device?user_code={started['user_code']}"
    ]


def test_complete_uri_only_fills_the_form(app, client, auth, user, started):
    # RFC 8628 §3.3.1 / §5.4: the code from the link is shown for the user to confirm; nothing
    # is looked up or decided by following the link.
    auth.login()
    page = client.get(f"/device?user_code={started['user_code']}").get_data(as_text=True)
    assert f'value="{started["user_code"]}"' in page
    assert "Continue" in page
    assert row_for(app, started["device_code"]).status == "pending"


def test_confirmation_page_names_the_client_and_scopes_in_plain_words(client, auth, user, started):
    # RFC 8628 §3.3: the user sees which client asks for what before approving.
    auth.login()
    response = enter_code(client, started["user_code"], decision=None)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Living Room TV" in page
    assert "Sign you in and know who you are" in page
    assert "Your name and basic profile" in page
    assert started["user_code"] in page
    assert 'name="allow"' in page and 'name="deny"' in page


@pytest.mark.parametrize(
    "typed", ["{code}", "{lower}", "{plain}", " {spaced} ", "{lower_plain}"], ids=str
)
def test_typed_code_is_normalised(client, auth, user, started, typed):
    # RFC 8628 §6.1: case, dashes and spaces do not matter when the user types the code.
    code = started["user_code"]
    text = typed.format(
        code=code,
        lower=code.lower(),
        plain=code.replace("-", ""),
        spaced=" ".join(code.replace("-", "")),
        lower_plain=code.replace("-", "").lower(),
    )
    auth.login()
    response = enter_code(client, code, decision=None, typed=text)
    assert response.status_code == 200
    assert "Living Room TV" in response.get_data(as_text=True)


@pytest.mark.parametrize("typed", ["BCDF-GHJK", "AAAA-AAAA", "BCDF", ""])
def test_unknown_or_malformed_code_is_refused(app, client, auth, user, started, typed):
    # RFC 8628 §3.3: an invalid code gets an error, and nothing is approved.
    auth.login()
    response = enter_code(client, started["user_code"], typed=typed)
    assert response.status_code == 400
    assert "not valid or has expired" in response.get_data(as_text=True)
    assert row_for(app, started["device_code"]).status == "pending"


@pytest.mark.config(RATELIMIT_DEVICE_ENTRY="3/minute")
@pytest.mark.usefixtures("steady_clock")
def test_code_entry_is_rate_limited(app, client, auth, user, started):
    # RFC 8628 §5.1: guessing user codes is slowed down by limiting entry attempts.
    auth.login()
    token = csrf_token(client.get("/device").get_data(as_text=True))
    guesses = [
        client.post("/device", data={"csrf_token": token, "user_code": "BCDF-GHJK"})
        for _ in range(3)
    ]
    assert [r.status_code for r in guesses] == [400, 400, 400]
    blocked = client.post("/device", data={"csrf_token": token, "user_code": started["user_code"]})
    assert blocked.status_code == 429
    assert "Retry-After" in blocked.headers
    assert row_for(app, started["device_code"]).status == "pending"


def test_expired_code_cannot_be_entered(app, client, auth, user, started):
    # RFC 8628 §3.2 expires_in: after it the user code is useless.
    set_row(app, DeviceCode, row_for(app, started["device_code"]).id, expires_at=utcnow())
    auth.login()
    response = enter_code(client, started["user_code"])
    assert response.status_code == 400


def test_decision_without_csrf_token_is_refused(app, client, auth, user, started):
    # The approval is a state-changing form: without its CSRF token nothing is decided.
    auth.login()
    response = client.post("/device", data={"user_code": started["user_code"], "allow": "Allow"})
    assert csrf_refused(response)
    assert row_for(app, started["device_code"]).status == "pending"


def test_approval_is_recorded_with_user_consent_and_audit(app, client, auth, user, started):
    # RFC 8628 §3.3: the user's approval is what the device's polling waits for.
    auth.login()
    response = enter_code(client, started["user_code"])
    assert response.status_code == 200
    assert "Device connected" in response.get_data(as_text=True)
    row = row_for(app, started["device_code"])
    assert row.status == "approved" and row.user_id == user.id
    assert row.auth_time is not None and row.amr == ["pwd"]
    with app.app_context():
        consent = db.session().scalar(select(Consent).where(Consent.user_id == user.id))
        assert consent.scopes == {"openid", "profile"}  # listed on the account page
    [event] = events(app, "device.approved")
    assert event.actor == user.sub and event.target == row.client_id


def test_a_code_is_decided_only_once(app, client, auth, user, started):
    # A second answer for the same code (another tab, a replay) changes nothing.
    auth.login()
    assert enter_code(client, started["user_code"], "deny").status_code == 200
    response = enter_code(client, started["user_code"], "allow")
    assert response.status_code == 400
    assert row_for(app, started["device_code"]).status == "denied"


# --- §3.4, §3.5: polling ------------------------------------------------------------------


def test_pending_request_answers_authorization_pending(client, device_client, started):
    # RFC 8628 §3.5: authorization_pending while the user has not answered.
    response = poll(client, device_client, started["device_code"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "authorization_pending"
    assert response.headers["Cache-Control"] == "no-store"


def test_polling_too_fast_answers_slow_down_and_grows_the_interval(
    app, client, device_client, started
):
    # RFC 8628 §3.5: slow_down, and "the interval MUST be increased by 5 seconds for this
    # and all subsequent requests".
    assert poll(client, device_client, started["device_code"]).get_json()["error"] == (
        "authorization_pending"
    )
    response = poll(client, device_client, started["device_code"])
    assert response.get_json()["error"] == "slow_down"
    assert row_for(app, started["device_code"]).interval == 10
    assert poll(client, device_client, started["device_code"]).get_json()["error"] == "slow_down"
    assert row_for(app, started["device_code"]).interval == 15


def test_polling_at_the_interval_is_not_slowed_down(app, client, device_client, started):
    # RFC 8628 §3.5: a client that waits the interval keeps getting authorization_pending.
    poll(client, device_client, started["device_code"])
    row = row_for(app, started["device_code"])
    set_row(app, DeviceCode, row.id, last_polled_at=row.last_polled_at - timedelta(seconds=5))
    response = poll(client, device_client, started["device_code"])
    assert response.get_json()["error"] == "authorization_pending"
    assert row_for(app, started["device_code"]).interval == 5


def test_denied_request_answers_access_denied(app, client, auth, user, device_client, started):
    # RFC 8628 §3.5: access_denied once the user denied.
    auth.login()
    enter_code(client, started["user_code"], "deny")
    response = poll(client, device_client, started["device_code"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "access_denied"
    [event] = events(app, "device.denied")
    assert event.actor == user.sub


def test_expired_code_answers_expired_token(app, client, device_client, started):
    # RFC 8628 §3.5: expired_token once expires_in has passed.
    set_row(app, DeviceCode, row_for(app, started["device_code"]).id, expires_at=utcnow())
    response = poll(client, device_client, started["device_code"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "expired_token"


def test_unknown_device_code_is_invalid_grant(client, device_client, started):
    # RFC 6749 §5.2: an invalid grant.
    response = poll(client, device_client, "not-a-device-code")
    assert response.get_json()["error"] == "invalid_grant"


def test_device_code_of_another_client_is_invalid_grant(client, factory, device_client, started):
    # RFC 6749 §5.2: the grant "was issued to another client".
    other = factory.client(name="Other TV", grant_types=(DEVICE_GRANT,), redirect_uris=())
    response = poll(client, other, started["device_code"])
    assert response.get_json()["error"] == "invalid_grant"


def test_missing_device_code_is_invalid_request(client, device_client):
    # RFC 8628 §3.4: device_code is REQUIRED.
    response = client.post(
        "/token",
        data={"grant_type": DEVICE_GRANT},
        headers=basic_auth(device_client.client_id, device_client.client_secret),
    )
    assert response.get_json()["error"] == "invalid_request"


def test_approved_request_gets_tokens_and_an_id_token(
    app, client, auth, user, device_client, started
):
    # RFC 8628 §3.5 with RFC 6749 §5.1; OIDC Core §2: openid was granted, so an ID token.
    auth.login()
    enter_code(client, started["user_code"])
    response = poll(client, device_client, started["device_code"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid profile"
    assert body["access_token"] and body["refresh_token"]
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    claims = jwt.decode(body["id_token"], jwks).claims
    assert claims["iss"] == "http://localhost"
    assert claims["aud"] == device_client.client_id and claims["sub"] == user.sub
    assert claims["name"] == "Alice Liddell" and claims["amr"] == ["pwd"]
    assert abs(claims["auth_time"] - time.time()) < 60
    row = row_for(app, started["device_code"])
    assert row.used_at is not None
    with app.app_context():
        token = db.session().scalar(select(Token).where(Token.client_id == row.client_id))
        assert token.user_id == user.id and token.grant_type == DEVICE_GRANT
        assert token.auth_time == row.auth_time  # carried into refreshed ID tokens


@pytest.mark.config(ACCESS_TOKEN_FORMAT="jwt")
def test_jwt_access_token_says_how_the_user_signed_in(client, auth, user, device_client, started):
    # RFC 9068 §2.2.1: auth_time and amr of the user who approved on the verification page.
    auth.login()
    enter_code(client, started["user_code"])
    token = poll(client, device_client, started["device_code"]).get_json()["access_token"]
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    claims = jwt.decode(token, jwks).claims
    assert claims["sub"] == user.sub and claims["client_id"] == device_client.client_id
    assert claims["amr"] == ["pwd"] and abs(claims["auth_time"] - time.time()) < 60


def test_userinfo_serves_the_device_access_token(client, auth, user, device_client, started):
    # The issued access token is an ordinary bearer token (RFC 6750).
    auth.login()
    enter_code(client, started["user_code"])
    token = poll(client, device_client, started["device_code"]).get_json()["access_token"]
    http = client.application.test_client()
    response = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.get_json()["sub"] == user.sub


def test_no_id_token_without_openid(client, auth, user, device_client):
    # OIDC Core §3.1.3.3: an ID token only for OpenID requests.
    started = device_authorization(client, device_client, scope="profile").get_json()
    auth.login()
    enter_code(client, started["user_code"])
    body = poll(client, device_client, started["device_code"]).get_json()
    assert "access_token" in body and "id_token" not in body


def test_refresh_after_device_flow_keeps_the_original_auth_time(
    client, auth, user, device_client, started
):
    # OIDC Core §12.2: an ID token from a refresh carries the original auth_time.
    auth.login()
    enter_code(client, started["user_code"])
    first = poll(client, device_client, started["device_code"]).get_json()
    refreshed = client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic_auth(device_client.client_id, device_client.client_secret),
    )
    assert refreshed.status_code == 200, refreshed.get_json()
    jwks = KeySet.import_key_set(client.get("/jwks.json").get_json())
    before = jwt.decode(first["id_token"], jwks).claims
    after = jwt.decode(refreshed.get_json()["id_token"], jwks).claims
    assert after["auth_time"] == before["auth_time"]


def test_device_code_is_redeemed_once(app, client, auth, user, device_client, started):
    # RFC 8628 §3.5 / RFC 6749 §10.5: the code gives tokens once.
    auth.login()
    enter_code(client, started["user_code"])
    assert poll(client, device_client, started["device_code"]).status_code == 200
    again = poll(client, device_client, started["device_code"])
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    with app.app_context():
        assert db.session().scalar(select(func.count(Token.id))) == 1


@pytest.mark.parametrize("n", [2, 8])
def test_concurrent_redemptions_have_exactly_one_winner(
    app, client, auth, user, device_client, started, n
):
    # RFC 8628 §3.5: the conditional UPDATE picks a single winner among racing polls.
    auth.login()
    enter_code(client, started["user_code"])
    responses = race(app, n, lambda http: poll(http, device_client, started["device_code"]))
    outcome = Counter("ok" if r.status_code == 200 else r.get_json()["error"] for r in responses)
    assert outcome == Counter({"ok": 1, "invalid_grant": n - 1})
    with app.app_context():
        assert db.session().scalar(select(func.count(Token.id))) == 1


def test_tokens_are_not_issued_to_a_disabled_user(app, client, auth, user, device_client, started):
    # RFC 6749 §5.2: the grant of a user who can no longer sign in is invalid.
    auth.login()
    enter_code(client, started["user_code"])
    from idp.models import User

    with app.app_context():
        session = db.session()
        session.get(User, user.id).disabled = True
        session.commit()
    assert poll(client, device_client, started["device_code"]).get_json()["error"] == (
        "invalid_grant"
    )


def test_public_client_polls_with_its_client_id(client, auth, user, public_device_client):
    # RFC 8628 §3.4: client_id identifies a client that does not authenticate.
    started = device_authorization(client, public_device_client).get_json()
    auth.login()
    enter_code(client, started["user_code"])
    response = poll(client, public_device_client, started["device_code"])
    assert response.status_code == 200
    assert "refresh_token" not in response.get_json()  # not registered for refresh_token


def test_discovery_advertises_the_device_grant(client):
    # RFC 8628 §4: device_authorization_endpoint; RFC 8414 §2 grant_types_supported.
    doc = client.get("/.well-known/oauth-authorization-server").get_json()
    assert doc["device_authorization_endpoint"] == "http://localhost/device_authorization"
    assert DEVICE_GRANT in doc["grant_types_supported"]
