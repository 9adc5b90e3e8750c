"""URL rules shared by the configuration, the models and the protocol: which hosts are
loopback, and when a requested redirect URI matches a registered one.

``config`` checks the issuer with it (plain http only on loopback, RFC 6749 §3.1) and the
protocol allows http only on loopback in redirect URIs (RFC 8252 §7.3, ``oauth.redirects``),
logout URIs, ``jwks_uri`` and the other client metadata URLs. ``Client.check_redirect_uri``
(the hook Authlib calls at /authorize and PAR) matches with ``redirect_uri_matches``. It sits
below all three, so that neither ``config`` nor ``models`` imports ``oauth``
(docs/architecture.md, "Layers").
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def https_or_loopback_http(parts) -> bool:
    """A URL (``urlsplit`` parts) this server calls or accepts as a resource's: https, or
    plain http on a loopback host (development)."""
    return parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname))


_IPV4_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_IPV6_LOOPBACK = ipaddress.ip_address("::1")


def loopback_ip_literal(host: str | None) -> bool:
    """True for an IP literal in 127.0.0.0/8 or ::1; never for a name such as ``localhost``,
    which may resolve elsewhere (RFC 8252 §8.3)."""
    try:
        address = ipaddress.ip_address((host or "").strip("[]"))
    except ValueError:
        return False
    if address.version == 4:
        return address in _IPV4_LOOPBACK
    return address == _IPV6_LOOPBACK  # not an IPv4-mapped address, whatever Python says


# host[:port] without userinfo: an IPv4 literal or a bracketed IPv6 one, digits for the port
_LOOPBACK_AUTHORITY = re.compile(r"(?P<host>[0-9.]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?")
# urlsplit drops tabs and newlines and strips spaces; such a URI must match exactly or not at all
_IGNORED_BY_URLSPLIT = re.compile(r"[\x00-\x20\x7f]")


def _without_port(uri: str) -> tuple[str, str, str, str] | None:
    """(scheme, host, path, query) of an http URI on a loopback IP literal with a valid or no
    port; None for any other URI."""
    # the scheme as written (urlsplit lowercases it)
    if not uri.startswith("http://") or "#" in uri or _IGNORED_BY_URLSPLIT.search(uri):
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    authority = _LOOPBACK_AUTHORITY.fullmatch(parts.netloc)  # no userinfo, nothing odd
    if authority is None or not loopback_ip_literal(authority["host"]):
        return None
    port = authority["port"]
    if port is not None and not 0 < int(port) < 65536:
        return None
    return parts.scheme, authority["host"], parts.path, parts.query


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Whether a requested redirect URI is the registered one.

    Exact string comparison (RFC 9700 §4.1.3), except that an http URI on a loopback IP
    literal may name any port (RFC 8252 §7.3, OAuth 2.1 §8.4.2): a native app listens on a
    port the system gives it at run time. Scheme, host, path and query must still be exactly
    the registered ones, so nothing but the port can change where the code goes.
    """
    if requested == registered:
        return True
    loopback = _without_port(registered)
    return loopback is not None and loopback == _without_port(requested)
