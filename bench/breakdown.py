"""CPU and wall time of one request, in-process, with features switched off one at a time.

    python bench/breakdown.py [N]        # SQLite in a temp folder, or IDP_DATABASE_URL

For each variant it issues N requests through Flask's test client (no network, no
gunicorn) and prints CPU ms (this process only: the database server's own work is not in
it) and wall ms per request, for client_credentials, introspection and discovery.
"""

from __future__ import annotations

import sys
import time

from inprocess import service_app

from idp import db

VARIANTS = {
    "as deployed (JWT RS256 access tokens)": {},
    "opaque access tokens": {"ACCESS_TOKEN_FORMAT": "opaque"},
    "JWT signed with ES256": {"ACCESS_TOKEN_SIGNING_ALG": "ES256"},
    "no rate limiter": {"RATELIMIT_ENABLED": False},
    "no metrics": {"METRICS_ENABLED": False},
    "no access log": {"LOG_LEVEL": "WARNING"},
}


def measure(name: str, overrides: dict, count: int) -> None:
    app, basic = service_app(**overrides)
    auth = {"Authorization": basic}
    http = app.test_client()
    token = http.post("/token", data={"grant_type": "client_credentials", "scope": "api"},
                      headers=auth).get_json()["access_token"]  # fmt: skip
    requests = {
        "token": lambda: http.post("/token", data={"grant_type": "client_credentials",
                                                   "scope": "api"}, headers=auth),
        "introspect": lambda: http.post("/introspect", data={"token": token}, headers=auth),
        "discovery": lambda: http.get("/.well-known/openid-configuration"),
    }  # fmt: skip
    cells = []
    for label, send in requests.items():
        for _ in range(30):
            assert send().status_code == 200
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            send()
        cpu = (time.process_time() - cpu) / count * 1000
        wall = (time.perf_counter() - wall) / count * 1000
        cells.append(f"{label} {cpu:5.2f} / {wall:5.2f}")
    print(f"{name:40s} " + "   ".join(cells), flush=True)
    db.engine(app).dispose()


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    print(f"ms per request, CPU / wall, {count} requests each")
    for name, overrides in VARIANTS.items():
        measure(name, overrides, count)


if __name__ == "__main__":
    main()
