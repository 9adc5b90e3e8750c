#!/usr/bin/env bash
# What the HTTP server alone costs: bench/ceiling.sh [SECONDS]
#
# Serves bench/hello.py (a WSGI app that returns fixed bytes) with one worker pinned to
# core 0 and measures it with wrk on the last core, 32 connections, as bench/run.sh does:
#   * gunicorn, gthread with 4 threads (idp serve's default), then sync, then the same
#     answer from a Flask view (hello:flask_app);
#   * granian (Rust HTTP parser, WSGI interface), when GRANIAN names its executable,
#     e.g. GRANIAN=.venv/bin/granian after `.venv/bin/pip install granian`
#     (granian is not a dependency of the project).
# No Python app under the same server can answer faster than this on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
PORT=${BENCH_PORT:-8801}
LAST=$(($(nproc) - 1))
PY=${PYTHON:-.venv/bin/python}
export BENCH_LUA="$PWD/bench/lua" BENCH_PATH=/

measure() {  # label, then the server command
  local label=$1
  shift
  (cd bench && exec taskset -c 0 "$@") >/dev/null 2>&1 &
  local server=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$PORT/" >/dev/null 2>&1 && break
    sleep 0.1
  done
  export BENCH_SCENARIO=$label
  taskset -c "$LAST" wrk -t1 -c32 -d2s -s bench/lua/get.lua "http://127.0.0.1:$PORT" >/dev/null
  taskset -c "$LAST" wrk -t1 -c32 -d"${SECONDS_PER_RUN}s" --latency -s bench/lua/get.lua \
    "http://127.0.0.1:$PORT" | grep '^RESULT'
  kill -TERM "$server"
  wait "$server" 2>/dev/null || true
}

GUNICORN=(../"$PY" -m gunicorn --workers 1 --bind "127.0.0.1:$PORT" --log-level warning)
measure "gunicorn gthread 4 threads" "${GUNICORN[@]}" --worker-class gthread --threads 4 hello:app
measure "gunicorn sync" "${GUNICORN[@]}" --worker-class sync hello:app
measure "gunicorn gthread 4 threads, Flask view" "${GUNICORN[@]}" --worker-class gthread \
  --threads 4 hello:flask_app
if [ -n "${GRANIAN:-}" ]; then
  GRANIAN="$(cd "$(dirname "$GRANIAN")" && pwd)/$(basename "$GRANIAN")"  # measure runs in bench/
  measure "granian wsgi 1 worker" "$GRANIAN" --interface wsgi --workers 1 --blocking-threads 4 \
    --host 127.0.0.1 --port "$PORT" --log-level warning hello:app
  measure "granian wsgi 1 worker, Flask view" "$GRANIAN" --interface wsgi --workers 1 \
    --blocking-threads 4 --host 127.0.0.1 --port "$PORT" --log-level warning hello:flask_app
fi
