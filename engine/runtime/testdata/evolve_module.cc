// The module of lifecycle_test (updates, backfill, recompute, rescale, migrations), built in
// several versions, each named "evolve" (engine/runtime/CMakeLists.txt sets EVOLVE_VERSION):
//   1  *events {k, n} (hash of k) -> "totals": $$totals[k] += n
//      *extra (hash of the value)  -> "extra":  $$extra_seen[v] = true
//   2  as 1, but "totals" adds 2*n (new code for new records), and a new topology
//      "counts" over *events: $$counts[k] += 1 (a new view, backfilled), and a new
//      depot *notes with no topology
//   3  as 2 without *extra, "extra" and $$extra_seen (an update must name them in drop)
//   4  as 2 with $$totals holding strings (an incompatible schema change)
//   5  as 2 with $$totals holding any value (a widening schema change)
//   6  its define function throws (a build that does not load)
//   7  as 2 with a migration of $$totals that keeps every value and takes 0.3 ms per value
//      (an update while its background pass runs)
#include <chrono>
#include <stdexcept>
#include <thread>

#include "strata/module.h"

#ifndef EVOLVE_VERSION
#define EVOLVE_VERSION 1
#endif

namespace {

using strata::DepotPartitioning;
using strata::Path;
using strata::Schema;
using strata::TopologyContext;
using strata::Value;

void Define(strata::ModuleBuilder& m) {
#if EVOLVE_VERSION == 6
  throw std::runtime_error("evolve version 6 cannot define itself");
#endif
  auto events = m.Depot("*events", DepotPartitioning::Hash(Path().Key("k")));
#if EVOLVE_VERSION == 4
  const Schema totals_value = Schema::String();
#elif EVOLVE_VERSION == 5
  const Schema totals_value = Schema::Any();
#else
  const Schema totals_value = Schema::Int64();
#endif
  auto totals = m.PState("$$totals", Schema::Map(Schema::String(), totals_value));
#if EVOLVE_VERSION == 7
  m.Migrate(totals, "slow-identity", [](const Value& old) {
    std::this_thread::sleep_for(std::chrono::microseconds(300));
    return old;
  });
#endif
  constexpr int64_t kFactor = EVOLVE_VERSION == 1 ? 1 : 2;
  m.Stream("totals").Source(events).Each([totals](TopologyContext& ctx, const Value& e) {
    const Value* k = e.Find("k");
    const Value* n = e.Find("n");
    if (k == nullptr || n == nullptr || !n->is_int()) throw std::invalid_argument("not an event");
    if (EVOLVE_VERSION == 4) {
      return ctx.Transform(totals, Path().Key(*k).Set(n->ToString())).status();
    }
    return ctx.Transform(totals, Path().Key(*k).NullTo(0).Add(n->as_int() * kFactor)).status();
  });
#if EVOLVE_VERSION != 3
  auto extra = m.Depot("*extra", DepotPartitioning::Hash());
  auto extra_seen = m.PState("$$extra_seen", Schema::Map(Schema::Any(), Schema::Bool()));
  m.Stream("extra").Source(extra).Each([extra_seen](TopologyContext& ctx, const Value& v) {
    return ctx.Transform(extra_seen, Path().Key(v).Set(true)).status();
  });
#endif
#if EVOLVE_VERSION >= 2
  m.Depot("*notes", DepotPartitioning::Random());
  auto counts = m.PState("$$counts", Schema::Map(Schema::String(), Schema::Int64()));
  m.Stream("counts").Source(events).Each([counts](TopologyContext& ctx, const Value& e) {
    return ctx.Transform(counts, Path().Key(*e.Find("k")).NullTo(0).Inc()).status();
  });
#endif
}

}  // namespace

STRATA_MODULE(evolve, Define)
