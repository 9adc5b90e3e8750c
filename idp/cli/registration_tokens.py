"""`idp registration-tokens`: initial access tokens for dynamic client registration
(RFC 7591 §3; ``oauth.registration.create_initial_access_token``)."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from .. import db
from .common import emit, parse_duration


@click.group("registration-tokens", cls=AppGroup)
def registration_tokens():
    """Initial access tokens for dynamic client registration (RFC 7591 §3)."""


@registration_tokens.command("create")
@click.option("--expires", help="Lifetime: seconds, or 30m, 12h, 7d. Default: no expiry.")
@click.option("--max-uses", type=click.IntRange(min=1), help="Registrations allowed.")
@click.option("--description", default="", help="What the token is for.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def registration_tokens_create(expires, max_uses, description, as_json):
    """Create an initial access token; it is printed once and stored hashed."""
    from .. import audit
    from ..oauth.registration import create_initial_access_token

    expires_in = parse_duration(expires) if expires else None
    session = db.session()
    row, token = create_initial_access_token(
        session, expires_in=expires_in, max_uses=max_uses, description=description
    )
    session.flush()
    audit.record("registration_token.created", target=str(row.id), max_uses=max_uses, by="cli")
    session.commit()
    data = {
        "id": row.id,
        "token": token,
        "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        "max_uses": max_uses,
        "description": row.description,
    }
    emit(
        as_json,
        data,
        f"initial access token {row.id}: {token}\n(the token is shown only now; send it as "
        "'Authorization: Bearer <token>' to the registration endpoint)",
    )


@registration_tokens.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def registration_tokens_list(as_json):
    """List initial access tokens (never the tokens themselves)."""
    from ..models import RegistrationToken
    from ..oauth.registration import token_status

    rows = db.session().scalars(select(RegistrationToken).order_by(RegistrationToken.id)).all()
    data = [
        {
            "id": r.id,
            "description": r.description,
            "status": token_status(r),
            "uses": r.uses,
            "max_uses": r.max_uses,
            "created_at": r.created_at.isoformat(),
            "expires_at": r.expires_at.isoformat() if r.expires_at else None,
        }
        for r in rows
    ]
    lines = [
        f"{d['id']:>4}  {d['status']:8}  uses {d['uses']}/{d['max_uses'] or '-'}  "
        f"expires {d['expires_at'] or 'never'}  {d['description']}"
        for d in data
    ]
    emit(as_json, data, "\n".join(lines) if lines else "no registration tokens")


@registration_tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def registration_tokens_revoke(token_id):
    """Revoke an initial access token; clients it registered stay."""
    from .. import audit
    from ..models import RegistrationToken, utcnow

    session = db.session()
    row = session.get(RegistrationToken, token_id)
    if row is None:
        raise click.ClickException(f"no registration token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record("registration_token.revoked", target=str(token_id), by="cli")
        session.commit()
    click.echo(f"registration token {token_id} revoked")
