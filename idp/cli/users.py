"""`idp users`: create users (``auth.users.create_user``), invite them
(``account.invitation.invite``)."""

from __future__ import annotations

import secrets
import sys

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, or_, select

from .. import db
from ..account import email as verification
from ..account import invitation
from ..auth.passwords import PasswordTooLong
from ..auth.policy import check_password
from ..auth.users import create_user
from ..models import User
from .common import emit


@click.group("users", cls=AppGroup)
def users():
    """Manage users."""


@users.command("create")
@click.option("--username", required=True)
@click.option("--email")
@click.option("--name")
@click.option("--admin", is_flag=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_create(username, email, name, admin, password_stdin, as_json):
    """Create a user; without --password-stdin a random password is printed once."""
    session = db.session()
    clash = session.scalar(
        select(User.id).where(
            # Sign-in matches emails case-insensitively, so they must be unique that way.
            (User.username == username)
            | ((func.lower(User.email) == email.lower()) if email else False)
        )
    )
    if clash is not None:
        raise click.ClickException("a user with this username or email already exists")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
        shown = None
    else:
        password = shown = secrets.token_urlsafe(12)
    if not password:
        raise click.ClickException("empty password")
    refused = check_password(password, username=username, email=email, name=name)
    if refused:  # the same policy as every other place that sets a password
        raise click.ClickException("password refused: " + " ".join(refused))
    try:
        user = create_user(
            session,
            username=username,
            password=password,
            email=email,
            name=name,
            is_admin=admin,
            email_verified=False,
        )
    except PasswordTooLong as exc:
        raise click.ClickException(str(exc)) from exc
    if email:  # OIDC Core §5.1: email_verified only once the owner followed the link
        verification.send_verification(user, actor="cli")
    session.commit()
    data = {"id": user.id, "sub": user.sub, "username": username, "email": email, "admin": admin}
    if shown:
        data["password"] = shown
    emit(
        as_json,
        data,
        f"created user {username} (sub {user.sub})" + (f"\npassword: {shown}" if shown else ""),
    )


@users.command("invite")
@click.option("--email", required=True, help="Where the invitation is mailed.")
@click.option("--username", help="Default: the beginning of the email address.")
@click.option("--name")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
def users_invite(email, username, name, as_json):
    """Create a user without a password and mail them a link to choose one."""
    from email_validator import EmailNotValidError, validate_email

    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise click.ClickException(f"not a mail address: {exc}") from None
    session = db.session()
    same = [func.lower(User.email) == email.lower()]
    if username:
        same.append(func.lower(User.username) == username.lower())
    if session.scalar(select(User.id).where(or_(*same)).limit(1)) is not None:
        raise click.ClickException("a user with this username or email already exists")
    user = invitation.invite(session, email=email, username=username, name=name, actor="cli")
    session.commit()
    data = {"id": user.id, "sub": user.sub, "username": user.username, "email": email}
    emit(as_json, data, f"invited {user.username} <{email}> (sub {user.sub})")
