-- wrk: REST load on the wordcount module, key "w<k>" with k uniform in 1..KEYSPACE.
-- WORKLOAD=select: point selects of $$word_counts (the binary protocol's W2);
-- WORKLOAD=append: one-word sentences appended to *sentences, ack processed (W1, batch 1).
-- Prints one RESULT line (bench/http.sh reads it); errors include answers that are not
-- what the workload expects.
local keyspace = tonumber(os.getenv("KEYSPACE") or "100000")
local workload = os.getenv("WORKLOAD") or "select"
local headers = { ["Content-Type"] = "application/json" }

local threads = {}
function setup(thread)
  thread:set("id", math.random(1, 1000000))
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() + id)
  bad = 0
end

local path, body_format, expected
if workload == "append" then
  path = "/rest/wordcount/depot/*sentences/append"
  body_format = '{"data":"w%d","ack":"processed"}'
  expected = '^{"ack_returns":'
else
  path = "/rest/wordcount/pstate/word_counts/selectOne"
  body_format = '{"path":[["key","w%d"]]}'
  expected = '^{"value":[1-9]'  -- a loaded word reads a count >= 1
end

function request()
  return wrk.format("POST", path, headers, string.format(body_format, math.random(1, keyspace)))
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, expected) then bad = bad + 1 end
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
                 summary.errors.write + summary.errors.timeout
  for _, thread in ipairs(threads) do errors = errors + thread:get("bad") end
  io.write(string.format("RESULT units_per_s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors))
end
