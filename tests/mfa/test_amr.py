"""amr values (RFC 8176 §2) and the acr class they give (oauth/acr.py)."""

from __future__ import annotations

import pytest

from idp.auth.mfa import combine
from idp.oauth.acr import MFA, PHR, PWD, level, satisfies


@pytest.mark.parametrize(
    ("previous", "added", "amr"),
    [
        (["pwd"], ["otp"], ["pwd", "otp", "mfa"]),  # know + have: two distinct factors
        (["pwd"], ["hwk", "user"], ["pwd", "hwk", "user", "mfa"]),
        ([], ["hwk", "user"], ["hwk", "user"]),  # one authenticator: not "mfa" by itself
        (["pwd", "otp", "mfa"], ["otp"], ["pwd", "otp", "mfa"]),  # each value once
        (["pwd"], ["pwd"], ["pwd"]),
    ],
)
def test_mfa_only_when_two_distinct_factors_were_used(previous, added, amr):
    assert combine(previous, added) == amr


@pytest.mark.parametrize(
    ("amr", "acr"),
    [
        (["pwd"], PWD),
        (["pwd", "otp", "mfa"], MFA),
        (["pwd", "hwk", "mfa"], PHR),
        (["swk", "user"], PHR),  # a passkey: phishing-resistant
        (None, PWD),
    ],
)
def test_the_class_follows_the_methods(amr, acr):
    assert level(amr) == acr


def test_classes_are_ordered():
    assert satisfies(PHR, MFA) and satisfies(MFA, PWD) and not satisfies(PWD, MFA)
    assert not satisfies(PHR, "urn:unknown")
