-- wrk: REST appends of one-word sentences "w<k>" to wordcount's *sentences, k uniform in
-- 1..KEYSPACE, ack processed (the binary protocol's W1 with batch 1). Prints one RESULT line.
local keyspace = tonumber(os.getenv("KEYSPACE") or "100000")
local headers = { ["Content-Type"] = "application/json" }

function setup(thread)
  thread:set("id", math.random(1, 1000000))
end

function init(args)
  math.randomseed(os.time() + id)
end

function request()
  local body = '{"data":"w' .. math.random(1, keyspace) .. '","ack":"processed"}'
  return wrk.format("POST", "/rest/wordcount/depot/*sentences/append", headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read +
                 summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT units_per_s=%.0f p50_ms=%.3f p99_ms=%.3f errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, errors))
end
