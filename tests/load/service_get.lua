-- wrk script: GET /v1/cart/{user} on the service, the same users in the
-- same order as tests/load/dynamo_raw_get.lua (tools/bench/dynamo_raw.py).
-- env: BENCH_CARTS, BENCH_PREFIX, BENCH_THREADS.
-- done() prints "status <code> <count>" and "duration_us <us>".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")
local carts = tonumber(os.getenv("BENCH_CARTS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"

init = c.walk_init

function request()
	return wrk.format("GET", "/v1/cart/" .. c.next_user(carts, prefix))
end
