"""`idp mail retry` (issue 14: "`idp mail retry` resends what failed") and the demo banner."""

from __future__ import annotations

import json

import pytest

from idp import demo
from idp.cli import cli

from .test_delivery import deliver_until_settled, queue, stored, use_server


@pytest.mark.config(MAIL_WORKER=False, MAIL_ATTEMPTS=1, MAIL_RETRY_DELAY=0.01)
def test_mail_retry_sends_what_failed_once_the_relay_is_back(app, runner, smtp_server, mailbox):
    # RFC 5321 §4.2.1: a 4yz reply is transient; after the last attempt the row is "failed"
    # and waits, with its message, for the operator.
    use_server(app, smtp_server)
    mailbox.reply = "451 4.3.0 Try again later"
    message_id = queue(app)
    assert deliver_until_settled(app, message_id).status == "failed"

    mailbox.reply = None
    result = runner.invoke(cli, ["mail", "retry", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"queued": 1, "sent": 1}
    assert stored(app, message_id).status == "sent"
    assert [m["Subject"] for m in mailbox.received] == ["Your password was changed"]

    again = runner.invoke(cli, ["mail", "retry"])
    assert again.exit_code == 0
    assert "0 of 0 failed message(s) sent" in again.output


def test_demo_banner_says_where_mail_goes(app):
    # Without SMTP_HOST (development), mail is written to instance/outbox/.
    with app.app_context():
        info = demo.prepare(app)
    assert "outbox" in info["mail"]
    assert f"mail goes to:  {info['mail']}" in demo.banner(info)
