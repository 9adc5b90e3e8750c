"""`idp keys`: signing keys (``oauth.keys.rotate``)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .. import db
from ..oauth import keys
from .common import emit


@click.group("keys", cls=AppGroup)
def keys_group():
    """Signing keys."""


@keys_group.command("rotate")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def keys_rotate(as_json):
    """Add new active signing keys; old public keys stay published for KEY_GRACE_PERIOD."""
    session = db.session()
    new = keys.rotate(session, int(current_app.config["KEY_GRACE_PERIOD"]))
    session.commit()
    keys.store().invalidate()
    data = {"active": [{"kid": k.kid, "alg": k.alg} for k in new]}
    emit(as_json, data, "\n".join(f"new {k.alg} key {k.kid}" for k in new))
