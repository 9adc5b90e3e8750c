"""Token issuance, liveness and revocation on the ``tokens`` table (RFC 6749 §5.1, RFC 7009).

Opaque bearer tokens (RFC 6750) of 256 random bits; only their SHA-256 hashes are stored.

One liveness rule (``is_live`` for token rows, ``grant_is_live`` for what an ID token
names): the client is enabled, the user is active, the session is live where the token is
bound to one (unless it is an offline refresh token), the consent still exists (first-party
clients have none) and the code it came from was not revoked. Every endpoint that accepts
a token applies it.

One revocation (``revoke_grants``) for a user, a client or a session: callers change the
state first (session ended, user disabled, consent deleted), then it expires what is in
flight (unredeemed codes, approved device codes) and revokes the token rows. A token being
issued at that moment re-reads its grant's state after its INSERT (``settle``, under
FOR SHARE row locks on PostgreSQL; SQLite runs one writer at a time), so either the
revocation sees the new row or the new row sees the revocation.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta

from authlib.oauth2.rfc6749 import InvalidGrantError
from flask import current_app
from sqlalchemy import and_, bindparam, exists, or_, select, true, update
from sqlalchemy import insert as sql_insert
from sqlalchemy.orm import lazyload

from .. import audit, db
from ..models import (
    AuthorizationCode,
    Consent,
    DeviceCode,
    Token,
    User,
    UserSession,
    secret_hash,
    token_sql,
    utcnow,
)
from ..models.device import APPROVED
from ..models.token import TokenMethods
from . import dpop, jwt_tokens
from .cache import registry


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def generate_bearer_token(
    grant_type, client, user=None, scope=None, expires_in=None, include_refresh_token=True
) -> dict:
    """Authlib token generator: the response body of RFC 6749 §5.1."""
    token = {
        "token_type": dpop.token_type(),  # RFC 9449 §5: "DPoP" when bound
        "access_token": new_secret(),
        # The client's own lifetime when an admin set one, else the server default.
        "expires_in": int(
            expires_in
            or getattr(client, "access_token_lifetime", None)
            or current_app._get_current_object().config["ACCESS_TOKEN_LIFETIME"]
        ),
    }
    if scope is not None:
        token["scope"] = scope
    if include_refresh_token:
        token["refresh_token"] = new_secret()
    return token


def save_token(token: dict, request) -> Token:
    """Store the hashes of a freshly generated token; called by Authlib's grants."""
    now = utcnow()
    code = getattr(request, "authorization_code", None)
    parent = getattr(request, "refresh_token", None)
    rotating = isinstance(parent, token_sql.RefreshView)  # found on the driver: rotate()
    row = (token_sql.NewToken if rotating else transient_token)(
        client_id=request.client.client_id,
        user_id=request.user.id if request.user else None,
        grant_type=request.payload.grant_type,
        scope=token.get("scope") or "",
        # A code exchanged for one resource (RFC 8707 §2.2) still grants all its scopes.
        granted_scope=parent.granted_scope
        if parent
        else (code.scope if code else (token.get("scope") or "")),
        issued_at=now,
        access_expires_at=now + timedelta(seconds=token["expires_in"]),
        family_id=parent.family_id if parent else uuid.uuid4().hex,
        authorization_code_id=code.id if code else getattr(parent, "authorization_code_id", None),
        auth_time=code.auth_time if code else (parent.auth_time if parent else None),
        amr=code.amr if code else (parent.amr if parent else None),
        acr=code.acr if code else (parent.acr if parent else None),  # kept on refresh
        sid=code.sid if code else (parent.sid if parent else None),
        # OIDC Core §5.5: the individually requested claims, kept on refresh.
        claims_request=code.claims_request if code else getattr(parent, "claims_request", None),
        jkt=dpop.current_jkt(),  # RFC 9449 §6: the DPoP key the token is bound to
    )
    if "refresh_token" in token:
        row.refresh_token_hash = secret_hash(token["refresh_token"])
        lifetime = (
            request.client.refresh_token_lifetime
            or current_app._get_current_object().config["REFRESH_TOKEN_LIFETIME"]
        )
        row.refresh_expires_at = now + timedelta(seconds=int(lifetime))
    # RFC 9068 / RFC 8707: audience, lifetime and format (JWT or opaque) of the access token.
    jwt_tokens.shape(token, request, row)
    if rotating:
        row.id = rotate(parent, row, now)
        return row
    # Client credentials with the client read from the worker's cache opened no session:
    # none is opened for the INSERT alone (its commit would be an empty round of the ORM).
    session = db.open_session() if db.driver_path() else db.session()
    committed = inserts_alone()
    row.id = insert(session, row)
    # Token exchange of an access token joins the subject's family (token_exchange.py).
    subject = getattr(request, "subject", None)
    in_family = subject is not None and subject.granted_scope is not None
    if row.user_id is not None or code is not None or parent is not None:
        ids = (code.id if code else None, parent.id if parent else None)
        settle(row, *ids, in_family, committed=committed)
    session = db.open_session()
    if session is not None:
        session.commit()  # also releases the row locks of settle
    return row


class IssuedToken(TokenMethods):
    """A token about to be stored by ``insert``: plain attributes named as Token's columns,
    None until set. Never an ORM instance: it never enters the session, and an instrumented
    Token fired an attribute event per column set (``jwt_tokens.shape`` sets a dozen)."""

    def __init__(self, **values):
        self.__dict__.update(values)


for _name in (*(c.key for c in Token.__table__.columns), "user", "client"):
    setattr(IssuedToken, _name, None)
del _name


def transient_token(**values) -> IssuedToken:
    """The row of a token issued without rotation (``save_token``); its ``__dict__`` holds
    exactly the values set, as ``insert`` expects."""
    return IssuedToken(**values)


def inserts_alone() -> bool:
    """Whether ``insert`` autocommits the row by itself: on PostgreSQL, when the request's
    session has nothing to commit with it (``db.nothing_pending``, the rule of every
    autocommitted write beside a session)."""
    return db.driver_path() and db.nothing_pending()


def insert(session, row: Token) -> int:  # session: None if the request opened none
    """INSERT the values set on a new (transient) row; its id.

    One statement instead of the ORM unit of work, which costs more than the INSERT itself
    on the token endpoint. On PostgreSQL it is psycopg's prepared statement
    (``models.token_sql``); elsewhere one Core statement. ``row`` stays out of the session
    (it is the caller's record of what was stored).
    """
    if inserts_alone():
        # Nothing else to write with it (client credentials; a code, consumed and committed
        # already): the INSERT alone, autocommitted, is one round trip instead of three.
        with db.autocommit() as conn:
            return token_sql.insert_token(conn, row)
    if db.driver_path():  # the session holds something: the row commits with it
        with db.in_session() as conn:
            return token_sql.insert_token(conn, row)
    values = {name: row.__dict__[name] for name in TOKEN_COLUMNS if name in row.__dict__}
    if session.in_transaction():
        return session.execute(INSERT_TOKEN, values).scalar_one()
    with session.get_bind().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn.execute(INSERT_TOKEN, values).scalar_one()


def rotate(parent: token_sql.RefreshView, row: token_sql.NewToken, now) -> int:
    """The refresh grant on PostgreSQL: consume ``parent`` and store ``row`` in one
    autocommitted statement (``token_sql.ROTATE``); the new row's id.

    That statement reads the grant's state again under FOR SHARE row locks on the user,
    session, consent and code rows, in the order revocations write, before it locks the
    parent, and consumes the parent only if the grant is still live: a revocation that wrote
    its state first is seen there (nothing is written); one that writes after waits for the
    statement's commit and then sees the new row (so ``settle`` has nothing left to find). A
    racing use or revocation of the parent holds or waits for the parent's row lock: the
    loser of the consuming UPDATE stores nothing, and its family revocation, a statement
    begun after the winner's commit, revokes the winner's new row too (RFC 9700 §4.14.2).
    """
    with db.autocommit() as conn:
        new_id = token_sql.rotate(
            conn, parent, now, row,
            # What tokens.is_live needed of the grant when the parent was read.
            need_session=not keeps_offline(parent),
            need_consent=needs_consent(parent),
        )  # fmt: skip
    if new_id is None:
        state = (
            db.session()
            .execute(select(Token.refresh_used_at, Token.revoked_at).where(Token.id == parent.id))
            .one_or_none()  # None: deleted meanwhile (its user deleted)
        )
        if state is not None and state.refresh_used_at is None and state.revoked_at is None:
            # Its grant ended while the tokens were made: the revocation that ended it
            # revokes the grant's tokens; this request stored nothing.
            raise InvalidGrantError("The grant has ended.")
        revoke_family(parent.family_id, reason="refresh token raced or reused")
        db.session().commit()
        raise InvalidGrantError("The refresh token was already used.")
    return new_id


def find_to_refresh(token_string: str):
    """``find`` for the refresh grant. On PostgreSQL: the refresh token's row, its user and
    its grant's state read on the driver in one autocommitted statement
    (``token_sql.find_refresh``); ``rotate`` checks the grant's state again, locked, as it
    consumes the token. Elsewhere: ``find`` (ORM)."""
    if not db.driver_path():
        return find(token_string, "refresh_token")
    with db.autocommit() as conn:
        return token_sql.find_refresh(conn, secret_hash(token_string))


TOKEN_COLUMNS = tuple(c.key for c in Token.__table__.columns if c.key != "id")
INSERT_TOKEN = sql_insert(Token.__table__).returning(Token.__table__.c.id)


EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


def revoked_code(code_id):
    """SQL: the code was revoked after its use (a replay): ``revoke_code`` set expires_at
    back to used_at. A code redeemed in time always has used_at < expires_at."""
    return and_(
        AuthorizationCode.id == code_id,
        AuthorizationCode.used_at.is_not(None),
        AuthorizationCode.expires_at <= AuthorizationCode.used_at,
    )


def settle(
    row: Token,
    code_id: int | None,
    parent_id: int | None,
    in_family: bool = False,
    *,
    committed: bool = False,
) -> None:
    """Re-read the state of a just-inserted token's grant; revoke the token if it ended.

    A revocation may have listed the grant's tokens after this request checked the grant
    but before this row existed (the code-replay and sign-out races, RFC 6749 §4.1.2,
    RFC 9700 §4.14.2). Revocations change their state first, then revoke rows; this reads
    the state after the INSERT, so one of the two sees the other. On PostgreSQL the reads
    take FOR SHARE row locks on the live rows in the order revocations write (user,
    session, consent, code, parent token, the family an exchanged token joined), so an
    uncommitted revocation is waited for rather than missed.

    ``committed``: the row was INSERTed and committed by itself (``inserts_alone``). The
    re-read is then one autocommitted statement on the thread's held connection, its locks
    held for that statement: a revocation that writes its state after it lists the grant's
    rows after the INSERT's commit, and so revokes the new row itself. Otherwise the
    re-read runs in the session's transaction, and a revocation's write waits for its
    commit, which makes the INSERT visible.
    """
    names = []
    if row.user_id is not None:
        names.append("user")
        # An offline refresh token outlives its session (OIDC Core §11), and so do the
        # access tokens it is refreshed into; sign-out only ended the one issued with it.
        if row.sid is not None and not (parent_id is not None and keeps_offline(row)):
            names.append("session")
        client = registry().client(row.client_id)
        if row.grant_type != EXCHANGE and not (client is not None and client.first_party):
            names.append("consent")
    code_id = code_id or row.authorization_code_id
    if code_id is not None:
        names.append("code")
    if parent_id is not None:
        names.append("parent")
    if in_family:
        names.append("family")
    params = {
        "user_id": row.user_id, "sid": row.sid, "client_id": row.client_id,
        "code_id": code_id, "parent_id": parent_id, "family_id": row.family_id,
        "row_id": row.id,
    }  # fmt: skip
    state = _settle_state(tuple(names), params, committed)
    checks = dict(zip(names, state, strict=True))
    ended = [name for name in names if not checks[name]]
    if not ended:
        return
    now = utcnow()
    if ended == ["session"] and keeps_offline(row):
        # The sign-out policy: an offline refresh token outlives the session, its access
        # token does not (as revoke_grants does for the session's other rows).
        values = {"access_expires_at": now}
        row.access_expires_at = now
    else:
        values = {"revoked_at": now}
        row.revoked_at = now
    db.session().execute(update(Token).where(Token.id == row.id).values(**values))
    audit.record("token.revoked_meanwhile", target=row.client_id, token_id=row.id, ended=ended)


def _locked(query):
    return query.with_for_update(read=True).exists()


def _settle_check(name: str):
    """One of settle's reads, on bound parameters (the statement is built once per shape)."""
    if name == "user":
        query = select(User.id).where(User.id == bindparam("user_id"), User.disabled.is_(False))
        return _locked(query)
    if name == "session":
        return _locked(
            select(UserSession.id).where(
                UserSession.sid == bindparam("sid"), UserSession.ended_at.is_(None)
            )
        )
    if name == "consent":
        return _locked(
            select(Consent.id).where(
                Consent.user_id == bindparam("user_id"),
                Consent.client_id == bindparam("client_id"),
            )
        )
    if name == "code":
        # A lock is taken only on rows that match, so the live code is what is matched and
        # locked; a code purged since (long redeemed, refresh tokens outlive it) is no mark.
        code_id = bindparam("code_id")
        return or_(
            _locked(
                select(AuthorizationCode.id).where(
                    AuthorizationCode.id == code_id, ~revoked_code(code_id)
                )
            ),
            ~exists().where(AuthorizationCode.id == code_id),
        )
    if name == "parent":
        return _locked(
            select(Token.id).where(Token.id == bindparam("parent_id"), Token.revoked_at.is_(None))
        )
    return _locked(  # family
        select(Token.id).where(
            Token.family_id == bindparam("family_id"),
            Token.id != bindparam("row_id"),
            Token.revoked_at.is_(None),
        )
    )


# settle's statement per shape (which checks apply), and how it is run: built, and on
# PostgreSQL compiled for psycopg, once per worker rather than on every token issued.
_SETTLE_STATEMENTS: dict[tuple[tuple[str, ...], str], object] = {}


def _settle_state(names: tuple[str, ...], params: dict, committed: bool = False) -> tuple:
    """The truth of each check of ``names``. On PostgreSQL a prepared statement: after an
    autocommitted INSERT (``committed``) autocommitted itself on the thread's held
    connection, else on the session's psycopg connection in its transaction (its FOR SHARE
    locks held until the session commits); elsewhere the Core statement."""
    how = ("alone" if committed else "session") if db.driver_path() else "core"
    statement = _SETTLE_STATEMENTS.get((names, how))
    if statement is None:
        statement = select(*(_settle_check(n).label(n) for n in names))
        if how != "core":
            statement = str(statement.compile(dialect=token_sql.DIALECT))
        if how == "alone":
            statement = db.Prepared("idp_settle_" + "_".join(names), statement)
        _SETTLE_STATEMENTS[names, how] = statement
    if how == "alone":
        with db.autocommit() as conn:
            return statement.one(conn, params)
    if how == "session":
        with db.in_session() as conn:
            return conn.execute(statement, params, prepare=True).fetchone()
    return tuple(db.session().execute(statement, params).one())


def keeps_offline(row: Token) -> bool:
    """An offline_access refresh token that survives sign-out (OIDC Core §11)."""
    return (
        bool(current_app._get_current_object().config["SIGN_OUT_KEEPS_OFFLINE_ACCESS"])
        and row.refresh_token_hash is not None
        and "offline_access" in row.granted_scope.split()
    )


# Built once: the look-up runs on every introspection, revocation and UserInfo request.
# The client row is loaded only if asked for (those endpoints compare client_id); the user,
# whose state decides "active", comes in the join; the session, consent and code that the
# liveness rule needs come as three EXISTS in the same statement (no extra round trip).
SESSION_LIVE = or_(
    Token.sid.is_(None),
    exists().where(UserSession.sid == Token.sid, UserSession.ended_at.is_(None)),
)
CONSENT_GIVEN = or_(
    Token.user_id.is_(None),
    exists().where(Consent.user_id == Token.user_id, Consent.client_id == Token.client_id),
)
CODE_REVOKED = exists().where(revoked_code(Token.authorization_code_id))
FIND_TOKEN = (
    select(
        Token,
        SESSION_LIVE.label("session_live"),
        CONSENT_GIVEN.label("consent_given"),
        CODE_REVOKED.label("code_revoked"),
    )
    .where(
        or_(
            Token.access_token_hash == bindparam("digest"),
            Token.refresh_token_hash == bindparam("digest"),
        )
    )
    .options(lazyload(Token.client))
)


def find(token_string: str, hint: str | None = None) -> Token | None:
    """The row holding this access or refresh token, whichever it is.

    One indexed look-up on both hash columns: RFC 7009 §2.1 makes ``token_type_hint`` only
    an optimisation, and a wrong hint must not hide the token (nor cost a second query).
    """
    digest = secret_hash(token_string)
    found = db.session().execute(FIND_TOKEN, {"digest": digest}).first()
    if found is None:
        return None
    row = found[0]
    row.presented_as = "access_token" if row.access_token_hash == digest else "refresh_token"
    row.grant_state = (bool(found[1]), bool(found[2]), not found[3])
    return row


def find_to_read(token_string: str):
    """``find`` for the endpoints that only read the token (introspection, UserInfo).

    On PostgreSQL: one prepared, autocommitted statement on narrow columns, answered as a
    read-only ``token_sql.TokenView`` (not bound to the session: it cannot be changed).
    Elsewhere: ``find``.
    """
    if not db.driver_path():
        return find(token_string)
    with db.autocommit() as conn:
        view = token_sql.find_token(conn, secret_hash(token_string))
    if view is not None:
        # The client's settings (pairwise subjects, signed UserInfo) from the per-worker
        # cache, read only (one shared instance); None for a disabled client, whose tokens
        # is_live refuses anyway.
        view.client = registry().shared(view.client_id)
    return view


def is_live(row: Token) -> bool:
    """The liveness rule for the token a request presented (found by ``find``)."""
    if row.revoked_at is not None:
        return False
    refresh = row.presented_as == "refresh_token"
    if (not row.refresh_is_usable()) if refresh else row.is_expired():
        return False
    session_live, consent_given, code_live = row.grant_state
    return code_live and grant_is_live(
        row.client_id,
        row.user,
        # Offline access outlives the session (its first access token was expired then).
        session_live=session_live or keeps_offline(row),
        # An exchanged token belongs to the subject's grant (its family), not a consent.
        consent_given=consent_given or row.grant_type == EXCHANGE,
    )


def grant_is_live(
    client_id: str, user: User | None, *, session_live: bool, consent_given: bool
) -> bool:
    """The rule itself: the client enabled, the user active, the session live, the consent
    there (first-party clients ask for none). Also used for ID tokens (oidc.live_subject)."""
    client = registry().settings(client_id)  # read only: no transient copy
    if client is None or not session_live:
        return False
    if user is None:
        return True
    return user.is_active and (consent_given or bool(client["first_party"]))


def needs_consent(row: Token) -> bool:
    """Whether ``row``'s grant stands on a consent (``grant_is_live``): a user's grant to a
    third-party client, other than a token exchange (which belongs to its subject's family)."""
    if row.user_id is None or row.grant_type == EXCHANGE:
        return False
    client = registry().settings(row.client_id)
    return not (client is not None and client["first_party"])


def revoke(row: Token) -> None:
    if row.revoked_at is None:
        row.revoked_at = utcnow()


def revoke_family(family_id: str, reason: str) -> int:
    """Revoke every token descended from one grant (RFC 9700 §4.14.2)."""
    session = db.session()
    # A rotation that won moments ago may be storing its new row while holding a FOR SHARE
    # lock on its parent (``settle``). Locking the family first waits for that commit; the
    # UPDATE below is then a new statement whose snapshot includes the new row. (An UPDATE
    # that waited on the parent itself would not see a row committed meanwhile: PostgreSQL
    # reads committed rows as of the statement's start.) SQLite has one writer at a time.
    session.execute(select(Token.id).where(Token.family_id == family_id).with_for_update())
    result = session.execute(
        update(Token)
        .where(Token.family_id == family_id, Token.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    audit.record("token.family_revoked", target=family_id, reason=reason, count=result.rowcount)
    return result.rowcount


def revoke_for_code(code_id: int, reason: str) -> int:
    """Revoke every token issued from one authorization code (RFC 6749 §4.1.2)."""
    families = (
        db.session()
        .scalars(select(Token.family_id).where(Token.authorization_code_id == code_id).distinct())
        .all()
    )
    return sum(revoke_family(f, reason) for f in families)


def revoke_code(code_id: int, reason: str) -> int:
    """A redeemed code came back (RFC 6749 §4.1.2): mark it revoked, then revoke its tokens.

    The mark comes first so that a winner still inserting its tokens sees it (``settle``).
    """
    db.session().execute(
        update(AuthorizationCode)
        .where(
            AuthorizationCode.id == code_id,
            AuthorizationCode.used_at.is_not(None),
            AuthorizationCode.expires_at > AuthorizationCode.used_at,
        )
        .values(expires_at=AuthorizationCode.used_at)
    )
    return revoke_for_code(code_id, reason)


def revoke_grants(
    reason: str,
    *,
    user_id: int | None = None,
    client_id: str | None = None,
    sid: str | None = None,
    keep_offline: bool = False,
) -> int:
    """End what a user, a user's grant to a client, or a browser session holds.

    The caller has already changed the state (ended the session, disabled the user,
    deleted the consent) in this transaction. Then: unredeemed codes and approved device
    codes not yet polled expire (they would otherwise still yield tokens), and the tokens
    are revoked; for a user and client, the whole families (exchanged tokens held by other
    clients included). For a session, with keep_offline, offline_access refresh tokens
    survive (OIDC Core §11) but their access tokens end now. Returns the rows revoked.
    """
    session = db.session()
    now = utcnow()
    code_filter = [AuthorizationCode.used_at.is_(None), AuthorizationCode.expires_at > now]
    token_filter = [Token.revoked_at.is_(None)]
    if user_id is not None:
        code_filter.append(AuthorizationCode.user_id == user_id)
        token_filter.append(Token.user_id == user_id)
    if client_id is not None:
        code_filter.append(AuthorizationCode.client_id == client_id)
        token_filter.append(Token.client_id == client_id)
    if sid is not None:
        code_filter.append(AuthorizationCode.sid == sid)
        token_filter.append(Token.sid == sid)
    session.execute(update(AuthorizationCode).where(*code_filter).values(expires_at=now))
    if sid is None:  # device codes belong to no browser session
        device_filter = [
            DeviceCode.status == APPROVED,
            DeviceCode.used_at.is_(None),
            DeviceCode.expires_at > now,
            DeviceCode.user_id == user_id,
        ]
        if client_id is not None:
            device_filter.append(DeviceCode.client_id == client_id)
        session.execute(update(DeviceCode).where(*device_filter).values(expires_at=now))
    selected = and_(*token_filter)
    if user_id is not None and client_id is not None:
        families = select(Token.family_id).where(
            Token.user_id == user_id, Token.client_id == client_id
        )
        selected = and_(Token.revoked_at.is_(None), Token.family_id.in_(families))
    offline = and_(
        Token.refresh_token_hash.is_not(None),
        (" " + Token.granted_scope + " ").contains(" offline_access ", autoescape=True),
    )
    revoked = session.execute(
        update(Token)
        .where(selected, ~offline if keep_offline else true())
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if keep_offline:
        session.execute(
            update(Token)
            .where(selected, offline, Token.access_expires_at > now)
            .values(access_expires_at=now)
            .execution_options(synchronize_session=False)
        )
    return revoked
