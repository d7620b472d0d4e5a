// The ticker (docs/runtime.md, "Tick depots"): one engine thread that appends to each tick
// depot (ModuleBuilder::TickDepot) of the running modules, on partition 0, every interval,
// the wall-clock time in ms since the epoch, strictly increasing. Steps never read a clock:
// they see time in tick records, so replays and recomputes see the same times.
//
// At most one tick of a depot is pending (a due time passes while the previous tick is not
// appended yet: a backlog of ticks says nothing the next one does not). After a restart the
// first tick is due at max(now, last tick + interval); ticks missed while the engine was
// down, or while a module was destroyed, updated or failed, are not made up.
//
// Threading: Run on its own thread; Stop from the engine's Close.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "strata/thread_annotations.h"

namespace strata {
class Depot;
}  // namespace strata

namespace strata::runtime {

class EngineImpl;

class Ticker {
 public:
  explicit Ticker(EngineImpl& engine) : engine_(engine) {}
  ~Ticker() { Stop(); }
  void Start();
  void Stop() EXCLUDES(mu_);

 private:
  struct Due {
    int64_t next_ms = 0;           // when the next tick is due
    int64_t last = 0;              // the last tick appended (or found in the depot)
    int64_t posted_end = -1;       // the depot's end offset when the last tick was posted
    const Depot* depot = nullptr;  // the depot object it was for (compared, never used)
  };
  void Run() EXCLUDES(mu_);
  void TickOnce(int64_t now_ms);

  EngineImpl& engine_;
  Mutex mu_;
  CondVar cv_;
  bool stop_ GUARDED_BY(mu_) = false;
  std::thread thread_;
  std::map<std::pair<std::string, std::string>, Due> due_;  // by (module, depot); Run only
};

}  // namespace strata::runtime
