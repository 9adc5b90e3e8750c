"""Fixtures of the issue 16 tests (RFC 9728, signed UserInfo, pairwise subjects)."""

from __future__ import annotations

from tests.admin.conftest import admin, admin_client  # noqa: F401
