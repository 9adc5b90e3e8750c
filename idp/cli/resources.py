"""`idp resources`: protected resources (APIs) tokens can be requested for (RFC 8707)."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from .. import db
from .common import TOKEN_FORMAT_CHOICE, emit, parse_duration, split


@click.group("resources", cls=AppGroup)
def resources_group():
    """Protected resources (APIs) that tokens can be requested for (RFC 8707)."""


def _resource_or_fail(identifier: str):
    from ..models import Resource

    row = db.session().scalar(select(Resource).where(Resource.identifier == identifier))
    if row is None:
        raise click.ClickException(f"no resource {identifier}")
    return row


def _save_resource(row, event: str, as_json: bool, **fields) -> None:
    from .. import audit
    from ..oauth import resources

    session = db.session()
    problem = resources.save(row, **fields)
    if problem:
        session.rollback()
        raise click.ClickException(problem)
    session.flush()
    audit.record(event, target=row.identifier, by="cli", scope=row.scope)
    session.commit()
    data = resources.describe(row)
    emit(as_json, data, f"{event.split('.')[1]} resource {row.identifier} ({row.scope})")


@resources_group.command("create")
@click.option("--identifier", required=True, help="Absolute URI naming the API (RFC 8707).")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, required=True, help="A scope of the API.")
@click.option("--token-format", type=click.Choice(["jwt", "opaque"]))
@click.option("--lifetime", help="Access token lifetime: seconds, or 30m, 12h, 7d.")
@click.option("--client", "client_ids", multiple=True, help="A client that may request it.")
@click.option(
    "--introspection-client", help="The client the API authenticates as to introspect tokens."
)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def resources_create(
    identifier, name, scopes, token_format, lifetime, client_ids, introspection_client, as_json
):
    """Register a resource: its identifier, scopes, token format and lifetime, clients."""
    from ..models import Resource

    _save_resource(
        Resource(),
        "resource.created",
        as_json,
        identifier=identifier,
        name=name,
        scopes=list(scopes),
        token_format=token_format,
        lifetime=parse_duration(lifetime) if lifetime else None,
        client_ids=split(client_ids),
        introspection_client_id=introspection_client,
    )


@resources_group.command("update")
@click.argument("identifier")
@click.option("--name")
@click.option("--scope", "scopes", multiple=True, help="Replaces the scopes.")
@click.option("--token-format", type=TOKEN_FORMAT_CHOICE)
@click.option("--lifetime", help="Seconds, 30m, 12h, 7d, or 'default'.")
@click.option("--client", "client_ids", multiple=True, help="Replaces the clients.")
@click.option("--add-client", "add_clients", multiple=True)
@click.option("--remove-client", "remove_clients", multiple=True)
@click.option("--introspection-client", help="A client id, or 'none'.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def resources_update(
    identifier,
    name,
    scopes,
    token_format,
    lifetime,
    client_ids,
    add_clients,
    remove_clients,
    introspection_client,
    as_json,
):
    """Change a resource; options not given keep their values."""
    row = _resource_or_fail(identifier)
    clients_now = split(client_ids) or [c.client_id for c in row.clients]
    clients_now = [c for c in clients_now + split(add_clients) if c not in remove_clients]
    if token_format:
        new_format = None if token_format == "default" else token_format
    else:
        new_format = row.token_format
    if lifetime:
        new_lifetime = None if lifetime == "default" else parse_duration(lifetime)
    else:
        new_lifetime = row.access_token_lifetime
    if introspection_client:
        introspector = None if introspection_client == "none" else introspection_client
    else:
        introspector = row.introspection_client_id
    _save_resource(
        row,
        "resource.updated",
        as_json,
        identifier=row.identifier,
        name=name or row.name,
        scopes=list(scopes) or row.scopes,
        token_format=new_format,
        lifetime=new_lifetime,
        client_ids=list(dict.fromkeys(clients_now)),
        introspection_client_id=introspector,
    )


@resources_group.command("delete")
@click.argument("identifier")
@with_appcontext
def resources_delete(identifier):
    """Delete a resource; tokens already issued for it stay valid until they expire."""
    from .. import audit

    row = _resource_or_fail(identifier)
    session = db.session()
    session.delete(row)
    audit.record("resource.deleted", target=identifier, by="cli")
    session.commit()
    click.echo(f"deleted resource {identifier}")


@resources_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def resources_list(as_json):
    """List resources with their scopes, token format, lifetime and clients."""
    from ..models import Resource
    from ..oauth import resources

    rows = db.session().scalars(select(Resource).order_by(Resource.identifier)).all()
    data = [resources.describe(r) for r in rows]
    lines = [
        f"{d['identifier']}  {d['token_format'] or 'default':7}  "
        f"{d['access_token_lifetime'] or '-':>6}  {' '.join(d['scopes'])}  "
        f"clients: {', '.join(d['clients']) or '-'}  ({d['name']})"
        for d in data
    ]
    emit(as_json, data, "\n".join(lines) if lines else "no resources")


@resources_group.command("metadata")
@click.argument("identifier")
@with_appcontext
def resources_metadata(identifier):
    """Print the RFC 9728 metadata document the resource's server should publish.

    The document goes to standard output (JSON); where to serve it, the well-known URL of
    the identifier (RFC 9728 section 3.1), goes to standard error.
    """
    import json

    from ..oauth import resource_metadata

    row = _resource_or_fail(identifier)
    click.echo(json.dumps(resource_metadata.resource_document(row), indent=2))
    click.echo(f"serve at {resource_metadata.well_known_url(row.identifier)}", err=True)
