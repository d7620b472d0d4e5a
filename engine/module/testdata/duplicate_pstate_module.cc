// A module declaring the PState $$state twice.
#include "strata/module.h"

namespace {

void Define(strata::ModuleBuilder& m) {
  auto in = m.Depot("*in", strata::DepotPartitioning::Random());
  auto state = m.PState("$$state", strata::Schema::Int64());
  m.PState("$$state", strata::Schema::String());
  m.Stream("set").Source(in).Each([state](strata::TopologyContext& ctx, const strata::Value&) {
    return ctx.Transform(state, strata::Path().Set(1)).status();
  });
}

}  // namespace

STRATA_MODULE(duplicate_pstate, Define)
