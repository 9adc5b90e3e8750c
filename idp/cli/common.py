"""What the command groups share: output for people or --json, durations, repeated options."""

from __future__ import annotations

import json

import click

TOKEN_FORMAT_CHOICE = click.Choice(["jwt", "opaque", "default"])


def emit(as_json: bool, data: dict | list, text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def split(values) -> list[str]:
    return [item for value in values for item in value.split()]


def parse_duration(value: str) -> int:
    """Seconds from "3600", "90s", "30m", "12h" or "7d"."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = (value[:-1], value[-1]) if value[-1:] in units else (value, "s")
    if not number.isdigit() or int(number) <= 0:
        raise click.BadParameter("use a positive duration such as 3600, 30m, 12h or 7d")
    return int(number) * units[unit]
