-- make bench, scenario get: GET /v1/cart/u-<random of BENCH_CARTS>.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")

function request()
	return c.get_cart(c.random_user())
end
