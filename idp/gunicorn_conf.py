"""gunicorn configuration for ``idp serve`` (also usable directly: ``-c python:idp.gunicorn_conf``).

Every value can be set with an ``IDP_`` environment variable (or the matching ``idp serve``
option); the defaults suit one machine behind a reverse proxy:

    IDP_BIND            127.0.0.1:8000       where to listen (the proxy connects here)
    IDP_WORKERS         number of CPUs       worker processes (each with its own DB pool)
    IDP_THREADS         4                    threads per worker (gthread; 1 selects sync workers)
    IDP_TIMEOUT         30                   seconds before a stuck worker is replaced
    IDP_MAX_REQUESTS    0                    recycle a worker after this many requests (0: never)
    IDP_CONTROL_SOCKET  (off)                gunicorn's control socket for gunicornc, if wanted

Workers are forked before the app is imported (no preload), so no database connection or
key cache is ever shared between processes. The proxy's X-Forwarded-* headers are trusted
only through the app's ProxyFix settings (PROXY_FIX_X_FOR...), not by gunicorn itself.
Prometheus metrics of all workers are added up through PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import tempfile

from gunicorn import glogging


def _int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


bind = os.environ.get("IDP_BIND", "127.0.0.1:8000")
workers = _int("IDP_WORKERS", multiprocessing.cpu_count())
# Threads overlap one request's database round trips with another's Python work: on
# PostgreSQL, 4 threads served 30-70 % more token and introspection requests per worker
# than a sync worker (docs/benchmarks.md).
threads = _int("IDP_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("IDP_TIMEOUT", 30)
graceful_timeout = 30
keepalive = 5
max_requests = _int("IDP_MAX_REQUESTS", 0)
max_requests_jitter = max_requests // 10
proc_name = "idp"
# gunicorn's control socket (gunicornc) defaults to one path per user, ~/.gunicorn/gunicorn.ctl:
# a second server started by the same user (another instance, a test, a benchmark) takes it
# over from the first. Off unless IDP_CONTROL_SOCKET names a path for this server.
control_socket_disable = not os.environ.get("IDP_CONTROL_SOCKET")
if not control_socket_disable:
    control_socket = os.environ["IDP_CONTROL_SOCKET"]
preload_app = False
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"  # heartbeat files off the disk

# The app's ProxyFix decides which forwarded headers count; gunicorn trusts none itself.
secure_scheme_headers: dict[str, str] = {}
forwarded_allow_ips = "127.0.0.1,::1"

# The app writes one JSON access line per request, without query strings; gunicorn's own
# access log (which has them) stays off. gunicorn's error log uses the same JSON format.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("IDP_LOG_LEVEL", "info").lower()
if os.environ.get("IDP_LOG_FORMAT", "json") == "json":
    # Replaces gunicorn's whole logging setup (its defaults name these handlers).
    _stderr = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "idp.logs.JsonFormatter"}},
        "handlers": {"console": _stderr, "error_console": _stderr},
        "root": {"level": "WARNING", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {
                "level": loglevel.upper(),
                "handlers": ["error_console"],
                "propagate": False,
            },
            "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},
        },
    }


class Logger(glogging.Logger):
    """gunicorn's logger without its access log: the app writes its own access line, and
    gunicorn would otherwise build its access fields for every request (any logconfig_dict
    turns them on), about 8 % of a discovery request."""

    def access(self, resp, req, environ, request_time):
        pass


logger_class = Logger

# Multiprocess metrics: one directory shared by the workers of this server, emptied at start.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="idp-metrics-")


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(folder, exist_ok=True)
    for stale in glob.glob(os.path.join(folder, "*.db")):
        os.remove(stale)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    """Keep what the worker built at start (the app, its modules, compiled statements)
    out of the cyclic garbage collector's full passes: they live as long as the worker.

    Under the sign-in load test a full pass walked ~170,000 objects and held the GIL for
    ~68 ms, stalling every thread of the worker; frozen, it walks the ~27,000 made since
    (~6 ms), and the collector's CPU per sign-in fell from 0.43 to 0.19 ms
    (docs/benchmarks.md, eighth round). Garbage made before the freeze is collected first.
    """
    import gc

    from idp import malloc

    gc.collect()
    gc.freeze()
    # What the start freed (imports, the app's construction) lies below the main heap's
    # top, which idp serve's fixed trim threshold never shrinks: ~0.7 MiB of every worker,
    # for good (docs/benchmarks.md, twenty-second round).
    malloc.give_back()
