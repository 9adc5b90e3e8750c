"""`idp run`, `idp serve` and `idp demo`: the development server, gunicorn, the demo."""

from __future__ import annotations

import click
from flask import Flask

from .. import config as settings
from .. import create_app
from .instance import ensure_secret_key, initialise, instance_folder


@click.command("run")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def run_command(host, port):
    """Run the development server (use `idp serve` with gunicorn in production).

    Without a configured issuer, the issuer is http://HOST:PORT.
    """
    overrides = {}
    if not settings.configured("ISSUER", str(instance_folder())):
        overrides["ISSUER"] = f"http://{host}:{port}"
    app = create_app(overrides)
    click.echo(f"Issuer: {app.config['ISSUER']}")
    serve_development(app, host, port)


@click.command(
    "serve",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.option("--bind", help="Address to listen on (default 127.0.0.1:8000, or IDP_BIND).")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: CPUs).")
@click.option("--threads", type=click.IntRange(min=1), help="Threads per worker (default 4).")
@click.option("--timeout", type=click.IntRange(min=1), help="Worker timeout in seconds.")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve_command(bind, workers, threads, timeout, gunicorn_args):
    """Run the production server: gunicorn with idp/gunicorn_conf.py (extra args go to it)."""
    from .. import logs, serve

    create_app()  # fail fast, with a clear message, on a bad configuration
    logs.drain()  # exec drops what the log's writer thread has not written yet
    serve.exec_gunicorn(
        {"bind": bind, "workers": workers, "threads": threads, "timeout": timeout},
        tuple(gunicorn_args),
    )


@click.command("demo")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
def demo_command(host, port):
    """Set up SQLite, a demo admin and a demo relying party, print how to try them, and run."""
    from .. import demo

    ensure_secret_key()
    issuer = f"http://{host}:{port}"
    app = create_app({"ISSUER": issuer, "DEMO": True})
    initialise(app)
    with app.app_context():
        info = demo.prepare(app)
    click.echo(demo.banner(info))
    serve_development(app, host, port)


def serve_development(app: Flask, host: str, port: int) -> None:
    """Werkzeug's development server (Flask's app.run refuses to run inside its CLI)."""
    from werkzeug.serving import run_simple

    run_simple(host, port, app, threaded=True, use_reloader=False)
