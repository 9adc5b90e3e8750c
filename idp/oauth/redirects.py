"""Redirect URIs: which a client may register (RFC 6749 §3.1.2, RFC 8252 §7, RFC 9700 §4.1)
and when a requested one matches a registered one (RFC 9700 §4.1.3, RFC 8252 §7.3)."""

from __future__ import annotations

from urllib.parse import urlsplit

# The matching rule sits below the models (Client.check_redirect_uri uses it): idp/urls.py.
from ..urls import is_loopback, loopback_ip_literal, redirect_uri_matches

__all__ = ["invalid_redirect_uri", "is_loopback", "loopback_ip_literal", "redirect_uri_matches"]


def invalid_redirect_uri(uri: str) -> str | None:
    """None if uri is acceptable, else the reason in plain words."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "not a valid URI"
    if parts.fragment or "#" in uri:
        return "must not contain a fragment (RFC 6749 §3.1.2)"
    if not parts.scheme:
        return "must be an absolute URI"
    if parts.scheme == "https":
        return None if parts.hostname else "has no host"
    if parts.scheme == "http":
        if is_loopback(parts.hostname):
            return None
        return "http is allowed only on loopback hosts (RFC 8252 §7.3); use https"
    if parts.scheme in ("javascript", "data", "file", "vbscript"):
        return f"the {parts.scheme}: scheme is not allowed"
    if "." in parts.scheme:
        return None  # private-use scheme of a native app, reverse domain name (RFC 8252 §7.1)
    return "custom schemes must be reverse domain names such as com.example.app (RFC 8252 §7.1)"
