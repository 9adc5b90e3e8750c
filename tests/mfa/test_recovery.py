"""Recovery codes: NIST SP 800-63B §5.1.2 look-up secrets (≥64 bits, single use, hashed)."""

from __future__ import annotations

from sqlalchemy import select

from idp import db
from idp.models import AuditEvent, RecoveryCode, secret_hash
from tests.factories import PASSWORD
from tests.helpers import csrf_token

from .conftest import code_at, page_secret, post_form, recovery_codes_on, subjects


def enrolled_with_codes(client, auth) -> list[str]:
    assert auth.login().status_code == 302
    page = client.get("/account/totp")
    html = page.get_data(as_text=True)
    shown = client.post(
        "/account/totp",
        data={"csrf_token": csrf_token(html), "code": code_at(page_secret(html))},
    )
    codes = recovery_codes_on(shown.get_data(as_text=True))
    assert len(codes) == 10
    return codes


def test_ten_codes_of_80_bits_are_stored_only_hashed(app, client, auth, user):
    codes = enrolled_with_codes(client, auth)
    assert len(set(codes)) == 10
    assert all(len(c.replace("-", "")) == 16 for c in codes)  # 16 base32 chars: 80 bits
    with app.app_context():
        stored = {r.code_hash for r in db.session().scalars(select(RecoveryCode))}
    assert stored == {secret_hash(c.replace("-", "")) for c in codes}


def test_a_recovery_code_signs_in_once_and_emails_a_notice(app, client, auth, user, mailbox):
    codes = enrolled_with_codes(client, auth)
    auth.logout()
    assert auth.login().location.endswith("/login/totp")
    page = client.get("/login/recovery")
    assert page.status_code == 200
    assert "Use an authenticator app" in page.get_data(as_text=True)
    done = post_form(client, "/login/recovery", code=codes[0].upper())  # case-insensitive
    assert done.status_code == 302 and done.location.endswith("/account/")
    assert client.get("/account/").status_code == 200
    assert "A recovery code was used to sign in" in subjects(app, mailbox)
    with app.app_context():
        used = db.session().scalar(
            select(AuditEvent).where(AuditEvent.event == "recovery_code.used")
        )
        assert used.details["remaining"] == 9
    auth.logout()
    auth.login()
    # Single use: the same code is refused the second time.
    again = post_form(client, "/login/recovery", code=codes[0])
    assert again.status_code == 401
    assert "already used" in again.get_data(as_text=True)
    assert post_form(client, "/login/recovery", code=codes[1]).status_code == 302


def test_regenerating_invalidates_the_old_set(app, client, auth, user, mailbox):
    old = enrolled_with_codes(client, auth)
    page = client.get("/account/recovery-codes")
    assert page.status_code == 200
    token = csrf_token(page.get_data(as_text=True))
    wrong = client.post("/account/recovery-codes", data={"csrf_token": token, "password": "x"})
    assert wrong.status_code == 400
    shown = client.post("/account/recovery-codes", data={"csrf_token": token, "password": PASSWORD})
    new = recovery_codes_on(shown.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    assert 'download="recovery-codes.txt"' in shown.get_data(as_text=True)
    assert "New recovery codes were created for your account" in subjects(app, mailbox)
    auth.logout()
    auth.login()
    assert post_form(client, "/login/recovery", code=old[0]).status_code == 401
    assert post_form(client, "/login/recovery", code=new[0]).status_code == 302


def test_codes_alone_are_not_a_factor(app, client, auth, user):
    enrolled_with_codes(client, auth)
    page = client.get("/account/totp/remove")
    client.post(
        "/account/totp/remove",
        data={"csrf_token": csrf_token(page.get_data(as_text=True)), "password": PASSWORD},
    )
    auth.logout()
    # Without the app the codes back up nothing: the password signs in alone.
    assert auth.login().location.endswith("/account/")
