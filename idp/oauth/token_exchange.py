"""OAuth 2.0 Token Exchange (RFC 8693): a client trades a user's token for one to another API.

Authlib's ``authlib.oauth2.rfc8693`` package is empty, so the grant is written here in the
shape of Authlib's grants (``BaseGrant`` + ``TokenEndpointMixin``) and registered like them.

    POST /token  grant_type=urn:ietf:params:oauth:grant-type:token-exchange
      subject_token, subject_token_type   an access token or an ID token issued here (§2.1)
      actor_token, actor_token_type       optional delegation: the actor (the calling client,
                                          or a user signed in to it) -> "act" claim (§4.1)
      resource / audience                 the target APIs: registered resources (§2.1)
      scope                               at most what the user granted, for those APIs
      requested_token_type                access_token (default) or jwt (§3)
    -> 200 access_token, issued_token_type, token_type=Bearer, expires_in, scope (§2.2.1)
    -> 400 invalid_request (bad or unacceptable tokens), invalid_target, invalid_scope (§2.2.2)

Which client may exchange which tokens for which audiences is policy held per client in
``Client.token_exchange_policy``; whatever it does not list is refused::

    {"audiences": ["https://api.example/orders"],       # resource identifiers it may target
     "subject_clients": ["spa-client-id"] or ["*"],      # whose tokens it may exchange
     "subject_token_types": ["access_token", "id_token"]}

The new token keeps the subject's family, session and sign-in (revoking the subject's grant
or ending its session revokes it too) and never carries a scope the user did not grant: for
an access token the scope of the grant it came from, for an ID token (which proves sign-in
only) the scopes of the target resources, which the policy opted into.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import (
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.grants.base import BaseGrant, TokenEndpointMixin
from authlib.oauth2.rfc6749.util import scope_to_list
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select

from .. import audit, db
from ..models import Client, User
from . import oidc, resources, tokens
from .grants import ClientCredentialsGrant
from .resources import InvalidTargetError

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
# Token type identifiers, RFC 8693 §3.
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
ID_TOKEN = "urn:ietf:params:oauth:token-type:id_token"
JWT = "urn:ietf:params:oauth:token-type:jwt"
TOKEN_TYPES = {"access_token": ACCESS_TOKEN, "id_token": ID_TOKEN}
REQUESTED_TOKEN_TYPES = (ACCESS_TOKEN, JWT)


@dataclass
class PresentedToken:
    """What a subject or actor token says, whichever type it is."""

    user: User | None
    client_id: str  # the client it was issued to (an ID token: azp or its first aud)
    issued_to: list[str]  # the client(s) it was issued to (an ID token: its aud)
    sub: str
    granted_scope: list[str] | None = None  # None: an ID token, which grants no scope
    act: dict | None = None
    context: dict = field(default_factory=dict)


def read_access_token(value: str) -> PresentedToken | None:
    row = tokens.find(value, "access_token")
    if row is None or row.presented_as != "access_token" or not tokens.is_live(row):
        return None
    return PresentedToken(
        user=row.user,
        client_id=row.client_id,
        issued_to=[row.client_id],
        sub=row.user.sub if row.user is not None else row.client_id,
        granted_scope=scope_to_list(row.granted_scope) or [],
        act=row.act,
        context={
            "family_id": row.family_id,
            "sid": row.sid,
            "auth_time": row.auth_time,
            "amr": row.amr,
            "authorization_code_id": row.authorization_code_id,
        },
    )


def read_id_token(value: str) -> PresentedToken | None:
    """An unexpired ID token this server signed, whose grant is still live: the user active,
    the client enabled, its session not ended, the consent not revoked (oidc.live_subject).
    """
    data = oidc.decode_id_token(value)  # an at+jwt or a logout token is not an ID token
    if data is None:
        return None
    try:
        jwt.JWTClaimsRegistry(exp={"essential": True}).validate(data)
    except (JoseError, ValueError):
        return None
    user = oidc.live_subject(data)
    if user is None:
        return None
    aud = oidc.audiences(data)
    return PresentedToken(
        user=user,
        client_id=data.get("azp") or aud[0],
        issued_to=aud,
        sub=user.sub,
        context={
            "family_id": uuid.uuid4().hex,
            "sid": data.get("sid"),
            "auth_time": data.get("auth_time"),
            "amr": data.get("amr"),
        },
    )


def read_token(value: str, token_type: str) -> PresentedToken | None:
    return read_access_token(value) if token_type == ACCESS_TOKEN else read_id_token(value)


# --- per-client policy ------------------------------------------------------------------


def policy_of(client: Client) -> dict | None:
    return client.token_exchange_policy or None


def may_exchange(policy: dict, subject: PresentedToken, token_type: str) -> bool:
    """The policy accepts this kind of subject token issued to that client."""
    types = [TOKEN_TYPES.get(t, t) for t in policy.get("subject_token_types") or ()]
    clients = policy.get("subject_clients") or ()
    return token_type in types and ("*" in clients or any(c in clients for c in subject.issued_to))


def may_target(policy: dict, identifiers: list[str]) -> bool:
    audiences = policy.get("audiences") or ()
    return all(identifier in audiences for identifier in identifiers)


def act_claim(actor: PresentedToken | None, subject: PresentedToken) -> dict | None:
    """§4.1: the current actor, with the earlier chain nested inside it."""
    if actor is None:
        return subject.act  # no new actor: who already acts for the subject still does
    act = {"sub": actor.sub}
    if actor.user is None:
        act["client_id"] = actor.client_id
    if subject.act:
        act["act"] = subject.act
    return act


class TokenExchangeGrant(BaseGrant, TokenEndpointMixin):
    GRANT_TYPE = GRANT_TYPE
    # Confidential clients only: the policy trusts the client, so it must prove who it is.
    TOKEN_ENDPOINT_AUTH_METHODS = ClientCredentialsGrant.TOKEN_ENDPOINT_AUTH_METHODS

    def validate_token_request(self):
        client = self.authenticate_token_endpoint_client()
        policy = policy_of(client)
        if not client.check_grant_type(GRANT_TYPE) or policy is None:
            raise UnauthorizedClientError("The client may not use token exchange.")
        self.request.client = client
        form = self.request.form

        subject_type = form.get("subject_token_type")
        if not form.get("subject_token") or not subject_type:
            raise InvalidRequestError("subject_token and subject_token_type are required.")
        if subject_type not in (ACCESS_TOKEN, ID_TOKEN):
            raise InvalidRequestError("This subject_token_type is not supported.")
        subject = read_token(form["subject_token"], subject_type)
        # §2.2.2: an invalid or unacceptable subject_token is invalid_request.
        if subject is None or subject.user is None:
            raise InvalidRequestError("The subject_token is not valid.")
        if not may_exchange(policy, subject, subject_type):
            raise InvalidRequestError("The client may not exchange this subject_token.")

        actor = self.read_actor(client)
        requested_type = form.get("requested_token_type") or ACCESS_TOKEN
        if requested_type not in REQUESTED_TOKEN_TYPES:
            raise InvalidRequestError("This requested_token_type is not supported.")

        target = self.resolve_target(client, policy)
        if requested_type == JWT and resources.token_format(client, target) != "jwt":
            raise InvalidRequestError("The target resource takes opaque tokens, not a JWT.")
        self.request.user = subject.user
        self.request.target_resources = target
        self.request.scope = self.resolve_scope(subject, target)
        self.request.act = act_claim(actor, subject)
        self.request.token_context = subject.context
        self.request.subject = subject
        self.request.issued_token_type = requested_type

    def read_actor(self, client: Client) -> PresentedToken | None:
        """§2.1: actor_token and actor_token_type come together; the actor must be the calling
        client itself, or someone signed in to it."""
        form = self.request.form
        value, token_type = form.get("actor_token"), form.get("actor_token_type")
        if not value and not token_type:
            return None
        if not value or not token_type:
            raise InvalidRequestError("actor_token and actor_token_type go together.")
        if token_type not in (ACCESS_TOKEN, ID_TOKEN):
            raise InvalidRequestError("This actor_token_type is not supported.")
        actor = read_token(value, token_type)
        if actor is None or client.client_id not in actor.issued_to:
            raise InvalidRequestError("The actor_token is not valid for this client.")
        return actor

    def resolve_target(self, client: Client, policy: dict) -> list:
        """§2.1 resource and audience: registered resources the policy lets it target."""
        identifiers = list(
            dict.fromkeys(
                resources.indicators(self.request)
                + list(self.request.payload.datalist.get("audience") or [])
            )
        )
        if not identifiers:
            raise InvalidTargetError("Name the target with resource or audience.")
        found = resources.find(identifiers)
        if len(found) != len(identifiers) or not may_target(policy, identifiers):
            raise InvalidTargetError("The client may not obtain tokens for this target.")
        target = [found[i] for i in identifiers]
        resources.token_format(client, target)  # refuses targets that need different formats
        return target

    def resolve_scope(self, subject: PresentedToken, target: list) -> str:
        offered = {s for r in target for s in r.scopes}
        if subject.granted_scope is not None:
            offered &= set(subject.granted_scope)  # never more than the user granted
        requested = scope_to_list(self.request.payload.scope)
        if requested is None:
            scope = [s for r in target for s in r.scopes if s in offered]
        elif set(requested) <= offered:
            scope = requested
        else:
            raise InvalidScopeError("The scope exceeds what the subject_token allows.")
        if not scope:
            raise InvalidScopeError("Nothing the subject_token allows is offered by the target.")
        return " ".join(dict.fromkeys(scope))

    def create_token_response(self):
        request = self.request
        token = self.generate_token(
            user=request.user, scope=request.scope, include_refresh_token=False
        )
        token["issued_token_type"] = request.issued_token_type  # §2.2.1
        self.save_token(token)
        audit.record(
            "token.exchanged",
            actor=request.user.sub,
            target=request.client.client_id,
            subject_client=request.subject.client_id,
            audience=[r.identifier for r in request.target_resources],
            scope=request.scope,
            delegated_to=(request.act or {}).get("sub"),
        )
        db.session().commit()
        return 200, token, self.TOKEN_RESPONSE_HEADER


def policy_problem(audiences: list[str], subject_clients: list[str], token_types: list[str]):
    """Why a token exchange policy cannot be saved, or None (CLI and admin UI)."""
    if not audiences:
        return "name at least one audience (a registered resource identifier)"
    if not subject_clients:
        return "name at least one client whose tokens may be exchanged, or *"
    unknown = set(audiences) - set(resources.find(list(audiences)))
    if unknown:
        return "no resource " + ", ".join(sorted(unknown))
    named = [c for c in subject_clients if c != "*"]
    found = set(db.session().scalars(select(Client.client_id).where(Client.client_id.in_(named))))
    if set(named) - found:
        return "no client " + ", ".join(sorted(set(named) - found))
    if not token_types or set(token_types) - set(TOKEN_TYPES):
        return "subject token types are access_token and/or id_token"
    return None


def make_policy(audiences: list[str], subject_clients: list[str], token_types: list[str]) -> dict:
    return {
        "audiences": list(dict.fromkeys(audiences)),
        "subject_clients": list(dict.fromkeys(subject_clients)),
        "subject_token_types": list(dict.fromkeys(token_types)),
    }
