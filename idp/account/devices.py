"""``describe``: moved to ``idp.auth.devices`` (the new-device notice at sign-in needs it,
and sign-in sits below the pages); kept here for the pages that import it from here."""

from ..auth.devices import describe

__all__ = ["describe"]
