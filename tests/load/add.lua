-- make bench, scenario add: POST an item to a random cart, SKU one of 10
-- (a-0..a-9), quantity 1.  Bounds: a cart holds at most 3 + 10 lines
-- (MAX_CART_LINES 100); a line grows by 1 per add, and each run starts on
-- a freshly seeded process, so a line reaches 999 (MAX_ITEM_QUANTITY)
-- only after ~100,000,000 adds per run (10,000 carts x 10 SKUs x 999):
-- a 60 s run would need 1.6 M adds/s.  No 4xx.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")

function request()
	local k = math.random(0, 9)
	return c.post_item(c.random_user(), "a-" .. k, 1, "Added item " .. k)
end
