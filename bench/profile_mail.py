"""The CPU of one queued notice, in-process: rendering and queuing it, then delivering it.

A sign-in from a new browser queues a new-device notice (idp/auth/devices.py), and the
worker's mail thread delivers it: one message per round with one sign-in at a time, and
more under a stream of sign-ins (a round starts at most every MAIL_ROUND_INTERVAL, and its
messages share one SMTP session). This script times both halves for N messages, PER_ROUND
to a round (1 by default; the outbox, as without SMTP_HOST; with BENCH_SMTP_PORT, an SMTP
server on that loopback port instead, with BENCH_SMTP_SECURITY=starttls over TLS; the
process must trust its certificate, SSL_CERT_FILE=...):

    python bench/profile_mail.py [N] [PER_ROUND]
    BENCH_PSTATS=FILE python bench/profile_mail.py [N]   # cProfile of the delivery rounds

"queue" is ``mail.send`` plus the commit, as POST /login pays it (in a test request
context); "deliver" is one sender round per message in its own app context, as the mail
thread pays it. IDP_DATABASE_URL or a temporary SQLite file, as the others.
"""

from __future__ import annotations

import cProfile
import os
import sys
import time

from inprocess import service_app
from sqlalchemy import event, func, select

from idp import db, mail
from idp.models import MailMessage


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    per_round = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    smtp_port = os.environ.get("BENCH_SMTP_PORT")
    security = os.environ.get("BENCH_SMTP_SECURITY", "none")  # starttls: with SSL_CERT_FILE
    smtp = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": int(smtp_port), "SMTP_SECURITY": security,
            "MAIL_FROM": "idp@example.com"} if smtp_port else {}  # fmt: skip
    # No thread, no pause between rounds: this script runs the rounds.
    app, _ = service_app(MAIL_WORKER=False, MAIL_ROUND_INTERVAL=0, **smtp)
    sender = app.extensions["idp.mail"]
    statements = 0

    @event.listens_for(db.engine(app), "before_cursor_execute")
    def _count(*_):
        nonlocal statements
        statements += 1

    def deliver_one_round():
        with app.app_context():
            sender.round()

    def queue_one():
        with app.test_request_context("/login", headers={"User-Agent": "bench"}):
            mail.send("bench@example.com", "New sign-in to your account", "new_device",
                      name="Bench", username="bench", device="Firefox on Linux",
                      when="2026-12-04 20:00 UTC", ip=None,
                      account_url="http://127.0.0.1/account")  # fmt: skip
            db.session().commit()

    for _ in range(5):  # warm-up: templates compiled, statements prepared
        queue_one()
        deliver_one_round()
    profiler = cProfile.Profile(time.process_time) if os.environ.get("BENCH_PSTATS") else None

    queued = delivered = 0.0
    queue_statements = deliver_statements = 0
    for _ in range(count // per_round):  # PER_ROUND messages queued, then one round
        for _ in range(per_round):
            statements = 0
            started = time.process_time()
            queue_one()
            queued += time.process_time() - started
            queue_statements += statements
        statements = 0
        if profiler:
            profiler.enable()
        started = time.process_time()
        deliver_one_round()
        delivered += time.process_time() - started
        if profiler:
            profiler.disable()
        deliver_statements += statements
    if profiler:
        profiler.dump_stats(os.environ["BENCH_PSTATS"])
    with app.app_context():
        s = db.session()
        sent = s.scalar(select(func.count()).where(MailMessage.status == "sent"))
        s.commit()
    count = count // per_round * per_round
    where = "SMTP" if smtp_port else "outbox"
    print(f"{count} notices ({where}, {per_round} a round), CPU per message:")
    print(
        f"  {queued / count * 1000:6.2f} ms  {queue_statements / count:4.1f} statements"
        "  queue (mail.send + commit)"
    )
    print(
        f"  {delivered / count * 1000:6.2f} ms  {deliver_statements / count:4.1f} statements"
        f"  deliver ({per_round} a round; {sent} sent in all)"
    )


if __name__ == "__main__":
    main()
