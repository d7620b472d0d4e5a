// The counters behind Engine::Metrics that only the engine can count: records and bytes
// appended per depot, step durations per topology (docs/metrics.md). They are kept by
// name, so a module's next version (an update, a recompute's swap, a rescale) and a
// rebuild's shadow count into the same ones; Destroy forgets the module's.
//
// Threading: MetricsRegistry is thread-safe; the counters are atomics that any thread
// adds to without a lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "strata/histogram.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

struct DepotCounters {
  std::atomic<int64_t> appends{0};
  std::atomic<int64_t> append_bytes{0};
};

struct TopologyCounters {
  DurationHistogram steps;
};

class MetricsRegistry {
 public:
  // The counters of depot (topology) `name` of `module`, created at zero the first time.
  std::shared_ptr<DepotCounters> Depot(const std::string& module, const std::string& name)
      EXCLUDES(mu_);
  std::shared_ptr<TopologyCounters> Topology(const std::string& module, const std::string& name)
      EXCLUDES(mu_);
  // Drops the module's counters (runtimes still holding them keep them alive); the next
  // deploy of the name counts from zero.
  void Forget(const std::string& module) EXCLUDES(mu_);

 private:
  using Key = std::pair<std::string, std::string>;  // (module, name)
  Mutex mu_;
  std::map<Key, std::shared_ptr<DepotCounters>> depots_ GUARDED_BY(mu_);
  std::map<Key, std::shared_ptr<TopologyCounters>> topologies_ GUARDED_BY(mu_);
};

}  // namespace strata::runtime
