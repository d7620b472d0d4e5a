// The controller's decisions, as a pure function of what it read (docs/cluster.md, "The
// controller"): from the live nodes, the module specs, the group states with their
// versions and the pending ISR change requests, the writes that bring /groups in line.
// No ZooKeeper here: controller.h reads the input and makes the writes.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "group_state.h"
#include "isr_change.h"
#include "module_spec.h"

namespace strata::cluster {

// This round every module has one replica group, group 0, holding all its partitions.
inline constexpr int kGroupsPerModule = 1;

// A group's state as read, with the znode's version (what a compare-and-set expects).
struct GroupView {
  std::string module;
  int group = 0;
  GroupState state;
  int32_t version = 0;

  bool operator==(const GroupView&) const = default;
};

struct PlacementInput {
  std::map<std::string, std::string> live;    // live node id -> its incarnation
  std::map<std::string, ModuleSpec> modules;  // /modules, by name
  std::vector<GroupView> groups;              // every /groups/<module>/<group>
  std::vector<IsrChangeRequest> isr_changes;  // pending, in the order they were made
  // Groups whose znode exists but does not hold a group state (module, group): left
  // alone, neither created nor written, until an operator repairs or deletes the znode.
  std::set<std::pair<std::string, int>> unreadable;
  // Modules whose /modules znode does not hold a spec: their groups are left alone (not
  // deleted as a destroyed module's would be).
  std::set<std::string> unreadable_modules;
  // A rebalance was asked for (/rebalance exists): every group gets a target (RebalanceTargets).
  bool rebalance = false;
};

struct GroupWrite {
  enum class Kind {
    kCreate,         // GroupStateStore::Create(module, group, state)
    kCompareAndSet,  // GroupStateStore::CompareAndSet(module, group, state, version)
    kDeleteModule,   // delete /groups/<module> and everything under it
  };
  Kind kind = Kind::kCreate;
  std::string module;
  int group = 0;                 // not for kDeleteModule
  GroupState state;              // not for kDeleteModule
  int32_t expected_version = 0;  // kCompareAndSet
  // The decision as the log says it, e.g. "cluster: module m group 0: leader n2 epoch 3
  // (n1's session ended), isr [n2,n3]".
  std::string log;

  bool operator==(const GroupWrite&) const = default;
};

struct Reconciliation {
  std::vector<GroupWrite> writes;  // in module order; deletions last
  // Placements on fewer nodes than asked, and ISR change requests refused or ignored.
  std::vector<std::string> warnings;
};

// The rules:
// - A module without a state for group g gets one: replicas = its origin when live, then
//   the least loaded other live nodes (load: replica assignments over all groups, those
//   placed earlier in this call included; ties by node id), `replication` of them (all
//   the live ones, and a warning, when fewer are live); leader = replicas[0], epoch = the
//   spec's `created` (1 when 0), isr = replicas. So the epochs of a module deployed again
//   are above every epoch of its earlier deploys: a node that kept an earlier deploy's log
//   (it was down when it was destroyed) finds no common epoch with the new leader and cuts
//   its log to 0 (KIP-279), instead of taking the old entries for the new ones.
// - Leader live with the recorded incarnation: the ISR loses its members that are not
//   live, after the ISR change requests for the group's current epoch are applied in
//   order (a request whose ISR lacks the leader or holds a non-replica is refused).
// - Leader not live, or live with another incarnation (it restarted), or none (offline):
//   the new leader is the first of `replicas` in the ISR and live, epoch + 1, isr = isr
//   minus the members not live. None: leader "" with the epoch and ISR unchanged.
// - A module with states but no spec: its /groups/<module> is deleted.
// - Rebalance (input.rebalance): each group whose target from RebalanceTargets differs from
//   its replicas and leader gets it as `target` (one that does not differ loses its
//   target). A group with a target and a live leader: the target's members join
//   `replicas` (they fetch, catch up, and the leader asks for them in the ISR); once every
//   member of the target is in the ISR, replicas = target, isr = isr ∩ target, and
//   target[0] leads (epoch + 1 when that changes the leader); the target is cleared.
// Requests for another epoch, or a group not read, are ignored (with a warning). An
// ISR is kept in the order of `replicas`. An unreadable group gets a warning, no write.
Reconciliation Reconcile(const PlacementInput& input);

// Where a rebalance moves each group: min(replication, live nodes) replicas per group, no
// two live nodes holding copies that differ in number by more than one, and each node
// leading at most ceil(groups / live nodes) groups. From each group's live replicas (its
// leader first; filled with the least loaded live nodes, ties by id), copies move from the
// most loaded node to the least loaded, in (module, group) order, until balanced, so few
// copies move; a group keeps its leader while that node leads fewer than the cap, else its
// member leading fewest leads. The first node of each target is its leader. Groups whose
// module has no spec, that have a copy on a node that is not live, or whose replication
// exceeds the live nodes are not moved (their live copies count in the loads).
std::map<std::pair<std::string, int>, std::vector<std::string>> RebalanceTargets(
    const std::map<std::string, std::string>& live,
    const std::map<std::string, ModuleSpec>& modules, const std::vector<GroupView>& groups);

// Whether `state` is where `target` (a RebalanceTargets entry) puts it: the same copies, in
// any order, and target[0] leading.
bool AtTarget(const GroupState& state, const std::vector<std::string>& target);

// The groups an automatic rebalance would move now ("module M group G", in order): none while
// any group is moving (has a target) or has a copy out of its ISR (down, or catching up),
// so that a rebalance waits for a settled cluster; else each group with a RebalanceTargets
// target it is not AtTarget. Applying the targets yields a placement with none.
std::vector<std::string> AutoRebalanceMoves(const std::map<std::string, std::string>& live,
                                            const std::map<std::string, ModuleSpec>& modules,
                                            const std::vector<GroupView>& groups);

// "[n1,n2]".
std::string NodeList(const std::vector<std::string>& nodes);

}  // namespace strata::cluster
