-- wrk script: the minimal client's GET, straight to dynalite
-- (tools/bench/dynamo_raw.py).  The request the service sends for
-- GET /v1/cart/{user} (adapters/dynamodb/dynamo_repo.c dynamo_load_call):
-- a consistent GetItem of PK "CART#<user>", SK "CART", no projection,
-- ReturnConsumedCapacity TOTAL.  Authorization is well-formed but not
-- signed: dynalite checks its shape, not the signature.
--
-- env: BENCH_TABLE, BENCH_CARTS, BENCH_PREFIX (users <prefix><n>).
-- Each thread walks its own share of the users (n = id, id + threads, ...),
-- the same order as tests/load/service_get.lua.
-- done() prints "status <code> <count>", "found <n>", "missing <n>"
-- (200 without "Item": a user that was not seeded) and "duration_us <us>".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")
local table_name = os.getenv("BENCH_TABLE") or "cart-bench"
local carts = tonumber(os.getenv("BENCH_CARTS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"
found = 0
missing = 0
c.sums = { "found", "missing" }

init = c.walk_init

function request()
	local body = string.format(
		'{"Key":{"PK":{"S":"CART#%s"},"SK":{"S":"CART"}},"ConsistentRead":true,' ..
		'"TableName":"%s","ReturnConsumedCapacity":"TOTAL"}',
		c.next_user(carts, prefix), table_name)
	return wrk.format("POST", "/", c.dynamo_headers("GetItem"), body)
end

function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
	if status == 200 then
		if body:find('"Item":', 1, true) then
			found = found + 1
		else
			missing = missing + 1
		end
	end
end
