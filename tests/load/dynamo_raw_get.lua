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
local table_name = os.getenv("BENCH_TABLE") or "cart-bench"
local carts = tonumber(os.getenv("BENCH_CARTS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"
local threads = {}
counts = {}
found = 0
missing = 0

function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

local function auth_headers(target)
	local date = os.date("!%Y%m%dT%H%M%SZ")
	return {
		["Content-Type"] = "application/x-amz-json-1.0",
		["X-Amz-Target"] = "DynamoDB_20120810." .. target,
		["X-Amz-Date"] = date,
		["Authorization"] = "AWS4-HMAC-SHA256 Credential=AKIDCARTTEST/" ..
			date:sub(1, 8) .. "/us-east-1/dynamodb/aws4_request, " ..
			"SignedHeaders=content-type;host;x-amz-date;x-amz-target, " ..
			"Signature=0000000000000000000000000000000000000000000000000000000000000000",
	}
end

local n, step
function init(args)
	n = id
	step = tonumber(os.getenv("BENCH_THREADS") or "2")
end

function request()
	local user = prefix .. (n % carts)
	n = n + step
	local body = string.format(
		'{"Key":{"PK":{"S":"CART#%s"},"SK":{"S":"CART"}},"ConsistentRead":true,' ..
		'"TableName":"%s","ReturnConsumedCapacity":"TOTAL"}', user, table_name)
	return wrk.format("POST", "/", auth_headers("GetItem"), body)
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

function done(summary, latency, requests)
	local total, f, m = {}, 0, 0
	for _, t in ipairs(threads) do
		for k, v in pairs(t:get("counts")) do
			total[k] = (total[k] or 0) + v
		end
		f = f + t:get("found")
		m = m + t:get("missing")
	end
	for k, v in pairs(total) do
		io.write(string.format("status %d %d\n", k, v))
	end
	io.write(string.format("found %d\nmissing %d\nduration_us %d\n", f, m,
			       summary.duration))
end
