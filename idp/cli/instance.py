"""`idp init`: the issuer, the database, a secret key and signing keys of an instance."""

from __future__ import annotations

import os
import re
import secrets
import sys
from pathlib import Path

import click
from flask import Flask

from .. import config as settings
from .. import create_app, db, instance_path, migrate
from ..config import ConfigError
from ..oauth import keys
from .common import emit


def instance_folder() -> Path:
    return Path(instance_path() or Flask("idp").instance_path)


def instance_config() -> Path:
    folder = instance_folder()
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "config.py"


def ensure_secret_key() -> Path | None:
    """Write a random SECRET_KEY into instance/config.py unless one is configured."""
    if os.environ.get("IDP_SECRET_KEY"):
        return None
    path = instance_config()
    existing = path.read_text() if path.exists() else ""
    if "SECRET_KEY" in existing:
        return None
    with path.open("a") as fh:
        fh.write(
            f"\n# Written by `idp init`: signs session cookies and CSRF tokens.\n"
            f"SECRET_KEY = {secrets.token_hex(32)!r}\n"
        )
    path.chmod(0o600)
    return path


ISSUER_LINE = re.compile(r"^ISSUER\s*=.*$", re.M)


def write_issuer(issuer: str) -> Path:
    """Set ISSUER in instance/config.py: replace the line `idp init` wrote, or add one."""
    path = instance_config()
    existing = path.read_text() if path.exists() else ""
    line = f"ISSUER = {issuer!r}"
    if ISSUER_LINE.search(existing):
        text = ISSUER_LINE.sub(line, existing, count=1)
    else:
        text = existing + (
            "\n# Written by `idp init --issuer`: the URL relying parties use (OIDC Discovery §3).\n"
            f"{line}\n"
        )
    path.write_text(text)
    path.chmod(0o600)
    return path


def settle_issuer(given: str | None) -> tuple[str, Path | None]:
    """The issuer `idp init` works with: --issuer, the configured one, or asked for."""
    configured = settings.configured("ISSUER", str(instance_folder()))
    if not given and configured:
        return str(configured).rstrip("/"), None
    if not given:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "No issuer is configured. Pass --issuer URL: the URL relying parties will use "
                "to reach this server, e.g. --issuer https://id.example.com (or, to try it on "
                "this machine, --issuer http://127.0.0.1:8000)."
            )
        given = click.prompt(
            "Issuer URL (what relying parties use to reach this server, "
            "e.g. https://id.example.com)"
        )
    issuer = given.strip().rstrip("/")
    try:
        settings.check_issuer(issuer)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--issuer") from None
    if os.environ.get("IDP_ISSUER") and os.environ["IDP_ISSUER"].rstrip("/") != issuer:
        raise click.UsageError(
            f"IDP_ISSUER is set to {os.environ['IDP_ISSUER']!r} and would override --issuer."
        )
    return issuer, write_issuer(issuer)


def initialise(app: Flask) -> dict:
    """Migrations and signing keys; safe to run any number of times."""
    migrate.upgrade(app)
    with app.app_context():
        session = db.session()
        created = keys.ensure_keys(session)
        session.commit()
        return {"database": "upgraded", "keys_created": [k.kid for k in created]}


@click.command("init")
@click.option(
    "--issuer",
    help="The issuer URL relying parties use (https://…); asked for in a terminal when none "
    "is configured. Written into instance/config.py.",
)
@click.option("--json", "as_json", is_flag=True)
def init_command(issuer, as_json):
    """Set the issuer, and create or upgrade the database, a secret key and signing keys."""
    issuer, issuer_written = settle_issuer(issuer)
    written = ensure_secret_key()
    app = create_app()
    result = initialise(app)
    result["issuer"] = app.config["ISSUER"]
    result["issuer_written_to"] = str(issuer_written) if issuer_written else None
    result["secret_key_written_to"] = str(written) if written else None
    emit(
        as_json,
        result,
        f"Initialised {result['issuer']}: database at head, {len(result['keys_created'])} "
        f"new signing key(s)" + (f", secret key written to {written}" if written else ""),
    )
