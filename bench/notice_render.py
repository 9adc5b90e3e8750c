"""What building one new-device notice costs: ``mail.message.render`` + ``as_string``.

A sign-in from a new browser renders the notice in the request (idp/auth/devices.py); this
script renders and writes N of them in one request context, after one to warm up, and prints
the best and the median of BATCHES batches in thread CPU per notice. Under callgrind, run it
with N=0 and N=200 and divide the difference of the two counts by 200: the instructions per
notice, which the host's load does not move (BATCHES=0 skips the timing).

    python bench/notice_render.py [N] [BATCHES]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/notice_render.py 0 0
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python bench/notice_render.py 200 0
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

from idp import create_app
from idp.mail.message import render


def notice() -> str:
    return render(
        "bench@example.com", "New sign-in to your account", "new_device", name="Bench",
        username="bench", device="Firefox on Linux", when="2026-12-07 04:00 UTC", ip=None,
        account_url="http://127.0.0.1/account",
    ).as_string()  # fmt: skip


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    batches = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    app = create_app({"DATABASE_URL": f"sqlite:///{tempfile.mkdtemp()}/idp.sqlite3",
                      "SECRET_KEY": "bench", "ISSUER": "http://127.0.0.1"})  # fmt: skip
    with app.test_request_context("/login", method="POST"):
        notice()
        if not batches:
            for _ in range(count):
                notice()
            return
        per_notice = []
        for _ in range(batches):
            began = time.thread_time()
            for _ in range(count):
                notice()
            per_notice.append((time.thread_time() - began) / count * 1e6)
    print(f"{count} notices, best of {batches} batches: {min(per_notice):.0f} µs each "
          f"(median {statistics.median(per_notice):.0f} µs)")  # fmt: skip


if __name__ == "__main__":
    main()
