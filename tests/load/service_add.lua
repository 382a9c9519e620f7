-- wrk script: POST /v1/cart/{user}/items on the service, the same users in
-- the same order as tests/load/dynamo_raw_add.lua (tools/bench/dynamo_raw.py):
-- each visit merges quantity 1 into one of the cart's three seeded lines
-- (sku-0..2), as the raw client's UpdateItem does.
-- env: BENCH_CARTS, BENCH_PREFIX, BENCH_THREADS.
-- done() prints "status <code> <count>" and "duration_us <us>".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")
local carts = tonumber(os.getenv("BENCH_CARTS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"

init = c.walk_init

function request()
	local user, n = c.next_user(carts, prefix)
	local body = string.format(
		'{"itemId":"sku-%d","quantity":1,"unitPrice":{"amount":199,"currency":"EUR"}}',
		math.floor(n / carts) % 3)
	return wrk.format("POST", "/v1/cart/" .. user .. "/items",
			  { ["Content-Type"] = "application/json" }, body)
end
