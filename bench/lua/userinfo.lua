-- GET /userinfo with a user's bearer token (OIDC Core §5.3).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
require("report")

wrk.method = "GET"
wrk.path = "/userinfo"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_USER_TOKEN")
