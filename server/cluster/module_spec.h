// A module's spec in the cluster: /modules/<module> (persistent), created by the node that
// receives the deploy, holding {"partitions":N,"replication":R,"min_isr":M,"origin":NODE}
// (docs/cluster.md, "Znodes"). The controller places the module's replica groups from it;
// deleting it (destroy) makes the controller delete the module's /groups/<module>.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/status.h"

namespace strata::cluster {

inline constexpr std::string_view kModulesPath = "/modules";

struct ModuleSpec {
  std::string name;     // the module's name: the znode's name, not in the JSON
  int partitions = 1;   // the module's partitions, all in group 0 this round
  int replication = 1;  // R: the nodes holding a copy of each group
  int min_isr = 1;      // the fewest in-sync replicas that acknowledge a write (1..R)
  std::string origin;   // the node that received the deploy: it leads the first placement
  // Not in the JSON: the znode's creation zxid, larger for every deploy of the name than
  // for any earlier one (and than any epoch an earlier deploy's groups reached, each epoch
  // being set by a write of its own). A new group's first epoch: see placement.h.
  int64_t created = 0;

  bool operator==(const ModuleSpec&) const = default;
};

// "/modules/<name>".
std::string ModulePath(const std::string& name);

std::string ModuleSpecJson(const ModuleSpec& spec);
// The spec of module `name` from its znode's JSON. kCorruption naming the znode when it is
// not a spec, or when partitions < 1, replication < 1 or min_isr is not in 1..replication.
Result<ModuleSpec> ParseModuleSpec(const std::string& name, std::string_view json);

}  // namespace strata::cluster
