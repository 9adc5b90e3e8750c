"""OpenID Connect Core 1.0: ID tokens (§2, §3.1.3.6, §12.2) as Authlib grant extensions.

``OpenIDCode`` rides on the authorization code grant, ``OpenIDRefresh`` on the refresh
grant (an ID token is returned on refresh, §12.2, with the original ``auth_time`` and no
``nonce``). Both sign with the database keys of ``keys.KeyStore``.
"""

from __future__ import annotations

import time

from authlib.oidc.core import grants as oidc_grants
from authlib.oidc.core.util import create_half_hash
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import exists, select

from .. import db
from ..models import AuthorizationCode, Client, Consent, User, UserSession, token_sql
from . import claims_request, keys, subjects, tokens
from .acr import level
from .cache import registry
from .claims import user_claims
from .keys import sign

ID_TOKEN_TYP = "JWT"  # what sign() puts on ID tokens; access tokens are at+jwt (RFC 9068)


def signing_alg(client: Client) -> str:
    config = current_app._get_current_object().config
    return client.id_token_signed_response_alg or config["ID_TOKEN_SIGNING_ALG"]


def issue_id_token(
    client: Client,
    user: User,
    scope: str,
    *,
    auth_time: int | None,
    amr: list[str] | None = None,
    acr: str | None = None,
    nonce: str | None = None,
    access_token: str | None = None,
    sid: str | None = None,
    requested: str | None = None,
) -> str:
    """``requested``: the stored claims request (OIDC Core §5.5), whose id_token member's
    claims the ID token carries in addition to the scope's."""
    alg = signing_alg(client)
    now = int(time.time())
    claims = user_claims(user, scope, client, claims_request.released(requested, "id_token"))
    claims["sub"] = subjects.remember(client, user)  # a pairwise sub must map back (hints)
    config = current_app._get_current_object().config
    claims.update(
        iss=config["ISSUER"],
        aud=client.client_id,
        azp=client.client_id,
        iat=now,
        exp=now + int(config["ID_TOKEN_LIFETIME"]),
        auth_time=auth_time or now,
    )
    if nonce:
        claims["nonce"] = nonce
    if amr:
        claims["amr"] = amr
        # OIDC Core §2: the class the sign-in satisfied (oauth.acr); derived from amr when
        # the grant recorded none (device flow, token exchange).
        claims["acr"] = acr or level(amr)
    if sid:
        claims["sid"] = sid  # Front-/Back-Channel Logout 1.0 §3 / §2.1
    if access_token:
        claims["at_hash"] = create_half_hash(access_token, alg).decode("ascii")
    return sign(claims, alg)


def decode_id_token(value: str) -> dict | None:
    """The claims of an ID token this server signed (expired or not), else None.

    Explicit typing (RFC 8725 §3.11): the same keys sign ID tokens (typ JWT), access
    tokens (typ at+jwt, RFC 9068 §2.1) and logout tokens (typ logout+jwt), so the header
    decides which one a JWT is. Only an ID token is accepted where an ID token is expected
    (id_token_hint at /authorize, /par and /end_session, a token exchange subject or actor).
    """
    try:
        decoded = jwt.decode(value, keys.store().verification_keys(), algorithms=keys.ALGORITHMS)
    except (JoseError, ValueError):
        return None
    claims = decoded.claims
    if str(decoded.header.get("typ", "")).upper() != ID_TOKEN_TYP or "events" in claims:
        return None
    if claims.get("iss") != current_app.config["ISSUER"] or not claims.get("sub"):
        return None
    if not audiences(claims) or "exp" not in claims:
        return None  # every ID token has exp (§2); a signed UserInfo answer has none
    # OIDC Core §8: a pairwise sub names the user only for its client; callers compare
    # and look up the local sub.
    local = subjects.local_sub(registry().client(issued_to(claims)), claims["sub"])
    if local is None:
        return None
    return {**claims, "sub": local}


def issued_to(claims: dict) -> str:
    return claims.get("azp") or audiences(claims)[0]


def audiences(claims: dict) -> list[str]:
    aud = claims.get("aud")
    return [a for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str)]


def live_subject(claims: dict) -> User | None:
    """The user of an ID token whose grant is still live (tokens.grant_is_live): the client
    enabled, the user active, the session of its sid not ended, the consent not revoked."""
    sid = claims.get("sid")
    session_live = (
        exists()
        .where(UserSession.sid == sid, UserSession.user_id == User.id)
        .where(UserSession.ended_at.is_(None))
        if sid
        else None
    )
    client_id = issued_to(claims)
    consent = exists().where(Consent.user_id == User.id, Consent.client_id == client_id)
    columns = [User, consent] + ([session_live] if session_live is not None else [])
    found = db.session().execute(select(*columns).where(User.sub == claims["sub"])).first()
    if found is None:
        return None
    user = found[0]
    live = tokens.grant_is_live(
        client_id,
        user,
        session_live=bool(found[2]) if sid else True,
        consent_given=bool(found[1]),
    )
    return user if live else None


class OpenIDCode(oidc_grants.OpenIDCode):
    """ID token for the code flow; nonce replay is checked against stored codes."""

    def exists_nonce(self, nonce, request) -> bool:
        if db.driver_path():  # PostgreSQL: a prepared statement, autocommitted (token_sql)
            with db.autocommit() as conn:
                return token_sql.nonce_used(conn, request.payload.client_id, nonce)
        return (
            db.session().scalar(
                select(AuthorizationCode.id).where(
                    AuthorizationCode.client_id == request.payload.client_id,
                    AuthorizationCode.nonce == nonce,
                )
            )
            is not None
        )

    def generate_user_info(self, user, scope):
        return user_claims(user, scope)  # unused: encode_id_token builds the claims

    def encode_id_token(self, token, request) -> str:
        code = request.authorization_code
        return issue_id_token(
            request.client,
            request.user,
            token["scope"],
            auth_time=code.auth_time,
            amr=code.amr,
            acr=code.acr,
            nonce=code.nonce,
            access_token=token.get("access_token"),
            sid=code.sid,
            requested=code.claims_request,
        )


class OpenIDRefresh(oidc_grants.OpenIDToken):
    """ID token on refresh (OIDC Core §12.2): same sub and aud, original auth_time."""

    def encode_id_token(self, token, request) -> str:
        parent = request.refresh_token
        return issue_id_token(
            request.client,
            request.user,
            token["scope"],
            auth_time=parent.auth_time,
            amr=parent.amr,
            acr=parent.acr,  # OIDC Core §12.2: the original sign-in's values
            access_token=token.get("access_token"),
            sid=parent.sid,
            requested=parent.claims_request,  # OIDC Core §5.5, kept on refresh
        )
