#include "lag_history.h"

#include <iterator>

namespace strata::server::http {

LagHistory::LagHistory(Engine& engine, std::chrono::milliseconds interval, size_t samples)
    : engine_(engine), interval_(interval), samples_(samples < 1 ? 1 : samples) {
  SampleAll();
  thread_ = std::thread([this] { Run(); });
}

LagHistory::~LagHistory() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  stop_cv_.SignalAll();
  thread_.join();
}

void LagHistory::Run() {
  auto next = std::chrono::steady_clock::now() + interval_;
  for (;;) {
    {
      MutexLock lock(&mu_);
      while (!stopping_ && std::chrono::steady_clock::now() < next) {
        stop_cv_.WaitUntil(&mu_, next);
      }
      if (stopping_) return;
    }
    SampleAll();
    // Fixed-rate samples; after a stall (a slow Stats) the next one comes one interval
    // later instead of several at once.
    next += interval_;
    auto now = std::chrono::steady_clock::now();
    if (next < now) next = now + interval_;
  }
}

void LagHistory::SampleAll() {
  // Stats reads the engine's progress tables: done without holding mu_, so that Of() is
  // never blocked behind the storage.
  Result<std::vector<ModuleInfo>> modules = engine_.Modules();
  if (!modules.ok()) return;  // the engine is closing or failed; try again next interval
  int64_t unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  std::map<std::string, Sample> taken;
  StatsOptions options;
  options.failures_limit = 0;  // the count of failures is not charted; skip reading them
  for (const ModuleInfo& info : *modules) {
    Result<ModuleStats> stats = engine_.Stats(info.name, options);
    if (!stats.ok()) continue;  // destroyed since Modules(): dropped below
    Sample& sample = taken[info.name];
    sample.unix_ms = unix_ms;
    for (const TopologyPartitionStats& t : stats->topologies) {
      sample.lag_by_topology[t.topology] += t.lag;
    }
  }

  MutexLock lock(&mu_);
  for (auto it = history_.begin(); it != history_.end();) {
    it = taken.count(it->first) ? std::next(it) : history_.erase(it);
  }
  for (auto& [module, sample] : taken) {
    std::deque<Sample>& samples = history_[module];
    samples.push_back(std::move(sample));
    while (samples.size() > samples_) samples.pop_front();
  }
}

Value LagHistory::Of(const std::string& module) const {
  Value::Map topologies;
  {
    MutexLock lock(&mu_);
    auto it = history_.find(module);
    if (it != history_.end()) {
      std::map<std::string, Value::List> series;
      for (const Sample& sample : it->second) {
        for (const auto& [topology, lag] : sample.lag_by_topology) {
          series[topology].push_back(Value::ListOf({sample.unix_ms, lag}));
        }
      }
      for (auto& [topology, points] : series) {
        topologies.emplace_back(Value(topology), Value(std::move(points)));
      }
    }
  }
  return Value::MapOf({{"interval_ms", static_cast<int64_t>(interval_.count())},
                       {"topologies", Value::MapOfSorted(std::move(topologies))}});
}

}  // namespace strata::server::http
