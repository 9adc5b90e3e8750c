"""Single-use artefacts under a race (issue 20): a device-code decision and poll (RFC 8628),
a pushed request_uri (RFC 9126 §4), and what revoking access does to an approved device
code. Each race runs forced (the other request's effect injected at the worst moment)
and natural (threads released together against the real database).
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select, update

from idp import db
from idp.models import (
    AuditEvent,
    AuthorizationCode,
    Consent,
    DeviceCode,
    PushedAuthorizationRequest,
    Token,
    secret_hash,
    utcnow,
)
from idp.oauth import device, par, tokens

from ..helpers import Auth, basic_auth, csrf_token
from .conftest import device_authorization, poll, race
from .test_device import enter_code, row_for
from .test_par import authorize_with, consent, pushed


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session().scalar(select(func.count()).select_from(model).where(*where))


def signed_in(app):
    http = app.test_client()
    Auth(http).login()
    return http


# --- RFC 8628: the user's decision and the poll --------------------------------------------


def confirmation(http, user_code: str) -> str:
    """Open /device, type the code; the CSRF token of the confirmation page."""
    page = http.get("/device")
    confirm = http.post(
        "/device",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "user_code": user_code},
    )
    assert confirm.status_code == 200
    return csrf_token(confirm.get_data(as_text=True))


def test_a_decision_made_meanwhile_wins(app, client, auth, user, device_client, monkeypatch):
    # RFC 8628 §3.3: one decision per code. Another tab denies after this request found the
    # code pending and before it stores "approved": the approval changes nothing.
    started = device_authorization(client, device_client).get_json()
    auth.login()
    token = confirmation(client, started["user_code"])
    original = device.find_pending

    def racing(code):
        found = original(code)
        with app.app_context():
            session = db.session()
            session.execute(update(DeviceCode).values(status="denied", user_id=user.id))
            session.commit()
        return found

    monkeypatch.setattr(device, "find_pending", racing)
    response = client.post(
        "/device", data={"csrf_token": token, "user_code": started["user_code"], "allow": "Allow"}
    )
    assert response.status_code == 400
    assert row_for(app, started["device_code"]).status == "denied"
    assert count(app, Consent) == 0
    assert count(app, AuditEvent, AuditEvent.event == "device.approved") == 0


def test_simultaneous_decisions_record_one(app, client, user, device_client):
    # RFC 8628 §3.3: two tabs answering at once: one decision is recorded, the other is told
    # the code is no longer valid.
    started = device_authorization(client, device_client).get_json()
    tabs = [signed_in(app) for _ in range(4)]
    forms = {id(http): confirmation(http, started["user_code"]) for http in tabs}
    pending = list(tabs)

    def answer(_http):
        http = pending.pop()
        data = {"csrf_token": forms[id(http)], "user_code": started["user_code"], "allow": "Allow"}
        return http.post("/device", data=data)

    responses = race(app, len(tabs), answer)
    assert Counter(r.status_code for r in responses) == Counter({200: 1, 400: len(tabs) - 1})
    assert count(app, AuditEvent, AuditEvent.event == "device.approved") == 1


def test_revoking_access_expires_an_approved_device_code(app, client, auth, user, device_client):
    # Issue 19 §3: an approved code not yet polled must not yield tokens once the user
    # revoked the application (RFC 8628 §3.5 expired_token).
    started = device_authorization(client, device_client).get_json()
    auth.login()
    enter_code(client, started["user_code"])
    revoke_app(client, device_client)
    response = poll(client, device_client, started["device_code"])
    assert response.status_code == 400
    assert response.get_json()["error"] == "expired_token"
    assert count(app, Token) == 0


def revoke_app(http, registered) -> None:
    page = http.get("/account/")
    response = http.post(
        f"/account/apps/{registered.client_id}/revoke",
        data={"csrf_token": csrf_token(page.get_data(as_text=True))},
    )
    assert response.status_code == 302


def test_revoking_access_while_the_device_gets_its_tokens_revokes_them(
    app, client, auth, user, device_client, monkeypatch
):
    # Issue 19 §3: the poll won the device code, then the user revoked the application
    # before the token row existed: the new tokens are revoked (tokens.settle).
    started = device_authorization(client, device_client).get_json()
    auth.login()
    enter_code(client, started["user_code"])
    original, pending = tokens.insert, [True]

    def racing(session, row):
        if pending:
            pending.pop()
            revoke_app(client, device_client)
        return original(session, row)

    monkeypatch.setattr(tokens, "insert", racing)
    response = poll(app.test_client(), device_client, started["device_code"])
    assert response.status_code == 200
    monkeypatch.undo()
    body = response.get_json()
    introspection = app.test_client().post(
        "/introspect",
        data={"token": body["access_token"]},
        headers=basic_auth(device_client.client_id, device_client.client_secret),
    )
    assert introspection.get_json() == {"active": False}
    assert count(app, Token, Token.revoked_at.is_(None)) == 0


# --- RFC 9126 §4: a request_uri answers once --------------------------------------------------


def answer_after_another_tab(app, client, auth, oauth_client, monkeypatch, other_tab):
    """Open the consent page of a pushed request, then answer it; other_tab(session, params)
    runs once this answer has found the request_uri usable (another tab answering in
    between), before the answer goes on. The answer's response."""
    auth.login()
    request_uri, params, _ = pushed(client, oauth_client)
    page = authorize_with(client, oauth_client.client_id, request_uri)
    assert page.status_code == 200
    original = par._claim

    def racing(row):  # runs once the request_uri was found usable
        original(row)
        with app.app_context():
            session = db.session()
            session.execute(update(PushedAuthorizationRequest).values(used_at=utcnow()))
            other_tab(session, params)
            session.commit()

    monkeypatch.setattr(par, "_claim", racing)
    return consent(client, page)[0]


def test_a_request_uri_used_meanwhile_gives_no_second_code(
    app, client, auth, user, oauth_client, monkeypatch
):
    # RFC 9126 §4 ("one-time use"): another tab's answer used the request_uri after this
    # request resolved it and before this answer: no second code.
    response = answer_after_another_tab(
        app, client, auth, oauth_client, monkeypatch, lambda session, params: None
    )
    assert response.status_code == 400
    assert count(app, AuthorizationCode) == 0


def test_an_answer_made_meanwhile_sends_no_second_response_to_the_client(
    app, client, auth, user, oauth_client, monkeypatch
):
    # RFC 9126 §4 ("one-time use"): another tab answered after this request resolved the
    # request_uri, so the other tab's code now holds the pushed nonce and this request fails
    # Authlib's replay check (OIDC Core §3.1.2.1). The client already had its response:
    # this error is shown here, not redirected as a second one.
    def code_of_the_other_tab(session, params):
        session.add(
            AuthorizationCode(
                code_hash=secret_hash("the other tab's code"),
                client_id=oauth_client.client_id,
                user_id=user.id,
                redirect_uri=oauth_client.redirect_uri,
                scope=params["scope"],
                nonce=params["nonce"],
                auth_time=int(utcnow().timestamp()),
                expires_at=utcnow(),
            )
        )

    response = answer_after_another_tab(
        app, client, auth, oauth_client, monkeypatch, code_of_the_other_tab
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "invalid_request_uri" in response.get_data(as_text=True)
    assert count(app, AuthorizationCode) == 1  # the other tab's alone


def test_simultaneous_answers_to_one_request_uri_give_one_code(app, client, user, oauth_client):
    # RFC 9126 §4: several tabs on the consent page of one pushed request answer at once.
    request_uri, _, _ = pushed(client, oauth_client)
    tabs = [signed_in(app) for _ in range(4)]
    pages = {id(http): authorize_with(http, oauth_client.client_id, request_uri) for http in tabs}
    pending = list(tabs)

    def answer(_http):
        http = pending.pop()
        return consent(http, pages[id(http)])[0]

    responses = race(app, len(tabs), answer)
    assert Counter(r.status_code for r in responses) == Counter({302: 1, 400: len(tabs) - 1})
    assert count(app, AuthorizationCode) == 1
    with app.app_context():
        row = db.session().scalar(
            select(PushedAuthorizationRequest).where(
                PushedAuthorizationRequest.request_uri_hash == secret_hash(request_uri)
            )
        )
        assert row.used_at is not None
