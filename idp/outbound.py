"""Outbound HTTP to URLs that clients register: the one way the server fetches them.

A client's metadata names URLs the server then calls: ``jwks_uri`` (private_key_jwt,
RFC 7523; signed request objects, RFC 9101), ``sector_identifier_uri`` (OIDC Core §8.1) and
``backchannel_logout_uri`` (Back-Channel Logout 1.0 §2.5). With open dynamic registration
anyone chooses them, so without care the server would fetch whatever an attacker names:
its own admin ports, a database on the private network, the cloud metadata service at
169.254.169.254 (server-side request forgery; RFC 7591 §5, RFC 9700 §4, OIDC Core §8.1).

``fetch`` therefore

* resolves the host once and refuses if ANY address it resolves to is not a public unicast
  address: loopback, RFC 1918 and other private ranges, fc00::/7, link-local (169.254/16,
  fe80::/10), unspecified, multicast, reserved, shared CGNAT space 100.64/10, and those
  same addresses in IPv4-mapped, 6to4 and NAT64 form;
* connects to the address it checked (no second lookup, so a name that answers a public
  address to the check and a private one to the connection, DNS rebinding, gains nothing),
  while the Host header, TLS SNI and the certificate check still use the host name;
* never follows a redirect (a 3xx is returned as the answer) and ignores proxy settings
  from the environment (a proxy would make its own lookup);
* reads at most ``max_bytes`` (one more, so the caller can tell the body was too long).

``OUTBOUND_ALLOWED_NETWORKS`` (CIDRs) lets the operator name internal networks whose
relying parties the server may call. When the setting is left unset (None) and the issuer
itself is on loopback (``idp demo``, ``idp run``), loopback is allowed, so a relying party
on the same machine works during development; config.py fills that in.

``problem`` checks a URL without fetching it, for registration and the admin UI.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 shared address space
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix


class Refused(OSError):
    """The URL's host is, or resolves to, an address outbound requests may not reach.

    ``str()`` is safe to show to a client: it names the kind of address, never the address,
    and reads after the URL's name ("jwks_uri: resolves to a loopback address, ...").
    """


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def parse_networks(values) -> list[Network]:
    """CIDR strings (a list, or one comma- or space-separated string) as networks;
    ValueError names the first one that is not a network."""
    if values is None:
        return []
    if isinstance(values, str):
        values = values.replace(",", " ").split()
    if not isinstance(values, list | tuple):
        raise ValueError("must be a list of IP networks (CIDR)")
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IP network (CIDR)") from exc
    return networks


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped, 6to4 or NAT64."""
    if address.version != 6:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def kind_of(address: Address) -> str | None:
    """Why the address is not a public unicast one ("loopback", "private"...), or None."""
    inner = _embedded_ipv4(address)
    if inner is not None:
        kind = kind_of(inner)
        return kind and f"{kind} (in an IPv6 form)"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.version == 4 and address in _CGNAT:
        return "shared (CGNAT)"
    if address.is_reserved:
        return "reserved"
    if address.is_private or getattr(address, "is_site_local", False):
        return "private"
    if not address.is_global:
        return "reserved"
    return None


def _allowed_by(address: Address, networks: list[Network]) -> bool:
    candidates = [address]
    inner = _embedded_ipv4(address)
    if inner is not None:
        candidates.append(inner)
    return any(a.version == n.version and a in n for a in candidates for n in networks)


def allowed_networks() -> list[Network]:
    return parse_networks(current_app.config.get("OUTBOUND_ALLOWED_NETWORKS"))


def check_address(address: Address, networks: list[Network]) -> None:
    """Refused unless the address is public unicast or inside an allowed network."""
    kind = kind_of(address)
    if kind and not _allowed_by(address, networks):
        raise Refused(f"resolves to a {kind} address, which this server does not call")


def resolve(host: str, port: int, networks: list[Network]) -> list[tuple]:
    """getaddrinfo once; every address checked; the (family, sockaddr) pairs to connect to."""
    host = host.strip("[]")
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        check_address(literal, networks)
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    targets = []
    for family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%")[0])
        check_address(address, networks)  # any bad address refuses the whole name
        targets.append((family, sockaddr))
    if not targets:
        raise OSError(f"{host} has no address")
    return targets


def connect(host: str, port: int, timeout, networks: list[Network]) -> socket.socket:
    """A TCP connection to one of the checked addresses of host (tried in order)."""
    error: OSError | None = None
    for family, sockaddr in resolve(host, port, networks):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if timeout is not None and timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"could not connect to {host}")


class _HTTPConnection(http.client.HTTPConnection):
    networks: list[Network] = []

    def connect(self):
        self.sock = connect(self.host, self.port, self.timeout, self.networks)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _HTTPSConnection(http.client.HTTPSConnection):
    networks: list[Network] = []
    tls: ssl.SSLContext

    def connect(self):
        sock = connect(self.host, self.port, self.timeout, self.networks)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # SNI and the certificate check are on the host name, not the address dialled.
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a URL is called where it was registered, nowhere else


def opener(networks: list[Network], tls: ssl.SSLContext | None = None):
    """A urllib opener whose every connection goes through ``connect``."""
    context = tls or ssl.create_default_context()

    class HTTP(_HTTPConnection):
        pass

    class HTTPS(_HTTPSConnection):
        pass

    HTTP.networks = HTTPS.networks = networks
    HTTPS.tls = context

    class HTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(HTTP, req)

    class HTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(HTTPS, req)

    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), HTTPHandler, HTTPSHandler(context=context), _NoRedirects
    )


def fetch(
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> Answer:
    """Call url; the answer whatever its status (3xx included: never followed).

    Raises ``Refused`` for a forbidden address, else OSError (timeouts, connection and TLS
    failures) or ValueError (a malformed URL).
    """
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise ValueError("only http and https URLs are called")
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with opener(allowed_networks(), tls).open(request, timeout=timeout) as response:
            return Answer(response.status, response.read(max_bytes + 1))
    except urllib.error.HTTPError as exc:
        try:
            return Answer(exc.code, b"")
        finally:
            exc.close()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, Refused):
            raise exc.reason from None
        raise


def problem(url: str) -> str | None:
    """Why the server would refuse to call url, or None; for registration and the admin UI.

    A literal address is checked as it is; a name is resolved. A name that does not resolve
    (yet) is not a problem here: calling it will fail, and be checked, later.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "is not a valid URL"
    if not host:
        return "must be an absolute URL with a host"
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        resolve(host, port, allowed_networks())
    except Refused as exc:
        return str(exc)
    except (OSError, UnicodeError, ValueError):
        return None
    return None
