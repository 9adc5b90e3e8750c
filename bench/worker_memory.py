"""Resident memory of one `idp serve` worker (4 gthread threads) under concurrent sign-ins.

Starts `idp serve --workers 1` on a fresh database (IDP_DATABASE_URL, else a temporary
SQLite file), then runs THREADS browsers signing in at once (GET /login, POST /login: one
argon2id verification each) for ROUNDS rounds, and samples the worker's VmRSS every 50 ms.
Prints the RSS after start, the peak while signing in, the RSS at the end, and the sign-ins
per second. The malloc environment of the server is this process's (so MALLOC_* set here
reach it; `idp serve` adds its defaults).

With BENCH_PASSWORD_FORM=1, one browser first submits the password-change form with a
common new password, which is refused: the worker then holds what checking a new password
loads for good (the blocklist, zxcvbn and its word lists), as any worker that has served a
password form does. The RSS after that is printed, and the sign-ins follow.

    python bench/worker_memory.py [ROUNDS] [THREADS]
    BENCH_PASSWORD_FORM=1 python bench/worker_memory.py [ROUNDS] [THREADS]
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from inprocess import fresh_database
from prepare import PASSWORD, csrf_token, refuse_a_new_password

from idp import create_app, db
from idp.auth.users import create_user
from idp.migrate import upgrade
from idp.oauth import keys


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    url = fresh_database()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "ISSUER": "http://127.0.0.1"})
    upgrade(app)
    with app.app_context():
        keys.ensure_keys(db.session())
        for i in range(threads):
            create_user(db.session(), username=f"bench{i}", password=PASSWORD, name="Bench")
        db.session().commit()
    db.engine(app).dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tempfile.mkdtemp()
    env = {**os.environ, "IDP_DATABASE_URL": url, "IDP_SECRET_KEY": "bench",
           "IDP_ISSUER": f"http://127.0.0.1:{port}", "IDP_RATELIMIT_ENABLED": "false",
           "IDP_INSTANCE_PATH": folder, "IDP_LOG_LEVEL": "WARNING",
           "PROMETHEUS_MULTIPROC_DIR": folder + "/metrics"}  # fmt: skip
    # One core for the worker, as bench/run.sh: a worker serves one core.
    command = ["taskset", "-c", "0", sys.executable, "-c", "from idp.cli import main; main()",
               "serve",
               "--workers", "1", "--threads", "4", "--bind", f"127.0.0.1:{port}"]  # fmt: skip
    log = open(folder + "/server.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if requests.get(base + "/readyz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        worker = int(children[0])
        for _ in range(3):  # every page once, so the start figure includes imports
            requests.get(base + "/login")
        started_rss = rss_kib(worker)
        if os.environ.get("BENCH_PASSWORD_FORM") == "1":
            refuse_a_new_password(base, "bench0")
            time.sleep(0.5)
            print(f"  RSS after one refused new password {rss_kib(worker) / 1024:6.1f} MiB")
        peak = [started_rss]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_kib(worker))
                time.sleep(0.05)

        errors = []

        def browse(i: int):
            for _ in range(rounds):
                browser = requests.Session()
                csrf = csrf_token(browser.get(base + "/login").text)
                answer = browser.post(base + "/login", allow_redirects=False, data={
                    "csrf_token": csrf, "username": f"bench{i}",
                    "password": PASSWORD, "next": ""})  # fmt: skip
                if answer.status_code != 302:
                    errors.append(answer.status_code)

        sampler = threading.Thread(target=sample)
        sampler.start()
        began = time.monotonic()
        workers = [threading.Thread(target=browse, args=(i,)) for i in range(threads)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join()
        elapsed = time.monotonic() - began
        done.set()
        sampler.join()
        time.sleep(0.5)
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        malloc = " ".join(e.decode() for e in environ if e.startswith(b"MALLOC_")) or "none"
        print(f"worker {worker}, malloc environment: {malloc}")
        print(f"  RSS after start {started_rss / 1024:6.1f} MiB")
        hwm = rss_kib(worker, "VmHWM") / 1024
        print(f"  RSS peak        {peak[0] / 1024:6.1f} MiB  (VmHWM {hwm:.1f} MiB)")
        print(f"  RSS at the end  {rss_kib(worker) / 1024:6.1f} MiB")
        print(f"  {threads * rounds} sign-ins by {threads} browsers at once in {elapsed:.1f} s "
              f"({threads * rounds / elapsed:.1f}/s), errors: {len(errors)}")  # fmt: skip
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
