"""Sign-in: passwords (argon2id), login checks, the server-side browser session, users.

The sign-in and sign-out pages (blueprint ``auth``) live in ``account.sign_in``: they show
protocol things (the client a sign-in leads to, front-channel logout), and this layer sits
below the protocol.
"""

from flask import Flask

from . import devices, passwords, session


def init_app(app: Flask) -> None:
    passwords.init_app(app)
    session.login_manager.init_app(app)
    devices.init_app(app)  # new-device notice at sign-in


__all__ = ["init_app"]
