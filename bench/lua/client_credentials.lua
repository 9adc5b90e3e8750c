-- POST /token grant_type=client_credentials with HTTP Basic client authentication.
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
require("report")

wrk.method = "POST"
wrk.path = "/token"
wrk.body = "grant_type=client_credentials&scope=api"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_BASIC")
