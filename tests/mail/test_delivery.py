"""Outgoing mail: the queue, SMTP delivery (RFC 5321), retries, the outbox, metrics, secrets.

A real SMTP server (aiosmtpd) runs in the test process on a loopback port; the tests read
what it received.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from email import message_from_bytes
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import default

import pytest
from flask import render_template
from prometheus_client import REGISTRY
from sqlalchemy import event, select

from idp import background, db, mail
from idp.mail import delivery, message
from idp.models import AuditEvent, MailMessage

from .conftest import SMTP_PASSWORD, SMTP_USER, SMTPServer

TO = "alice@example.com"
SECRET_LINK = "http://localhost/reset?token=single-use-token-value"


def counted(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def use_server(app, server: SMTPServer, **settings) -> None:
    app.config.update(
        {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": server.port,
            "SMTP_SECURITY": "none",
            "SMTP_TIMEOUT": 5,
            "MAIL_FROM": "Identity <idp@example.com>",
            **settings,
        }
    )


def queue(app, subject="Your password was changed", **context) -> int:
    """Queue the sample "notice" message and commit, as a flow will."""
    context = {"name": "Alice", "text": "Your password was changed.", **context}
    with app.app_context():
        queued = mail.send(TO, subject, "notice", **context)
        db.session().commit()
        return queued


def deliver(app) -> int:
    with app.app_context():
        return delivery.deliver_due()


def stored(app, message_id: int) -> MailMessage:
    with app.app_context():
        s = db.session()
        row = s.get(MailMessage, message_id)
        s.expunge(row)
        return row


def deliver_until_settled(app, message_id: int, rounds: int = 20) -> MailMessage:
    """Run the sender's rounds (retry delays are tiny in these tests) until sent or failed."""
    for _ in range(rounds):
        deliver(app)
        row = stored(app, message_id)
        if row.status != "pending":
            return row
        time.sleep(0.02)
    return row


def our_log(caplog) -> str:
    """What this server logged (the test SMTP server's own debug lines left out)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("idp"))


def audit_events(app, event: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session().scalars(select(AuditEvent).where(AuditEvent.event == event)))


# --- delivery -----------------------------------------------------------------------------


def test_queued_message_arrives_with_a_text_and_an_html_part(app, smtp_server, mailbox):
    use_server(app, smtp_server)
    before = counted("idp_mail_sent_total", transport="smtp")
    message_id = queue(app, link=SECRET_LINK, link_label="Review your account")
    # The commit woke this worker's sender thread; stop() waits for its round.
    delivery.sender_thread(app).stop()

    (received,) = mailbox.received
    assert received["To"] == TO
    assert received["From"] == "Identity <idp@example.com>"
    assert received["Subject"] == "Your password was changed"
    assert received["Auto-Submitted"] == "auto-generated"  # RFC 3834 §5
    assert received["Message-ID"] and received["Date"]
    assert mailbox.envelopes[0].mail_from == "idp@example.com"
    assert mailbox.envelopes[0].rcpt_tos == [TO]
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert "Hello Alice," in text and SECRET_LINK in text
    assert "<p>Hello Alice,</p>" in html and f'href="{SECRET_LINK}"' in html

    row = stored(app, message_id)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at
    assert row.message is None  # no copy of the link outlives the delivery
    assert counted("idp_mail_sent_total", transport="smtp") == before + 1


def test_html_part_escapes_what_users_typed(app, smtp_server, mailbox):
    use_server(app, smtp_server, MAIL_WORKER=False)
    queue(app, name='<script>alert("x")</script>')
    deliver(app)
    html = mailbox.received[0].get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_non_ascii_subject_and_body_travel_intact(app, smtp_server, mailbox):
    use_server(app, smtp_server, MAIL_WORKER=False)
    queue(app, subject="Mot de passe modifié ✓", name="Zoë")
    deliver(app)
    (received,) = mailbox.received
    assert received["Subject"] == "Mot de passe modifié ✓"  # RFC 2047 encoded on the wire
    assert "Hello Zoë," in received.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    "subject",
    ["New sign-in to your account", "Mot de passe modifié ✓ " + "long enough to be folded " * 4],
)
def test_the_policys_header_cache_writes_what_the_standard_library_writes(
    app, monkeypatch, subject
):
    # mail.message.POLICY keeps parsed constant headers, their folded lines and one class
    # per header name; the messages it writes must be the standard library's, byte for byte
    # (RFC 5322 folding, RFC 2047 encoding), the first time and from the cache.
    standard = message.POLICY.clone(header_factory=HeaderRegistry())

    def written(policy, width: int | None = None) -> str:
        monkeypatch.setattr(message, "POLICY", policy)
        rendered = message.render(TO, subject, "notice", name="Zoë Ångström", text="x" * 200)
        rendered.replace_header("Date", "Sun, 06 Dec 2026 07:00:00 +0000")
        rendered.replace_header("Message-ID", "<fixed@localhost>")
        rendered.set_boundary("fixed-boundary")
        if width is None:
            return rendered.as_string()
        return rendered.as_string(policy=rendered.policy.clone(max_line_length=width))

    with app.app_context():
        cached = message.POLICY
        expected = written(standard)
        assert written(cached) == expected
        assert written(cached) == expected  # every constant header now from the cache
        # A fold is kept with the settings that made it: other settings fold anew.
        assert written(cached, 40) == written(standard, 40) != expected
        assert written(cached) == expected
        # RFC 5322 §3.6: one Subject, one To (the header classes' max_count, still enforced).
        for name in ("Subject", "To"):
            with pytest.raises(ValueError):
                message.render(TO, subject, "notice", name="Zoë", text="x")[name] = TO
    assert expected.startswith("From: ") and "\r\n\r\n" in expected
    assert subject.isascii() or "=?utf-8?" in expected.partition("\r\nDate:")[0]


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("notice", {"name": "Zoë Ångström", "text": "x" * 200}),  # quoted-printable parts
        ("notice", {"name": "Alice", "text": "plain ASCII"}),  # 7bit parts
        ("new_device", {"name": "A", "username": "a", "device": "Firefox on Linux",
                        "when": "2026-12-07 04:00 UTC", "ip": "192.0.2.1",
                        "account_url": "http://localhost/account"}),
    ],
)  # fmt: skip
def test_the_message_is_the_one_make_alternative_builds(app, template, context):
    # render() puts the multipart/alternative message together itself; the standard
    # library's way (set_content, make_alternative, add_alternative) must write the same
    # bytes: the same headers in the same order, each part with its own.
    with app.test_request_context():
        rendered = message.render(TO, "Hi ✓", template, **context)
        expected = EmailMessage(policy=message.POLICY)
        for name in ("From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"):
            expected[name] = rendered[name]
        full = {"issuer": app.config["ISSUER"], "subject": "Hi ✓", **context}
        expected.set_content(render_template(f"mail/{template}.txt", **full))
        expected.make_alternative(boundary=rendered.get_boundary())
        expected.add_alternative(render_template(f"mail/{template}.html", **full), subtype="html")
    assert rendered.as_string() == expected.as_string()
    assert rendered.as_bytes() == expected.as_bytes()


def test_the_boundary_is_in_none_of_the_parts(app, monkeypatch):
    # RFC 2046 §5.1.1: the boundary must not occur in the encapsulated text. Messages share
    # the process's boundary (its Content-Type is then parsed and folded once); one whose
    # part holds it draws its own, again until no part holds it, as the standard library's
    # generator would.
    with app.app_context():
        first = message.render(TO, "Hi", "notice", name="A", text="x")
        second = message.render(TO, "Hi", "notice", name="B", text="y")
        assert first.get_boundary() == second.get_boundary() == message.BOUNDARY
        # Quoted-printable writes its "=" as "=3D", so no part can hold the real one.
        monkeypatch.setattr(message, "BOUNDARY", "taken")
        draws = iter(["taken-too", "second-draw"])
        monkeypatch.setattr(message, "_boundary", lambda: next(draws))
        text = "--taken-- and --taken-too--"
        rendered = message.render(TO, "Hi", "notice", name="A", text=text)
    written = rendered.as_string()
    assert rendered.get_boundary() == "second-draw"
    parsed = message_from_bytes(written.encode(), policy=default)
    assert [part.get_content_type() for part in parsed.iter_parts()] == [
        "text/plain",
        "text/html",
    ]
    assert text in parsed.get_body(("plain",)).get_content()


def test_a_header_cannot_be_injected_through_the_subject(app):
    with app.app_context(), pytest.raises(ValueError):
        mail.send(TO, "Hi\r\nBcc: everyone@example.com", "notice", name="A", text="x")


@pytest.mark.parametrize(
    "to",
    [
        "alice@example.com\r\nBcc: everyone@example.com",
        "alice@example.com, bob@example.com",
        "Alice <alice@example.com>",
        "zoë@example.com",  # would need SMTPUTF8 (RFC 6531)
        "not an address",
    ],
)
def test_only_one_plain_address_is_accepted_as_recipient(app, to):
    with app.app_context(), pytest.raises(ValueError):
        mail.send(to, "Hi", "notice", name="A", text="x")


@pytest.mark.config(MAIL_WORKER=False)
def test_an_international_domain_travels_in_its_ascii_form(app, smtp_server, mailbox):
    # RFC 5890: the A-label (xn--) form of an IDN is what DNS and SMTP without SMTPUTF8 carry.
    use_server(app, smtp_server)
    with app.app_context():
        mail.send("anna@bücher.de", "Hi", "notice", name="Anna", text="x")
        db.session().commit()
    deliver(app)
    assert mailbox.envelopes[0].rcpt_tos == ["anna@xn--bcher-kva.de"]
    assert mailbox.received[0]["To"] == "anna@xn--bcher-kva.de"


# --- refusals, retries, retry_failed ------------------------------------------------------


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=3, MAIL_RETRY_DELAY=0.01)
def test_transient_refusal_is_retried_then_failed_and_retry_failed_sends_it(
    app, smtp_server, mailbox
):
    # RFC 5321 §4.2.1: 4yz is a transient failure: the client should try again.
    use_server(app, smtp_server)
    mailbox.reply = "451 4.3.0 Try again later"
    failed_before = counted("idp_mail_failed_total", reason="attempts")
    message_id = queue(app)

    row = deliver_until_settled(app, message_id)
    assert row.status == "failed" and row.attempts == 3
    assert row.last_error.startswith("SMTP 451")
    assert row.message  # nothing lost: the message waits for `idp mail retry`
    assert counted("idp_mail_failed_total", reason="attempts") == failed_before + 1
    assert [e.target for e in audit_events(app, "mail.failed")] == [str(message_id)]
    assert mailbox.received == []

    mailbox.reply = None
    with app.app_context():
        retried = mail.retry_failed()
    assert retried == mail.Retried(queued=1, sent=1)
    assert len(mailbox.received) == 1
    assert stored(app, message_id).status == "sent"


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=3, MAIL_RETRY_DELAY=0.01)
def test_permanent_refusal_fails_without_retries(app, smtp_server, mailbox):
    # RFC 5321 §4.2.1: 5yz is permanent: "the SMTP client SHOULD NOT repeat the exact request".
    use_server(app, smtp_server)
    mailbox.reply = "554 5.7.1 Rejected"
    refused_before = counted("idp_mail_failed_total", reason="refused")
    message_id = queue(app)
    row = deliver_until_settled(app, message_id)
    assert row.status == "failed" and row.attempts == 1
    assert counted("idp_mail_failed_total", reason="refused") == refused_before + 1
    assert row.last_error.startswith("SMTP 554")
    mailbox.reply = None
    with app.app_context():
        assert mail.retry_failed().sent == 1  # the operator fixed the relay


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=2, MAIL_RETRY_DELAY=0.01)
def test_server_down_is_retried_and_delivered_once_it_is_back(app, mailbox):
    server = SMTPServer(mailbox)  # not started: connections are refused
    use_server(app, server)
    message_id = queue(app)
    row = deliver_until_settled(app, message_id)
    assert row.status == "failed" and row.attempts == 2
    assert "ConnectionRefusedError" in row.last_error
    server.start()
    try:
        with app.app_context():
            assert mail.retry_failed() == mail.Retried(queued=1, sent=1)
    finally:
        server.stop()
    assert len(mailbox.received) == 1


@pytest.mark.config(MAIL_WORKER=False, MAIL_RETRY_DELAY=60)
def test_a_message_waits_for_its_retry_time(app, smtp_server, mailbox):
    use_server(app, smtp_server)
    mailbox.reply = "421 4.7.0 Busy"
    message_id = queue(app)
    deliver(app)
    mailbox.reply = None
    assert deliver(app) == 0  # the next attempt is 60 s away
    row = stored(app, message_id)
    assert row.status == "pending" and row.attempts == 1


@pytest.mark.config(MAIL_WORKER=False)
def test_a_claimed_message_is_sent_by_one_worker_only(app, smtp_server, mailbox):
    use_server(app, smtp_server)
    message_id = queue(app)
    with app.app_context():
        assert delivery.deliver_one(message_id) is True
        assert delivery.deliver_one(message_id) is False
    assert len(mailbox.received) == 1


@pytest.mark.config(MAIL_WORKER=False, MAIL_RETRY_DELAY=60)
def test_a_round_says_how_long_the_thread_may_sleep(app, smtp_server, mailbox):
    # The sender thread sleeps until the next message is due and ends when none is pending;
    # a round works this out from the rows it read and the retry times it set.
    use_server(app, smtp_server)
    with app.app_context():
        assert delivery.deliver_round() == delivery.Round(sent=0, wait=None)
    queue(app)
    with app.app_context():
        assert delivery.deliver_round() == delivery.Round(sent=1, wait=None)
    mailbox.reply = "421 4.7.0 Busy"
    queue(app)
    with app.app_context():
        refused = delivery.deliver_round()
    assert refused.sent == 0 and 55 < refused.wait <= 60  # its retry, MAIL_RETRY_DELAY away
    with app.app_context():
        assert 55 < delivery.deliver_round().wait <= 60  # not due yet: nothing attempted
    assert len(mailbox.received) == 1


@pytest.mark.config(MAIL_WORKER=False)
def test_a_round_with_more_due_than_its_limit_asks_for_another_at_once(app, smtp_server, mailbox):
    use_server(app, smtp_server)
    for _ in range(3):
        queue(app)
    with app.app_context():
        assert delivery.deliver_round(limit=2) == delivery.Round(sent=2, wait=0.0)
        assert delivery.deliver_round(limit=2) == delivery.Round(sent=1, wait=None)
    assert len(mailbox.received) == 3


@pytest.mark.config(MAIL_WORKER=False, MAIL_RETRY_DELAY=60, SMTP_TIMEOUT=5)
def test_a_message_another_worker_claimed_keeps_the_thread_waiting_for_its_lease(
    app, smtp_server, mailbox, monkeypatch
):
    # Forced interleaving: another worker claims the row between this round's read and its
    # claim, then dies before sending. This round loses the claim; it must still wake when
    # that worker's lease ends (else the message waits for the next sweep of a request).
    use_server(app, smtp_server)
    message_id = queue(app)
    read = delivery.pending_rows

    def read_then_other_worker_claims(limit):
        rows = read(limit)
        with app.app_context():
            now = delivery.utcnow()
            claim = {"message_id": message_id, "seen_attempts": 0, "now": now, "attempt": 1,
                     "lease_until": now + delivery.timedelta(seconds=60)}  # fmt: skip
            s = db.session()
            assert delivery.CLAIM.run(s.connection(), claim).fetchone() is not None
            s.commit()
        return rows

    monkeypatch.setattr(delivery, "pending_rows", read_then_other_worker_claims)
    with app.app_context():
        lost = delivery.deliver_round()
    assert lost.sent == 0 and 55 < lost.wait <= 60
    assert mailbox.received == []
    row = stored(app, message_id)
    assert row.status == "pending" and row.attempts == 1  # claimed once, by the other


@pytest.mark.config(MAIL_WORKER=False)
def test_a_round_sends_its_messages_in_one_smtp_session(
    app, mailbox, server_tls, trust_test_certificate
):
    # RFC 5321 §3.3: one session carries several mail transactions; a burst costs one
    # connection, one STARTTLS handshake and one AUTH.
    server = SMTPServer(
        mailbox, tls_context=server_tls, require_starttls=True, authenticator=mailbox.authenticate
    ).start()
    try:
        use_server(app, server, SMTP_SECURITY="starttls", SMTP_USERNAME=SMTP_USER,
                   SMTP_PASSWORD=SMTP_PASSWORD)  # fmt: skip
        queued = [queue(app, subject=f"Message {n}") for n in range(3)]
        assert deliver(app) == 3
    finally:
        server.stop()
    assert [m["Subject"] for m in mailbox.received] == ["Message 0", "Message 1", "Message 2"]
    assert len(set(mailbox.sessions)) == 1 and mailbox.logins == [SMTP_USER]
    assert {stored(app, i).status for i in queued} == {"sent"}


@pytest.mark.config(MAIL_WORKER=False)
def test_a_round_checks_out_no_connection_per_statement(app, smtp_server, mailbox):
    # The round's statements (the pending rows, then a claim and "sent" per message) are
    # each a transaction of their own. On PostgreSQL they run on the thread's held
    # connection: one checkout from the pool at most, not one per statement.
    if db.engine(app).dialect.name != "postgresql":
        pytest.skip("held connections are the PostgreSQL driver path's")
    use_server(app, smtp_server)
    queued = [queue(app, subject=f"Message {n}") for n in range(3)]
    checkouts = []

    def checked_out(*_args):
        checkouts.append(True)

    event.listen(db.engine(app), "checkout", checked_out)
    try:
        assert deliver(app) == 3
    finally:
        event.remove(db.engine(app), "checkout", checked_out)
    assert {stored(app, i).status for i in queued} == {"sent"}
    assert len(checkouts) <= 1


def test_the_sender_gives_its_connection_back_when_its_rounds_end(app, smtp_server, mailbox):
    # The thread ends once nothing is pending; the connection its rounds held goes back to
    # the pool with it, not at another thread's next checkout (docs/deploy.md sizes the
    # pool for the request threads' two each and the background threads' one).
    use_server(app, smtp_server)
    queue(app)  # the commit wakes this worker's sender thread
    deadline = time.monotonic() + 10
    while not mailbox.received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mailbox.received
    for thread in threading.enumerate():
        if thread.name == delivery.Sender.thread_name:
            thread.join(10)  # nothing else is pending: it ends after this round
            assert not thread.is_alive()
    held = app.extensions["idp.db.held"]
    assert [thread for thread in held.holders if not thread.is_alive()] == []


@pytest.mark.config(MAIL_WORKER=False)
def test_a_refused_message_costs_the_next_one_nothing(app, smtp_server, mailbox):
    use_server(app, smtp_server)
    mailbox.refuse_subject = "Refused"
    first, refused, last = (queue(app, subject=s) for s in ("First", "Refused", "Last"))
    assert deliver(app) == 2
    assert [m["Subject"] for m in mailbox.received] == ["First", "Last"]
    assert stored(app, refused).status == "failed"
    assert stored(app, last).status == "sent" and stored(app, last).attempts == 1
    # After a failed transaction the next message starts a session of its own.
    assert len(set(mailbox.sessions)) == 2


@pytest.mark.config(MAIL_WORKER=False)
@pytest.mark.parametrize("ends", ["close", "421 MAIL", "421 RCPT"])
def test_a_session_the_server_ended_is_opened_again_for_the_next_message(
    app, smtp_server, mailbox, ends
):
    # RFC 5321 §3.8: a server may end a session (a limit of messages per connection), by
    # closing it or answering 421 ("closing transmission channel", §4.2.2); the next message
    # is sent on a new one, at its first attempt.
    use_server(app, smtp_server)
    mailbox.one_per_session = ends
    queued = [queue(app, subject=f"Message {n}") for n in range(3)]
    assert deliver(app) == 3
    assert len(mailbox.received) == 3 and len(set(mailbox.sessions)) == 3
    assert [(stored(app, i).status, stored(app, i).attempts) for i in queued] == [("sent", 1)] * 3


@pytest.mark.config(MAIL_ROUND_INTERVAL=2)
def test_mail_queued_soon_after_a_round_goes_out_together_in_the_next(app, smtp_server, mailbox):
    # The sender thread (MAIL_WORKER): a round starts at most every MAIL_ROUND_INTERVAL, so
    # mail that trickles in, as notices under a stream of sign-ins, shares a session.
    use_server(app, smtp_server)
    queue(app, subject="First")
    waited = 0.0
    while not mailbox.received and waited < 5:  # the first after a quiet spell: at once
        time.sleep(0.02)
        waited += 0.02
    for subject in ("Second", "Third", "Fourth"):  # a tenth of a second apart
        queue(app, subject=subject)
        time.sleep(0.1)
    waited = 0.0
    while len(mailbox.received) < 4 and waited < 10:
        time.sleep(0.05)
        waited += 0.05
    assert [m["Subject"] for m in mailbox.received] == ["First", "Second", "Third", "Fourth"]
    assert len(set(mailbox.sessions[1:])) == 1 and mailbox.sessions[1] != mailbox.sessions[0]


# --- TLS and authentication ---------------------------------------------------------------


@pytest.mark.config(MAIL_WORKER=False)
def test_starttls_then_login_then_send(app, mailbox, server_tls, trust_test_certificate, caplog):
    # RFC 3207: STARTTLS; the password travels only inside TLS (aiosmtpd refuses AUTH before).
    server = SMTPServer(
        mailbox, tls_context=server_tls, require_starttls=True, authenticator=mailbox.authenticate
    ).start()
    try:
        use_server(
            app,
            server,
            SMTP_SECURITY="starttls",
            SMTP_USERNAME=SMTP_USER,
            SMTP_PASSWORD=SMTP_PASSWORD,
        )
        with caplog.at_level(logging.DEBUG):
            message_id = queue(app, link=SECRET_LINK)
            deliver(app)
    finally:
        server.stop()
    assert mailbox.logins == [SMTP_USER]
    assert len(mailbox.received) == 1
    assert stored(app, message_id).status == "sent"
    logged = our_log(caplog)
    assert "mail 1 sent" in logged
    assert SMTP_PASSWORD not in logged
    assert "single-use-token-value" not in logged  # the body is never logged


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=1)
def test_wrong_smtp_password_fails_without_logging_it(
    app, mailbox, server_tls, trust_test_certificate, caplog
):
    server = SMTPServer(mailbox, tls_context=server_tls, authenticator=mailbox.authenticate)
    server.start()
    try:
        use_server(
            app, server, SMTP_SECURITY="starttls", SMTP_USERNAME=SMTP_USER, SMTP_PASSWORD="wrong-pw"
        )
        with caplog.at_level(logging.DEBUG):
            message_id = queue(app)
            deliver(app)
    finally:
        server.stop()
    row = stored(app, message_id)
    assert row.status == "failed" and row.last_error.startswith("SMTP 535")
    logged = our_log(caplog)
    assert "535" in logged and "wrong-pw" not in logged and "wrong-pw" not in row.last_error


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=1)
def test_starttls_is_never_skipped_when_the_server_does_not_offer_it(app, smtp_server, mailbox):
    # Falling back to plain text would send the message (and a password) readable.
    use_server(app, smtp_server, SMTP_SECURITY="starttls")
    message_id = queue(app)
    deliver(app)
    row = stored(app, message_id)
    assert row.status == "failed" and "STARTTLS" in row.last_error
    assert mailbox.received == []


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=1)
def test_starttls_refuses_a_certificate_it_cannot_verify(app, mailbox, server_tls):
    server = SMTPServer(mailbox, tls_context=server_tls).start()
    try:
        use_server(app, server, SMTP_SECURITY="starttls")  # test certificate not trusted
        message_id = queue(app)
        deliver(app)
    finally:
        server.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in stored(app, message_id).last_error
    assert mailbox.received == []


@pytest.mark.config(MAIL_WORKER=False)
def test_ssl_mode_speaks_tls_from_the_first_byte(app, mailbox, server_tls, trust_test_certificate):
    # RFC 8314 §3.3: implicit TLS ("submissions", port 465).
    server = SMTPServer(mailbox, ssl_context=server_tls).start()
    try:
        use_server(app, server, SMTP_SECURITY="ssl")
        message_id = queue(app)
        deliver(app)
    finally:
        server.stop()
    assert stored(app, message_id).status == "sent"
    assert len(mailbox.received) == 1


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=2, MAIL_RETRY_DELAY=0.01)
def test_ssl_mode_against_a_plain_server_fails_cleanly_and_keeps_the_message(
    app, client, smtp_server, mailbox
):
    use_server(app, smtp_server, SMTP_SECURITY="ssl")
    message_id = queue(app)
    row = deliver_until_settled(app, message_id)
    assert row.status == "failed" and row.attempts == 2
    assert "SSL" in row.last_error
    assert row.message and mailbox.received == []
    assert client.get("/healthz").status_code == 200  # nothing broke on the way


# --- development: the outbox --------------------------------------------------------------


@pytest.mark.config(MAIL_WORKER=False)
def test_without_smtp_host_mail_goes_to_the_outbox_as_eml(app, instance, caplog):
    assert not app.config["SMTP_HOST"]
    written_before = counted("idp_mail_sent_total", transport="outbox")
    with caplog.at_level(logging.INFO, logger="idp.mail"):
        message_id = queue(app, link=SECRET_LINK)
        assert deliver(app) == 1
    assert counted("idp_mail_sent_total", transport="outbox") == written_before + 1
    (eml,) = (instance / "outbox").glob("*.eml")
    assert stat.S_IMODE(os.stat(eml).st_mode) == 0o600  # later mails carry links
    parsed = message_from_bytes(eml.read_bytes(), policy=default)
    assert parsed["To"] == TO and parsed["Subject"] == "Your password was changed"
    assert parsed["From"] == "no-reply@localhost"  # no MAIL_FROM: the issuer's host
    assert SECRET_LINK in parsed.get_body(("plain",)).get_content()
    assert SECRET_LINK in parsed.get_body(("html",)).get_content()
    # The log says who and what, never the body.
    assert f"to={TO}" in caplog.text and "Your password was changed" in caplog.text
    assert "single-use-token-value" not in caplog.text and "Hello Alice" not in caplog.text
    assert stored(app, message_id).status == "sent"


def test_destination_says_where_mail_goes(app, instance):
    assert mail.destination(app) == f"{instance / 'outbox'}/ as .eml files (no SMTP_HOST)"
    app.config.update(SMTP_HOST="smtp.example.com", SMTP_SECURITY="ssl")
    assert mail.destination(app) == "SMTP smtp.example.com:465 (ssl)"


@pytest.mark.config(MAIL_WORKER=False, PURGE_RETENTION=60)
def test_purge_deletes_sent_mail_and_keeps_failed_and_pending(app):
    from datetime import timedelta

    from idp.models import utcnow
    from idp.purge import purge

    old = utcnow() - timedelta(minutes=5)
    with app.app_context():
        s = db.session()
        rows = {
            status: MailMessage(
                to_address=TO, subject=status, message="x", status=status, sent_at=sent_at
            )
            for status, sent_at in (("sent", old), ("failed", None), ("pending", None))
        }
        recent = MailMessage(to_address=TO, subject="recent", status="sent", sent_at=utcnow())
        s.add_all([*rows.values(), recent])
        s.commit()
        assert purge(s, app.config)["mail_messages"] == 1
        left = set(s.scalars(select(MailMessage.subject)))
    assert left == {"failed", "pending", "recent"}


@pytest.mark.config(SESSION_SWEEP_INTERVAL=0.01)
def test_mail_another_process_queued_is_sent_after_the_next_request(
    app, client, smtp_server, mailbox
):
    # `idp mail retry` or a worker that died leaves pending rows and no thread to send them.
    use_server(app, smtp_server)
    with app.app_context():
        s = db.session()
        row = mail.message.render(TO, "Queued elsewhere", "notice", name="A", text="x")
        s.add(MailMessage(to_address=TO, subject="Queued elsewhere", message=row.as_string()))
        s.commit()
    time.sleep(0.02)
    assert client.get("/login").status_code == 200
    delivery.sender_thread(app).stop()  # waits for the round the request started
    assert [m["Subject"] for m in mailbox.received] == ["Queued elsewhere"]


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=2, MAIL_RETRY_DELAY=0.01)
def test_an_unexpected_error_counts_as_a_failed_attempt(app, smtp_server, monkeypatch):
    use_server(app, smtp_server)

    def broken(*args):
        raise RuntimeError("bug")

    monkeypatch.setattr(delivery.Conversation, "send", broken)
    message_id = queue(app)
    row = deliver_until_settled(app, message_id)
    assert row.status == "failed" and row.attempts == 2
    assert row.last_error == "unexpected RuntimeError" and row.message


def test_each_app_made_in_a_process_wakes_its_sender_after_a_commit(
    app_config, monkeypatch, smtp_server, mailbox
):
    # SQLAlchemy's event registry keys a target by its id(): a sessionmaker made after
    # another was collected can get the old one's id, and event.contains then answered
    # "listening" for one that was not, so a commit woke no sender (the test above waited
    # its 10 s in vain once in CI; 6 of 400 apps made in one loop lost their kicks).
    # Here event.contains always answers so; every app must still register its listener.
    from idp import create_app

    monkeypatch.setattr(event, "contains", lambda *args, **kwargs: True)
    fresh = create_app(app_config)
    try:
        use_server(fresh, smtp_server)
        queue(fresh)
        deadline = time.monotonic() + 10
        while not mailbox.received and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [m["Subject"] for m in mailbox.received] == ["Your password was changed"]
    finally:
        background.stop_workers(fresh)
        db.engine(fresh).dispose()
