"""The ``idp`` command: init, db upgrade, users, clients, keys, run, demo.

Every command that prints something useful takes ``--json`` for scripts.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select

from . import create_app, db, instance_path, migrate
from .config import ConfigError
from .models import Client, User
from .oauth import keys
from .oauth.claims import OIDC_SCOPES
from .oauth.server import GRANT_TYPES


def _emit(as_json: bool, data: dict, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def ensure_secret_key() -> Path | None:
    """Write a random SECRET_KEY into instance/config.py unless one is configured."""
    if os.environ.get("IDP_SECRET_KEY"):
        return None
    folder = Path(instance_path() or Flask("idp").instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.py"
    existing = path.read_text() if path.exists() else ""
    if "SECRET_KEY" in existing:
        return None
    with path.open("a") as fh:
        fh.write(
            f"\n# Written by `idp init`: signs session cookies and CSRF tokens.\n"
            f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
        )
    path.chmod(0o600)
    return path


def initialise(app: Flask) -> dict:
    """Migrations and signing keys; safe to run any number of times."""
    migrate.upgrade(app)
    with app.app_context():
        session = db.session()
        created = keys.ensure_keys(session)
        session.commit()
        return {"database": "upgraded", "keys_created": [k.kid for k in created]}


@click.group(
    cls=FlaskGroup,
    create_app=create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
)
def cli():
    """The identity provider's command line."""


@cli.command("init", with_appcontext=False)
@click.option("--json", "as_json", is_flag=True)
def init_command(as_json):
    """Create or upgrade the database, a secret key and signing keys."""
    written = ensure_secret_key()
    app = create_app()
    result = initialise(app)
    result["secret_key_written_to"] = str(written) if written else None
    _emit(
        as_json,
        result,
        f"Initialised: database at head, {len(result['keys_created'])} "
        f"new signing key(s)" + (f", secret key written to {written}" if written else ""),
    )


@cli.group("db")
def db_group():
    """Database schema (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@with_appcontext
def db_upgrade(revision):
    """Apply migrations up to REVISION (default: head)."""
    migrate.upgrade(current_app, revision)
    click.echo(f"database upgraded to {revision}")


@db_group.command("revision")
@click.option("-m", "--message", required=True)
@with_appcontext
def db_revision(message):
    """Autogenerate a migration from the models (developers)."""
    migrate.revision(current_app, message)


@cli.group("users")
def users():
    """Manage users."""


@users.command("create")
@click.option("--username", required=True)
@click.option("--email")
@click.option("--name")
@click.option("--admin", is_flag=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_create(username, email, name, admin, password_stdin, as_json):
    """Create a user; without --password-stdin a random password is printed once."""
    from .auth.passwords import PasswordTooLong, hash_password

    session = db.session()
    clash = session.scalar(
        select(User.id).where(
            (User.username == username) | ((User.email == email) if email else False)
        )
    )
    if clash is not None:
        raise click.ClickException("a user with this username or email already exists")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        shown = None
    else:
        password = shown = secrets.token_urlsafe(12)
    if not password:
        raise click.ClickException("empty password")
    try:
        password_hash = hash_password(password)
    except PasswordTooLong as exc:
        raise click.ClickException(str(exc)) from exc
    user = User(
        username=username,
        email=email,
        name=name,
        is_admin=admin,
        password_hash=password_hash,
        email_verified=False,
    )
    session.add(user)
    session.commit()
    data = {"id": user.id, "sub": user.sub, "username": username, "email": email, "admin": admin}
    if shown:
        data["password"] = shown
    _emit(
        as_json,
        data,
        f"created user {username} (sub {user.sub})" + (f"\npassword: {shown}" if shown else ""),
    )


def create_client(
    session, *, name, redirect_uris, grant_types, scope, public, first_party, id_token_alg=None
) -> tuple[Client, str | None]:
    """A new client and, for confidential clients, its secret (shown once, stored hashed)."""
    from .models import secret_hash
    from .oauth.tokens import new_secret

    secret = None if public else new_secret()
    client = Client(
        client_id=secrets.token_urlsafe(16),
        client_secret_hash=secret_hash(secret) if secret else None,
        client_name=name,
        redirect_uris=list(redirect_uris),
        grant_types=list(grant_types),
        response_types=["code"] if "authorization_code" in grant_types else [],
        scope=scope,
        token_endpoint_auth_method="none" if public else "client_secret_basic",
        first_party=first_party,
        id_token_signed_response_alg=id_token_alg,
    )
    session.add(client)
    return client, secret


@cli.group("clients")
def clients():
    """Manage OAuth clients."""


@clients.command("create")
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option(
    "--grant-type",
    "grant_types",
    multiple=True,
    type=click.Choice(GRANT_TYPES),
    default=["authorization_code", "refresh_token"],
)
@click.option("--scope", default=" ".join(OIDC_SCOPES))
@click.option("--public/--confidential", default=False)
@click.option(
    "--auth-method",
    type=click.Choice(["client_secret_basic", "client_secret_post"]),
    default="client_secret_basic",
    help="Token endpoint authentication (confidential).",
)
@click.option("--first-party", is_flag=True, help="Skip the consent page.")
@click.option("--id-token-alg", type=click.Choice(keys.ALGORITHMS))
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_create(
    name, redirect_uris, grant_types, scope, public, auth_method, first_party, id_token_alg, as_json
):
    """Register a client; prints its id and, once, its secret."""
    from .oauth.redirects import invalid_redirect_uri

    if "authorization_code" in grant_types and not redirect_uris:
        raise click.ClickException("--redirect-uri is required for authorization_code")
    for uri in redirect_uris:
        problem = invalid_redirect_uri(uri)
        if problem:
            raise click.ClickException(f"{uri}: {problem}")
    if public and "client_credentials" in grant_types:
        raise click.ClickException("public clients cannot use client_credentials")
    session = db.session()
    client, secret = create_client(
        session,
        name=name,
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        scope=scope,
        public=public,
        first_party=first_party,
        id_token_alg=id_token_alg,
    )
    if not public:
        client.token_endpoint_auth_method = auth_method
    session.commit()
    data = {
        "client_id": client.client_id,
        "client_secret": secret,
        "client_name": name,
        "redirect_uris": list(redirect_uris),
        "grant_types": list(grant_types),
        "scope": scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
    }
    _emit(
        as_json,
        data,
        f"client_id: {client.client_id}"
        + (f"\nclient_secret: {secret}\n(the secret is shown only now)" if secret else ""),
    )


@cli.group("keys")
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
    _emit(as_json, data, "\n".join(f"new {k.alg} key {k.kid}" for k in new))


@cli.command("run")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@with_appcontext
def run_command(host, port):
    """Run the development server (use `idp serve` with gunicorn in production)."""
    current_app.run(host=host, port=port, threaded=True, use_reloader=False)


@cli.command("demo", with_appcontext=False)
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def demo_command(host, port):
    """Set up SQLite, a demo admin and a demo relying party, print how to try them, and run."""
    from . import demo

    ensure_secret_key()
    issuer = f"http://{host}:{port}"
    app = create_app({"ISSUER": issuer, "DEMO": True})
    initialise(app)
    with app.app_context():
        info = demo.prepare(app)
    click.echo(demo.banner(info))
    app.run(host=host, port=port, threaded=True, use_reloader=False)


def main() -> None:
    try:
        cli.main(prog_name="idp")
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
