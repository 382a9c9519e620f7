-- Seeds BENCH_CARTS carts u-0 .. u-(N-1) with 3 lines each (s-0..s-2,
-- quantity 2, 19.99 EUR: the shape tools/bench/ceiling.c answers with).
-- Thread t of T walks users [t*N/T, (t+1)*N/T); once each of its adds is
-- answered it prints "seeded <t>" (flushed) and stops itself
-- (wrk.thread:stop()); meanwhile the connections with nothing left to add
-- ask GET /health, whose 200 is not counted (a new line is 201).  wrk
-- 4.1's main thread still sleeps the whole -d, so run with a generous -d
-- (the bound) and send wrk SIGINT after T "seeded" lines: it then joins
-- the threads and prints the summary and done()'s status lines.
-- tools/bench/scenarios.py does that, checks the status lines (N * 3
-- times 201) and GETs carts to see 3 lines.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local c = require("common")

local lo, total, n, answered

function init(args)
	lo = math.floor(id * c.carts / c.threads)
	local hi = math.floor((id + 1) * c.carts / c.threads)
	total = (hi - lo) * c.seed_lines
	n, answered = 0, 0
end

function request()
	if c.first_call() then
		return c.health()
	end
	if n >= total then
		return c.health()
	end
	local i = n
	n = n + 1
	local line = i % c.seed_lines
	return c.post_item(c.user(lo + math.floor(i / c.seed_lines)), "s-" .. line, 2,
			   "Bench item " .. line)
end

function response(status, headers, body)
	counts[status] = (counts[status] or 0) + 1
	if status ~= 200 then
		answered = answered + 1
		if answered == total then
			io.write(string.format("seeded %d\n", id))
			io.stdout:flush()
			wrk.thread:stop()
		end
	end
end
