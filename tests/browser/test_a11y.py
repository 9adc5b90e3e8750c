"""The axe-core check of the browser tests finds a violation when there is one."""

from __future__ import annotations

import pytest

from . import a11y

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not a11y.ENABLED, reason="axe runs on the SQLite pass (a11y.py)"),
]


def test_an_inaccessible_state_fails_the_check(live_server, page):
    page.goto(live_server + "/login")
    a11y.check(page)  # the page as served passes
    # WCAG 2.2 §1.1.1: an image without a text alternative.
    page.evaluate(
        "document.getElementById('main').appendChild(Object.assign("
        "document.createElement('img'), {src: '/static/img/favicon.svg'}))"
    )
    with pytest.raises(a11y.Violations, match="image-alt"):
        a11y.check(page)
    page.reload()  # the fixture's last check sees the page as served again


def test_a_page_of_another_origin_is_not_ours_to_check(live_server, page, rp_callback):
    page.goto(rp_callback.url)  # no lang, no landmarks: not the identity provider's page
    a11y.check(page)


def test_the_relying_party_documentation_page_passes(live_server, page):
    # RFC 8414 §2 service_documentation: a page for people, held to the same rules (issue 18).
    page.goto(live_server + "/relying-parties")
    a11y.expect(page.locator("h1")).to_have_text("For relying parties")
