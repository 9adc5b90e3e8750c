"""Schema migrations with Alembic (`idp db upgrade`); the only way the schema changes."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from flask import Flask

from . import db


def alembic_config(app: Flask) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "idp:migrations")
    cfg.set_main_option("sqlalchemy.url", app.config["DATABASE_URL"].replace("%", "%%"))
    return cfg


def upgrade(app: Flask, revision: str = "head") -> None:
    cfg = alembic_config(app)
    with db.engine(app).begin() as connection:
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def revision(app: Flask, message: str) -> None:
    """Autogenerate a migration from the models (developers only)."""
    cfg = alembic_config(app)
    with db.engine(app).begin() as connection:
        cfg.attributes["connection"] = connection
        command.revision(cfg, message=message, autogenerate=True)
