"""The hot-path statements on the ``tokens`` table, run on the driver (psycopg, PostgreSQL).

Token issuance, introspection and UserInfo run one statement each. Through the ORM and the
session that statement costs more than the rest of the request (hydrating ~50 columns,
unit of work, BEGIN/COMMIT); here it is built once from the model's own table (so the
schema keeps one home, ``token.py``), compiled once for psycopg, prepared on each
connection on first use, and reads only the columns the endpoint needs.

    INSERT_TOKEN  one row, RETURNING id          (autocommitted, or inside the session's
                                                  transaction when a code or refresh
                                                  token was used up in it)
    FIND_TOKEN    a token by the hash of either of its two strings, with its user's claims
                  and the three liveness facts (session live, consent given, code revoked)

Rows come back as ``TokenView``/``UserView``: plain read-only objects with the attributes
and TokenMixin methods the endpoints read. A token that a revocation changes is still read
through the ORM (``oauth.tokens.find``); the refresh rotation, the code's redemption and
the code's issue have statements of their own (below).

SQLite keeps the SQLAlchemy path (``db.driver_path()`` says which); docs/architecture.md.
"""

from __future__ import annotations

import operator
import re
from types import SimpleNamespace

from sqlalchemy import Boolean, bindparam, cast, exists, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.postgresql import psycopg as pg_dialect

from .. import db
from .audit import AuditEvent
from .consent import Consent
from .grant import AuthorizationCode, CodeMethods
from .session import SessionClient, UserSession
from .token import Token, TokenMethods
from .user import User

DIALECT = pg_dialect.dialect()
T = Token.__table__
U = User.__table__


def columns(table) -> tuple[str, ...]:
    """Every column of ``table`` but its id, in table order: what an INSERT sets."""
    return tuple(c.key for c in table.columns if c.key != "id")


def json_columns(table) -> frozenset[str]:
    """The JSON columns of ``table``: their values are sent as their text."""
    return frozenset(c.key for c in table.columns if c.type.__class__.__name__ == "JSON")


# Every column but the id, in table order; JSON ones are wrapped for psycopg.
INSERT_COLUMNS = columns(T)
JSON_COLUMNS = json_columns(T)
INSERT_TOKEN = str(
    insert(T)
    .values({name: bindparam(name) for name in INSERT_COLUMNS})
    .returning(T.c.id)
    .compile(dialect=DIALECT)
)

TOKEN_FIELDS = (
    "id", "client_id", "user_id", "grant_type", "scope", "granted_scope", "refresh_token_hash",
    "issued_at", "access_expires_at", "refresh_expires_at", "refresh_used_at", "revoked_at",
    "family_id", "authorization_code_id", "sid", "jti", "audience", "act", "resources",
    "auth_time", "amr", "acr", "jkt", "claims_request",
)  # fmt: skip
# The user's state and the claims UserInfo can release (claims.SCOPE_CLAIMS), nothing else:
# no password hash, no lockout counters.
USER_FIELDS = (
    "id", "sub", "username", "disabled", "updated_at", "email", "email_verified", "name",
    "given_name", "family_name", "middle_name", "nickname", "profile", "picture", "website",
    "gender", "birthdate", "zoneinfo", "locale", "phone_number", "phone_number_verified",
    "address",
)  # fmt: skip

_digest = bindparam("digest")
FIND_TOKEN = str(
    select(
        *(T.c[name] for name in TOKEN_FIELDS),
        (T.c.access_token_hash == _digest).label("is_access"),
        or_(
            T.c.sid.is_(None),
            exists().where(UserSession.sid == T.c.sid, UserSession.ended_at.is_(None)),
        ).label("session_live"),
        or_(
            T.c.user_id.is_(None),
            exists().where(Consent.user_id == T.c.user_id, Consent.client_id == T.c.client_id),
        ).label("consent_given"),
        exists()
        .where(
            AuthorizationCode.id == T.c.authorization_code_id,
            AuthorizationCode.used_at.is_not(None),
            AuthorizationCode.expires_at <= AuthorizationCode.used_at,
        )
        .label("code_revoked"),
        *(U.c[name].label("u_" + name) for name in USER_FIELDS),
    )
    .select_from(T.outerjoin(U, U.c.id == T.c.user_id))
    .where(or_(T.c.access_token_hash == _digest, T.c.refresh_token_hash == _digest))
    .compile(dialect=DIALECT)
)
_N = len(TOKEN_FIELDS)


# The same statement with positional parameters, sent as a tuple in INSERT_COLUMNS order:
# psycopg maps no names per execution. Unset columns are NULL; JSON values go as their text
# (json.dumps, as psycopg's Json would send it), which the statement's ::JSON casts type.
_POSITIONAL = re.compile(r"%\((\w+)\)s")
assert tuple(_POSITIONAL.findall(INSERT_TOKEN)) == INSERT_COLUMNS
INSERT_TOKEN_POSITIONAL = _POSITIONAL.sub("%s", INSERT_TOKEN)
_INSERT_TOKEN = db.Prepared("idp_insert_token", INSERT_TOKEN_POSITIONAL)
_FIND_TOKEN = db.Prepared("idp_find_token", FIND_TOKEN)
_INSERT_NULLS = dict.fromkeys(INSERT_COLUMNS)
_insert_params = operator.itemgetter(*INSERT_COLUMNS)
_JSON_INSERT_COLUMNS = tuple(name for name in INSERT_COLUMNS if name in JSON_COLUMNS)


def _insert_values(row) -> dict:
    """The values set on a new row (a Token or ``NewToken``) by column name, every column of
    INSERT_COLUMNS present (NULL when unset), JSON values as their text: the parameters of
    INSERT_TOKEN and of ROTATE's INSERT, which type them (``::JSON``, CAST)."""
    return db.json_as_text({**_INSERT_NULLS, **row.__dict__}, _JSON_INSERT_COLUMNS)


def insert_token(conn, row: Token) -> int:
    """INSERT the values set on a new row (on ``conn``, a psycopg connection); its id."""
    params = _insert_params(_insert_values(row))
    if conn.autocommit:
        return _INSERT_TOKEN.one(conn, params)[0]
    return conn.execute(INSERT_TOKEN_POSITIONAL, params, prepare=True).fetchone()[0]


def find_token(conn, digest: str) -> TokenView | None:
    """The token whose access or refresh token hashes to ``digest``, as a read-only view."""
    found = _FIND_TOKEN.one(conn, {"digest": digest})
    if found is None:
        return None
    view = _token_view(found, _new_token_view)
    is_access, session_live, consent_given, code_revoked = found[_N : _N + 4]
    view.presented_as = "access_token" if is_access else "refresh_token"
    view.grant_state = (bool(session_live), bool(consent_given), not code_revoked)
    return view


def builder(cls, fields: tuple[str, ...], start: int = 0):
    """``build(found)``: a new ``cls()`` with each of ``fields`` set from ``found``, in order
    from index ``start``. The straight-line code is generated once, as dataclasses and
    namedtuple generate theirs: a loop of ``setattr`` over the ~46 columns cost ~5 times as
    much, on every look-up of introspection, UserInfo, refresh and code redemption."""
    assert all(name.isidentifier() for name in fields)
    lines = ["def build(found):", "    view = cls()"]
    lines += [f"    view.{name} = found[{start + i}]" for i, name in enumerate(fields)]
    lines.append("    return view")
    namespace = {"cls": cls}
    exec("\n".join(lines), namespace)  # our own column names, checked above
    return namespace["build"]


def _token_view(found, build):
    """The view ``build`` makes of a row laid out as FIND_TOKEN and FIND_REFRESH select it:
    the token columns, four grant-state columns, then the user's columns (NULL without a
    user)."""
    view = build(found)
    if found[_N + 4] is not None:
        view.user = _user_after_token(found)
    return view


class TokenView(TokenMethods):
    """A token row as introspection and UserInfo read it (Token's TokenMixin methods)."""

    __slots__ = (*TOKEN_FIELDS, "presented_as", "grant_state", "user", "client")

    def __init__(self):
        self.user = None
        self.client = None  # set by oauth.tokens.find_to_read (the per-worker client cache)


class UserView:
    """A user as the liveness rule and the claims read it (the columns of USER_FIELDS)."""

    __slots__ = USER_FIELDS

    @property
    def is_active(self) -> bool:
        return not self.disabled

    @property
    def groups(self):
        """The groups claim is rare: read through the ORM when a scope asks for it."""
        return db.session().get(User, self.id).groups


_new_token_view = builder(TokenView, TOKEN_FIELDS)
_user_after_token = builder(UserView, USER_FIELDS, _N + 4)


# --- refresh rotation (RFC 6749 §6, RFC 9700 §4.14.2) -------------------------------------
#
#     FIND_REFRESH  the row of a refresh token with its user, and the liveness facts
#                   (autocommitted: the grant's checks, answered before anything is written)
#     ROTATE        one autocommitted statement: read the liveness facts again under FOR SHARE
#                   row locks (user, session, consent, code: the order in which revocations
#                   write), consume the parent only if the grant is still live (the UPDATE
#                   whose row count decides the single winner) and INSERT its successor only
#                   if it was consumed
#
# Each is one round trip on the thread's held connection (``oauth.tokens``: find_to_refresh,
# rotate); docs/architecture.md "Hot paths" says why that keeps settle's guarantees.


def _grant_state(token, locked: bool) -> tuple:
    """The four liveness facts of ``token``'s grant, as FIND_TOKEN's rule reads them; with
    ``locked``, each row that makes a fact true is locked FOR SHARE."""

    def exists_(query):
        return query.with_for_update(read=True).exists() if locked else query.exists()

    user = U.alias("live_user")  # FIND_REFRESH also joins the users row, for its claims
    return (
        or_(
            token.c.user_id.is_(None),
            exists_(
                select(user.c.id).where(user.c.id == token.c.user_id, user.c.disabled.is_(False))
            ),
        ).label("user_live"),
        or_(
            token.c.sid.is_(None),
            exists_(
                select(UserSession.id).where(
                    UserSession.sid == token.c.sid, UserSession.ended_at.is_(None)
                )
            ),
        ).label("session_live"),
        or_(
            token.c.user_id.is_(None),
            exists_(
                select(Consent.id).where(
                    Consent.user_id == token.c.user_id, Consent.client_id == token.c.client_id
                )
            ),
        ).label("consent_given"),
        or_(
            token.c.authorization_code_id.is_(None),
            # A lock is taken only on a row that matches: the live code; a code purged since
            # (refresh tokens outlive it) is no mark of revocation.
            exists_(
                select(AuthorizationCode.id).where(
                    AuthorizationCode.id == token.c.authorization_code_id,
                    ~(
                        AuthorizationCode.used_at.is_not(None)
                        & (AuthorizationCode.expires_at <= AuthorizationCode.used_at)
                    ),
                )
            ),
            ~exists().where(AuthorizationCode.id == token.c.authorization_code_id),
        ).label("code_live"),
    )


FIND_REFRESH = str(
    select(
        *(T.c[name] for name in TOKEN_FIELDS),
        *_grant_state(T, locked=False),
        *(U.c[name].label("u_" + name) for name in USER_FIELDS),
    )
    .select_from(T.outerjoin(U, U.c.id == T.c.user_id))
    .where(T.c.refresh_token_hash == bindparam("digest"))
    .compile(dialect=DIALECT)
)


def _rotate_statement() -> str:
    # The parent's grant columns never change once the row exists: they come as parameters
    # from the read (find_refresh), not from reading its row a second time.
    parent = SimpleNamespace(
        c=SimpleNamespace(
            **{
                name: bindparam(f"parent_{name}", type_=T.c[name].type)
                for name in ("user_id", "sid", "client_id", "authorization_code_id")
            }
        )
    )
    state = select(*_grant_state(parent, locked=True)).cte("grant_state")
    consumed = (
        update(T)
        .where(
            T.c.id == bindparam("parent_id"),
            T.c.refresh_used_at.is_(None),
            T.c.revoked_at.is_(None),
            # The grant is still as live as the checks found it (tokens.is_live): the user
            # active and the code not revoked; the session live unless the token outlives
            # it, the consent there unless the grant needs none.
            state.c.user_live,
            state.c.code_live,
            or_(state.c.session_live, ~bindparam("need_session", type_=Boolean)),
            or_(state.c.consent_given, ~bindparam("need_consent", type_=Boolean)),
        )
        .values(refresh_used_at=bindparam("used_at"))
        .returning(T.c.id)
        .cte("consumed")
    )
    # INSERT ... SELECT: each value cast to its column's type (a NULL parameter has none).
    values = select(*(cast(bindparam(name), T.c[name].type) for name in INSERT_COLUMNS))
    return str(
        insert(T)
        .from_select(INSERT_COLUMNS, values.select_from(consumed))
        .returning(T.c.id)
        .add_cte(state)
        .add_cte(consumed)
        .compile(dialect=DIALECT)
    )


ROTATE = _rotate_statement()
_FIND_REFRESH = db.Prepared("idp_find_refresh", FIND_REFRESH)
_ROTATE = db.Prepared("idp_rotate", ROTATE)


def find_refresh(conn, digest: str) -> TokenView | None:
    """The token whose refresh token hashes to ``digest``; ``grant_state`` as ``find_token``
    gives it, and ``user_live`` (the user's row: not disabled)."""
    found = _FIND_REFRESH.one(conn, {"digest": digest})
    if found is None:
        return None
    view = _token_view(found, _new_refresh_view)
    user_live, session_live, consent_given, code_live = found[_N : _N + 4]
    view.presented_as = "refresh_token"
    view.grant_state = (bool(session_live), bool(consent_given), bool(code_live))
    view.user_live = bool(user_live)
    return view


def rotate(conn, parent: RefreshView, used_at, row, *, need_session: bool, need_consent: bool):
    """Consume refresh token ``parent`` (as ``find_refresh`` read it) and INSERT ``row`` (a
    ``NewToken``) in one autocommitted statement: the new row's id, or None (and nothing
    written) if the parent was used or revoked meanwhile, or its grant ended
    (``need_session``, ``need_consent``: whether the grant still needs its session and its
    consent, as ``tokens.is_live`` found)."""
    params = _insert_values(row)
    params["parent_id"], params["used_at"] = parent.id, used_at
    params["parent_user_id"], params["parent_sid"] = parent.user_id, parent.sid
    params["parent_client_id"] = parent.client_id
    params["parent_authorization_code_id"] = parent.authorization_code_id
    params["need_session"], params["need_consent"] = need_session, need_consent
    found = _ROTATE.one(conn, params)
    return None if found is None else found[0]


class RefreshView(TokenView):
    """A refresh token's row as the refresh grant reads it (``find_refresh``)."""

    __slots__ = ("user_live",)


_new_refresh_view = builder(RefreshView, TOKEN_FIELDS)


class NewToken(TokenMethods):
    """A token about to be stored by ``rotate``: plain attributes named as Token's columns
    (no ORM instance state; ``oauth.jwt_tokens.shape`` fills it as it fills a Token)."""

    def __init__(self, **values):
        self.__dict__.update(values)


# --- code redemption (RFC 6749 §4.1.3, §4.1.2) --------------------------------------------
#
#     FIND_CODE     a code by its hash and client, with its user's columns (the ORM path's
#                   joined load, without the client row: the registry cache has it)
#     CONSUME_CODE  the conditional UPDATE whose row count decides the single winner
#
# Each autocommitted (one round trip, no BEGIN/COMMIT): the code is consumed, and committed,
# before the tokens are stored (grants.AuthorizationCodeGrant.create_token_response), as on
# the ORM path; the token INSERT and tokens.settle's re-read are then autocommitted too.

C = AuthorizationCode.__table__
CODE_FIELDS = (
    "id", "client_id", "user_id", "redirect_uri", "scope", "nonce", "code_challenge",
    "code_challenge_method", "auth_time", "sid", "amr", "acr", "resources", "dpop_jkt",
    "claims_request", "expires_at", "used_at",
)  # fmt: skip
_NC = len(CODE_FIELDS)
FIND_CODE = str(
    select(
        *(C.c[name] for name in CODE_FIELDS),
        *(U.c[name].label("u_" + name) for name in USER_FIELDS),
    )
    .select_from(C.outerjoin(U, U.c.id == C.c.user_id))
    .where(C.c.code_hash == bindparam("digest"), C.c.client_id == bindparam("client_id"))
    .compile(dialect=DIALECT)
)


def _consume_statement():
    now = bindparam("now")
    return (
        update(C)
        .where(C.c.id == bindparam("code_id"), C.c.used_at.is_(None), C.c.expires_at > now)
        .values(used_at=now)
    )


# The statement itself (SQLite runs it through the session) and its psycopg text.
CONSUME_CODE_STATEMENT = _consume_statement()
CONSUME_CODE = str(CONSUME_CODE_STATEMENT.compile(dialect=DIALECT))
_FIND_CODE = db.Prepared("idp_find_code", FIND_CODE)
_CONSUME_CODE = db.Prepared("idp_consume_code", CONSUME_CODE)


class CodeView(CodeMethods):
    """An authorization code's row as the code exchange reads it (``find_code``)."""

    __slots__ = (*CODE_FIELDS, "user")


_new_code_view = builder(CodeView, CODE_FIELDS)
_user_after_code = builder(UserView, USER_FIELDS, _NC)


def find_code(conn, digest: str, client_id: str) -> CodeView | None:
    """The code of ``client_id`` whose string hashes to ``digest``, used or not, with its user
    (a ``UserView``, None if the user was deleted)."""
    found = _FIND_CODE.one(conn, {"digest": digest, "client_id": client_id})
    if found is None:
        return None
    view = _new_code_view(found)
    view.user = _user_after_code(found) if found[_NC] is not None else None
    return view


def consume_code(conn, code_id: int, now) -> bool:
    """Mark code ``code_id`` used at ``now`` if it is unused and unexpired: whether this
    request won (RFC 6749 §4.1.2: a code is redeemed once)."""
    return _CONSUME_CODE.rowcount(conn, {"code_id": code_id, "now": now}) == 1


# --- code issuance (RFC 6749 §4.1.2) -------------------------------------------------------
#
#     ISSUE_CODE  one statement: the code's row, its session's link to the client (kept as
#                 it was if there already: the first sign-in to the client counts, for
#                 logout's fan-out) and the code.issued audit event; all of it or nothing.
#                 Autocommitted when the request has nothing else to commit (one round trip
#                 instead of BEGIN, three INSERTs and COMMIT), else inside its transaction
#     NONCE_USED  whether the client used the nonce in an earlier code (autocommitted)

A = AuditEvent.__table__
S = UserSession.__table__
SC = SessionClient.__table__
CODE_COLUMNS = columns(C)
AUDIT_COLUMNS = columns(A)  # at, event, actor, target, ip, details: audit.row's keys
_JSON_PARAMS = (*sorted(json_columns(C)), *("audit_" + n for n in sorted(json_columns(A))))


def _typed(table, name: str, key: str | None = None):
    """A parameter typed as the column, so the statement casts it (psycopg's text)."""
    return bindparam(key or name, type_=table.c[name].type)


ISSUE_CODE = str(
    insert(A)
    .values({c: _typed(A, c, "audit_" + c) for c in AUDIT_COLUMNS})
    .add_cte(insert(C).values({n: _typed(C, n) for n in CODE_COLUMNS}).cte("code"))
    .add_cte(
        pg_insert(SC)
        .from_select(
            ["session_id", "client_id", "first_at"],
            select(S.c.id, _typed(SC, "client_id"), _typed(SC, "first_at", "created_at")).where(
                S.c.sid == _typed(S, "sid")
            ),
        )
        .on_conflict_do_nothing(index_elements=["session_id", "client_id"])
        .cte("link")
    )
    .compile(dialect=DIALECT)
)
_ISSUE_CODE = db.Prepared("idp_issue_code", ISSUE_CODE)


def issue_code(conn, code: dict, event: dict) -> None:
    """Write a new code (``code``: every column of CODE_COLUMNS), link its session (``sid``,
    if any) to its client, and record ``event`` (audit.row), in one statement on ``conn``:
    autocommitted, or inside the transaction ``conn`` is in (the caller commits)."""
    params = {**code, **{"audit_" + c: event[c] for c in AUDIT_COLUMNS}}
    db.json_as_text(params, _JSON_PARAMS)
    if conn.autocommit:
        _ISSUE_CODE.run(conn, params)
    else:
        conn.execute(ISSUE_CODE, params, prepare=True)


# OIDC Core §3.1.2.1 (Authlib's nonce check): a nonce this client used in an earlier code.
NONCE_USED = str(
    select(
        exists().where(C.c.client_id == bindparam("client_id"), C.c.nonce == bindparam("nonce"))
    ).compile(dialect=DIALECT)
)
_NONCE_USED = db.Prepared("idp_nonce_used", NONCE_USED)


def nonce_used(conn, client_id: str, nonce: str) -> bool:
    """Whether a code of ``client_id`` was issued with ``nonce`` (autocommitted ``conn``)."""
    return _NONCE_USED.one(conn, {"client_id": client_id, "nonce": nonce})[0]
