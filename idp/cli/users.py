"""`idp users`: create users (``auth.users.create_user``)."""

from __future__ import annotations

import secrets
import sys

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import func, select

from .. import db
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
    session.commit()
    data = {"id": user.id, "sub": user.sub, "username": username, "email": email, "admin": admin}
    if shown:
        data["password"] = shown
    emit(
        as_json,
        data,
        f"created user {username} (sub {user.sub})" + (f"\npassword: {shown}" if shown else ""),
    )
