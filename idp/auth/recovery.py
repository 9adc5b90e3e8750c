"""Recovery codes: look-up secrets (NIST SP 800-63B §5.1.2) for when the app is lost.

Ten codes of 80 random bits each (NIST asks for at least 64), shown once, stored as
SHA-256 hashes (a fast hash suffices for 80 random bits, as for tokens), each used at most
once: a conditional UPDATE decides, so two requests racing with one code cannot both win.
Generating a new set deletes the old one.
"""

from __future__ import annotations

import base64
import secrets

from sqlalchemy import delete, exists, func, select, update

from .. import db
from ..models import RecoveryCode, User, secret_hash, utcnow

COUNT = 10
BYTES = 10  # 80 bits: 16 base32 characters, shown as four groups of four


def new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(BYTES)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalise(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def generate(user: User) -> list[str]:
    """A fresh set of codes for the user; the old set stops working."""
    s = db.session()
    s.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [new_code() for _ in range(COUNT)]
    for code in codes:
        s.add(RecoveryCode(user_id=user.id, code_hash=secret_hash(normalise(code))))
    s.flush()
    return codes


def use(user: User, code: str) -> bool:
    """Spend one of the user's unused codes; True if it was one."""
    value = normalise(code)
    if len(value) != len(normalise(new_code())):
        return False
    won = (
        db.session()
        .execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user.id,
                RecoveryCode.code_hash == secret_hash(value),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        .rowcount
    )
    return won == 1


def remaining(user: User) -> int:
    return db.session().scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))
    )


def present(user_id):
    """``has`` as a SQL condition on a user id (auth.mfa asks all factors at once)."""
    return exists().where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))


def has(user: User) -> bool:
    return remaining(user) > 0


def remove(user: User) -> int:
    """Delete the user's codes; how many were still unused."""
    left = remaining(user)
    db.session().execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    return left
