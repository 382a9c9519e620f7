-- wrk script: POST /v1/cart/{user}/items on the service, the same users in
-- the same order as tests/load/dynamo_raw_add.lua (tools/bench/dynamo_raw.py):
-- each visit merges quantity 1 into one of the cart's three seeded lines
-- (sku-0..2), as the raw client's UpdateItem does.
-- env: BENCH_CARTS, BENCH_PREFIX, BENCH_THREADS.
-- done() prints "status <code> <count>" and "duration_us <us>".
local carts = tonumber(os.getenv("BENCH_CARTS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"
local threads = {}
counts = {}

function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

local n, step
function init(args)
	n = id
	step = tonumber(os.getenv("BENCH_THREADS") or "2")
end

function request()
	local path = "/v1/cart/" .. prefix .. (n % carts) .. "/items"
	local sku = math.floor(n / carts) % 3
	n = n + step
	local body = string.format(
		'{"itemId":"sku-%d","quantity":1,"unitPrice":{"amount":199,"currency":"EUR"}}', sku)
	return wrk.format("POST", path, { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
	local total = {}
	for _, t in ipairs(threads) do
		for k, v in pairs(t:get("counts")) do
			total[k] = (total[k] or 0) + v
		end
	end
	for k, v in pairs(total) do
		io.write(string.format("status %d %d\n", k, v))
	end
	io.write(string.format("duration_us %d\n", summary.duration))
end
