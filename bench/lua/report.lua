-- Shared by every scenario: counts non-2xx answers per thread and prints one JSON line
-- (requests/s, p50, p99, errors) at the end; any error makes wrk exit with status 1.
local threads = {}

function setup_report(thread)
  table.insert(threads, thread)
end
setup = setup_report

function init(args)
  non2xx = 0
end

function count_status(status)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function response(status, headers, body)
  count_status(status)
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  for _, thread in ipairs(threads) do
    errors = errors + thread:get("non2xx")
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"scenario": "%s", "requests": %d, "rps": %.1f, "p50_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f, "errors": %d}\n',
    os.getenv("BENCH_SCENARIO") or "?", summary.requests, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, errors))
  if errors > 0 then
    os.exit(1)
  end
end
