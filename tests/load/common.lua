-- Shared by the wrk scripts of tests/load (loaded with require("common")
-- after each script puts its own directory on package.path).
--
-- Environment (set by tools/bench/scenarios.py):
--   BENCH_CARTS        users u-0 .. u-(N-1) seeded with 3 lines (10000)
--   BENCH_CONNECTIONS  wrk -c (64)      BENCH_THREADS  wrk -t (2)
--   BENCH_TOKENS_FILE  bearer tokens for /v1 requests (auth on), one per
--                      line: line i is user u-i's own token, or a single
--                      line (one admin token) sent for every user
--
--   BENCH_PER_SECOND   "1": also count responses per second of the clock
--                      (the soak's slices of one continuous run)
--
-- Every script counts statuses per thread; done() prints one line
-- "status <code> <count>" per status, summed over the threads, then the
-- script's own counters (M.sums), with BENCH_PER_SECOND one line
-- "second <unix time> <responses>" per second, and "duration_us <us>".
local M = {}

M.carts = tonumber(os.getenv("BENCH_CARTS") or "10000")
M.connections = tonumber(os.getenv("BENCH_CONNECTIONS") or "64")
M.threads = tonumber(os.getenv("BENCH_THREADS") or "2")
M.get_headers = {}
M.json_headers = { ["Content-Type"] = "application/json" }

-- "Bearer <token>" per user name, or one for every user (bearer_all).
local bearer, bearer_all = nil, nil
local tokens_file = os.getenv("BENCH_TOKENS_FILE")
if tokens_file and tokens_file ~= "" then
	local list = {}
	for line in io.lines(tokens_file) do
		if line ~= "" then
			list[#list + 1] = "Bearer " .. line
		end
	end
	if #list == 1 then
		bearer_all = list[1]
	elseif #list >= M.carts then
		bearer = {}
		for i = 1, #list do
			bearer["u-" .. (i - 1)] = list[i]
		end
	else
		error(string.format("%s: %d tokens for %d users", tokens_file, #list, M.carts))
	end
end

-- headers with user's Authorization (nothing when auth is off).
function M.authorize(headers, user)
	if bearer then
		headers["Authorization"] = bearer[user]
	elseif bearer_all then
		headers["Authorization"] = bearer_all
	end
	return headers
end

-- The 3 lines every seeded cart holds (tests/load/seed.lua).
M.seed_lines = 3

function M.user(i)
	return "u-" .. i
end

function M.random_user()
	return M.user(math.random(0, M.carts - 1))
end

function M.get_cart(user)
	return wrk.format("GET", "/v1/cart/" .. user, M.authorize(M.get_headers, user))
end

function M.post_item(user, sku, quantity, name)
	local body = string.format(
		'{"itemId":"%s","quantity":%d,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"%s"}',
		sku, quantity, name)
	return wrk.format("POST", "/v1/cart/" .. user .. "/items",
			  M.authorize(M.json_headers, user), body)
end

function M.patch_quantity(user, sku, quantity)
	return wrk.format("PATCH", "/v1/cart/" .. user .. "/items/" .. sku,
			  M.authorize(M.json_headers, user),
			  string.format('{"quantity":%d}', quantity))
end

function M.delete_item(user, sku)
	return wrk.format("DELETE", "/v1/cart/" .. user .. "/items/" .. sku,
			  M.authorize(M.get_headers, user))
end

-- wrk 4.1 calls request() once in thread 0's state before the thread runs
-- (script_verify_request in main) and throws the answer away.  A script
-- whose requests are a sequence (seed, add_delete) must not lose an
-- element there: its request() starts with
--     if c.first_call() then return c.health() end
-- which skips the first call of every thread (thread 0: the verify call;
-- the others, or a wrk without that call: one GET /health on the wire).
local called = false
function M.first_call()
	if called then
		return false
	end
	called = true
	return true
end

function M.health()
	return wrk.format("GET", "/health", {})
end

-- wrk's phases: setup and done run in one Lua state, each thread in its own.
local all = {}
counts = {}
per_second = {}
local count_seconds = os.getenv("BENCH_PER_SECOND") == "1"

function setup(thread)
	thread:set("id", #all)
	table.insert(all, thread)
end

function init(args)
	math.randomseed(os.time() + 7919 * (id + 1))
end

function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
	if count_seconds then
		local now = os.time()
		per_second[now] = (per_second[now] or 0) + 1
	end
end

-- Per-thread numbers done() sums besides the status counts: a script
-- lists the names of its own global counters here (M.sums = { "found" }).
M.sums = {}

function done(summary, latency, requests)
	local total, extra = {}, {}
	for _, t in ipairs(all) do
		for k, v in pairs(t:get("counts")) do
			total[k] = (total[k] or 0) + v
		end
		for _, name in ipairs(M.sums) do
			extra[name] = (extra[name] or 0) + t:get(name)
		end
	end
	for k, v in pairs(total) do
		io.write(string.format("status %d %d\n", k, v))
	end
	for _, name in ipairs(M.sums) do
		io.write(string.format("%s %d\n", name, extra[name] or 0))
	end
	if count_seconds then
		local seconds = {}
		for _, t in ipairs(all) do
			for s, n in pairs(t:get("per_second")) do
				seconds[s] = (seconds[s] or 0) + n
			end
		end
		for s, n in pairs(seconds) do
			io.write(string.format("second %d %d\n", s, n))
		end
	end
	io.write(string.format("duration_us %d\n", summary.duration))
end

-- DynamoDB JSON-protocol headers for target ("GetItem"...), with a
-- well-formed Authorization that is not signed: dynalite checks the shape
-- only (tools/bench/dynamo_raw.py talks to it directly).
function M.dynamo_headers(target)
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

-- The dynamo_raw scripts and their service twins: thread id walks users
-- id, id + threads, ... of <BENCH_PREFIX><n>, the same order on both sides.
function M.walk_init()
	M.n = id
	M.step = tonumber(os.getenv("BENCH_THREADS") or "2")
end

function M.next_user(carts, prefix)
	local n = M.n
	M.n = M.n + M.step
	return prefix .. (n % carts), n
end

return M
