// The oracle of the microbatch examples: every PState of a module equals its recomputation
// by Engine::Recompute, exactly. A microbatch's results may depend on where its batches
// begin and end (a transfer covered by money credited in an earlier batch), so the oracle
// of example_harness.h — re-appending the depots into a fresh engine, whose batches fall
// elsewhere — does not apply; Recompute replays the recorded batch boundaries instead.
#pragma once

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"

namespace strata::examples_test {

// Waits until `module` has processed everything and runs no rebuild, dumps every PState,
// recomputes them all in place and waits for the rebuild to swap in (WaitProcessed, then
// Stats until ModuleStats::rebuilds is empty), dumps again and requires each PState equal
// to its first dump. The module's inputs must not change meanwhile (no appends; a tick
// depot may tick if its ticks change nothing).
inline ::testing::AssertionResult RecomputedInPlaceEqual(Engine& engine,
                                                         const std::string& module) {
  auto fail = [&](const std::string& what, const Status& st) {
    return ::testing::AssertionFailure() << module << ": " << what << ": " << st.ToString();
  };
  if (Status st = engine.WaitProcessed(module); !st.ok()) return fail("WaitProcessed", st);
  Result<std::map<std::string, PStateDump>> before = DumpPStates(engine, module);
  if (!before.ok()) return fail("dump", before.status());
  std::vector<std::string> names;
  for (const auto& [name, dump] : *before) names.push_back(name);
  if (Status st = engine.Recompute(module, names); !st.ok()) return fail("Recompute", st);
  if (Status st = engine.WaitProcessed(module); !st.ok()) return fail("WaitProcessed", st);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  for (;;) {
    Result<ModuleStats> stats = engine.Stats(module);
    if (!stats.ok()) return fail("Stats", stats.status());
    if (stats->rebuilds.empty()) break;
    if (std::chrono::steady_clock::now() > deadline) {
      return ::testing::AssertionFailure() << module << ": the recompute still runs after 5 min";
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Result<std::map<std::string, PStateDump>> after = DumpPStates(engine, module);
  if (!after.ok()) return fail("dump after the recompute", after.status());
  for (const std::string& name : names) {
    ::testing::AssertionResult equal = DumpsEqual(before->at(name), after->at(name));
    if (!equal) {
      return ::testing::AssertionFailure()
             << module << " " << name
             << " (first dump as \"live\", recomputed after): " << equal.message();
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace strata::examples_test
