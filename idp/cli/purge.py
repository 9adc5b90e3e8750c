"""`idp purge`: delete expired rows (``purge.purge``)."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from .. import db
from .common import emit


@click.command("purge")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def purge_command(as_json):
    """Delete expired codes, tokens, ended sessions, logout deliveries and replay entries."""
    from ..purge import purge

    counts = purge(db.session(), current_app.config)
    emit(
        as_json,
        {"deleted": counts},
        "deleted: " + ", ".join(f"{n} {name}" for name, n in counts.items()),
    )
