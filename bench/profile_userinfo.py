"""Where the time of one UserInfo request goes (OIDC Core §5.3): cProfile, in-process.

Same set-up as profile_token.py (IDP_DATABASE_URL or a temporary SQLite file), plus a user
and an access token of scope ``openid profile email offline_access`` stored as a code
redemption stores it (inprocess.user_tokens); GET /userinfo with it N times.

    python bench/profile_userinfo.py [N]
"""

from __future__ import annotations

import sys

from inprocess import service_app, user_tokens
from profile_token import profile


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    app, _ = service_app(ISSUER="http://127.0.0.1:8000")
    _, pairs = user_tokens(app, 1)
    http = app.test_client()
    bearer = {"Authorization": "Bearer " + pairs[0][0]}

    def userinfo():
        answer = http.get("/userinfo", headers=bearer)
        assert answer.status_code == 200 and answer.get_json()["name"] == "Bench", answer.data

    profile(userinfo, count, "UserInfo requests")


if __name__ == "__main__":
    main()
