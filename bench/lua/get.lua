-- GET a public document: BENCH_PATH (discovery or JWKS).
package.path = os.getenv("BENCH_LUA") .. "/?.lua;" .. package.path
require("report")

local path = os.getenv("BENCH_PATH")

request = function()
  return wrk.format("GET", path)
end
