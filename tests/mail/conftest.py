"""A real SMTP server in the test process (aiosmtpd on a loopback port), what it received,
and a mail sender stopped after every test (no thread outlives its app)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword

from idp.mail import delivery

from ..certificates import self_signed

SMTP_USER, SMTP_PASSWORD = "relay-user", "s3cret-smtp-pa55word"


@pytest.fixture(autouse=True)
def instance(tmp_path, monkeypatch):
    """An instance folder of the test's own: the outbox is written there."""
    folder = tmp_path / "instance"
    folder.mkdir()
    monkeypatch.setenv("IDP_INSTANCE_PATH", str(folder))
    return folder


@pytest.fixture(autouse=True)
def stop_sender(app):
    yield
    delivery.sender_thread(app).stop()


@dataclass
class Mailbox:
    """The aiosmtpd handler: records accepted messages and the SMTP session each came in
    (``sessions``: aiosmtpd's object of each connection); ``reply`` makes it refuse DATA,
    ``refuse_subject`` only for messages with that subject; ``one_per_session`` ends the
    session after each message, as a server with a limit of one per connection does: it
    closes the connection ("close"), or answers the next MAIL or RCPT with 421 ("421 MAIL",
    "421 RCPT") and then closes it."""

    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list = field(default_factory=list)
    sessions: list = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    reply: str | None = None
    refuse_subject: str | None = None
    one_per_session: str | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        return self._limited(server, session, "421 MAIL")

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return self._limited(server, session, "421 RCPT")

    def _limited(self, server, session, where: str):
        """421 (and the connection closed) where this session has carried its message, else
        aiosmtpd's own answer (MISSING: the address taken, 250)."""
        if self.one_per_session == where and session in self.sessions:
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.7.0 One message per connection, closing"
        return MISSING

    async def handle_DATA(self, server, session, envelope):
        if self.reply:
            return self.reply
        message = message_from_bytes(envelope.original_content, policy=default)
        if self.refuse_subject and message["Subject"] == self.refuse_subject:
            return "554 5.7.1 Rejected"
        self.envelopes.append(envelope)
        self.sessions.append(session)  # kept alive, so one object per connection
        self.received.append(message)
        if self.one_per_session == "close":  # after the 250 is written
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 Message accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SMTPServer:
    """Start, stop and restart an aiosmtpd server on one loopback port."""

    def __init__(self, mailbox: Mailbox, **kwargs):
        self.mailbox = mailbox
        self.kwargs = kwargs
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> SMTPServer:
        self.controller = Controller(
            self.mailbox, hostname="127.0.0.1", port=self.port, **self.kwargs
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def mailbox():
    return Mailbox()


@pytest.fixture
def smtp_server(mailbox):
    server = SMTPServer(mailbox).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and the files of its key and chain."""
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert, key = self_signed("127.0.0.1")
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    return cert_file, key_file


@pytest.fixture
def server_tls(certificate) -> ssl.SSLContext:
    cert_file, key_file = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return context


@pytest.fixture
def trust_test_certificate(certificate, monkeypatch):
    """The sender trusts the test certificate (and nothing else), as a real deployment
    trusts its relay's CA: verification stays on."""
    cert_file, _ = certificate
    monkeypatch.setattr(
        delivery, "tls_context", lambda: ssl.create_default_context(cafile=str(cert_file))
    )
