"""Outbound requests to client-registered URLs never reach private addresses (SSRF).

RFC 7591 §5 (a registered URL makes the server fetch on the client's behalf), OIDC Core §8.1
(sector_identifier_uri), RFC 9700 §4 and the issue: idp/outbound.py resolves once, refuses
if any address is not public unicast, connects to the address it checked, keeps the host
name for Host, SNI and the certificate check, and follows no redirect.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from idp import create_app, outbound
from idp.config import ConfigError

from ..certificates import self_signed
from .conftest import Target

NO_NETWORKS = pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=[])

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("10.1.2.3", "private"),  # RFC 1918
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # cloud metadata services
    ("100.64.0.1", "shared (CGNAT)"),  # RFC 6598
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("[::1]", "loopback"),
    ("[::]", "unspecified"),
    ("[fc00::1]", "private"),  # RFC 4193 unique local, fc00::/7
    ("[fd12:3456::1]", "private"),
    ("[fe80::1]", "link-local"),
    ("[ff02::1]", "multicast"),
    ("[::ffff:127.0.0.1]", "loopback (in an IPv6 form)"),  # IPv4-mapped
    ("[::ffff:169.254.169.254]", "link-local (in an IPv6 form)"),
    ("[::ffff:10.0.0.1]", "private (in an IPv6 form)"),
    ("[64:ff9b::a00:1]", "private (in an IPv6 form)"),  # NAT64 of 10.0.0.1
    ("[2002:7f00:1::]", "loopback (in an IPv6 form)"),  # 6to4 of 127.0.0.1
]


@pytest.fixture
def connections(monkeypatch):
    """Every TCP connection attempted in the test, as (host, port); none is made."""
    attempts = []

    def connect(self, address):
        attempts.append(address[:2])
        raise ConnectionRefusedError("no connection in this test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def fake_dns(monkeypatch, answers: dict[str, list[list[str]]]):
    """getaddrinfo answering host -> successive answers (the last repeats); the calls."""
    calls = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host not in answers:
            return real(host, port, *args, **kwargs)
        calls.append(host)
        queue = answers[host]
        addresses = queue.pop(0) if len(queue) > 1 else queue[0]
        infos = []
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            infos.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return infos

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return calls


# --- the address classes -------------------------------------------------------------------


@NO_NETWORKS
@pytest.mark.parametrize(("host", "kind"), REFUSED, ids=[h for h, _ in REFUSED])
def test_every_non_public_address_class_is_refused(app, connections, host, kind):
    with app.app_context(), pytest.raises(outbound.Refused) as refused:
        outbound.fetch(f"http://{host}:8080/jwks.json", timeout=1, max_bytes=100)
    assert str(refused.value) == f"resolves to a {kind} address, which this server does not call"
    assert connections == []  # refused before any connection


@pytest.mark.parametrize("address", ["8.8.8.8", "2001:4860:4860::8888", "::ffff:8.8.8.8"])
def test_public_addresses_are_not_refused(address):
    assert outbound.kind_of(ipaddress.ip_address(address)) is None


@NO_NETWORKS
def test_a_name_resolving_to_loopback_is_refused_and_never_called(app, target):
    # "localhost" is a name, not a literal: it is refused by what it resolves to.
    with app.app_context(), pytest.raises(outbound.Refused, match="loopback"):
        outbound.fetch(target.url("/x", host="localhost"), timeout=2, max_bytes=100)
    assert target.seen == []


@NO_NETWORKS
def test_one_private_address_among_public_ones_refuses_the_name(app, monkeypatch, connections):
    # The issue: refuse if ANY resolved address is not public; a client cannot hide a
    # private address behind a public one.
    fake_dns(monkeypatch, {"mixed.example.test": [["8.8.8.8", "127.0.0.1"]]})
    with app.app_context(), pytest.raises(outbound.Refused, match="loopback"):
        outbound.fetch("http://mixed.example.test/jwks.json", timeout=1, max_bytes=100)
    assert connections == []


# --- the operator's allowlist ----------------------------------------------------------------


@pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=["127.0.0.1/32"])
def test_an_allowed_network_is_called_and_no_other(app, target):
    target.body = {"keys": []}
    with app.app_context():
        answer = outbound.fetch(target.url("/jwks.json"), timeout=2, max_bytes=100)
        assert (answer.status, answer.body) == (200, b'{"keys": []}')
        with pytest.raises(outbound.Refused, match="loopback"):  # 127.0.0.2 is not listed
            outbound.fetch(target.url("/jwks.json", host="127.0.0.2"), timeout=2, max_bytes=9)
    assert len(target.seen) == 1


def test_the_allowlist_also_covers_the_ipv4_mapped_form():
    networks = outbound.parse_networks(["10.0.0.0/8"])
    outbound.check_address(ipaddress.ip_address("::ffff:10.1.2.3"), networks)
    with pytest.raises(outbound.Refused):
        outbound.check_address(ipaddress.ip_address("::ffff:192.168.0.1"), networks)


def test_loopback_is_allowed_by_default_only_for_a_loopback_issuer(tmp_path):
    # docs/configuration.md: unset, the setting allows loopback when the issuer is itself on
    # loopback (idp demo, idp run); an explicit value, [] included, is taken as it is.
    base = {"SECRET_KEY": "x" * 32, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"}
    local = create_app({**base, "ISSUER": "http://127.0.0.1:5000"})
    assert local.config["OUTBOUND_ALLOWED_NETWORKS"] == ["127.0.0.0/8", "::1/128"]
    public = create_app({**base, "ISSUER": "https://id.example.com"})
    assert public.config["OUTBOUND_ALLOWED_NETWORKS"] == []
    explicit = create_app({**base, "ISSUER": "http://localhost", "OUTBOUND_ALLOWED_NETWORKS": []})
    assert explicit.config["OUTBOUND_ALLOWED_NETWORKS"] == []
    listed = create_app(
        {
            **base,
            "ISSUER": "https://id.example.com",
            "OUTBOUND_ALLOWED_NETWORKS": "10.0.0.0/8, fd00::/8",
        }
    )
    assert listed.config["OUTBOUND_ALLOWED_NETWORKS"] == ["10.0.0.0/8", "fd00::/8"]


@pytest.mark.parametrize("value", [["10.0.0.0/33"], ["intranet"], 10])
def test_a_setting_that_is_not_a_list_of_networks_stops_the_start(tmp_path, value):
    config = {
        "ISSUER": "https://id.example.com",
        "SECRET_KEY": "x" * 32,
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "OUTBOUND_ALLOWED_NETWORKS": value,
    }
    with pytest.raises(ConfigError, match="IDP_OUTBOUND_ALLOWED_NETWORKS"):
        create_app(config)


# --- no redirects, no second lookup ------------------------------------------------------------


@pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=["127.0.0.1/32"])
def test_a_redirect_is_the_answer_and_is_not_followed(app):
    with Target() as first, Target() as second:
        first.redirect_to = second.url("/jwks.json")
        with app.app_context():
            answer = outbound.fetch(first.url("/jwks.json"), timeout=2, max_bytes=100)
        assert answer.status == 302 and not answer.ok
        assert len(first.seen) == 1 and second.seen == []


@NO_NETWORKS
def test_dns_rebinding_connects_to_the_checked_address(app, monkeypatch, connections):
    # The name answers a public address to the check and loopback to any later lookup
    # (DNS rebinding): the connection goes to the address that was checked, and the name
    # is looked up once.
    calls = fake_dns(monkeypatch, {"rebind.example.test": [["8.8.8.8"], ["127.0.0.1"]]})
    with app.app_context(), pytest.raises(OSError) as failed:
        outbound.fetch("http://rebind.example.test:8080/jwks.json", timeout=1, max_bytes=100)
    assert not isinstance(failed.value, outbound.Refused)
    assert connections == [("8.8.8.8", 8080)]
    assert calls == ["rebind.example.test"]


@pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=["127.0.0.1/32"])
def test_the_request_reaches_the_checked_address_with_the_host_name(app, monkeypatch, target):
    # A real round trip: checked 127.0.0.1 (allowed), a later lookup would give 127.0.0.2
    # (refused); it succeeds on the one lookup, and the Host header is the name.
    calls = fake_dns(monkeypatch, {"rp.example.test": [["127.0.0.1"], ["127.0.0.2"]]})
    with app.app_context():
        url = f"http://rp.example.test:{target.port}/sector.json"
        assert outbound.fetch(url, timeout=2, max_bytes=100).ok
    assert target.seen == [("GET", "/sector.json", f"rp.example.test:{target.port}")]
    assert calls == ["rp.example.test"]


# --- TLS: SNI and the certificate are checked on the name, not the address ------------------


def certificate_files(tmp_path, name: str) -> tuple[str, str]:
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert, key = self_signed(name)
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return str(cert_path), str(key_path)


@pytest.mark.config(OUTBOUND_ALLOWED_NETWORKS=["127.0.0.1/32"])
def test_tls_uses_the_host_name_for_sni_and_the_certificate(app, monkeypatch, tmp_path):
    name = "rp.tls.example.test"
    cert, key = certificate_files(tmp_path, name)
    server_names, hosts = [], []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            hosts.append(self.headers.get("Host"))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"[]")

        def log_message(self, *args):
            pass

    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda sock, server_name, ctx: server_names.append(server_name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    port = server.server_address[1]
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    fake_dns(monkeypatch, {name: [["127.0.0.1"]]})
    trusting = ssl.create_default_context(cafile=cert)
    try:
        with app.app_context():
            answer = outbound.fetch(
                f"https://{name}:{port}/jwks.json", timeout=3, max_bytes=10, tls=trusting
            )
            assert (answer.status, answer.body) == (200, b"[]")
            assert server_names == [name] and hosts == [f"{name}:{port}"]
            # The same server by its address: the certificate does not name it.
            with pytest.raises(OSError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
                outbound.fetch(f"https://127.0.0.1:{port}/", timeout=3, max_bytes=10, tls=trusting)
    finally:
        server.shutdown()
        server.server_close()
