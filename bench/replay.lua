-- wrk script: replays a file of prepared requests, one line each:
--   METHOD <tab> PATH <tab> BEARER-TOKEN [<tab> JSON-BODY [<tab> IDEMPOTENCY-KEY]]
-- Thread n of N takes lines n, n+N, n+2N ... and cycles through them (with --once, a
-- request past the end is a GET of /__exhausted__, counted apart, so a booking is
-- never repeated). done() prints one JSON line: counts, latency percentiles (us),
-- errors and the status codes seen.
--   wrk -t1 -c32 -d10s -s replay.lua http://gateway -- requests.tsv 1 [--once]

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   table.insert(threads, thread)
end

function init(args)
   local file = args[1]
   local nthreads = tonumber(args[2])
   once = args[3] == "--once"
   reqs = {}
   local n, i = 0, 0
   for line in io.lines(file) do
      if i % nthreads == id - 1 then
         local method, path, token, body, key = line:match("^([^\t]+)\t([^\t]+)\t([^\t]*)\t?([^\t]*)\t?(.*)$")
         local headers = { ["Authorization"] = "Bearer " .. token }
         if key ~= "" then
            headers["Idempotency-Key"] = key
         end
         if body == "" then
            body = nil
         else
            headers["Content-Type"] = "application/json"
         end
         n = n + 1
         reqs[n] = wrk.format(method, path, headers, body)
      end
      i = i + 1
   end
   count = n
   idx = 0
   statuses = {}
   exhausted = 0
   exhausted_req = wrk.format("GET", "/__exhausted__")
end

function request()
   idx = idx + 1
   if idx > count then
      if once then
         exhausted = exhausted + 1
         return exhausted_req
      end
      idx = 1
   end
   return reqs[idx]
end

function response(status, headers, body)
   local key = tostring(status)
   statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
   local seen, out_of_lines = {}, 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         seen[status] = (seen[status] or 0) + n
      end
      out_of_lines = out_of_lines + thread:get("exhausted")
   end
   local parts = {}
   for status, n in pairs(seen) do
      table.insert(parts, string.format('"%s": %d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      '@@RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "connect": %d, "read": %d, "write": %d, "timeout": %d, "status_errors": %d, ' ..
      '"exhausted": %d, "statuses": {%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, e.status,
      out_of_lines, table.concat(parts, ", ")))
end
