"""The JWKS (RFC 7517 §5, OIDC Core §10.1) and signing key rotation with a grace period."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, import_key
from sqlalchemy import delete, func, select, update

import idp.cli.instance
from idp import db
from idp.cli import cli
from idp.models import SigningKey, utcnow

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


def jwks(client) -> dict:
    response = client.get("/jwks.json")
    assert response.status_code == 200
    return response.get_json()


def kids(client) -> set[str]:
    return {k["kid"] for k in jwks(client)["keys"]}


def verify(client, id_token: str):
    return jwt.decode(id_token, KeySet.import_key_set(jwks(client)))


def rotate(runner) -> dict[str, str]:
    """`idp keys rotate --json`; returns {alg: new kid}."""
    result = runner.invoke(cli, args=["keys", "rotate", "--json"])
    assert result.exit_code == 0, result.output
    return {k["alg"]: k["kid"] for k in json.loads(result.stdout)["active"]}


def test_jwks_publishes_only_public_key_members(client):
    # RFC 7517 §5 / RFC 7518 §6.2.2, §6.3.2: private parameters never leave the server.
    keys = jwks(client)["keys"]
    assert keys
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key["kid"]
        assert import_key(key).is_private is False


def test_jwks_keys_carry_kid_use_and_alg(client):
    # RFC 7517 §4.2 use, §4.4 alg, §4.5 kid; OIDC Core §10.1: kid needed with several keys.
    keys = jwks(client)["keys"]
    assert len({k["kid"] for k in keys}) == len(keys)
    for key in keys:
        assert key["kid"]
        assert key["use"] == "sig"
        assert key["alg"] in ("RS256", "ES256")
        assert key["kty"] == {"RS256": "RSA", "ES256": "EC"}[key["alg"]]
    assert {k["alg"] for k in keys} == {"RS256", "ES256"}


def test_jwks_is_cacheable_for_a_bounded_time(client):
    # OIDC Core §10.1.1: clients cache the JWKS and re-fetch on an unknown kid.
    cache = client.get("/jwks.json").headers["Cache-Control"]
    match = re.search(r"max-age=(\d+)", cache)
    assert match and 0 < int(match.group(1)) <= 86400
    assert "no-store" not in cache


def test_rotation_signs_new_tokens_with_new_key_and_keeps_old_key_published(
    app, client, auth, runner, user, oauth_client
):
    # OIDC Core §10.1.1: rotate by adding the new key to the JWKS while the old one stays
    # published so tokens it signed still verify.
    auth.login()
    before = auth.tokens(oauth_client)["id_token"]
    old_kid = verify(client, before).header["kid"]

    new = rotate(runner)
    assert old_kid not in new.values()

    published = kids(client)
    assert old_kid in published  # grace period
    assert set(new.values()) <= published
    after = auth.tokens(oauth_client)["id_token"]
    assert verify(client, after).header["kid"] == new["RS256"]
    # A token signed before the rotation still verifies against the published set.
    assert verify(client, before).claims["sub"] == user.sub


def test_rotation_applies_to_es256_clients(app, client, auth, runner, user, factory):
    # OIDC Core §10.1.1 for the ES256 key of id_token_signed_response_alg clients.
    es_client = factory.client(name="EC App", id_token_alg="ES256")
    auth.login()
    before = auth.tokens(es_client)["id_token"]
    new = rotate(runner)
    after = auth.tokens(es_client)["id_token"]
    assert verify(client, after).header == {"alg": "ES256", "kid": new["ES256"], "typ": "JWT"}
    assert verify(client, before).header["kid"] != new["ES256"]


@pytest.mark.config(KEY_GRACE_PERIOD=120)
def test_rotation_records_grace_period(app, runner):
    # OIDC Core §10.1.1: the retired key stays published for KEY_GRACE_PERIOD seconds.
    with app.app_context():
        old = {k.kid for k in db.session().scalars(select(SigningKey))}
    new = rotate(runner)
    with app.app_context():
        rows = {k.kid: k for k in db.session().scalars(select(SigningKey))}
    for kid in old:
        row = rows[kid]
        assert row.retired_at is not None
        assert row.publish_until - row.retired_at == timedelta(seconds=120)
    for kid in new.values():
        assert rows[kid].retired_at is None and rows[kid].publish_until is None


def test_old_key_leaves_jwks_after_grace_period(app, client, auth, runner, user, oauth_client):
    # RFC 7517 §5 / OIDC Core §10.1.1: once the grace period is over the old key is removed,
    # and tokens it signed no longer verify.
    auth.login()
    before = auth.tokens(oauth_client)["id_token"]
    old_kid = verify(client, before).header["kid"]
    new = rotate(runner)
    with app.app_context():
        session = db.session()
        session.execute(
            update(SigningKey)
            .where(SigningKey.retired_at.is_not(None))
            .values(publish_until=utcnow() - timedelta(seconds=1))
        )
        session.commit()
    published = kids(client)
    assert old_kid not in published
    assert published == set(new.values())
    with pytest.raises(JoseError):
        verify(client, before)
    # Signing continues with the new keys.
    assert verify(client, auth.tokens(oauth_client)["id_token"]).header["kid"] == new["RS256"]


def test_init_twice_does_not_duplicate_keys(app, runner, monkeypatch):
    # OIDC Core §10.1: one active key per algorithm; `idp init` is safe to re-run.
    with app.app_context():
        session = db.session()
        session.execute(delete(SigningKey))
        session.commit()
    monkeypatch.setenv("IDP_SECRET_KEY", "x" * 32)  # no instance/config.py is written
    monkeypatch.setenv("IDP_ISSUER", app.config["ISSUER"])
    monkeypatch.setattr(idp.cli.instance, "create_app", lambda *a, **k: app)

    first = runner.invoke(cli, args=["init", "--json"])
    assert first.exit_code == 0, first.output
    assert len(json.loads(first.stdout)["keys_created"]) == 2
    second = runner.invoke(cli, args=["init", "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["keys_created"] == []

    with app.app_context():
        counts = dict(
            db.session()
            .execute(select(SigningKey.alg, func.count()).group_by(SigningKey.alg))
            .all()
        )
    assert counts == {"RS256": 1, "ES256": 1}


def test_a_stored_key_is_used_as_stored_even_when_another_shares_its_kid(app, client):
    # Imported keys are kept per process, across apps and reloads. A row must still sign
    # with its own key material: a row that names another key's kid (a hand-edited or
    # restored row) is imported afresh, not answered with the key already in memory.
    from idp.oauth import keys

    with app.app_context():
        session = db.session()
        row = session.scalar(select(SigningKey).where(SigningKey.alg == "ES256"))
        remembered = keys.store().signing_key("ES256").key
        other = keys.generate("ES256")
        row.private_jwk = other.private_jwk  # the old kid, another key
        session.commit()
        keys.store().invalidate()
        now = keys.store().signing_key("ES256")
        assert now.kid == row.kid
        assert now.key is not remembered
        assert now.key.as_dict(private=False) == import_key(other.private_jwk).as_dict(
            private=False
        )
        # and the same row read again is the same imported object (no second import)
        keys.store().invalidate()
        assert keys.store().signing_key("ES256").key is now.key
