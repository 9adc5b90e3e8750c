#!/usr/bin/env bash
# The floor under idp serve: bench/lean.sh [SECONDS] [THREADS]
#
# Serves bench/lean_reference.py (issue 17's lean Flask app: Basic auth, RS256 with
# cryptography, one psycopg prepared statement) with gunicorn, 1 gthread worker pinned to
# core 0 (2 threads as in the issue, or THREADS), and runs the same wrk scripts as
# bench/run.sh on the last core, 32 connections, so its rows compare with run.sh's
# (client credentials, introspection, UserInfo, rotating refresh); then
# bench/login_flow.py against its lean sign-in (argon2id at the IdP's default cost), as
# run.sh's login_flow row.
#   LEAN_DATABASE_URL  PostgreSQL database (default .../bench; its lean_* tables are replaced)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${1:-10}
THREADS=${2:-2}
PORT=${BENCH_PORT:-8802}
LAST=$(($(nproc) - 1))
PY=${PYTHON:-.venv/bin/python}
TICKS=$(getconf CLK_TCK)
CONNECTIONS=32
REFRESH_COUNT=$((CONNECTIONS * 2))  # as bench/run.sh has prepare.py make them
export LEAN_ISSUER="http://127.0.0.1:$PORT" BENCH_LUA="$PWD/bench/lua" BENCH_THREADS=1
REFRESH_FILE=$(mktemp /tmp/lean-refresh.XXXXXX)
eval "$(cd bench && "../$PY" lean_reference.py setup "$REFRESH_FILE" "$REFRESH_COUNT")"

(cd bench && exec taskset -c 0 "../$PY" -m gunicorn --workers 1 --worker-class gthread \
  --threads "$THREADS" --bind "127.0.0.1:$PORT" --log-level warning lean_reference:app) &
SERVER=$!
trap 'kill -TERM $SERVER 2>/dev/null; wait $SERVER 2>/dev/null || true; rm -f "$REFRESH_FILE"' EXIT
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$PORT/token" && break
  sleep 0.1
done
worker_ticks() {
  local total=0 pid fields
  for pid in $(ps -o pid= --ppid "$SERVER"); do
    read -r -a fields <<<"$(cut -d')' -f2- "/proc/$pid/stat")"
    total=$((total + fields[11] + fields[12]))  # utime, stime
  done
  echo "$total"
}
row() {  # a RESULT line and the worker's CPU ticks before and after it: one table row
  echo "${1#RESULT }" | "$PY" -c "
import json, sys
r = json.loads(sys.stdin.read())
cpu = ($3 - $2) * 1000 / $TICKS / max(r['requests'], 1)
print(f\"| lean {r['scenario']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | {cpu:.3f} |\")"
}
echo "| scenario | requests/s | p50 ms | p99 ms | errors | server CPU ms/req |"
echo "|---|---|---|---|---|---|"
for scenario in "client_credentials client_credentials.lua" "introspection introspect.lua" \
  "userinfo userinfo.lua" "refresh refresh.lua"; do
  set -- $scenario
  export BENCH_SCENARIO=$1
  taskset -c "$LAST" wrk -t1 -c"$CONNECTIONS" -d2s -s "bench/lua/$2" "$LEAN_ISSUER" >/dev/null || true
  if [ "$1" = refresh ]; then  # the warm-up rotated them all: new ones, as run.sh does
    (cd bench && "../$PY" lean_reference.py refresh-tokens "$REFRESH_FILE" "$REFRESH_COUNT")
  fi
  before=$(worker_ticks)
  line=$(taskset -c "$LAST" wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -s "bench/lua/$2" \
    "$LEAN_ISSUER" | grep '^RESULT')
  after=$(worker_ticks)
  row "$line" "$before" "$after"
done
# The sign-in (bench/login_flow.py, 8 browsers at once, on the last core), as run.sh runs it.
(cd bench && taskset -c "$LAST" "../$PY" login_flow.py "$LEAN_ISSUER" --threads 8 --duration 2 \
  >/dev/null) || true
before=$(worker_ticks)
line=$(cd bench && taskset -c "$LAST" "../$PY" login_flow.py "$LEAN_ISSUER" --threads 8 \
  --duration "$SECONDS_PER_RUN" | grep '^RESULT')
after=$(worker_ticks)
row "$line" "$before" "$after"
