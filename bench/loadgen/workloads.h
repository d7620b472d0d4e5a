// The workloads W1–W5 of docs/performance.md against the example modules (examples/README.md).
// A Workload prepares its data (load phases, not measured), supplies the requests of the
// measured phase, and verifies the server's state afterwards.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner.h"
#include "strata/client.h"
#include "strata/status.h"

namespace strata::bench {

struct WorkloadConfig {
  std::string name;           // "W1".."W4", "W5-top", "W5-total", "W5-timeline"
  int64_t keyspace = 100000;  // W1/W2 words, W4 accounts
  int batch = 1;              // records per append request (W1, W3, W4)
  protocol::AckLevel ack = protocol::AckLevel::kProcessed;
  int users = 10000;          // W3
  double avg_followers = 50;  // W3
  // The module W1 appends to: a build of wordcount (bench/cluster-bench.py loads several).
  std::string w1_module = "wordcount";
};

class Workload {
 public:
  virtual ~Workload() = default;
  // One line saying what the requests are.
  virtual std::string Description() const = 0;
  virtual std::string UnitName() const = 0;  // what throughput counts: "records", "reads"...
  virtual std::string ExtraUnitName() const { return ""; }  // a second rate ("deliveries")
  // A name for latency class 1 ("" when the workload has one class only).
  virtual std::string SecondLatencyClass() const { return ""; }
  // Loads what the measured phase needs; writes progress to stderr.
  virtual Status Prepare(const std::vector<Client*>& clients) = 0;
  // The requests of the measured phase. Valid while the Workload lives.
  virtual const OpSource& Source() const = 0;
  // Checks the server's state after the measured phase; adds its figures to `check`.
  // A failed check returns an error saying what differs.
  virtual Status Verify(const std::vector<Client*>& clients, nlohmann::json* check) = 0;
};

// kInvalidArgument for an unknown name or a configuration the workload cannot run.
Result<std::unique_ptr<Workload>> MakeWorkload(const WorkloadConfig& config);

// W3's follower counts: user r (1-based, r = 1..users) has
// min(users - 1, max(1, floor(c / r^0.9))) followers, with c chosen so that the mean is
// avg_followers — a power law with a few accounts holding thousands of followers. Its
// followers are users ((r - 1 + j) mod users) + 1 for j = 1..count. bench/peers builds the
// same graph for PostgreSQL from the counts `strata-bench --print-graph` prints.
std::vector<int64_t> FollowerCounts(int users, double avg_followers, double* c_out = nullptr);

}  // namespace strata::bench
