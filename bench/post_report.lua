-- wrk script: POST a bug report with a unique id per request, count statuses, print JSON.
local threads = {}
local counter = 0
local thread_id = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  created, replayed, other, errors_seen = 0, 0, 0, 0
  thread_id = tid
end

local body_template = [[{"id":"bench-%s-%d-%d","title":"Editor crashes when saving a large file","description":"Saving a 2 GB file makes the editor crash with a segmentation fault. It started after upgrading to 2.3.1.","reporter":"bench@example.com","steps_to_reproduce":["Open a 2 GB file","Press Ctrl+S"],"expected_behavior":"The file is saved","actual_behavior":"Segmentation fault (core dumped)","environment":{"os":"Ubuntu 24.04","version":"2.3.1"}}]]
local run_id = os.getenv("BENCH_RUN_ID") or tostring(os.time())

function request()
  counter = counter + 1
  local body = string.format(body_template, run_id, thread_id, counter)
  return wrk.format("POST", "/api/v1/bug-reports", {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  if status == 201 then created = created + 1
  elseif status == 200 then replayed = replayed + 1
  else other = other + 1 end
end

function done(summary, latency, requests)
  local c, r, o = 0, 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created"); r = r + t:get("replayed"); o = o + t:get("other")
  end
  local p = {}
  for _, q in ipairs({50, 75, 90, 95, 99, 99.9}) do
    table.insert(p, string.format('"p%s": %.3f', tostring(q):gsub("%.", "_"), latency:percentile(q) / 1000))
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_s": %.3f, "rps": %.1f, "created": %d, "replayed": %d, "other_status": %d, "socket_errors": %d, "latency_ms": {%s, "mean": %.3f, "max": %.3f}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    c, r, o, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(p, ", "), latency.mean / 1000, latency.max / 1000))
end
