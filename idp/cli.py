"""The ``idp`` command: init, db upgrade, users, clients, keys, run, serve, purge, demo.

Every command that prints something useful takes ``--json`` for scripts.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import func, select

from . import config as settings
from . import create_app, db, instance_path, migrate
from .auth.passwords import PasswordTooLong
from .auth.users import create_user
from .config import ConfigError
from .models import Client, User
from .oauth import keys
from .oauth.claims import OIDC_SCOPES
from .oauth.clients import create_client
from .oauth.server import GRANT_TYPES


def _emit(as_json: bool, data: dict | list, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def instance_folder() -> Path:
    return Path(instance_path() or Flask("idp").instance_path)


def instance_config() -> Path:
    folder = instance_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "config.py"


def ensure_secret_key() -> Path | None:
    """Write a random SECRET_KEY into instance/config.py unless one is configured."""
    if os.environ.get("IDP_SECRET_KEY"):
        return None
    path = instance_config()
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


ISSUER_LINE = re.compile(r"^ISSUER\s*=.*$", re.M)


def write_issuer(issuer: str) -> Path:
    """Set ISSUER in instance/config.py: replace the line `idp init` wrote, or add one."""
    path = instance_config()
    existing = path.read_text() if path.exists() else ""
    line = f"ISSUER = {issuer!r}"
    if ISSUER_LINE.search(existing):
        text = ISSUER_LINE.sub(line, existing, count=1)
    else:
        text = existing + (
            "\n# Written by `idp init --issuer`: the URL relying parties use (OIDC Discovery §3).\n"
            f"{line}\n"
        )
    path.write_text(text)
    path.chmod(0o600)
    return path


def settle_issuer(given: str | None) -> tuple[str, Path | None]:
    """The issuer `idp init` works with: --issuer, the configured one, or asked for."""
    configured = settings.configured("ISSUER", str(instance_folder()))
    if not given and configured:
        return str(configured).rstrip("/"), None
    if not given:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "No issuer is configured. Pass --issuer URL: the URL relying parties will use "
                "to reach this server, e.g. --issuer https://id.example.com (or, to try it on "
                "this machine, --issuer http://127.0.0.1:8000)."
            )
        given = click.prompt(
            "Issuer URL (what relying parties use to reach this server, "
            "e.g. https://id.example.com)"
        )
    issuer = given.strip().rstrip("/")
    try:
        settings.check_issuer(issuer)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--issuer") from None
    if os.environ.get("IDP_ISSUER") and os.environ["IDP_ISSUER"].rstrip("/") != issuer:
        raise click.UsageError(
            f"IDP_ISSUER is set to {os.environ['IDP_ISSUER']!r} and would override --issuer."
        )
    return issuer, write_issuer(issuer)


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
@click.option(
    "--issuer",
    help="The issuer URL relying parties use (https://…); asked for in a terminal when none "
    "is configured. Written into instance/config.py.",
)
@click.option("--json", "as_json", is_flag=True)
def init_command(issuer, as_json):
    """Set the issuer, and create or upgrade the database, a secret key and signing keys."""
    issuer, issuer_written = settle_issuer(issuer)
    written = ensure_secret_key()
    app = create_app()
    result = initialise(app)
    result["issuer"] = app.config["ISSUER"]
    result["issuer_written_to"] = str(issuer_written) if issuer_written else None
    result["secret_key_written_to"] = str(written) if written else None
    _emit(
        as_json,
        result,
        f"Initialised {result['issuer']}: database at head, {len(result['keys_created'])} "
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
    session = db.session()
    clash = session.scalar(
        select(User.id).where(
            # Sign-in matches emails case-insensitively, so they must be unique that way.
            (User.username == username)
            | ((func.lower(User.email) == email.lower()) if email else False)
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
        user = create_user(
            session,
            username=username,
            password=password,
            email=email,
            name=name,
            is_admin=admin,
            email_verified=False,
        )
    except PasswordTooLong as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    data = {"id": user.id, "sub": user.sub, "username": username, "email": email, "admin": admin}
    if shown:
        data["password"] = shown
    _emit(
        as_json,
        data,
        f"created user {username} (sub {user.sub})" + (f"\npassword: {shown}" if shown else ""),
    )


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
    type=click.Choice(
        ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"]
    ),
    default="client_secret_basic",
    help="Token endpoint authentication (confidential).",
)
@click.option("--jwks-uri", help="private_key_jwt: where the client publishes its public keys.")
@click.option(
    "--jwks-file",
    type=click.File("r"),
    help="private_key_jwt: a JSON file with the client's public JWK Set.",
)
@click.option(
    "--require-par", is_flag=True, help="Only pushed authorization requests (RFC 9126 §6)."
)
@click.option("--first-party", is_flag=True, help="Skip the consent page.")
@click.option("--id-token-alg", type=click.Choice(keys.ALGORITHMS))
@click.option(
    "--post-logout-redirect-uri",
    "post_logout_redirect_uris",
    multiple=True,
    help="Where RP-Initiated Logout may return the user (exact match).",
)
@click.option("--backchannel-logout-uri", help="Receives logout tokens (Back-Channel Logout).")
@click.option("--backchannel-logout-session-required", is_flag=True)
@click.option("--frontchannel-logout-uri", help="Loaded in an iframe at sign-out.")
@click.option("--frontchannel-logout-session-required", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_create(
    name,
    redirect_uris,
    grant_types,
    scope,
    public,
    auth_method,
    first_party,
    id_token_alg,
    jwks_uri,
    jwks_file,
    require_par,
    as_json,
    **logout_metadata,
):
    """Register a client; prints its id and, once, its secret."""
    key_metadata = client_key_metadata(public, auth_method, jwks_uri, jwks_file)
    from .oauth.logout import invalid_backchannel_logout_uri, invalid_frontchannel_logout_uri
    from .oauth.redirects import invalid_redirect_uri

    # RP-Initiated, Back-Channel and Front-Channel Logout 1.0 registration metadata.
    for uri in logout_metadata["post_logout_redirect_uris"]:
        problem = invalid_redirect_uri(uri)
        if problem:
            raise click.ClickException(f"{uri}: {problem}")
    backchannel = logout_metadata["backchannel_logout_uri"]
    problem = backchannel and invalid_backchannel_logout_uri(backchannel)
    if problem:
        raise click.ClickException(f"{backchannel}: {problem}")
    frontchannel = logout_metadata["frontchannel_logout_uri"]
    problem = frontchannel and invalid_frontchannel_logout_uri(frontchannel, list(redirect_uris))
    if problem:
        raise click.ClickException(f"{frontchannel}: {problem}")

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
        auth_method=auth_method,
    )
    client.client_metadata = dict(key_metadata)
    if require_par:
        client.client_metadata["require_pushed_authorization_requests"] = True
    uris = logout_metadata["post_logout_redirect_uris"]
    logout_metadata["post_logout_redirect_uris"] = list(uris)
    for field, value in logout_metadata.items():
        setattr(client, field, value)
    session.commit()
    data = {
        "client_id": client.client_id,
        "client_secret": secret,
        "client_name": name,
        "redirect_uris": list(redirect_uris),
        "grant_types": list(grant_types),
        "scope": scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        **logout_metadata,
        **client.client_metadata,
        "require_pushed_authorization_requests": require_par,
    }
    _emit(
        as_json,
        data,
        f"client_id: {client.client_id}"
        + (f"\nclient_secret: {secret}\n(the secret is shown only now)" if secret else ""),
    )


def client_key_metadata(public, auth_method, jwks_uri, jwks_file) -> dict:
    """jwks_uri or jwks for private_key_jwt (RFC 7591 §2: never both), checked."""
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    from .oauth.client_auth import PRIVATE_KEY_JWT
    from .oauth.client_metadata import web_url_problem

    if jwks_uri and jwks_file:
        raise click.ClickException("use --jwks-uri or --jwks-file, not both")
    if public or auth_method != PRIVATE_KEY_JWT:
        if jwks_uri or jwks_file:
            raise click.ClickException(
                "--jwks-uri and --jwks-file need --auth-method private_key_jwt"
            )
        return {}
    if jwks_uri:
        problem = web_url_problem(jwks_uri, loopback_http=True)
        if problem:
            raise click.ClickException(f"--jwks-uri {problem}")
        return {"jwks_uri": jwks_uri}
    if not jwks_file:
        raise click.ClickException("private_key_jwt needs --jwks-uri or --jwks-file")
    try:
        jwks = json.load(jwks_file)
        keys_ = jwks["keys"]
        KeySet.import_key_set(jwks)
    except (ValueError, KeyError, TypeError, JoseError) as exc:
        raise click.ClickException(f"--jwks-file is not a JWK Set: {exc}") from exc
    private = {"d", "p", "q", "dp", "dq", "qi", "k"}
    if not isinstance(keys_, list) or not keys_ or any(private & set(k) for k in keys_):
        raise click.ClickException("--jwks-file must hold public keys only")
    return {"jwks": jwks}


@clients.command("list")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_list(as_json):
    """List clients; those that registered themselves (RFC 7591) are marked "dynamic"."""
    rows = db.session().scalars(select(Client).order_by(Client.created_at, Client.id)).all()
    data = [
        {
            "client_id": c.client_id,
            "client_name": c.client_name,
            "type": "public" if c.is_public else "confidential",
            "dynamically_registered": c.dynamically_registered,
            "disabled": c.disabled,
            "first_party": c.first_party,
            "created_at": c.created_at.isoformat(),
        }
        for c in rows
    ]
    lines = [
        f"{c.client_id}  {c.origin:7}  {'public' if c.is_public else 'confidential':12}  "
        f"{'disabled' if c.disabled else 'enabled':8}  {c.client_name}"
        for c in rows
    ]
    _emit(as_json, data, "\n".join(lines) if lines else "no clients")


def _set_client_disabled(client_id: str, disabled: bool) -> None:
    from . import audit

    session = db.session()
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        raise click.ClickException(f"no client {client_id}")
    client.disabled = disabled
    audit.record("client.disabled" if disabled else "client.enabled", target=client_id, by="cli")
    session.commit()
    click.echo(f"client {client_id} {'disabled' if disabled else 'enabled'}")


@clients.command("disable")
@click.argument("client_id")
@with_appcontext
def clients_disable(client_id):
    """Disable a client: it is treated as unknown until enabled again."""
    _set_client_disabled(client_id, True)


@clients.command("enable")
@click.argument("client_id")
@with_appcontext
def clients_enable(client_id):
    """Enable a disabled client again."""
    _set_client_disabled(client_id, False)


# --- RFC 8707 resources, RFC 9068 token format, RFC 8693 token exchange policy -----------

TOKEN_FORMAT_CHOICE = click.Choice(["jwt", "opaque", "default"])


def _split(values) -> list[str]:
    return [item for value in values for item in value.split()]


@clients.command("policy")
@click.argument("client_id")
@click.option(
    "--token-format",
    type=TOKEN_FORMAT_CHOICE,
    help="Access tokens as RFC 9068 JWTs or opaque strings; default: the server's setting.",
)
@click.option(
    "--exchange-audience",
    "audiences",
    multiple=True,
    help="Resource identifier the client may obtain tokens for by token exchange (RFC 8693).",
)
@click.option(
    "--exchange-subject-client",
    "subject_clients",
    multiple=True,
    help="Client whose tokens it may exchange (* for any).",
)
@click.option(
    "--exchange-token-type",
    "token_types",
    multiple=True,
    type=click.Choice(["access_token", "id_token"]),
    help="Subject token types it may exchange (default: access_token).",
)
@click.option("--no-token-exchange", is_flag=True, help="Withdraw token exchange.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_policy(
    client_id, token_format, audiences, subject_clients, token_types, no_token_exchange, as_json
):
    """Show or set a client's token format and token exchange policy."""
    from . import audit
    from .oauth import token_exchange

    session = db.session()
    client = session.scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        raise click.ClickException(f"no client {client_id}")
    changed = {}
    if token_format:
        client.access_token_format = None if token_format == "default" else token_format
        changed["access_token_format"] = client.access_token_format
    exchange = audiences or subject_clients or token_types
    if exchange and no_token_exchange:
        raise click.ClickException("--no-token-exchange cannot be combined with --exchange-*")
    grant_types = [g for g in client.grant_types if g != token_exchange.GRANT_TYPE]
    if exchange:
        if client.is_public:
            raise click.ClickException("public clients cannot use token exchange")
        types = list(token_types) or ["access_token"]
        problem = token_exchange.policy_problem(list(audiences), list(subject_clients), types)
        if problem:
            raise click.ClickException(problem)
        client.token_exchange_policy = token_exchange.make_policy(
            list(audiences), list(subject_clients), types
        )
        client.grant_types = grant_types + [token_exchange.GRANT_TYPE]
        changed["token_exchange_policy"] = client.token_exchange_policy
    elif no_token_exchange:
        client.token_exchange_policy = None
        client.grant_types = grant_types
        changed["token_exchange_policy"] = None
    if changed:
        audit.record("client.policy_updated", target=client_id, by="cli", **changed)
        session.commit()
    data = {
        "client_id": client_id,
        "access_token_format": client.access_token_format,
        "token_exchange_policy": client.token_exchange_policy,
        "grant_types": list(client.grant_types),
    }
    policy = client.token_exchange_policy
    _emit(
        as_json,
        data,
        f"access token format: {client.access_token_format or 'server default'}\n"
        + (
            "token exchange: audiences {audiences}; tokens of {subject_clients}; "
            "types {subject_token_types}".format(**policy)
            if policy
            else "token exchange: not allowed"
        ),
    )


@cli.group("resources")
def resources_group():
    """Protected resources (APIs) that tokens can be requested for (RFC 8707)."""


def _resource_or_fail(identifier: str):
    from .models import Resource

    row = db.session().scalar(select(Resource).where(Resource.identifier == identifier))
    if row is None:
        raise click.ClickException(f"no resource {identifier}")
    return row


def _save_resource(row, event: str, as_json: bool, **fields) -> None:
    from . import audit
    from .oauth import resources

    session = db.session()
    problem = resources.save(row, **fields)
    if problem:
        session.rollback()
        raise click.ClickException(problem)
    session.flush()
    audit.record(event, target=row.identifier, by="cli", scope=row.scope)
    session.commit()
    data = resources.describe(row)
    _emit(as_json, data, f"{event.split('.')[1]} resource {row.identifier} ({row.scope})")


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
    from .models import Resource

    _save_resource(
        Resource(),
        "resource.created",
        as_json,
        identifier=identifier,
        name=name,
        scopes=list(scopes),
        token_format=token_format,
        lifetime=parse_duration(lifetime) if lifetime else None,
        client_ids=_split(client_ids),
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
    clients_now = _split(client_ids) or [c.client_id for c in row.clients]
    clients_now = [c for c in clients_now + _split(add_clients) if c not in remove_clients]
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
    from . import audit

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
    from .models import Resource
    from .oauth import resources

    rows = db.session().scalars(select(Resource).order_by(Resource.identifier)).all()
    data = [resources.describe(r) for r in rows]
    lines = [
        f"{d['identifier']}  {d['token_format'] or 'default':7}  "
        f"{d['access_token_lifetime'] or '-':>6}  {' '.join(d['scopes'])}  "
        f"clients: {', '.join(d['clients']) or '-'}  ({d['name']})"
        for d in data
    ]
    _emit(as_json, data, "\n".join(lines) if lines else "no resources")


def parse_duration(value: str) -> int:
    """Seconds from "3600", "90s", "30m", "12h" or "7d"."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "s")
    if not number.isdigit() or int(number) <= 0:
        raise click.BadParameter("use a positive duration such as 3600, 30m, 12h or 7d")
    return int(number) * units[unit]


@cli.group("registration-tokens")
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
    from . import audit
    from .oauth.registration import create_initial_access_token

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
    _emit(
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
    from .models import RegistrationToken
    from .oauth.registration import token_status

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
    _emit(as_json, data, "\n".join(lines) if lines else "no registration tokens")


@registration_tokens.command("revoke")
@click.argument("token_id", type=int)
@with_appcontext
def registration_tokens_revoke(token_id):
    """Revoke an initial access token; clients it registered stay."""
    from . import audit
    from .models import RegistrationToken, utcnow

    session = db.session()
    row = session.get(RegistrationToken, token_id)
    if row is None:
        raise click.ClickException(f"no registration token {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record("registration_token.revoked", target=str(token_id), by="cli")
        session.commit()
    click.echo(f"registration token {token_id} revoked")


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


@cli.command("run", with_appcontext=False)
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def run_command(host, port):
    """Run the development server (use `idp serve` with gunicorn in production).

    Without a configured issuer, the issuer is http://HOST:PORT.
    """
    overrides = {}
    if not settings.configured("ISSUER", str(instance_folder())):
        overrides["ISSUER"] = f"http://{host}:{port}"
    app = create_app(overrides)
    click.echo(f"Issuer: {app.config['ISSUER']}")
    serve_development(app, host, port)


@cli.command(
    "serve",
    with_appcontext=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.option("--bind", help="Address to listen on (default 127.0.0.1:8000, or IDP_BIND).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: CPUs).")
@click.option("--threads", type=click.IntRange(min=1), help="Threads per worker (default 4).")
@click.option("--timeout", type=click.IntRange(min=1), help="Worker timeout in seconds.")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve_command(bind, workers, threads, timeout, gunicorn_args):
    """Run the production server: gunicorn with idp/gunicorn_conf.py (extra args go to it)."""
    from . import serve

    create_app()  # fail fast, with a clear message, on a bad configuration
    serve.exec_gunicorn(
        {"bind": bind, "workers": workers, "threads": threads, "timeout": timeout},
        tuple(gunicorn_args),
    )


@cli.command("purge")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def purge_command(as_json):
    """Delete expired codes, tokens, ended sessions, logout deliveries and replay entries."""
    from .purge import purge

    counts = purge(db.session(), current_app.config)
    _emit(
        as_json,
        {"deleted": counts},
        "deleted: " + ", ".join(f"{n} {name}" for name, n in counts.items()),
    )


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
    serve_development(app, host, port)


def serve_development(app: Flask, host: str, port: int) -> None:
    """Werkzeug's development server (Flask's app.run refuses to run inside its CLI)."""
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)


def main() -> None:
    try:
        cli.main(prog_name="idp")
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
