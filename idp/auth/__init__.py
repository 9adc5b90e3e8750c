"""Sign-in and sign-out pages (blueprint ``auth``, templates in templates/auth/)."""

from .views import bp, init_app

__all__ = ["bp", "init_app"]
