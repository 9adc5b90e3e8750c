-- POST /introspect of one active access token (RFC 7662), Basic client authentication.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
require("report")

wrk.method = "POST"
wrk.path = "/introspect"
wrk.body = "token=" .. os.getenv("BENCH_ACCESS_TOKEN") .. "&token_type_hint=access_token"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")

function response(status, headers, body)
  count_status(status)
  if status == 200 and not body:find('"active":%s*true') then
    non2xx = non2xx + 1 -- an inactive answer is a failed run too
  end
end
