-- bench/wrk-hold.lua: the issue's reference load for bench/side-by-side, a wrk script.
--
--   wrk -t2 -c64 -d10s -s bench/wrk-hold.lua http://HOST:PORT -- DEPT_NO
--
-- Every request POSTs a new single-line order of one unit of DEPT_NO's record G00000/W1 to
-- /v1/preallocations: each wrk thread numbers its own orders ("W<thread>-<n>"), so no order is
-- sent twice and none is a replay. Against a server that answers a constant body (the HTTP
-- ceiling), the same requests go out. At the end it prints one line of JSON: the requests
-- answered, the non-2xx answers, the socket errors and the latency percentiles in ms.

local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end

local dept_no = "WRK"
local sent = 0

function init(args)
  if args[1] ~= nil then dept_no = args[1] end
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  sent = sent + 1
  local body = '{"dept_no":"' .. dept_no .. '","order_no":"W' .. thread_no .. '-' .. sent ..
      '","lines":[{"goods_no":"G00000","warehouse_no":"W1","qty":1}]}'
  return wrk.format(nil, "/v1/preallocations", nil, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  local seconds = summary.duration / 1e6
  io.write(string.format(
      '{"requests":%d,"seconds":%.3f,"throughput_rps":%.1f,"non_2xx":%d,' ..
      '"socket_errors":%d,"latency_ms":{"p50":%.3f,"p99":%.3f,"p999":%.3f,"max":%.3f}}\n',
      summary.requests, seconds, summary.requests / seconds, errors.status,
      errors.connect + errors.read + errors.write + errors.timeout,
      latency:percentile(50) / 1000, latency:percentile(99) / 1000,
      latency:percentile(99.9) / 1000, latency.max / 1000))
end
