"""CPU of each thread of a running worker over a window, by thread name.

Reads the per-thread CPU ticks in /proc before and after the window; names the threads with
``py-spy dump`` when py-spy is installed (a measurement tool, not a dependency), else by id.
Run it while a scenario of bench/run.sh loads the worker:

    python bench/thread_cpu.py "$(pgrep -f 'gunicorn --config python:idp' | sed -n 2p)" 10

Prints CPU ms per second of wall time for each thread (a worker pinned to one core has 1,000
at most). Divided by the scenario's requests/s it gives the CPU per request of each thread:
the request threads (ThreadPoolExecutor-*), gunicorn's poller (MainThread), the log writer
(idp-log-writer), argon2 (argon2_0) and the mail and logout senders (counted together as
"threads that ended" when they stopped before the second reading).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(stat_path: str) -> int:
    """utime + stime of a /proc stat file (a process's counts its ended threads too)."""
    with open(stat_path) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def process_ticks(pid: int) -> int:
    return cpu_ticks(f"/proc/{pid}/stat")


def ticks(pid: int) -> dict[int, int]:
    found = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            found[int(tid)] = cpu_ticks(f"/proc/{pid}/task/{tid}/stat")
        except FileNotFoundError:  # ended meanwhile
            continue
    return found


def names(pid: int) -> dict[int, str]:
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(spy):
        return {}
    dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True)
    return {
        int(match[1]): match[2]
        for match in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', dump.stdout, re.M)
    }


def main() -> None:
    pid, seconds = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    before, before_all = ticks(pid), process_ticks(pid)
    started = time.monotonic()
    time.sleep(seconds)
    after, after_all = ticks(pid), process_ticks(pid)
    wall = time.monotonic() - started
    named = names(pid)
    rows = [
        (1000 * (after[tid] - before.get(tid, 0)) / TICKS / wall, named.get(tid, str(tid)))
        for tid in after
    ]
    for ms, name in sorted(rows, reverse=True):
        print(f"{ms:7.1f} ms/s  {name}")
    whole = 1000 * (after_all - before_all) / TICKS / wall
    # A thread that ran only while it had work (the mail and logout senders) and has ended
    # by the second reading is counted here.
    print(f"{whole - sum(ms for ms, _ in rows):7.1f} ms/s  threads that ended in the window")
    print(f"{whole:7.1f} ms/s  the worker")


if __name__ == "__main__":
    main()
