// The lag history behind GET /rest/MODULE/lag (docs/http.md): every topology's lag, summed
// over partitions, sampled at a fixed interval and kept for a bounded time, so that the web
// console can chart it without polling stats itself.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "strata/engine.h"
#include "strata/thread_annotations.h"
#include "strata/value.h"

namespace strata::server::http {

// Samples every module's topology lag (Engine::Stats, summed over partitions per topology)
// every `interval` on its own thread and keeps the last `samples` samples per module.
//
// The first sample is taken by the constructor, on the calling thread, so a chart has a
// point at once. A module's history starts at the first sample that sees it and is dropped
// at the first sample that no longer does (destroyed); a module that failed to load has no
// topologies. The engine must outlive this object. Of() may be called from any thread.
class LagHistory {
 public:
  explicit LagHistory(Engine& engine, std::chrono::milliseconds interval = std::chrono::seconds(5),
                      size_t samples = 120);
  // Stops and joins the sampling thread promptly: it does not wait out an interval (a
  // sample in progress finishes first).
  ~LagHistory();
  LagHistory(const LagHistory&) = delete;
  LagHistory& operator=(const LagHistory&) = delete;

  // {"interval_ms": N, "topologies": {"name": [[unix_ms, lag], ...]}}, oldest sample first,
  // as a map with string keys (print it with ToJson). A topology is listed from the first
  // sample that saw it; a module with no samples yet (or unknown) gives empty topologies.
  Value Of(const std::string& module) const;

 private:
  struct Sample {
    int64_t unix_ms = 0;
    std::map<std::string, int64_t> lag_by_topology;
  };

  // Takes one sample of every module and appends it to the histories.
  void SampleAll();
  void Run();

  Engine& engine_;
  const std::chrono::milliseconds interval_;
  const size_t samples_;

  mutable Mutex mu_;
  CondVar stop_cv_;
  bool stopping_ GUARDED_BY(mu_) = false;
  std::map<std::string, std::deque<Sample>> history_ GUARDED_BY(mu_);
  std::thread thread_;  // started last, joined by the destructor
};

}  // namespace strata::server::http
