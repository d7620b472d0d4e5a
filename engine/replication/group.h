// Replica groups: which group's replication log a write belongs to (docs/cluster.md,
// "Replication log"). A replica group is a set of partitions of one module; the tables and
// rows of a running module are mapped to it from the naming rules of docs/storage.md and
// docs/runtime.md. Pure functions and an immutable layout: any thread.
#pragma once

#include <compare>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace strata::replication {

// A row or table that belongs to a module as a whole rather than to one partition (a
// rescale map, a microbatch topology's batch and plans, the outbox).
inline constexpr int kModuleWide = -1;

// The module and partition that a write to `table` (at byte key `key`; empty for log tables)
// belongs to, or nullopt when the write is node-local and not replicated:
//   depot.<m>.<d>[@g].<p>, pstate.<m>.<s>[@g].<p>      -> (m, p)
//   rescale.<m>.<d>@<g>                                 -> (m, module-wide)
//   meta.progress, meta.failures: key enc(m) enc(topology) enc(depot) enc(p) …
//                                                        -> (m, p); depot "$batch"/"$plan":
//                                                        module-wide
//   meta.outbox: key enc(m) enc(n)                      -> (m, module-wide)
//   meta.modules: key enc(m)                            -> (m, module-wide)
//   replog.*, replstate.*, anything else                -> node-local
// A meta key that does not decode is node-local too (it is not a row the runtime writes).
// The table of the modules' rows (one per module, key enc(m)): a follower that applies a
// change of one reloads its copy (GroupLog::ApplyUpTo).
inline constexpr std::string_view kModulesTable = "meta.modules";

struct TableOwner {
  std::string module;
  int partition = kModuleWide;
  friend bool operator==(const TableOwner&, const TableOwner&) = default;
};
std::optional<TableOwner> OwnerOf(std::string_view table, std::string_view key);

struct GroupId {
  std::string module;
  int group = 0;
  friend auto operator<=>(const GroupId&, const GroupId&) = default;
  std::string ToString() const;  // "<module>/<group>"
};

// How the partitions of each module form groups: partition p of module m is in group
// p % groups(m), and module-wide writes are in group 0. `groups` is the number of groups of
// a module not in `per_module` (>= 1).
class GroupLayout {
 public:
  explicit GroupLayout(int groups = 1, std::map<std::string, int> per_module = {});
  int Groups(const std::string& module) const;
  int GroupOfPartition(const std::string& module, int partition) const;
  // The group of a write (OwnerOf, then GroupOfPartition); nullopt: node-local.
  std::optional<GroupId> GroupOf(std::string_view table, std::string_view key) const;

 private:
  int groups_;
  std::map<std::string, int> per_module_;
};

}  // namespace strata::replication
