// PlanUpdate (update_plan.h).
#include "runtime/update_plan.h"

#include <algorithm>

#include "runtime/partitioning.h"

namespace strata::runtime {
namespace {

std::string Join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

}  // namespace

Result<UpdatePlan> PlanUpdate(const ModuleDef& running, const ModuleDef& next,
                              const std::vector<std::string>& drop) {
  UpdatePlan plan;
  std::vector<std::string> missing;   // declared by the running version only
  std::vector<std::string> problems;  // each a sentence
  for (const DepotDef& d : running.depots) {
    const DepotDef* kept = Named(next.depots, d.name);
    if (kept == nullptr) {
      missing.push_back(d.name);
    } else if (PartitioningName(kept->partitioning) != PartitioningName(d.partitioning)) {
      problems.push_back("depot " + d.name + " is partitioned by " +
                         PartitioningName(d.partitioning) + " in the running version and by " +
                         PartitioningName(kept->partitioning) +
                         " in the new build: a depot's partitioning cannot change (its records "
                         "are where the old one put them)");
    }
  }
  for (const PStateDef& p : running.pstates) {
    const PStateDef* kept = Named(next.pstates, p.name);
    if (kept == nullptr) {
      missing.push_back(p.name);
      continue;
    }
    const bool new_migration =
        kept->migration && (!p.migration || p.migration->id != kept->migration->id);
    if (new_migration) {
      plan.migrated.push_back(p.name);
      continue;
    }
    if (kept->schema == p.schema) continue;
    Result<bool> widens = SchemaWidens(p.schema, kept->schema);
    if (widens.ok()) {
      plan.widened.push_back(p.name);
    } else {
      problems.push_back("PState " + p.name + " changes its schema from " + p.schema.ToString() +
                         " to " + kept->schema.ToString() + ", which is not only a widening (" +
                         widens.status().message() +
                         "): keep the schema, or declare a migration for it");
    }
  }
  for (const TopologyDef& t : running.topologies) {
    const TopologyDef* kept = Named(next.topologies, t.name);
    if (kept == nullptr) {
      missing.push_back(t.name);
    } else if (kept->kind != t.kind) {
      const auto kind = [](const TopologyDef& x) {
        return x.kind == TopologyDef::Kind::kMicrobatch ? "a microbatch" : "a stream";
      };
      problems.push_back("topology " + t.name + " is " + kind(t) + " topology in the running " +
                         "version and " + kind(*kept) + " topology in the new build: its " +
                         "progress would not carry over; drop it and add it under a new name");
    }
  }
  std::vector<std::string> unlisted;
  for (const std::string& name : missing) {
    if (Contains(drop, name)) {
      plan.dropped.push_back(name);
    } else {
      unlisted.push_back(name);
    }
  }
  if (!unlisted.empty()) {
    problems.push_back("the new build does not declare " + Join(unlisted) +
                       ", which the running version has: list them in drop to delete them and "
                       "their data, or keep them in the build");
  }
  for (const std::string& name : drop) {
    if (Contains(missing, name)) continue;
    const bool declared = Named(next.depots, name) != nullptr ||
                          Named(next.pstates, name) != nullptr ||
                          Named(next.topologies, name) != nullptr;
    // A name without its sigil ("word_lengths" for "$$word_lengths") gets a suggestion.
    std::string meant;
    for (const char* sigil : {"*", "$$"}) {
      if (Contains(missing, sigil + name))
        meant = std::string(" (did you mean ") + sigil + name + "?)";
    }
    problems.push_back(declared ? "drop names " + name + ", which the new build still declares"
                                : "drop names " + name +
                                      ", which the running version does not have" + meant);
  }
  if (!problems.empty()) {
    std::string message;
    for (const std::string& problem : problems) message += (message.empty() ? "" : "; ") + problem;
    return Status::InvalidArgument(message);
  }
  for (const DepotDef& d : next.depots) {
    if (Named(running.depots, d.name) == nullptr) plan.created.push_back(d.name);
  }
  for (const PStateDef& p : next.pstates) {
    if (Named(running.pstates, p.name) == nullptr) plan.created.push_back(p.name);
  }
  for (const TopologyDef& t : next.topologies) {
    if (Named(running.topologies, t.name) == nullptr) plan.new_topologies.push_back(t.name);
  }
  return plan;
}
}  // namespace strata::runtime
