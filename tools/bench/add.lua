-- wrk script: POST /v1/cart/bench-<n>/items over BENCH_CARTS carts (default
-- 1000), 10 SKUs per cart so no line nears MAX_ITEM_QUANTITY.  Counts
-- statuses per thread; done() prints "status <code> <count>" lines.
local carts = tonumber(os.getenv("BENCH_CARTS") or "1000")
local threads = {}
local n = 0
counts = {}

function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

function init(args)
	n = id * 7919
end

function request()
	n = n + 1
	local cart = n % carts
	local sku = math.floor(n / carts) % 10
	local body = string.format(
		'{"itemId":"sku-%d","quantity":1,"unitPrice":{"amount":199,"currency":"EUR"}}', sku)
	return wrk.format("POST", string.format("/v1/cart/bench-%d/items", cart),
			  { ["Content-Type"] = "application/json" }, body)
end

function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
	local total = {}
	for _, t in ipairs(threads) do
		local c = t:get("counts")
		for k, v in pairs(c) do
			total[k] = (total[k] or 0) + v
		end
	end
	for k, v in pairs(total) do
		io.write(string.format("status %d %d\n", k, v))
	end
end
