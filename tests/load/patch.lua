-- make bench, scenario patch: PATCH the quantity of a seeded line
-- (s-0..s-2 of a random cart) to a random 1..9.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")

function request()
	return c.patch_quantity(c.random_user(), "s-" .. math.random(0, c.seed_lines - 1),
				math.random(1, 9))
end
