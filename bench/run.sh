#!/usr/bin/env bash
# Benchmark one configuration: bench/run.sh sqlite|postgres WORKERS [SECONDS]
#
# Starts `idp serve` on a fresh database, pins it (1 worker: core 0; N workers: cores
# 0..N-1), runs every scenario with wrk (32 connections, pinned to the last core) and the
# login flow with bench/login_flow.py, and appends one JSON line per scenario to
# bench/out/results.jsonl. Any non-2xx answer fails the run (exit 1).
#
#   BENCH_PG_URL     PostgreSQL database to EMPTY and use (default: .../bench)
#   BENCH_PORT       port to listen on (default 8800)
#   BENCH_CONNECTIONS, BENCH_THREADS   wrk settings (default 32, 1)
#   BENCH_PIN_DATABASE=1   also pin the PostgreSQL server's processes to the load
#                    generator's core for the run, so the worker's core runs the worker
#                    alone (affinity restored to all cores at the end)
#   BENCH_WORKER_QUOTA=P   give each worker its own CPU cgroup (v1, /sys/fs/cgroup/cpu) capped at
#                    P % of one core and pin worker i to core i, so that 1 and N workers are
#                    compared with the load generator and PostgreSQL on the capacity left over
#                    (the two-worker row on a 2-core machine; needs root)
#   BENCH_SCENARIOS  space-separated subset to run (default: all), e.g. "introspection refresh"
#   BENCH_SERVER     idp (default: `idp serve`, gunicorn) or granian: the same app under
#                    granian's native HTTP parser, 4 blocking threads per worker, for
#                    comparison only (`.venv/bin/pip install granian`; not a dependency)
#   BENCH_SMTP       starttls or none: mail goes to an SMTP server (bench/smtp_sink.py, on
#                    the load generator's core) as in production, over STARTTLS (the
#                    default SMTP_SECURITY, its certificate trusted through SSL_CERT_FILE)
#                    or in plain text; without it, to the outbox folder (no SMTP_HOST)
#   BENCH_PASSWORD_FORM=1   before the workers' memory is read, one browser has a new password
#                    refused on the password-change form (one worker then holds the password
#                    policy's word lists and zxcvbn, as a worker behind password forms does;
#                    with 1 worker, that one)
set -euo pipefail
cd "$(dirname "$0")/.."

DB=${1:?usage: bench/run.sh sqlite|postgres WORKERS [SECONDS]}
WORKERS=${2:?usage: bench/run.sh sqlite|postgres WORKERS [SECONDS]}
SECONDS_PER_RUN=${3:-10}
PORT=${BENCH_PORT:-8800}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
export BENCH_THREADS=${BENCH_THREADS:-1}
export BENCH_LUA="$PWD/bench/lua"
CORES=$(nproc)
LAST=$((CORES - 1))
SERVER_CPUS=$([ "$WORKERS" -le 1 ] && echo 0 || echo "0-$((WORKERS - 1 < LAST ? WORKERS - 1 : LAST))")
CLIENT_CPUS=$LAST
PY=${PYTHON:-.venv/bin/python}
OUT=bench/out
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/idp-bench.XXXXXX)
TICKS=$(getconf CLK_TCK)
CGROUPS=()

cpu_ticks() {  # user + system CPU ticks of the given processes (those still alive)
  local total=0 pid stat fields
  for pid in "$@"; do
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
    read -r -a fields <<<"${stat##*) }"  # after "(comm) ": state is [0], utime [11], stime [12]
    total=$((total + fields[11] + fields[12]))
  done
  echo "$total"
}
server_pids() { echo "$SERVER" $(ps -o pid= --ppid "$SERVER"); }
database_pids() { [ "$DB" = postgres ] && pgrep -x postgres || true; }

export IDP_INSTANCE_PATH=$WORK
export IDP_SECRET_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export IDP_ISSUER="http://127.0.0.1:$PORT"
# Limits stay on (their cost is part of the figures) but far above the offered load.
export IDP_RATELIMIT_TOKEN="1000000/second" IDP_RATELIMIT_LOGIN_IP="1000000/minute"
SINK=
if [ -n "${BENCH_SMTP:-}" ]; then
  SMTP_PORT=$((PORT + 25))
  taskset -c "$CLIENT_CPUS" "$PY" -m bench.smtp_sink "$SMTP_PORT" "$BENCH_SMTP" "$WORK/smtp.pem" \
    >"$WORK/smtp.log" 2>&1 &
  SINK=$!
  for _ in $(seq 1 100); do grep -q ready "$WORK/smtp.log" 2>/dev/null && break; sleep 0.1; done
  export IDP_SMTP_HOST=127.0.0.1 IDP_SMTP_PORT=$SMTP_PORT IDP_SMTP_SECURITY=$BENCH_SMTP
  export IDP_MAIL_FROM=idp@example.com SSL_CERT_FILE=$WORK/smtp.pem
fi
export IDP_RATELIMIT_LOGIN_ACCOUNT="1000000/minute"
if [ "$DB" = postgres ]; then
  export IDP_DATABASE_URL=${BENCH_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/bench}
  "$PY" - <<'PY'
import os
from sqlalchemy import create_engine, text
engine = create_engine(os.environ["IDP_DATABASE_URL"])
with engine.begin() as conn:
    conn.execute(text("DROP SCHEMA public CASCADE"))
    conn.execute(text("CREATE SCHEMA public"))
PY
else
  export IDP_DATABASE_URL="sqlite:///$WORK/idp.sqlite3"
fi
.venv/bin/idp init --json >/dev/null

if [ "${BENCH_SERVER:-idp}" = granian ]; then
  export PROMETHEUS_MULTIPROC_DIR=$WORK/metrics
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  taskset -c "$SERVER_CPUS" .venv/bin/granian --interface wsgi --workers "$WORKERS" \
    --blocking-threads 4 --host 127.0.0.1 --port "$PORT" --log-level warning \
    --factory idp:create_app >"$OUT/server-$DB-$WORKERS-granian.log" 2>&1 &
else
  taskset -c "$SERVER_CPUS" .venv/bin/idp serve --workers "$WORKERS" --bind "127.0.0.1:$PORT" \
    >"$OUT/server-$DB-$WORKERS.log" 2>&1 &
fi
SERVER=$!
cleanup() {
  kill -TERM "$SERVER" 2>/dev/null
  wait "$SERVER" 2>/dev/null
  if [ -n "$SINK" ]; then kill -TERM "$SINK" 2>/dev/null; wait "$SINK" 2>/dev/null || true; fi
  if [ "${BENCH_PIN_DATABASE:-0}" = 1 ]; then
    for pid in $(database_pids); do taskset -a -p -c "0-$LAST" "$pid" >/dev/null 2>&1 || true; done
  fi
  for group in "${CGROUPS[@]}"; do
    # moving the last process out first lets the (now empty) group be removed
    while read -r pid; do echo "$pid" >/sys/fs/cgroup/cpu/cgroup.procs; done <"$group/cgroup.procs"
    rmdir "$group" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
if [ "${BENCH_PIN_DATABASE:-0}" = 1 ]; then
  # New backends inherit the postmaster's affinity; existing ones are pinned here.
  for pid in $(database_pids); do taskset -a -p -c "$CLIENT_CPUS" "$pid" >/dev/null; done
fi
for _ in $(seq 1 100); do
  curl -fsS "$IDP_ISSUER/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

eval "$("$PY" bench/prepare.py "$IDP_ISSUER" "$WORK/refresh_tokens.txt" $((CONNECTIONS * 2)))"

if [ -n "${BENCH_WORKER_QUOTA:-}" ]; then
  i=0
  for pid in $(ps -o pid= --ppid "$SERVER"); do
    group=/sys/fs/cgroup/cpu/idp-bench-$i
    mkdir -p "$group"
    echo 100000 >"$group/cpu.cfs_period_us"
    echo $((BENCH_WORKER_QUOTA * 1000)) >"$group/cpu.cfs_quota_us"
    echo "$pid" >"$group/cgroup.procs"
    taskset -a -p -c $((i % CORES)) "$pid" >/dev/null
    CGROUPS+=("$group")
    i=$((i + 1))
  done
fi
wanted() { [ -z "${BENCH_SCENARIOS:-}" ] || [[ " $BENCH_SCENARIOS " == *" $1 "* ]]; }

run_wrk() {  # scenario script [path]
  export BENCH_SCENARIO=$1 BENCH_PATH=${3:-/}
  # warm-up (discarded), then the measured run
  taskset -c "$CLIENT_CPUS" wrk -t"$BENCH_THREADS" -c"$CONNECTIONS" -d2s -s "bench/lua/$2" \
    "$IDP_ISSUER" >/dev/null || true
  measured wrk_once "$1" "bench/lua/$2"
}

wrk_once() {  # scenario script: one measured wrk run, its RESULT line
  taskset -c "$CLIENT_CPUS" wrk -t"$BENCH_THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" \
    --latency -s "$2" "$IDP_ISSUER" | tee "$OUT/wrk-$DB-$WORKERS-$1.txt" | grep '^RESULT'
}

measured() {  # run a load command; add the CPU the server and PostgreSQL spent per request
  local before_server before_db line status=0
  before_server=$(cpu_ticks $(server_pids))
  before_db=$(cpu_ticks $(database_pids))
  line=$("$@") || status=$?
  echo "$line" | "$PY" -c "
import json, sys
line = sys.stdin.read().strip()
if not line.startswith('RESULT '):
    sys.exit(line)
row = json.loads(line.removeprefix('RESULT '))
per = 1000 / $TICKS / max(row['requests'], 1)
row['server_cpu_ms'] = round(($(cpu_ticks $(server_pids)) - $before_server) * per, 3)
row['database_cpu_ms'] = round(($(cpu_ticks $(database_pids)) - $before_db) * per, 3)
print('RESULT ' + json.dumps(row))"
  return $status
}

login_flow() {
  (cd bench && taskset -c "$CLIENT_CPUS" "../$PY" login_flow.py "$IDP_ISSUER" --threads 8 \
    --duration "$SECONDS_PER_RUN" | grep '^RESULT')
}

results=()
status=0
for scenario in "discovery get.lua /.well-known/openid-configuration" "jwks get.lua /jwks.json" \
  "client_credentials client_credentials.lua" "introspection introspect.lua" \
  "userinfo userinfo.lua"; do
  wanted "${scenario%% *}" || continue
  # shellcheck disable=SC2086
  line=$(run_wrk $scenario) || status=1
  results+=("$line")
done
if wanted refresh; then
  # Refresh needs fresh tokens after its warm-up used some: regenerate them first.
  eval "$("$PY" bench/prepare.py "$IDP_ISSUER" "$WORK/refresh_tokens.txt" $((CONNECTIONS * 2)))"
  export BENCH_SCENARIO=refresh
  line=$(measured wrk_once refresh bench/lua/refresh.lua) || status=1
  results+=("$line")
fi
if wanted login_flow; then
  line=$(measured login_flow) || status=1
  results+=("$line")
fi

if [ "${BENCH_PASSWORD_FORM:-0}" = 1 ]; then
  (cd bench && "../$PY" -c "from prepare import refuse_a_new_password as r; r('$IDP_ISSUER')")
fi
# Resident memory of each worker (the children of the gunicorn master) after the runs, in MiB
# to a tenth (ps's KiB / 1024; whole numbers until 2026-12-07, cut, not rounded).
rss=$(ps -o rss= --ppid "$SERVER" | awk '{printf "%s%.1f", sep, $1/1024; sep=","}')
# What checked the sign-ins' passwords: libsodium, through PyNaCl (idp/auth/passwords.py),
# since 2026-12-08; before, argon2-cffi-bindings ("pypi": PyPI's wheel, "local": built here).
ARGON2_BUILD=$("$PY" -c "
from importlib.metadata import version
print('libsodium (PyNaCl', version('pynacl') + ')')")
: >"$WORK/rows.jsonl"
for line in "${results[@]}"; do
  echo "${line#RESULT }" | "$PY" -c "
import json, sys
row = json.loads(sys.stdin.read())
row.update(argon2_build='$ARGON2_BUILD', database='$DB', workers=$WORKERS, worker_quota_percent=${BENCH_WORKER_QUOTA:-None}, connections=$CONNECTIONS, seconds=$SECONDS_PER_RUN,
           server='${BENCH_SERVER:-idp}', database_pinned=${BENCH_PIN_DATABASE:-0} == 1,
           mail='${BENCH_SMTP:+smtp-}${BENCH_SMTP:-outbox}',
           password_form=${BENCH_PASSWORD_FORM:-0} == 1,
           worker_rss_mb=[float(x) for x in '$rss'.split(',') if x])
print(json.dumps(row))" | tee -a "$OUT/results.jsonl" >>"$WORK/rows.jsonl"
done
# The table of this run (docs/benchmarks.md's columns): rate, latency, CPU per request.
"$PY" - "$WORK/rows.jsonl" <<'PY'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
if rows:
    r = rows[0]
    print(f"\n{r['database']}, {r['workers']} worker(s), {r['connections']} connections, "
          f"{r['seconds']} s per scenario; worker RSS MiB: {r['worker_rss_mb']}; "
          f"argon2: {r['argon2_build']}; "
          f"mail: {r.get('mail', 'outbox')}"
          + ("; a new password refused before the RSS" if r.get("password_form") else "")
          + (f"; each worker capped at {r['worker_quota_percent']} % of a core"
             if r.get('worker_quota_percent') else ""))
print("| scenario | requests/s | p50 ms | p99 ms | errors | server CPU ms/req | database CPU ms/req |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r.get('scenario', '?')} | {r.get('rps', '?')} "
          f"| {r.get('p50_ms', '?')} | {r.get('p99_ms', '?')} | {r.get('errors', '?')} "
          f"| {r.get('server_cpu_ms', '?')} | {r.get('database_cpu_ms', '?')} |")
PY
exit $status
