"""The ``idp`` command: init, db upgrade, users, clients, keys, mail, run, serve, purge, demo.

Every command that prints something useful takes ``--json`` for scripts. One module per
command group; each command reads its options, calls the service that does the work
(``auth.users``, ``oauth.clients``, ``oauth.registration``, ``oauth.keys``, ...) and prints
the result. This package is the top layer: nothing in ``idp`` imports it.
"""

from __future__ import annotations

import sys

import click
from flask.cli import FlaskGroup

from .. import create_app
from ..config import ConfigError
from . import (
    clients,
    database,
    instance,
    keys,
    mail,
    purge,
    registration_tokens,
    resources,
    run,
    users,
)


class IdpGroup(FlaskGroup):
    """Flask's group without its app lookup for finding commands: every ``idp`` command is
    added here and the app registers none. Building the app to list them printed a
    traceback in `idp --help` on a machine with no issuer configured yet, and a mistyped
    command was answered with a configuration error instead of "No such command"."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.commands)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return self.commands.get(name)


@click.group(
    cls=IdpGroup,
    create_app=create_app,
    add_default_commands=False,
    add_version_option=False,
    load_dotenv=False,
)
def cli():
    """The identity provider's command line."""


for command in (
    instance.init_command,
    database.db_group,
    users.users,
    clients.clients,
    resources.resources_group,
    registration_tokens.registration_tokens,
    keys.keys_group,
    mail.mail_group,
    run.run_command,
    run.serve_command,
    purge.purge_command,
    run.demo_command,
):
    cli.add_command(command)


def main() -> None:
    try:
        cli.main(prog_name="idp")
    except ConfigError as exc:
        click.echo(f"configuration error: {exc}", err=True)
        sys.exit(2)
