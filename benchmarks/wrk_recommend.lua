-- wrk script of benchmarks/serving_latency.py: GET /v1/users/{random known user}/recommendations?k=10
-- with the platform's key, optionally paced, recording each answer's X-Process-Time-Ms (server side).
-- Environment: SHOPREC_WRK_USERS (file, one user id per line), SHOPREC_WRK_KEY, SHOPREC_WRK_OUT (file the
-- per-request server times and statuses are written to), SHOPREC_WRK_SEED, SHOPREC_WRK_DELAY_MS (per
-- connection pause before each request: pacing; 0 = as fast as possible).
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

function init(args)
  users = {}
  for line in io.lines(os.getenv("SHOPREC_WRK_USERS")) do
    if #line > 0 then users[#users + 1] = line end
  end
  key = os.getenv("SHOPREC_WRK_KEY")
  pause = tonumber(os.getenv("SHOPREC_WRK_DELAY_MS") or "0")
  math.randomseed(tonumber(os.getenv("SHOPREC_WRK_SEED") or "0") * 1000 + tid)
  server_ms, statuses = {}, {}
end

function request()
  local user = users[math.random(#users)]
  return wrk.format("GET", "/v1/users/" .. user .. "/recommendations?k=10", { ["X-API-Key"] = key })
end

function delay()
  if pause > 0 then return pause * (0.5 + math.random()) end  -- jitter around the mean pause
  return 0
end

function response(status, headers, body)
  statuses[#statuses + 1] = status
  server_ms[#server_ms + 1] = tonumber(headers["x-process-time-ms"] or headers["X-Process-Time-Ms"] or "-1")
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("SHOPREC_WRK_OUT"), "w")
  for _, thread in ipairs(threads) do
    local ms, st = thread:get("server_ms"), thread:get("statuses")
    for i = 1, #ms do out:write(string.format("%d %.3f\n", st[i], ms[i])) end
  end
  out:write(string.format("# requests %d duration_us %d p50_us %d p99_us %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99)))
  out:close()
end
