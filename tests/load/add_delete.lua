-- make bench, scenario add_delete: POST a unique item, later DELETE it.
-- Thread t's item k is x-<t>-<k>, in cart u-((t * 7919 + k) mod carts),
-- so its add and its delete go to the same cart and a cart holds only a
-- few of them at once.  Requests alternate: add, delete, add, delete...
--
-- A delete goes out only after its add was answered.  Counting is not
-- enough: "a thread with C connections has at most C requests
-- outstanding, so the add 4*C requests back has completed" is false (one
-- connection's add can wait in the server while the other connections
-- run hundreds of requests: it gave a few 404s per run here).  So each
-- add carries X-Request-Id: a.<t>.<k>, which the service (and the
-- ceiling) echo; response() queues k once that answer is a 2xx, and a
-- delete turn takes the oldest queued item, or adds again when none is
-- queued yet.  Any 404 shows in the status lines.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")

local next_k = 0                  -- the next item to add
local added, head, tail = {}, 1, 0   -- FIFO of items whose add was answered
local turn = 0

local function cart_of(k)
	return c.user((id * 7919 + k) % c.carts)
end

function request()
	turn = turn + 1
	if turn % 2 == 0 and head <= tail then
		local k = added[head]
		added[head] = nil
		head = head + 1
		return c.delete_item(cart_of(k), string.format("x-%d-%d", id, k))
	end
	local k = next_k
	next_k = next_k + 1
	local body = string.format(
		'{"itemId":"x-%d-%d","quantity":1,"unitPrice":{"amount":1999,"currency":"EUR"},"name":"Unique item"}',
		id, k)
	local user = cart_of(k)
	c.json_headers["X-Request-Id"] = string.format("a.%d.%d", id, k)
	local req = wrk.format("POST", "/v1/cart/" .. user .. "/items",
			       c.authorize(c.json_headers, user), body)
	c.json_headers["X-Request-Id"] = nil
	return req
end

function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
	if status >= 200 and status < 300 then
		local rid = headers["X-Request-Id"]
		local k = rid and rid:match("^a%.%d+%.(%d+)$")
		if k then
			tail = tail + 1
			added[tail] = tonumber(k)
		end
	end
end
