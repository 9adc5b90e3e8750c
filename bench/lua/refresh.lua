-- POST /token grant_type=refresh_token. Refresh tokens rotate on every use, so each thread
-- keeps a queue: a request takes a token, its answer puts the new one back. The tokens come
-- from BENCH_REFRESH_FILE, one per line; thread i takes lines i, i+n, i+2n...
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
require("report")

local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  setup_report(thread)
end

local basic = os.getenv("BENCH_BASIC")
local queue, head, tail = {}, 1, 0

local function push(token)
  tail = tail + 1
  queue[tail] = token
end

local function pop()
  if head > tail then
    return "exhausted"
  end
  local token = queue[head]
  queue[head] = nil
  head = head + 1
  return token
end

function init(args)
  non2xx = 0
  local nthreads = tonumber(os.getenv("BENCH_THREADS"))
  local i = 0
  for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do
    if i % nthreads == id then
      push(line)
    end
    i = i + 1
  end
end

request = function()
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = "Basic " .. basic,
  }, "grant_type=refresh_token&refresh_token=" .. pop())
end

function response(status, headers, body)
  count_status(status)
  local token = body:match('"refresh_token":%s*"([^"]+)"')
  if token then
    push(token)
  end
end
