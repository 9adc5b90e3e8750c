"""The confirmation step of a destructive admin action: a GET page that says what will
happen, whose button POSTs (with the CSRF token) to the same URL, which does it."""

from __future__ import annotations

from flask import render_template

from ..auth.forms import ConfirmForm


def confirmation_page(
    *,
    section: str,
    crumbs: list[tuple[str, str]],
    title: str,
    consequences: list[str],
    button: str,
    action: str,
    cancel: str,
    note: str = "",
):
    """The page that asks; nothing has changed yet."""
    return render_template(
        "admin/confirm.html",
        section=section,
        crumbs=crumbs,
        title=title,
        consequences=consequences,
        button=button,
        action=action,
        cancel=cancel,
        note=note,
        form=ConfirmForm(formdata=None),
    )
