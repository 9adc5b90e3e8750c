"""Creating clients (RFC 6749 §2): the service the CLI, the admin UI, dynamic registration
(RFC 7591) and the demo call, so that a new client is stored the same way everywhere.

Each caller checks its own input first (command options, form fields, registration
metadata); this module builds the row and stores its secret.
"""

from __future__ import annotations

from ..models import Client, new_client_id
from .client_auth import PRIVATE_KEY_JWT, set_client_secret
from .tokens import new_secret


def add_client(session, client: Client, secret: str | None) -> Client:
    """Store a new client with its secret: the hash, and an encrypted copy only for
    client_secret_jwt (``client_auth.set_client_secret``); never the plaintext."""
    set_client_secret(client, secret)
    session.add(client)
    return client


def create_client(
    session,
    *,
    name,
    redirect_uris,
    grant_types,
    scope,
    public,
    first_party,
    id_token_alg=None,
    auth_method=None,
) -> tuple[Client, str | None]:
    """A new client and, for confidential clients, its secret (shown once, stored hashed;
    private_key_jwt clients authenticate with their keys and get none)."""
    method = "none" if public else (auth_method or "client_secret_basic")
    secret = None if method in ("none", PRIVATE_KEY_JWT) else new_secret()
    client = Client(
        client_id=new_client_id(),
        client_name=name,
        redirect_uris=list(redirect_uris),
        grant_types=list(grant_types),
        response_types=["code"] if "authorization_code" in grant_types else [],
        scope=scope,
        token_endpoint_auth_method=method,
        first_party=first_party,
        id_token_signed_response_alg=id_token_alg,
    )
    add_client(session, client, secret)  # hash; encrypted too for client_secret_jwt
    return client, secret
