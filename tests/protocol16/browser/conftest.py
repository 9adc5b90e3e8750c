"""Chromium fixtures of tests/browser, for the issue 16 pages."""

from __future__ import annotations

from tests.browser.conftest import (  # noqa: F401
    app_config,
    browser,
    idp_socket,
    live_server,
    page,
)
from tests.protocol16.conftest import sector_server  # noqa: F401
