// The load engine of strata-bench: C connections (one strata::Client each).
// Closed loop (the default): each connection keeps `pipeline` requests in flight; when a
// response arrives its latency is recorded and the connection's next request is sent from
// the driver's callback. Open loop (`rate` > 0): one scheduler thread sends request i at
// start + i / rate over connection i mod C, whatever is in flight, and a request's latency
// runs from its scheduled send time (so a server that falls behind shows its queueing in
// the percentiles instead of slowing the sender: no coordinated omission). A phase runs
// for warmup + duration (only requests sent after the warmup and answered before the
// end are measured), or until a count of measured operations, or until the workload's
// generator runs dry (load phases).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "histogram.h"
#include "strata/client.h"

namespace strata::bench {

// One request of a workload. `units` is what throughput counts (records appended, reads,
// posts, transfers); `extra_units` a second figure (timeline deliveries in W3).
// `latency_class` chooses the histogram (0, or 1 for a workload's second class such as
// celebrity posts).
struct Op {
  protocol::RequestBody body;
  int64_t units = 1;
  int64_t extra_units = 0;
  int latency_class = 0;
  int64_t tag = 0;  // the workload's own bookkeeping (e.g. an index into its request table)
};

// What a workload provides. Both functions are called concurrently from several threads
// (the caller's and the driver's I/O threads); `rng` belongs to the calling connection.
struct OpSource {
  // The next request, or nullopt when there is nothing more to send.
  std::function<std::optional<Op>(std::mt19937_64& rng)> next;
  // Checks a response; returns "" when it is a success, else what was wrong.
  std::function<std::string(const Op& op, const Client::Body& body)> check;
};

struct PhaseOptions {
  std::chrono::duration<double> warmup{0};
  std::chrono::duration<double> duration{0};  // 0: no time limit
  int64_t count = 0;  // measured units (records, reads, posts, transfers); 0: no limit
  int pipeline = 1;   // closed loop only
  // Requests per second over all connections; 0: closed loop. In open loop a request is
  // measured when it was scheduled inside the measured interval, whenever it is answered
  // (the phase waits for every answer).
  double rate = 0;
  bool progress = false;  // a line per second on stderr
  std::string label;
};

struct PhaseResult {
  double seconds = 0;  // the measured interval
  int64_t ops = 0;     // measured, successful
  int64_t units = 0;
  int64_t extra_units = 0;
  int64_t errors = 0;  // measured or not
  std::string first_error;
  Histogram latency[2];  // nanoseconds, per latency class
  Histogram AllLatencies() const;
};

// Runs one phase over `clients` (not owned; all must stay alive during the call). Blocks
// until every request sent has been answered.
PhaseResult RunPhase(const std::vector<Client*>& clients, const OpSource& source,
                     const PhaseOptions& options, uint64_t seed);

}  // namespace strata::bench
