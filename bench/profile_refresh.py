"""Where the time of one refresh goes (RFC 6749 §6, rotating): deterministic counts, in-process.

Same set-up as profile_token.py (IDP_DATABASE_URL or a temporary SQLite file), plus a user,
a live browser session, a redeemed authorization code and N + 60 refresh tokens stored as
the code redemption stores them (one family each, bound to that session and code), for a
first-party client of scope ``openid profile email offline_access`` (bench/run.sh's shape:
an ID token and a JWT access token on every refresh). ``BENCH_REFRESH_CONSENT=1`` uses a
third-party client with a consent instead (the liveness rule then reads the consent too).

    python bench/profile_refresh.py [N]

Prints, per request:
* Python function calls (cProfile's count: the same on a quiet or a loaded machine);
* statements sent and round trips, from libpq's protocol trace on PostgreSQL (each run of
  client messages followed by the server's answer is one round trip; BEGIN and COMMIT count;
  the key and registry caches are kept for an hour so that their periodic re-reads do not
  land in the 20 traced requests);
* the CPU per request without the profiler, and each library's share of own time in µs
  (profile_token.print_groups; that part varies with the machine's load).
"""

from __future__ import annotations

import base64
import cProfile
import os
import pstats
import secrets
import sys
import tempfile
import time
import uuid
from datetime import timedelta

from inprocess import service_app
from profile_token import print_groups
from sqlalchemy import event

from idp import db

SCOPE = "openid profile email offline_access"


def refresh_tokens(app, count: int) -> tuple[str, list[str]]:
    """A client of the code and refresh grants, a signed-in user, ``count`` refresh tokens."""
    from idp.auth.users import create_user
    from idp.models import AuthorizationCode, Consent, Token, UserSession, secret_hash, utcnow
    from idp.oauth.clients import create_client

    third_party = os.environ.get("BENCH_REFRESH_CONSENT") == "1"
    with app.app_context():
        session = db.session()
        tag = secrets.token_hex(4)
        user = create_user(
            session, username=f"bench{tag}", name="Bench", email=f"{tag}@example.com",
            email_verified=True,
        )  # fmt: skip
        client, secret = create_client(
            session, name="bench rp", redirect_uris=["https://rp.example/cb"],
            grant_types=["authorization_code", "refresh_token"], scope=SCOPE,
            public=False, first_party=not third_party,
        )  # fmt: skip
        session.flush()
        now = utcnow()
        sid = secrets.token_urlsafe(24)
        session.add(UserSession(sid=sid, user_id=user.id, auth_time=int(now.timestamp()),
                                amr=["pwd"]))  # fmt: skip
        code = AuthorizationCode(
            code_hash=secret_hash(secrets.token_urlsafe(32)), client_id=client.client_id,
            user_id=user.id, redirect_uri="https://rp.example/cb", scope=SCOPE,
            auth_time=int(now.timestamp()), sid=sid, amr=["pwd"], acr="1",
            expires_at=now + timedelta(minutes=1), used_at=now,
        )  # fmt: skip
        session.add(code)
        if third_party:
            session.add(Consent(user_id=user.id, client_id=client.client_id, scope=SCOPE))
        session.flush()
        tokens = []
        for _ in range(count):
            access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            session.add(
                Token(client_id=client.client_id, user_id=user.id, grant_type="authorization_code",
                      scope=SCOPE, granted_scope=SCOPE, access_token_hash=secret_hash(access),
                      refresh_token_hash=secret_hash(refresh), issued_at=now,
                      access_expires_at=now + timedelta(hours=1),
                      refresh_expires_at=now + timedelta(days=1), family_id=uuid.uuid4().hex,
                      authorization_code_id=code.id, sid=sid, auth_time=int(now.timestamp()),
                      amr=["pwd"], acr="1")
            )  # fmt: skip
            tokens.append(refresh)
        session.commit()
        credentials = f"{client.client_id}:{secret}".encode()
    return "Basic " + base64.b64encode(credentials).decode(), tokens


class Trace:
    """libpq's protocol trace of every pooled connection (PostgreSQL only)."""

    def __init__(self, app):
        self.folder = tempfile.mkdtemp()
        self.files = []
        self.on = False
        engine = db.engine(app)
        if engine.dialect.name != "postgresql":
            self.engine = None
            return
        self.engine = engine
        engine.dispose()  # new connections from here on, so each gets a trace file
        event.listen(engine, "connect", self._connected)

    def _connected(self, dbapi_connection, _record):
        from psycopg import pq

        path = os.path.join(self.folder, f"conn{len(self.files)}.trace")
        handle = open(path, "w")  # noqa: SIM115 (kept open for libpq)
        self.files.append((path, handle, dbapi_connection.pgconn))
        dbapi_connection.pgconn.trace(handle.fileno())
        dbapi_connection.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)

    def counts(self) -> tuple[int, int, dict]:
        """(statements, round trips, {message: count}) since the last reset, all connections."""
        statements = round_trips = 0
        kinds: dict[str, int] = {}
        for path, handle, _pgconn in self.files:
            handle.flush()
            previous = None
            with open(path) as lines:
                for line in lines:
                    parts = line.split("\t")
                    if len(parts) < 3:
                        continue
                    side, message = parts[0], parts[2].strip()
                    if side == "F":
                        kinds[message] = kinds.get(message, 0) + 1
                        if message in ("Execute", "Query"):
                            statements += 1
                    elif side == "B" and previous == "F":
                        round_trips += 1
                    previous = side
        return statements, round_trips, kinds

    def reset(self) -> None:
        for path, handle, _pgconn in self.files:
            handle.flush()
            os.truncate(path, 0)
            handle.seek(0)

    def queries(self) -> list[str]:
        found = []
        for path, handle, _pgconn in self.files:
            handle.flush()
            with open(path) as lines:
                for line in lines:
                    parts = line.split("\t")
                    if len(parts) > 3 and parts[0] == "F" and parts[2] in ("Query", "Parse"):
                        found.append(parts[2] + " " + parts[3].strip()[:150])
        return found


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    traced = 20
    # The per-worker caches of keys and registrations are refreshed every 5 s by default;
    # a refresh landing on such a re-read would add its statements to the counts.
    app, _ = service_app(
        ISSUER="http://127.0.0.1:8000", KEY_CACHE_SECONDS=3600, REGISTRY_CACHE_SECONDS=3600
    )
    basic, tokens = refresh_tokens(app, 2 * count + traced + 60)
    pending = iter(tokens)
    http = app.test_client()
    headers = {"Authorization": basic}

    def refresh():
        answer = http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": next(pending)},
            headers=headers,
        )
        assert answer.status_code == 200, answer.data
        body = answer.get_json()
        assert body["refresh_token"] and body["id_token"], body

    trace = Trace(app)
    for _ in range(60):  # warm caches (keys, prepared statements, SQLAlchemy's cache)
        refresh()
    if trace.engine is not None:
        trace.reset()
        for _ in range(traced):
            refresh()
        statements, round_trips, kinds = trace.counts()
        messages = ", ".join(f"{k} {v / traced:.2f}" for k, v in sorted(kinds.items()))
        print(f"{traced} refreshes traced: {statements / traced:.2f} statements and "
              f"{round_trips / traced:.2f} round trips per request; client messages per "
              f"request: {messages}")  # fmt: skip
        if os.environ.get("BENCH_SHOW_SQL"):
            for query in trace.queries()[-12:]:
                print("   ", query)
    cpu = time.process_time()
    for _ in range(count):
        refresh()
    cpu = (time.process_time() - cpu) / count * 1000
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(count):
        refresh()
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"{count} refreshes: {stats.total_calls / count:.0f} Python calls per request "
          f"({stats.prim_calls / count:.0f} primitive); {cpu:.3f} ms of CPU each unprofiled "
          f"(test client included)")  # fmt: skip
    if os.environ.get("BENCH_PROFILE"):
        rows = int(os.environ.get("BENCH_N", "40"))
        stats.sort_stats(os.environ["BENCH_PROFILE"]).print_stats(rows)
    if os.environ.get("BENCH_PSTATS"):
        stats.dump_stats(os.environ["BENCH_PSTATS"])
    print_groups(stats, cpu)
    db.engine(app).dispose()


if __name__ == "__main__":
    main()
