"""`idp clients`: register clients (``oauth.clients.create_client``), list and show them,
disable and enable them, set their token format and token exchange policy (RFC 9068,
RFC 8693).

The settings of issue 16 (pairwise subjects, signed UserInfo, DPoP-bound tokens, signed
request objects) are checked by the same functions as registration and the admin form
(``oauth.subjects.subject_problem``, the algorithm lists discovery advertises)."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from .. import db
from ..models import Client
from ..oauth import keys, subjects
from ..oauth.claims import OIDC_SCOPES
from ..oauth.clients import create_client
from ..oauth.jar import SIGNING_ALG_VALUES as REQUEST_OBJECT_ALGS
from ..oauth.server import GRANT_TYPES
from .common import TOKEN_FORMAT_CHOICE, emit


@click.group("clients", cls=AppGroup)
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
@click.option(
    "--request-object-signing-alg",
    "--request-object-alg",
    "request_object_alg",
    type=click.Choice(REQUEST_OBJECT_ALGS),
    help="Signed request objects (RFC 9101) must use this algorithm; needs the client's keys.",
)
@click.option(
    "--require-signed-request-object",
    is_flag=True,
    help="Only signed request objects (RFC 9101 §10.5); needs the client's keys.",
)
@click.option(
    "--dpop-bound-access-tokens",
    is_flag=True,
    help="Refuse token requests without a DPoP proof (RFC 9449 §5.2).",
)
@click.option(
    "--subject-type",
    type=click.Choice(subjects.SUBJECT_TYPES),
    help="sub values: the same for every client (public, the default) or pairwise (OIDC Core §8).",
)
@click.option(
    "--sector-identifier-uri",
    help="https URL of a JSON array listing every redirect URI (OIDC Core §8.1); fetched now.",
)
@click.option(
    "--userinfo-signed-response-alg",
    type=click.Choice(keys.ALGORITHMS),
    help="UserInfo answers as a JWT signed with this algorithm (OIDC Core §5.3.2).",
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
    request_object_alg,
    require_signed_request_object,
    dpop_bound_access_tokens,
    subject_type,
    sector_identifier_uri,
    userinfo_signed_response_alg,
    as_json,
    **logout_metadata,
):
    """Register a client; prints its id and, once, its secret."""
    signs_requests = bool(request_object_alg or require_signed_request_object)
    key_metadata = client_key_metadata(public, auth_method, jwks_uri, jwks_file, signs_requests)
    from ..oauth.logout import invalid_backchannel_logout_uri, invalid_frontchannel_logout_uri
    from ..oauth.redirects import invalid_redirect_uri

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
    # OIDC Core §8.1, the rule registration and the admin form apply: the sector URI is
    # fetched and must list every redirect URI; pairwise needs one host or a sector URI.
    problem = subjects.subject_problem(subject_type, sector_identifier_uri, list(redirect_uris))
    if problem:
        field, reason = problem
        raise click.UsageError(f"--{field.replace('_', '-')} {reason} (OIDC Core section 8.1)")
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
    if dpop_bound_access_tokens:
        client.client_metadata["dpop_bound_access_tokens"] = True  # RFC 9449 §5.2
    # Stored as the admin form stores them: public is the default (None).
    client.subject_type = subject_type if subject_type != "public" else None
    client.sector_identifier_uri = sector_identifier_uri or None
    client.userinfo_signed_response_alg = userinfo_signed_response_alg
    client.request_object_signing_alg = request_object_alg
    client.require_signed_request_object = require_signed_request_object
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
        "request_object_signing_alg": request_object_alg,
        "require_signed_request_object": require_signed_request_object,
        "dpop_bound_access_tokens": dpop_bound_access_tokens,
        "subject_type": subject_type or "public",
        "sector_identifier_uri": client.sector_identifier_uri,
        "userinfo_signed_response_alg": userinfo_signed_response_alg,
    }
    emit(
        as_json,
        data,
        f"client_id: {client.client_id}"
        + (f"\nclient_secret: {secret}\n(the secret is shown only now)" if secret else ""),
    )


def client_key_metadata(public, auth_method, jwks_uri, jwks_file, signs_requests=False) -> dict:
    """jwks_uri or jwks for private_key_jwt or signed request objects (RFC 7591 §2: never
    both), checked."""
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    from .. import outbound
    from ..oauth.client_auth import PRIVATE_KEY_JWT
    from ..oauth.client_metadata import web_url_problem

    if jwks_uri and jwks_file:
        raise click.ClickException("use --jwks-uri or --jwks-file, not both")
    if public and signs_requests:
        raise click.ClickException("signed request objects are for confidential clients")
    if public or (auth_method != PRIVATE_KEY_JWT and not signs_requests):
        if jwks_uri or jwks_file:
            raise click.ClickException(
                "--jwks-uri and --jwks-file need --auth-method private_key_jwt "
                "or signed request objects"
            )
        return {}
    if jwks_uri:
        problem = web_url_problem(jwks_uri, loopback_http=True) or outbound.problem(jwks_uri)
        if problem:
            raise click.ClickException(f"--jwks-uri {problem}")
        return {"jwks_uri": jwks_uri}
    if not jwks_file:
        who = "private_key_jwt" if auth_method == PRIVATE_KEY_JWT else "signed request objects"
        raise click.ClickException(f"{who} needs --jwks-uri or --jwks-file")
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
    emit(as_json, data, "\n".join(lines) if lines else "no clients")


@clients.command("show")
@click.argument("client_id")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def clients_show(client_id, as_json):
    """Show a client's settings (its registered metadata, RFC 7591 §2); never its secret."""
    from ..oauth.client_metadata import from_client

    client = db.session().scalar(select(Client).where(Client.client_id == client_id))
    if client is None:
        raise click.ClickException(f"no client {client_id}")
    metadata = from_client(client)
    data = {
        "client_id": client.client_id,
        "type": "public" if client.is_public else "confidential",
        "disabled": client.disabled,
        "first_party": client.first_party,
        "dynamically_registered": client.dynamically_registered,
        **metadata,
        # The defaults spelled out (absent from the stored metadata when not set).
        "subject_type": client.subject_type or "public",
        "userinfo_signed_response_alg": client.userinfo_signed_response_alg,
        "dpop_bound_access_tokens": bool(metadata.get("dpop_bound_access_tokens")),
        "require_signed_request_object": bool(client.require_signed_request_object),
        "request_object_signing_alg": client.request_object_signing_alg,
    }
    lines = [f"{name}: {_shown(value)}" for name, value in data.items()]
    emit(as_json, data, "\n".join(lines))


def _shown(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _set_client_disabled(client_id: str, disabled: bool) -> None:
    from .. import audit

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
    from .. import audit
    from ..oauth import token_exchange

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
    emit(
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
