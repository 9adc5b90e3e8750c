"""URL rules shared by the configuration and the protocol: which hosts are loopback.

``config`` checks the issuer with it (plain http only on loopback, RFC 6749 §3.1) and the
protocol allows http only on loopback in redirect URIs (RFC 8252 §7.3, ``oauth.redirects``),
logout URIs, ``jwks_uri`` and the other client metadata URLs. It sits below both, so that
``config`` never imports ``oauth`` (docs/architecture.md, "Layers").
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
