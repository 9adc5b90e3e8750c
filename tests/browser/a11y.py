"""axe-core in the browser tests: every page state a test looks at is checked, and any
violation fails the test.

``expect`` here is Playwright's, with one addition: once an assertion has passed, the page
it was about is run through axe-core (from axe-playwright-python, axe-core 4.12). Tests
import it instead of Playwright's, so each state they assert on is checked without a
separate call; ``check`` does it by hand. A state (URL and DOM) is checked once. Pages
outside the identity provider (the relying party's callback) are not ours and are skipped.

axe's script is evaluated in the page (``page.evaluate``): the pages' CSP (script-src
'self') blocks ``add_script_tag``, and evaluation by the DevTools protocol is not subject to
it.

The check runs on the SQLite pass of the suite. On the PostgreSQL pass (IDP_TEST_DATABASE_URL)
the same tests drive the same pages against the other database, and what axe judges (the
markup, its names, roles and contrast) does not depend on which database served it, so axe
is not run a second time there (a quarter of the browser tests' time).
"""

from __future__ import annotations

import hashlib
import os

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Error, Page
from playwright.sync_api import expect as playwright_expect

from ..conftest import CONFIGURED_PG_URL

# Off on the PostgreSQL pass (above); IDP_TEST_AXE=1 turns it on there too.
ENABLED = not CONFIGURED_PG_URL or os.environ.get("IDP_TEST_AXE") == "1"
# The issuers of the running test servers (live_server adds and removes its own).
ORIGINS: set[str] = set()
SCRIPT = Axe().axe_script
# WCAG 2.0, 2.1 and 2.2 A and AA, and axe's best practices: everything but experiments.
OPTIONS = {"resultTypes": ["violations"]}
RETRIES = 3


class Violations(AssertionError):
    pass


def _ours(page: Page) -> bool:
    return any(page.url.startswith(origin + "/") or page.url == origin for origin in ORIGINS)


def _state(page: Page) -> str:
    html = page.evaluate("document.documentElement.outerHTML")
    return page.url + "\n" + hashlib.sha256(html.encode()).hexdigest()


def check(page: Page, seen: set[str] | None = None) -> None:
    """Run axe on the page as it is now; fail on any violation."""
    if not _ours(page):
        return
    if not ENABLED:
        # Settled as when axe runs: a test that measures the page after an assertion (the
        # layout tests) must not catch it before its stylesheet has loaded.
        page.wait_for_load_state()
        return
    seen = seen if seen is not None else _seen(page)
    for attempt in range(RETRIES):
        try:
            page.wait_for_load_state()
            state = _state(page)
            if state in seen:
                return
            if not page.evaluate("typeof window.axe === 'object'"):
                page.evaluate(SCRIPT)
            results = page.evaluate("options => axe.run(document, options)", OPTIONS)
            break
        except Error as error:  # the page navigated away while axe ran: check the new one
            if "context was destroyed" not in str(error) or attempt == RETRIES - 1:
                raise
    seen.add(state)
    violations = results["violations"]
    if violations:
        raise Violations(f"axe-core on {page.url}:\n" + report(violations))


def report(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} {v['helpUrl']}")
        for node in v["nodes"][:5]:
            lines.append(f"    {node['target']}: {node.get('failureSummary', '')[:300]}")
    return "\n".join(lines)


def _seen(page: Page) -> set[str]:
    """The states already checked, per browser context (kept on the context object)."""
    context = page.context
    if not hasattr(context, "_axe_seen"):
        context._axe_seen = set()
    return context._axe_seen


class _Checked:
    """Playwright's assertions on a page or locator, each followed by an axe check."""

    def __init__(self, assertions, page: Page | None):
        self._assertions, self._page = assertions, page

    def __getattr__(self, name):
        method = getattr(self._assertions, name)
        if not callable(method):
            return method

        def assert_then_check(*args, **kwargs):
            result = method(*args, **kwargs)
            if self._page is not None:
                check(self._page)
            return result

        return assert_then_check


def expect(target, message: str | None = None):
    assertions = playwright_expect(target, message)
    page = target if isinstance(target, Page) else getattr(target, "page", None)
    return _Checked(assertions, page)
