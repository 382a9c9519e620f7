-- wrk script: the minimal client's add, straight to dynalite
-- (tools/bench/dynamo_raw.py).  One operation is the pair of requests the
-- service sends for POST /v1/cart/{user}/items on a cart that exists
-- (adapters/dynamodb/dynamo_repo.c, dynamo_load_call then save_once with
-- cart_update and outbox_append, the relay off so obPending is "-"):
--   1. GetItem, consistent, of PK "CART#<user>", SK "CART";
--   2. UpdateItem conditional on the version read, SETting the whole cart
--      (version + 1, a new writeId, cartId, createdAt, updatedAt,
--      expiresAt, items with one line's quantity + 1, currency), appending
--      one ItemAdded event to the outbox (bounded at 100) and obPending;
--      the same expression, placeholder names and values as the service.
-- Only the string work is the client's own: the items list is copied from
-- the GetItem answer and one quantity bumped.
--
-- wrk gives no connection identity to the script, so each thread keeps a
-- queue: a GetItem answer (it carries the item, PK included) queues its
-- UpdateItem, which the thread's next request() sends before any new
-- GetItem.  Each thread walks its own share of the users (n = id,
-- id + threads, ...): no two requests race on one cart.
--
-- env: BENCH_TABLE, BENCH_CARTS, BENCH_PREFIX, BENCH_THREADS.
-- done() prints "ops <n>" (UpdateItem 200s), "status <code> <count>" over
-- both requests, "gets <n>", "updates <n>" (sent) and "duration_us <us>".
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")
local table_name = os.getenv("BENCH_TABLE") or "cart-bench"
local carts = tonumber(os.getenv("BENCH_CARTS") or "1000")
local prefix = os.getenv("BENCH_PREFIX") or "bench-"
ops = 0
gets = 0
updates = 0
c.sums = { "ops", "gets", "updates" }

local function hex(len)
	local t = {}
	for i = 1, len do
		t[i] = string.format("%x", math.random(0, 15))
	end
	return table.concat(t)
end

local function uuid()
	return hex(8) .. "-" .. hex(4) .. "-4" .. hex(3) .. "-a" .. hex(3) .. "-" .. hex(12)
end

local queue, head, tail = {}, 1, 0

function init(args)
	c.walk_init()
	math.randomseed(os.time() + id * 7919)
end

local function update_body(it)
	local now = string.format("%d", os.time() * 1000 + math.random(0, 999))
	local v = tonumber(it.version)
	local sku = "sku-" .. (v % 3)
	local qb
	local items = it.items:gsub('("id":{"S":"' .. sku:gsub("%-", "%%-") ..
				    '"},"q":{"N":")(%d+)', function(a, q)
		qb = tonumber(q)
		return a .. (qb + 1)
	end, 1)
	qb = qb or 0
	local event = string.format(
		'{"M":{"id":{"S":"%s"},"ty":{"N":"1"},"at":{"N":"%s"},"v":{"N":"%d"},' ..
		'"c":{"S":"%s"},"i":{"S":"%s"},"qb":{"N":"%d"},"qa":{"N":"%d"},' ..
		'"p":{"N":"199"},"cur":{"S":"EUR"},"n":{"N":"0"},' ..
		'"tr":{"S":"Root=1-%s-%s;Sampled=0"}}}',
		uuid(), now, v + 1, it.cart_id, sku, qb, qb + 1, hex(8), hex(24))
	return string.format(
		'{"Key":{"PK":{"S":"CART#%s"},"SK":{"S":"CART"}},' ..
		'"UpdateExpression":"SET #n0 = :v1, #n2 = :v3, #n4 = :v5, #n6 = :v7, ' ..
		'#n8 = :v9, #n10 = :v11, #n12 = :v13, #n14 = :v15, ' ..
		'#n18 = list_append(if_not_exists(#n18, :v20), :v19), #n22 = :v21",' ..
		'"ConditionExpression":"#n17 = :v16 AND (attribute_not_exists(#n18) ' ..
		'OR size(#n18) <= :v23)",' ..
		'"ExpressionAttributeNames":{"#n0":"version","#n2":"writeId",' ..
		'"#n4":"cartId","#n6":"createdAt","#n8":"updatedAt","#n10":"expiresAt",' ..
		'"#n12":"items","#n14":"currency","#n17":"version","#n18":"outbox",' ..
		'"#n22":"obPending"},' ..
		'"ExpressionAttributeValues":{":v1":{"N":"%d"},":v3":{"S":"%s"},' ..
		'":v5":{"S":"%s"},":v7":{"N":"%s"},":v9":{"N":"%s"},":v11":{"N":"%s"},' ..
		'":v13":%s,":v15":{"S":"EUR"},":v16":{"N":"%d"},":v19":{"L":[%s]},' ..
		'":v20":{"L":[]},":v21":{"S":"-"},":v23":{"N":"99"}},' ..
		'"TableName":"%s","ReturnConsumedCapacity":"TOTAL"}',
		it.user, v + 1, hex(8) .. "-" .. hex(4) .. "-" .. hex(4), it.cart_id,
		it.created, now, it.expires, items, v, event, table_name)
end

function request()
	if head <= tail then
		local it = queue[head]
		queue[head] = nil
		head = head + 1
		updates = updates + 1
		return wrk.format("POST", "/", c.dynamo_headers("UpdateItem"), update_body(it))
	end
	local user = c.next_user(carts, prefix)
	gets = gets + 1
	local body = string.format(
		'{"Key":{"PK":{"S":"CART#%s"},"SK":{"S":"CART"}},"ConsistentRead":true,' ..
		'"TableName":"%s","ReturnConsumedCapacity":"TOTAL"}', user, table_name)
	return wrk.format("POST", "/", c.dynamo_headers("GetItem"), body)
end

function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
	if status ~= 200 then
		return
	end
	if not body:find('"Item":', 1, true) then
		ops = ops + 1          -- an UpdateItem's answer (every cart is seeded)
		return
	end
	local it = {
		user = body:match('"PK":{"S":"CART#([^"]+)"}'),
		version = body:match('"version":{"N":"(%d+)"}'),
		cart_id = body:match('"cartId":{"S":"([^"]+)"}'),
		created = body:match('"createdAt":{"N":"(%d+)"}'),
		expires = body:match('"expiresAt":{"N":"(%d+)"}'),
		items = body:match('"items":(%b{})'),
	}
	if it.user and it.version and it.cart_id and it.created and it.expires and it.items then
		tail = tail + 1
		queue[tail] = it
	else
		counts[0] = (counts[0] or 0) + 1   -- an item the client cannot read
	end
end
