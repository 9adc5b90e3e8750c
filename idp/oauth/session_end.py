"""What the protocol does when a browser session ends: the sign-out policy revokes the
tokens issued in it (``tokens.revoke_grants``, OIDC Core §11 for offline access) and a
logout token is queued for every client of the session with a back-channel logout URI
(Back-Channel Logout 1.0 §2.5, ``logout.queue_backchannel``).

``auth.session.terminate`` announces each ended session with the ``session_ended`` signal
and knows nothing of tokens; ``init_app`` subscribes ``revoke_and_queue_logout`` to it.
"""

from __future__ import annotations

from flask import Flask

from ..auth.session import session_ended
from ..models import UserSession
from . import logout, tokens


def revoke_and_queue_logout(row: UserSession, *, reason: str, keep_offline: bool, **_) -> dict:
    """The session's tokens revoked, then its logout tokens queued; audit details."""
    revoked = tokens.revoke_grants(reason, sid=row.sid, keep_offline=keep_offline)
    queued = logout.queue_backchannel(row)
    return {"tokens_revoked": revoked, "backchannel_queued": queued}


def init_app(app: Flask) -> None:
    # A module-level receiver, held by this module: connecting it again for another app
    # changes nothing (blinker keeps one entry per receiver).
    session_ended.connect(revoke_and_queue_logout)
