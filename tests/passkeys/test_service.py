"""The passkey service (idp.auth.passkeys) against a software authenticator: WebAuthn L3
§7.1 registration and §7.2 authentication, the signature counter, the UV flag, the RP ID and
origin from ISSUER, single-use challenges, credentials of other users."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp import db
from idp.auth import passkeys
from idp.models import User, WebAuthnChallengeReplay, WebAuthnCredential

from .authenticator import SoftAuthenticator
from .support import ORIGIN, RP_ID, events


def load(username: str) -> User:
    return db.session().scalar(select(User).where(User.username == username))


def registered(app, authenticator, username="alice", name="Laptop") -> None:
    with app.test_request_context():
        user = load(username)
        options = passkeys.registration_options(user)
        passkeys.register(user, json.dumps(authenticator.create(options, ORIGIN)), name)
        db.session().commit()


def assert_refused(call, message="could not be used"):
    with pytest.raises(passkeys.PasskeyError) as caught:
        call()
    assert message in str(caught.value)
    db.session().commit()  # the audit record of the refusal


def test_rp_id_and_origin_come_from_the_issuer(app):
    # WebAuthn L3 §5.1.4.1: the RP ID is a registrable domain of the origin.
    with app.test_request_context():
        assert passkeys.rp_id() == RP_ID
        assert passkeys.origin() == ORIGIN


@pytest.mark.parametrize(
    ("issuer", "rp_id", "origin"),
    [
        ("https://id.example.com", "id.example.com", "https://id.example.com"),
        ("https://id.example.com:443", "id.example.com", "https://id.example.com"),
        ("https://id.example.com:8443/tenant", "id.example.com", "https://id.example.com:8443"),
        ("http://localhost:5000", "localhost", "http://localhost:5000"),
    ],
)
def test_origin_is_what_a_browser_sends(app, issuer, rp_id, origin):
    # WebAuthn L3 §5.8.1: clientDataJSON.origin is the serialized origin (no default port,
    # no path).
    app.config["ISSUER"] = issuer
    with app.test_request_context():
        assert passkeys.rp_id() == rp_id
        assert passkeys.origin() == origin


def test_registration_stores_public_material_only(app, user, authenticator):
    with app.test_request_context():
        options = json.loads(passkeys.registration_options(load("alice")))
    assert options["rp"]["id"] == RP_ID
    assert options["attestation"] == "none"  # issue #15: attestation none by default
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert len(options["challenge"]) >= 43  # 32 random bytes, base64url
    # The user handle is the opaque sub, never the username (§14.6.1).
    assert "alice" not in json.dumps(options["user"]["id"])
    registered(app, authenticator)
    with app.app_context():
        row = db.session().scalar(select(WebAuthnCredential))
        assert row.credential_id == authenticator.id
        assert row.name == "Laptop"
        assert row.transports == ["internal"]
        assert row.user_verified and not row.backup_eligible
        assert passkeys.has_passkey(load("alice"))
    assert [e.actor for e in events(app, "passkey.added")] == [user.sub]


def test_registration_excludes_known_credentials(app, user, authenticator):
    # §5.4 excludeCredentials: the same authenticator is not registered twice.
    registered(app, authenticator)
    with app.test_request_context():
        options = json.loads(passkeys.registration_options(load("alice")))
    assert [c["id"] for c in options["excludeCredentials"]] == [authenticator.id]


def test_a_credential_registered_twice_is_refused(app, user, authenticator):
    # §7.1 step 26: a credential id already registered is refused.
    registered(app, authenticator)
    with app.test_request_context():
        alice = load("alice")
        credential = authenticator.create(passkeys.registration_options(alice), ORIGIN)
        assert_refused(
            lambda: passkeys.register(alice, json.dumps(credential), "Again"), "already registered"
        )


@pytest.mark.parametrize(
    ("origin", "rp_id"),
    [("https://evil.example", None), (ORIGIN, "evil.example"), ("http://localhost:8080", None)],
)
def test_registration_from_another_origin_or_rp_is_refused(app, user, authenticator, origin, rp_id):
    # §7.1 steps 9 and 13: origin and rpIdHash must be the RP's.
    with app.test_request_context():
        alice = load("alice")
        credential = authenticator.create(passkeys.registration_options(alice), origin, rp_id)
        assert_refused(
            lambda: passkeys.register(alice, json.dumps(credential), "X"), "could not be verified"
        )
        assert not passkeys.has_passkey(alice)
    assert events(app, "passkey.registration_failed")


def test_usernameless_sign_in_finds_the_owner(app, user, authenticator):
    registered(app, authenticator)
    with app.test_request_context():
        options = json.loads(passkeys.authentication_options())
        assert options["allowCredentials"] == []  # the authenticator offers its own
        assert options["rpId"] == RP_ID
        who, amr = passkeys.verify_authentication(json.dumps(authenticator.get(options, ORIGIN)))
        db.session().commit()
        assert who.username == "alice"
        # RFC 8176: a device-bound key is "hwk"; UV done by the authenticator adds "user".
        assert amr == ["hwk", "user"]
        row = db.session().scalar(select(WebAuthnCredential))
        assert row.sign_count == 1 and row.last_used_at is not None
    assert events(app, "passkey.used")


def test_a_synced_passkey_is_swk_and_without_uv_has_no_user(app, user):
    synced = SoftAuthenticator(backup_eligible=True, counter=False, uv=False)
    registered(app, synced)
    with app.test_request_context():
        options = passkeys.authentication_options()
        _, amr = passkeys.verify_authentication(json.dumps(synced.get(options, ORIGIN)))
        assert amr == ["swk"]


def test_second_factor_lists_only_the_users_credentials(app, user, bob, authenticator):
    registered(app, authenticator)
    registered(app, SoftAuthenticator(), username="bob")
    with app.test_request_context():
        options = json.loads(passkeys.authentication_options(load("alice")))
        assert [c["id"] for c in options["allowCredentials"]] == [authenticator.id]
        who, _ = passkeys.verify_authentication(
            json.dumps(authenticator.get(options, ORIGIN)), user=load("alice")
        )
        assert who.username == "alice"


def test_another_users_credential_is_refused(app, user, bob, authenticator):
    # Issue #15 bypass: an assertion for another user's credential, at alice's second factor.
    bobs = SoftAuthenticator()
    registered(app, authenticator)
    registered(app, bobs, username="bob")
    with app.test_request_context():
        alice = load("alice")
        options = passkeys.authentication_options(alice)
        assertion = json.dumps(bobs.get(options, ORIGIN))
        assert_refused(lambda: passkeys.verify_authentication(assertion, user=alice))
    [event] = events(app, "passkey.failure")
    assert event.details["reason"] == "credential of another user"


def test_a_user_handle_of_someone_else_is_refused(app, user, bob, authenticator):
    # §7.2 step 6: the user handle must be the credential's owner's.
    registered(app, authenticator)
    with app.test_request_context():
        options = passkeys.authentication_options()
        bob_handle = passkeys.user_handle(load("bob"))
        assertion = json.dumps(authenticator.get(options, ORIGIN, user_handle=bob_handle))
        assert_refused(lambda: passkeys.verify_authentication(assertion))


def test_a_signature_counter_that_does_not_grow_is_refused_as_a_clone(app, user, authenticator):
    # WebAuthn L3 §6.1.1 and §7.2 step 22: a possibly cloned authenticator.
    registered(app, authenticator)
    for count in (5, 5, 3):
        with app.test_request_context():
            options = passkeys.authentication_options()
            assertion = json.dumps(authenticator.get(options, ORIGIN, sign_count=count))
            if count == 5 and not events(app, "passkey.used"):
                passkeys.verify_authentication(assertion)
                db.session().commit()
            else:
                assert_refused(lambda a=assertion: passkeys.verify_authentication(a))
    clones = events(app, "passkey.clone_suspected")
    assert [(e.details["stored_count"], e.details["presented_count"]) for e in clones] == [
        (5, 5),
        (5, 3),
    ]
    with app.app_context():
        assert db.session().scalar(select(WebAuthnCredential.sign_count)) == 5


def test_a_zero_counter_is_accepted_when_it_was_always_zero(app, user):
    # §6.1.1: both zero means the authenticator has no counter (synced passkeys).
    synced = SoftAuthenticator(counter=False)
    registered(app, synced)
    for _ in range(2):
        with app.test_request_context():
            options = passkeys.authentication_options()
            passkeys.verify_authentication(json.dumps(synced.get(options, ORIGIN)))
            db.session().commit()
    assert not events(app, "passkey.clone_suspected")


@pytest.mark.config(WEBAUTHN_USER_VERIFICATION="required")
def test_user_verification_required_refuses_a_bare_touch(app, user, authenticator):
    # §7.2 step 17: when UV is required the UV flag must be set.
    registered(app, authenticator)
    with app.test_request_context():
        options = json.loads(passkeys.authentication_options())
        assert options["userVerification"] == "required"
        assertion = json.dumps(authenticator.get(options, ORIGIN, uv=False))
        assert_refused(lambda: passkeys.verify_authentication(assertion))
    [event] = events(app, "passkey.failure")
    assert "User verification is required" in event.details["reason"]
    with app.test_request_context():
        options = passkeys.authentication_options()
        passkeys.verify_authentication(json.dumps(authenticator.get(options, ORIGIN, uv=True)))


@pytest.mark.config(WEBAUTHN_USER_VERIFICATION="required")
def test_user_verification_required_at_registration(app, user, authenticator):
    # §7.1 step 15.
    with app.test_request_context():
        alice = load("alice")
        credential = authenticator.create(passkeys.registration_options(alice), ORIGIN, uv=False)
        assert_refused(
            lambda: passkeys.register(alice, json.dumps(credential), "X"), "could not be verified"
        )


@pytest.mark.parametrize(
    ("origin", "rp_id", "reason"),
    [("https://evil.example", None, "origin"), (ORIGIN, "evil.example", "RP ID")],
)
def test_an_assertion_for_another_origin_or_rp_is_refused(
    app, user, authenticator, origin, rp_id, reason
):
    # §7.2 steps 13 and 15: phishing resistance rests on these two checks.
    registered(app, authenticator)
    with app.test_request_context():
        options = passkeys.authentication_options()
        assertion = json.dumps(authenticator.get(options, origin, rp_id))
        assert_refused(lambda: passkeys.verify_authentication(assertion))
    [event] = events(app, "passkey.failure")
    assert reason in event.details["reason"]


def test_a_challenge_is_answered_once(app, user, authenticator):
    # §13.4.3: challenges are single-use. The session may be replayed (a signed cookie), so
    # the answered challenge is also recorded server-side.
    registered(app, authenticator)
    with app.test_request_context() as context:
        options = passkeys.authentication_options()
        saved = dict(context.session)
        first = json.dumps(authenticator.get(options, ORIGIN))
        passkeys.verify_authentication(first)
        db.session().commit()
        # The same response again: the session no longer holds the challenge.
        assert_refused(lambda: passkeys.verify_authentication(first), "expired")
        # The old cookie sent again, with a fresh signature on the old challenge.
        context.session.update(saved)
        again = json.dumps(authenticator.get(options, ORIGIN))
        assert_refused(lambda: passkeys.verify_authentication(again))
        assert db.session().scalar(select(WebAuthnChallengeReplay.key_hash)) is not None
    [event] = events(app, "passkey.failure")
    assert event.details["reason"] == "challenge replayed"


def test_an_expired_challenge_is_refused(app, user, authenticator, monkeypatch):
    registered(app, authenticator)
    with app.test_request_context():
        options = passkeys.authentication_options()
        later = passkeys.time.time() + app.config["WEBAUTHN_TIMEOUT"] + 1
        monkeypatch.setattr(passkeys.time, "time", lambda: later)
        assertion = json.dumps(authenticator.get(options, ORIGIN))
        assert_refused(lambda: passkeys.verify_authentication(assertion), "expired")


def test_options_made_for_one_user_do_not_serve_another(app, user, bob, authenticator):
    # Issue #15 bypass: reuse another sign-in's half-finished ceremony.
    registered(app, authenticator)
    with app.test_request_context():
        options = passkeys.authentication_options(load("bob"))
        assertion = json.dumps(authenticator.get(options, ORIGIN))
        assert_refused(lambda: passkeys.verify_authentication(assertion, user=load("alice")))


def test_a_disabled_user_cannot_sign_in_with_a_passkey(app, user, authenticator):
    registered(app, authenticator)
    with app.test_request_context():
        load("alice").disabled = True
        db.session().commit()
        options = passkeys.authentication_options()
        assertion = json.dumps(authenticator.get(options, ORIGIN))
        assert_refused(lambda: passkeys.verify_authentication(assertion))


@pytest.mark.parametrize(
    "garbage", ["", "null", "[]", '{"id": "x"}', '{"id": "AA", "rawId": "AA", "response": {}}']
)
def test_malformed_responses_are_refused(app, user, authenticator, garbage):
    registered(app, authenticator)
    with app.test_request_context():
        passkeys.authentication_options()
        assert_refused(lambda: passkeys.verify_authentication(garbage))


def test_removing_a_user_removes_their_passkeys(app, user, authenticator):
    registered(app, authenticator)
    with app.app_context():
        s = db.session()
        s.delete(load("alice"))
        s.commit()
        assert s.scalar(select(WebAuthnCredential)) is None
