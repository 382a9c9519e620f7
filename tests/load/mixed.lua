-- make bench, scenario mixed (and the soak): 70 % GET of a random cart,
-- 20 % add of one of 10 SKUs m-0..m-9 (quantity 1: a cart holds at most
-- 3 + 10 lines, and a line gains ~1 per 10 adds to its cart, far from
-- MAX_ITEM_QUANTITY 999 in two 60 s runs at any plausible rate), 10 %
-- PATCH of a seeded line s-0..s-2 to a quantity 1..9.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")

function request()
	local r = math.random(100)
	local user = c.random_user()
	if r <= 70 then
		return c.get_cart(user)
	elseif r <= 90 then
		local k = math.random(0, 9)
		return c.post_item(user, "m-" .. k, 1, "Mixed item " .. k)
	end
	return c.patch_quantity(user, "s-" .. math.random(0, c.seed_lines - 1), math.random(1, 9))
end
