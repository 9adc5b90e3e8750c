"""Admin: a user's second factors and the MFA policy of users and groups.

The admin sees which factors a user has (never a secret), can remove one, or require
re-enrolment (every factor removed, MFA required, signed out everywhere: the next sign-in
leads through enrolment). Each change is audited and emailed to the user (NIST SP 800-63B
§4.6: the subscriber is told of every authenticator bound or removed).
"""

from __future__ import annotations

from flask import flash, redirect, request, url_for

from .. import db
from ..auth import mfa, recovery, totp
from . import changes
from .access import admin_required, bp
from .groups import find_group
from .users import back_to, confirm, find_user, posted, sign_out_everywhere, signs_out

FACTOR_NAMES = {"totp": "authenticator app", "recovery": "recovery codes"}


@bp.app_template_global()
def factors_of(user) -> dict:
    """What the user detail page shows (admin/users/_factors.html)."""
    return {
        "totp": totp.has(user),
        "recovery_left": recovery.remaining(user),
        "required": mfa.required(user),
    }


def tell(user, text: str) -> None:
    mfa.notify(user, "Your sign-in methods were changed by an administrator", text)


@bp.route(
    "/users/<int:user_id>/factors/totp/remove", methods=["GET", "POST"], defaults={"kind": "totp"}
)
@bp.route(
    "/users/<int:user_id>/factors/recovery/remove",
    methods=["GET", "POST"],
    defaults={"kind": "recovery"},
)
@admin_required
def remove_factor(user_id: int, kind: str):
    user = find_user(user_id)
    if kind not in FACTOR_NAMES:
        return back_to(user)
    name = FACTOR_NAMES[kind]
    if request.method == "GET":
        return confirm(
            user,
            f"Remove {user.username}'s {name}?",
            [f"remove the {name} of {user.username}, who is told by email;"],
            f"Remove the {name}",
            note="If two-step verification is required, the next sign-in leads to enrolment.",
        )
    posted()
    removed = totp.remove(user) if kind == "totp" else recovery.remove(user)
    changes.record("mfa.factor_removed", user.sub, factor=kind, had=bool(removed))
    tell(user, f"An administrator removed the {name} of your account.")
    db.session().commit()
    flash(f"{user.username}'s {name} removed.")
    return back_to(user)


@bp.route("/users/<int:user_id>/factors/reset", methods=["GET", "POST"])
@admin_required
def reset_factors(user_id: int):
    """Require re-enrolment: the factors go, MFA becomes required, the sessions end."""
    user = find_user(user_id)
    if request.method == "GET":
        return confirm(
            user,
            f"Require {user.username} to set up two-step verification again?",
            [
                f"remove every second factor of {user.username} (app and recovery codes);",
                "require two-step verification: the next sign-in leads through enrolment;",
            ]
            + signs_out(user),
            "Require re-enrolment",
        )
    posted()
    before = {"mfa_required": user.mfa_required}
    totp.remove(user)
    recovery.remove(user)
    user.mfa_required = True
    effects = sign_out_everywhere(user, "second factors reset by an administrator")
    changes.record("mfa.reset", user.sub, before, {"mfa_required": user.mfa_required}, **effects)
    tell(
        user,
        "An administrator removed your authenticator app and recovery codes. You will set "
        "up two-step verification again at your next sign-in.",
    )
    db.session().commit()
    flash(f"{user.username} will set up two-step verification at the next sign-in.")
    return back_to(user)


@bp.post("/users/<int:user_id>/mfa-required")
@admin_required
def set_user_mfa_required(user_id: int):
    posted()
    user = find_user(user_id)
    value = request.form.get("required") == "1"
    changes.record(
        "mfa.policy", user.sub, {"mfa_required": user.mfa_required}, {"mfa_required": value}
    )
    user.mfa_required = value
    db.session().commit()
    flash(
        f"Two-step verification is {'now' if value else 'no longer'} required for {user.username}."
    )
    return back_to(user)


@bp.post("/groups/<int:group_id>/mfa-required")
@admin_required
def set_group_mfa_required(group_id: int):
    posted()
    group = find_group(group_id)
    value = request.form.get("required") == "1"
    changes.record(
        "mfa.policy",
        f"group:{group.name}",
        {"mfa_required": group.mfa_required},
        {"mfa_required": value},
    )
    group.mfa_required = value
    db.session().commit()
    flash(f"Two-step verification is {'now' if value else 'no longer'} required in {group.name}.")
    return redirect(url_for("admin.group", group_id=group.id))
