"""Token exchange (RFC 8693) with a DPoP proof: the new token is bound (RFC 9449 §5)."""

from __future__ import annotations

from ..helpers import basic_auth
from ..token_formats.conftest import INVENTORY
from ..token_formats.test_token_exchange import ACCESS, GRANT
from .test_binding import stored_tokens


def test_token_exchange_issues_dpop_bound_tokens(app, client, orders_api, user_tokens, prover):
    headers = basic_auth(orders_api.client_id, orders_api.client_secret)
    data = {"grant_type": GRANT, "subject_token": user_tokens["access_token"],
            "subject_token_type": ACCESS, "audience": INVENTORY}  # fmt: skip
    response = client.post("/token", data=data, headers={**headers, **prover.headers()})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["token_type"] == "DPoP"
    assert stored_tokens(app)[-1].jkt == prover.jkt
