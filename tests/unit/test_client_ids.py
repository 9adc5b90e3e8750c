"""Generated client identifiers (RFC 6749 §2.2)."""

from __future__ import annotations

from idp.models import new_client_id


def test_client_ids_never_start_with_a_dash():
    # `idp clients disable <client_id>`: an id starting with "-" would read as an option.
    ids = {new_client_id() for _ in range(3000)}
    assert len(ids) == 3000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)  # 128 bits, base64url without padding
