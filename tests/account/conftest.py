"""Account flows (passwords, email, invitations, registration, own data)."""

import pytest


@pytest.fixture
def app_config(app_config):
    # These tests are about account flows, some driven by an admin who signs in with the
    # password alone here; the MFA that admins need by default is tested in tests/mfa/.
    app_config["MFA_REQUIRED_FOR_ADMINS"] = False
    return app_config
