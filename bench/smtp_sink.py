"""An SMTP server that accepts and drops every message, for load tests of the mail path.

    python -m bench.smtp_sink PORT [starttls|none] [CERT_FILE]     # from the repository's root

With ``starttls`` (the IdP's default SMTP_SECURITY) it offers STARTTLS and refuses mail
before it (RFC 3207), with a self-signed certificate for 127.0.0.1 made at start and written
to CERT_FILE: give that file to the server as SSL_CERT_FILE, so the IdP verifies the
certificate as it verifies its relay's (`bench/run.sh` does, with BENCH_SMTP). Runs until
killed; prints "ready" once it listens, and on exit the messages it took.
"""

from __future__ import annotations

import signal
import ssl
import sys
import tempfile
import threading
from pathlib import Path

from aiosmtpd.controller import Controller

from tests.certificates import self_signed


class Sink:
    def __init__(self) -> None:
        self.taken = 0

    async def handle_DATA(self, server, session, envelope):
        self.taken += 1
        return "250 Message accepted"


def tls_context(cert_file: Path) -> ssl.SSLContext:
    """A server context with a new self-signed certificate for 127.0.0.1, written to
    ``cert_file`` (the key stays in memory and a temporary file)."""
    cert, key = self_signed("127.0.0.1")
    cert_file.write_bytes(cert)
    with tempfile.NamedTemporaryFile(suffix=".pem") as key_file:
        key_file.write(key)
        key_file.flush()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file.name)
    return context


def main() -> None:
    port = int(sys.argv[1])
    security = sys.argv[2] if len(sys.argv) > 2 else "starttls"
    tls = {}
    if security == "starttls":
        cert_file = Path(sys.argv[3] if len(sys.argv) > 3 else "smtp-sink.pem")
        tls = {"tls_context": tls_context(cert_file), "require_starttls": True}
    elif security != "none":
        sys.exit("security: starttls or none")
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=port, **tls)
    controller.start()
    print("ready", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    controller.stop()
    print(f"taken {sink.taken}", flush=True)


if __name__ == "__main__":
    main()
