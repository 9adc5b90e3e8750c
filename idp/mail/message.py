"""One outgoing message (RFC 5322, MIME multipart/alternative), rendered from templates.

The standard library's ``email`` package builds it: ``EmailMessage`` with the SMTP policy
writes CRLF lines, encodes non-ASCII headers (RFC 2047) and refuses CR or LF in a header
value, so a user-supplied name or address cannot add headers.
"""

from __future__ import annotations

import secrets
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP, EmailPolicy
from email.utils import format_datetime, make_msgid, parseaddr
from functools import lru_cache
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from flask import current_app, render_template

from ..models import utcnow


class _ParsedOnce(HeaderRegistry):
    """The policy's header factory, remembering what it parsed. Parsing a header value is
    most of building a message (a notice goes out with every sign-in from a new browser),
    and most values are the same in every message: MIME-Version, the parts' Content-Type
    and Content-Transfer-Encoding, From, Auto-Submitted. A parsed header is immutable (a
    str; changing a header stores a newly parsed one), so one can be shared by every
    message and thread. The policy still refuses CR or LF before the factory is asked.
    Headers that differ in every message are parsed as before, so no recipient's address
    stays in the cache."""

    PER_MESSAGE = frozenset({"to", "date", "message-id"})

    def __call__(self, name: str, value):
        if type(value) is str and name.lower() not in self.PER_MESSAGE:
            return self._parsed(name, value)
        return super().__call__(name, value)

    @lru_cache(maxsize=256)  # noqa: B019 (one instance, for the life of the process)
    def _parsed(self, name: str, value: str):
        header = super().__call__(name, value)
        header.folded = None  # (policy settings, lines): set when first written (_Policy)
        return header

    def __getitem__(self, name: str) -> type:
        """The class of a header named ``name``. The standard library makes a new class on
        every call (``type(...)``, a few µs), and the policy asks for it for every header
        set (``header_max_count``) and parsed: ~17 times per message. The class depends only
        on the name, so one per name is kept."""
        return self._class(name.lower())

    @lru_cache(maxsize=64)  # noqa: B019 (the names of headers this process sets)
    def _class(self, lower_name: str) -> type:
        return super().__getitem__(lower_name)

    def map_to_type(self, name: str, cls) -> None:
        super().map_to_type(name, cls)
        self._class.cache_clear()


class _Policy(EmailPolicy):
    """The SMTP policy, folding each shared header (``_ParsedOnce``) once. Folding a header
    for the generator re-renders its parse tree into lines, the larger part of writing a
    message (``as_string``); a shared header folds the same way in every message, so its
    text is kept on it with the settings that folded it. (The generator folds with a clone
    of the message's policy, made for each message: equal settings, another object.)"""

    def fold(self, name: str, value) -> str:
        folded = getattr(value, "folded", False)
        if folded is False:  # not a shared header: a str, or one parsed for this message
            return super().fold(name, value)
        settings = vars(self)
        if folded is None or folded[0] != settings:
            folded = value.folded = (settings, super().fold(name, value))
        return folded[1]


# 7bit: every part is quoted-printable or base64, so the stored text is ASCII and any SMTP
# server takes it (no 8BITMIME or SMTPUTF8 needed).
POLICY = _Policy(**{**vars(SMTP), "cte_type": "7bit", "header_factory": _ParsedOnce()})


def sender() -> str:
    """MAIL_FROM, or no-reply at the issuer's host (development, outbox only)."""
    configured = current_app.config["MAIL_FROM"]
    if configured:
        return str(configured)
    return f"no-reply@{urlsplit(current_app.config['ISSUER']).hostname}"


def envelope_sender() -> str:
    return parseaddr(sender())[1]


def recipient(to: str) -> str:
    """One address as the envelope and the To header carry it: ASCII, an international
    domain in its xn-- form; ValueError for anything else (a list, a display name, CR/LF)."""
    try:
        checked = validate_email(to, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a mail address: {exc}") from None
    if checked.ascii_email is None:  # a non-ASCII local part needs SMTPUTF8 (RFC 6531)
        raise ValueError("addresses with a non-ASCII local part are not supported")
    return checked.ascii_email


def render(to: str, subject: str, template: str, **context) -> EmailMessage:
    """templates/mail/<template>.txt and .html as the two parts of one message to ``to``.

    The multipart/alternative message is put together directly: its headers, then the two
    parts as ``set_content`` makes them. That is the message ``set_content`` +
    ``make_alternative`` + ``add_alternative`` make (a test compares them byte for byte),
    without moving the first part's headers into a new part and parsing its Content-Type
    again to add the boundary."""
    context = {"issuer": current_app.config["ISSUER"], "subject": subject, **context}
    message = EmailMessage(policy=POLICY)
    message["From"] = sender()
    message["To"] = recipient(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=urlsplit(context["issuer"]).hostname)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834 §5: no auto-replies, please
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = f'multipart/alternative; boundary="{BOUNDARY}"'
    text = MIMEPart(policy=POLICY)
    text.set_content(render_template(f"mail/{template}.txt", **context))
    html = EmailMessage(policy=POLICY)  # add_alternative's part: it has a MIME-Version too
    html.set_content(render_template(f"mail/{template}.html", **context), subtype="html")
    message.attach(text)
    message.attach(html)
    boundary = BOUNDARY
    while any(boundary in part.get_payload() for part in (text, html)):
        boundary = _boundary()  # as the standard library does: one that no part contains
    if boundary is not BOUNDARY:
        message.set_boundary(boundary)
    return message


def _boundary() -> str:
    """A MIME boundary of 128 random bits, in the standard library's shape. Left to it, the
    generator makes one up while writing the message and compiles a regular expression of
    it to search the parts, a new pattern every time: 7 % of a notice's instructions."""
    return f"==============={secrets.token_hex(16)}=="


# The boundary of every message this process writes, unless one of its parts holds it
# (RFC 2046 §5.1.1 asks only that no part contain it; then the message draws its own). One
# boundary makes the multipart Content-Type a header like From: parsed and folded once
# (``_ParsedOnce``, ``_Policy``) instead of in every message.
BOUNDARY = _boundary()
