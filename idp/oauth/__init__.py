"""The OAuth 2.0 / OpenID Connect protocol: Authlib server, grants, endpoints. No HTML here
except the authorization endpoint's consent and error pages."""

from .routes import init_app

__all__ = ["init_app"]
