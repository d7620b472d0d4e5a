-- wrk: REST point selects of wordcount's $$word_counts, key "w<k>" with k uniform in
-- 1..KEYSPACE (the binary protocol's W2). Prints one RESULT line (bench/http.sh reads it).
local keyspace = tonumber(os.getenv("KEYSPACE") or "100000")
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  thread:set("id", math.random(1, 1000000))
end

function init(args)
  math.randomseed(os.time() + id)
end

function request()
  local body = '{"path":[["key","w' .. math.random(1, keyspace) .. '"]]}'
  return wrk.format("POST", "/rest/wordcount/pstate/word_counts/selectOne", headers, body)
end

-- A loaded word must read a count >= 1: anything else counts as an error.
local bad = 0
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '^{"value":[1-9]') then bad = bad + 1 end
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
                 summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT units_per_s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors))
end
