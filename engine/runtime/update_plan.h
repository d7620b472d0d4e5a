// The difference between a running module version's declarations and a new build's, and
// the rules that refuse an update (docs/modules.md, "Changing a deployed module"). Pure
// functions: any thread.
#pragma once

#include <string>
#include <vector>

#include "strata/module.h"
#include "strata/status.h"

namespace strata::runtime {

// The declaration named `name` (a DepotDef, PStateDef or TopologyDef), or nullptr.
template <typename Def>
const Def* Named(const std::vector<Def>& defs, const std::string& name) {
  for (const Def& def : defs) {
    if (def.name == name) return &def;
  }
  return nullptr;
}

inline bool Contains(const std::vector<std::string>& names, const std::string& name) {
  for (const std::string& n : names) {
    if (n == name) return true;
  }
  return false;
}

struct UpdatePlan {
  std::vector<std::string> created;   // depots and PStates the new build adds
  std::vector<std::string> dropped;   // depots, PStates and topologies it drops (all in `drop`)
  std::vector<std::string> widened;   // PStates whose schema only widens
  std::vector<std::string> migrated;  // PStates with a new migration
  std::vector<std::string> new_topologies;
};

// kInvalidArgument, one sentence per problem: a declaration of `running` that `next` lacks
// and `drop` does not name; a name in `drop` that `next` still declares or `running` lacks;
// a depot whose partitioning changes; a PState schema change that neither only widens nor
// comes with a new migration.
Result<UpdatePlan> PlanUpdate(const ModuleDef& running, const ModuleDef& next,
                              const std::vector<std::string>& drop);

}  // namespace strata::runtime
