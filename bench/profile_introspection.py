"""Where the time of one introspection request goes (RFC 7662): cProfile, in-process.

Same set-up as profile_token.py (IDP_DATABASE_URL or a temporary SQLite file): the service
client introspects one of its own client_credentials tokens N times.

    python bench/profile_introspection.py [N]
"""

from __future__ import annotations

import sys

from inprocess import service_app
from profile_token import profile


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    app, basic = service_app(ISSUER="http://127.0.0.1:8000")
    http = app.test_client()
    issued = http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "api"},
        headers={"Authorization": basic},
    )
    token = issued.get_json()["access_token"]

    def introspect():
        answer = http.post("/introspect", data={"token": token}, headers={"Authorization": basic})
        assert answer.status_code == 200 and answer.get_json()["active"], answer.data

    profile(introspect, count, "introspections")


if __name__ == "__main__":
    main()
