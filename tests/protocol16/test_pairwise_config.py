"""PAIRWISE_SECRET: checked at start-up (a short key would make pairwise subs guessable)."""

from __future__ import annotations

import pytest

from idp.config import ConfigError
from tests.unit.test_config import instance, make_app  # noqa: F401


def test_short_pairwise_secret_stops_start_up(make_app):  # noqa: F811
    with pytest.raises(ConfigError, match="IDP_PAIRWISE_SECRET"):
        make_app(SECRET_KEY="k" * 40, PAIRWISE_SECRET="short")
    assert make_app(SECRET_KEY="k" * 40, PAIRWISE_SECRET="p" * 32).config["PAIRWISE_SECRET"]
