"""MFA policy: per user, per group, for admins by default, per client (step-up).

NIST SP 800-63B §4.2 (AAL2 needs two factors); OIDC Core §3.1.2.1 (acr); a user who must
have MFA and has none is led through enrolment before any session starts.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import db
from idp.models import Client, Group, User, UserSession
from idp.oauth.acr import MFA
from tests.helpers import Auth, query

from .conftest import code_at, page_secret, post_form


def set_user(app, username: str, **values) -> None:
    with app.app_context():
        user = db.session().scalar(select(User).where(User.username == username))
        for name, value in values.items():
            setattr(user, name, value)
        db.session().commit()


def sessions(app) -> list[UserSession]:
    with app.app_context():
        return list(db.session().scalars(select(UserSession)))


def enrol_at_sign_in(client) -> str:
    page = client.get("/login/enrol")
    assert page.status_code == 200
    secret = page_secret(page.get_data(as_text=True))
    done = post_form(client, "/login/enrol", code=code_at(secret))
    assert done.status_code == 200, done.get_data(as_text=True)[:300]
    assert "Your recovery codes" in done.get_data(as_text=True)
    return secret


def test_a_user_who_must_use_mfa_enrols_before_the_session_starts(app, client, auth, user):
    set_user(app, "alice", mfa_required=True)
    response = auth.login()
    assert response.location.endswith("/login/enrol")
    assert sessions(app) == []  # no session until the second factor is set up and used
    assert "/login" in client.get("/account/").location
    enrol_at_sign_in(client)
    assert client.get("/account/").status_code == 200
    [row] = sessions(app)
    assert row.amr == ["pwd", "otp", "mfa"]


def test_a_group_can_require_mfa(app, client, auth, user):
    with app.app_context():
        s = db.session()
        group = Group(name="finance", mfa_required=True)
        group.members.append(s.get(User, user.id))
        s.add(group)
        s.commit()
    assert auth.login().location.endswith("/login/enrol")


def test_admins_must_use_mfa_by_default(app, client, auth, factory):
    factory.user(username="root", email="root@example.com", is_admin=True)
    assert auth.login("root").location.endswith("/login/enrol")
    enrol_at_sign_in(client)
    assert client.get("/admin/users").status_code == 200


@pytest.mark.config(MFA_REQUIRED_FOR_ADMINS=False)
def test_the_admin_default_can_be_turned_off(app, client, auth, factory):
    factory.user(username="root", email="root@example.com", is_admin=True)
    assert auth.login("root").location.endswith("/account/")


def test_a_client_that_requires_mfa_steps_up_at_authorize(app, client, auth, user, oauth_client):
    with app.app_context():
        row = db.session().scalar(select(Client).where(Client.client_id == oauth_client.client_id))
        row.require_mfa = True
        db.session().commit()
    auth.login()  # password only: fine for the account page
    assert client.get("/account/").status_code == 200
    params, verifier = auth.code_flow_params(oauth_client)
    response = client.get("/authorize", query_string=params)
    assert response.location.endswith("/login/enrol")  # no factor yet: enrol, then go on
    enrol_at_sign_in(client)
    code = query(auth.authorize(params).location)["code"]
    tokens = auth.exchange(oauth_client, code, verifier).get_json()
    from .test_acr import id_token_claims

    assert id_token_claims(client, tokens)["acr"] == MFA
    # The step-up raised the same session (same sid), it did not start another.
    assert len([s for s in sessions(app) if s.ended_at is None]) == 1


def test_the_policy_of_one_user_does_not_touch_another(app, client, auth, user, factory):
    factory.user(username="bob", email="bob@example.com", mfa_required=True)
    assert auth.login().location.endswith("/account/")
    assert Auth(app.test_client()).login("bob").location.endswith("/login/enrol")
