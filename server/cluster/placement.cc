#include "placement.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <set>
#include <tuple>
#include <utility>

namespace strata::cluster {
namespace {

bool Contains(const std::vector<std::string>& nodes, const std::string& node) {
  return std::find(nodes.begin(), nodes.end(), node) != nodes.end();
}

std::string GroupName(const std::string& module, int group) {
  return "module " + module + " group " + std::to_string(group);
}

// The members of `nodes` that are live, in order; `gone` gets the others.
std::vector<std::string> LiveOnly(const std::vector<std::string>& nodes,
                                  const std::map<std::string, std::string>& live,
                                  std::vector<std::string>* gone) {
  std::vector<std::string> kept;
  for (const std::string& node : nodes) {
    if (live.count(node)) {
      kept.push_back(node);
    } else if (gone) {
      gone->push_back(node);
    }
  }
  return kept;
}

// "n1's session ended", "the sessions of n1, n3 ended".
std::string SessionsEnded(const std::vector<std::string>& gone) {
  if (gone.size() == 1) return gone[0] + "'s session ended";
  std::string ids;
  for (const std::string& node : gone) ids += (ids.empty() ? "" : ", ") + node;
  return "the sessions of " + ids + " ended";
}

// `nodes` in the order of `replicas`, without repeats.
std::vector<std::string> InReplicaOrder(const std::vector<std::string>& nodes,
                                        const std::vector<std::string>& replicas) {
  std::vector<std::string> ordered;
  for (const std::string& replica : replicas) {
    if (Contains(nodes, replica)) ordered.push_back(replica);
  }
  return ordered;
}

std::vector<std::string> Place(const ModuleSpec& spec,
                               const std::map<std::string, std::string>& live,
                               const std::map<std::string, int>& load) {
  std::vector<std::string> replicas;
  if (live.count(spec.origin)) replicas.push_back(spec.origin);
  std::vector<std::pair<int, std::string>> others;
  for (const auto& [node, incarnation] : live) {
    if (node == spec.origin) continue;
    const auto it = load.find(node);
    others.emplace_back(it == load.end() ? 0 : it->second, node);
  }
  std::sort(others.begin(), others.end());
  for (const auto& [node_load, node] : others) {
    if (static_cast<int>(replicas.size()) >= spec.replication) break;
    replicas.push_back(node);
  }
  return replicas;
}

// Applies the group's requests at its epoch to `isr`; warns of the others. A resignation
// sets *resigned (and `isr`, without the leader) and ends the requests.
void ApplyIsrChanges(const GroupView& group, const std::vector<const IsrChangeRequest*>& requests,
                     std::vector<std::string>* isr, std::string* requested_by, bool* resigned,
                     std::vector<std::string>* warnings) {
  const GroupState& state = group.state;
  for (const IsrChangeRequest* request : requests) {
    const std::string what =
        "cluster: ISR change " + request->name + " for " + GroupName(group.module, group.group) +
        " (isr " + NodeList(request->isr) + " at epoch " + std::to_string(request->epoch) + ")";
    if (request->epoch != state.epoch) {
      warnings->push_back(what + " ignored: the group is at epoch " + std::to_string(state.epoch));
      continue;
    }
    if (request->resign != !Contains(request->isr, state.leader)) {
      warnings->push_back(what +
                          (request->resign ? " refused: a resignation holds the leader "
                                           : " refused: it lacks the leader ") +
                          state.leader);
      continue;
    }
    const auto stranger =
        std::find_if(request->isr.begin(), request->isr.end(),
                     [&](const std::string& node) { return !Contains(state.replicas, node); });
    if (stranger != request->isr.end()) {
      warnings->push_back(what + " refused: " + *stranger + " is not a replica (replicas " +
                          NodeList(state.replicas) + ")");
      continue;
    }
    *isr = InReplicaOrder(request->isr, state.replicas);
    *requested_by = state.leader;
    if (request->resign) {
      *resigned = true;
      return;  // the epoch changes: later requests are of the old one
    }
  }
}

// A group's move towards its target while its leader is live (see Reconcile): `next` gets
// the target's members as replicas, and the move is completed once they are all in the
// ISR. Returns what it did for the log ("" for nothing).
std::string AdvanceMove(const std::map<std::string, std::string>& live, GroupState* next) {
  if (next->target.empty()) return "";
  std::string what;
  const std::vector<std::string> before = next->replicas;
  for (const std::string& node : next->target) {
    if (!Contains(next->replicas, node)) next->replicas.push_back(node);
  }
  if (next->replicas != before) what = "replicas " + NodeList(next->replicas) + " while moving";
  for (const std::string& node : next->target) {
    if (!Contains(next->isr, node)) return what;
  }
  const std::string& leader = next->target[0];
  if (next->leader != leader) {
    next->leader = leader;
    next->leader_incarnation = live.at(leader);  // in the ISR, which holds only live nodes
    ++next->epoch;
  }
  next->isr = InReplicaOrder(next->isr, next->target);
  next->replicas = next->target;
  next->target.clear();
  return "moved to replicas " + NodeList(next->replicas) + " (rebalance)";
}

// The write that reconciles one existing group, if any. `retargeted`: a rebalance gave the
// group its target (`group.state.target` is the new one): written even when nothing else
// changes.
std::optional<GroupWrite> ReconcileGroup(const GroupView& group, const GroupState& read,
                                         bool retargeted,
                                         const std::map<std::string, std::string>& live,
                                         const std::vector<const IsrChangeRequest*>& requests,
                                         std::vector<std::string>* warnings) {
  const GroupState& state = group.state;
  GroupWrite write;
  write.kind = GroupWrite::Kind::kCompareAndSet;
  write.module = group.module;
  write.group = group.group;
  write.expected_version = group.version;
  write.state = state;
  const std::string name = "cluster: " + GroupName(group.module, group.group) + ": ";
  const auto leader = live.find(state.leader);
  if (!state.leader.empty() && leader != live.end() && leader->second == state.leader_incarnation) {
    std::vector<std::string> isr = state.isr;
    std::string requested_by;
    bool resigned = false;
    ApplyIsrChanges(group, requests, &isr, &requested_by, &resigned, warnings);
    std::vector<std::string> gone;
    isr = LiveOnly(isr, live, &gone);
    if (resigned) {
      if (isr.empty()) {
        warnings->push_back(name + "the leader " + state.leader +
                            " resigns, but no other in-sync replica is live: it stays");
        return std::nullopt;
      }
      write.state.leader = isr[0];  // in replica order
      write.state.leader_incarnation = live.at(isr[0]);
      write.state.epoch = state.epoch + 1;
      write.state.isr = isr;
      write.log = name + "leader " + isr[0] + " epoch " + std::to_string(write.state.epoch) + " (" +
                  state.leader + " resigned: it cannot lead), isr " + NodeList(isr);
      return write;
    }
    write.state.isr = isr;
    const std::string moved = AdvanceMove(live, &write.state);
    if (write.state == read && !retargeted) return std::nullopt;
    std::string reason;
    if (!requested_by.empty()) reason = "requested by the leader " + requested_by;
    if (!gone.empty()) reason += (reason.empty() ? "" : "; ") + SessionsEnded(gone);
    if (retargeted) {
      reason += (reason.empty() ? "" : "; ") +
                (state.target.empty() ? std::string("rebalance: stays")
                                      : "rebalance: target " + NodeList(state.target));
    }
    if (!moved.empty()) reason += (reason.empty() ? "" : "; ") + moved;
    write.log = name + "leader " + write.state.leader + " epoch " +
                std::to_string(write.state.epoch) + ", isr " + NodeList(write.state.isr) + " (" +
                reason + ")";
    return write;
  }
  // Requests name an epoch whose leader is gone or changes now: none applies.
  for (const IsrChangeRequest* request : requests) {
    warnings->push_back("cluster: ISR change " + request->name + " for " +
                        GroupName(group.module, group.group) + " at epoch " +
                        std::to_string(request->epoch) + " ignored: the group's leader changes");
  }
  std::string reason;
  if (state.leader.empty()) {
    reason = "no leader before";
  } else if (leader == live.end()) {
    reason = state.leader + "'s session ended";
  } else {
    reason = state.leader + " restarted";
  }
  std::string next;
  for (const std::string& replica : state.replicas) {
    if (Contains(state.isr, replica) && live.count(replica)) {
      next = replica;
      break;
    }
  }
  if (next.empty()) {
    if (state.leader.empty() && !retargeted) return std::nullopt;  // offline already
    write.state.leader.clear();
    write.state.leader_incarnation.clear();
    write.log = name + "offline: no in-sync replica is live (" + reason + "), isr " +
                NodeList(state.isr) + " kept";
    return write;
  }
  if (state.leader.empty()) reason = next + " is back";
  write.state.leader = next;
  write.state.leader_incarnation = live.at(next);
  write.state.epoch = state.epoch + 1;
  write.state.isr = LiveOnly(state.isr, live, nullptr);
  write.log = name + "leader " + next + " epoch " + std::to_string(write.state.epoch) + " (" +
              reason + "), isr " + NodeList(write.state.isr);
  return write;
}

}  // namespace

std::string NodeList(const std::vector<std::string>& nodes) {
  std::string text = "[";
  for (size_t i = 0; i < nodes.size(); ++i) text += (i ? "," : "") + nodes[i];
  return text + "]";
}

bool AtTarget(const GroupState& state, const std::vector<std::string>& target) {
  if (target.empty() || state.leader != target[0]) return false;
  std::vector<std::string> have = state.replicas;
  std::vector<std::string> want = target;
  std::sort(have.begin(), have.end());
  std::sort(want.begin(), want.end());
  return have == want;
}

std::vector<std::string> AutoRebalanceMoves(const std::map<std::string, std::string>& live,
                                            const std::map<std::string, ModuleSpec>& modules,
                                            const std::vector<GroupView>& groups) {
  for (const GroupView& g : groups) {
    if (!g.state.target.empty() || g.state.isr.size() != g.state.replicas.size()) return {};
  }
  std::vector<std::string> moves;
  for (const auto& entry : RebalanceTargets(live, modules, groups)) {
    const std::pair<std::string, int>& key = entry.first;
    const auto group = std::find_if(groups.begin(), groups.end(), [&](const GroupView& g) {
      return g.module == key.first && g.group == key.second;
    });
    if (group != groups.end() && !AtTarget(group->state, entry.second)) {
      moves.push_back(GroupName(key.first, key.second));
    }
  }
  return moves;
}

std::map<std::pair<std::string, int>, std::vector<std::string>> RebalanceTargets(
    const std::map<std::string, std::string>& live,
    const std::map<std::string, ModuleSpec>& modules, const std::vector<GroupView>& groups) {
  std::map<std::pair<std::string, int>, std::vector<std::string>> targets;
  const int n = static_cast<int>(live.size());
  if (n == 0) return targets;
  std::map<std::string, int> load;
  for (const auto& [node, incarnation] : live) load[node] = 0;
  // A group with a copy on a node that is down, or asking for more copies than there are
  // live nodes, is left as it is (moving it now would drop that copy for good); its copies
  // on live nodes count in their loads.
  std::vector<const GroupView*> placed;
  for (const GroupView& g : groups) {
    const auto spec = modules.find(g.module);
    if (spec == modules.end()) continue;
    const bool whole = spec->second.replication <= n &&
                       std::all_of(g.state.replicas.begin(), g.state.replicas.end(),
                                   [&](const std::string& node) { return live.count(node) != 0; });
    if (whole) {
      placed.push_back(&g);
    } else {
      for (const std::string& node : g.state.replicas) {
        if (live.count(node)) ++load[node];
      }
    }
  }
  std::sort(placed.begin(), placed.end(), [](const GroupView* a, const GroupView* b) {
    return std::tie(a->module, a->group) < std::tie(b->module, b->group);
  });
  // Each group's live replicas (its leader first), as many as it should have, filled with
  // the least loaded live nodes.
  std::vector<std::vector<std::string>> kept(placed.size());
  for (size_t i = 0; i < placed.size(); ++i) {
    const GroupState& state = placed[i]->state;
    // (A placed group's replication is at most the live nodes.)
    const int rf = std::max(modules.at(placed[i]->module).replication, 1);
    std::vector<std::string> candidates = {state.leader};
    candidates.insert(candidates.end(), state.replicas.begin(), state.replicas.end());
    for (const std::string& node : candidates) {
      if (static_cast<int>(kept[i].size()) >= rf) break;
      if (node.empty() || !live.count(node) || Contains(kept[i], node)) continue;
      kept[i].push_back(node);
      ++load[node];
    }
    while (static_cast<int>(kept[i].size()) < rf) {
      std::string best;
      for (const auto& [node, count] : load) {
        if (!Contains(kept[i], node) && (best.empty() || count < load[best])) best = node;
      }
      kept[i].push_back(best);
      ++load[best];
    }
  }
  // Then copies move from the most loaded node to the least loaded one until no two nodes
  // differ by more than one: a group on the first and not on the second always exists
  // then, and each move lowers the sum of the squared loads.
  while (true) {
    auto most = load.begin(), least = load.begin();
    for (auto it = load.begin(); it != load.end(); ++it) {
      if (it->second > most->second) most = it;
      if (it->second < least->second) least = it;
    }
    if (most->second - least->second <= 1) break;
    for (std::vector<std::string>& replicas : kept) {
      if (!Contains(replicas, most->first) || Contains(replicas, least->first)) continue;
      *std::find(replicas.begin(), replicas.end(), most->first) = least->first;
      break;
    }
    --most->second;
    ++least->second;
  }
  // Leaders: at most the cap per node. Each group first keeps its leader while that node
  // is under the cap; the others are placed by augmenting paths (a group takes a member
  // under the cap, or one whose group can move to another member, recursively), so that
  // the cap holds whenever the copies allow it; a group that cannot be placed so takes its
  // member leading fewest.
  const int leader_cap = (static_cast<int>(placed.size()) + n - 1) / n;
  std::vector<std::string> chosen(placed.size());
  std::map<std::string, std::vector<size_t>> led_by;
  for (size_t i = 0; i < placed.size(); ++i) {
    const std::string& leader = placed[i]->state.leader;
    if (Contains(kept[i], leader) && static_cast<int>(led_by[leader].size()) < leader_cap) {
      chosen[i] = leader;
      led_by[leader].push_back(i);
    }
  }
  std::function<bool(size_t, std::set<std::string>&)> place = [&](size_t i,
                                                                  std::set<std::string>& seen) {
    for (const std::string& node : kept[i]) {  // a member under the cap first
      if (seen.count(node) || static_cast<int>(led_by[node].size()) >= leader_cap) continue;
      chosen[i] = node;
      led_by[node].push_back(i);
      return true;
    }
    for (const std::string& node : kept[i]) {
      if (!seen.insert(node).second) continue;
      const std::vector<size_t> groups_led = led_by[node];
      for (size_t k = 0; k < groups_led.size(); ++k) {
        const size_t other = groups_led[k];
        if (!place(other, seen)) continue;
        // `other` moved to another member: `i` takes its place here.
        std::vector<size_t>& here = led_by[node];
        here.erase(std::find(here.begin(), here.end(), other));
        chosen[i] = node;
        here.push_back(i);
        return true;
      }
    }
    return false;
  };
  for (size_t i = 0; i < placed.size(); ++i) {
    if (!chosen[i].empty()) continue;
    std::set<std::string> seen;
    if (place(i, seen)) continue;
    for (const std::string& node : kept[i]) {
      if (chosen[i].empty() || led_by[node].size() < led_by[chosen[i]].size()) chosen[i] = node;
    }
    led_by[chosen[i]].push_back(i);
  }
  for (size_t i = 0; i < placed.size(); ++i) {
    std::vector<std::string> target = {chosen[i]};
    for (const std::string& node : kept[i]) {
      if (node != chosen[i]) target.push_back(node);
    }
    targets[{placed[i]->module, placed[i]->group}] = std::move(target);
  }
  return targets;
}

Reconciliation Reconcile(const PlacementInput& input) {
  Reconciliation out;
  std::map<std::string, int> load;
  std::map<std::pair<std::string, int>, const GroupView*> groups;
  std::set<std::string> orphans;
  for (const GroupView& group : input.groups) {
    if (input.unreadable_modules.count(group.module)) {
      for (const std::string& replica : group.state.replicas) ++load[replica];
      continue;
    }
    if (!input.modules.count(group.module)) {
      orphans.insert(group.module);
      continue;
    }
    groups[{group.module, group.group}] = &group;
    for (const std::string& replica : group.state.replicas) ++load[replica];
  }
  std::map<std::pair<std::string, int>, std::vector<const IsrChangeRequest*>> requests;
  for (const IsrChangeRequest& request : input.isr_changes) {
    if (!groups.count({request.module, request.group})) {
      out.warnings.push_back("cluster: ISR change " + request.name + " for " +
                             GroupName(request.module, request.group) +
                             " ignored: the group has no state");
      continue;
    }
    requests[{request.module, request.group}].push_back(&request);
  }
  std::map<std::pair<std::string, int>, std::vector<std::string>> targets;
  if (input.rebalance) {
    std::vector<GroupView> movable;
    for (const auto& [key, group] : groups) movable.push_back(*group);
    targets = RebalanceTargets(input.live, input.modules, movable);
  }
  for (const auto& [module, spec] : input.modules) {
    for (int g = 0; g < kGroupsPerModule; ++g) {
      const auto existing = groups.find({module, g});
      if (existing != groups.end()) {
        GroupView group = *existing->second;
        bool retargeted = false;
        if (auto target = targets.find({module, g}); target != targets.end()) {
          std::vector<std::string> wanted = target->second;
          // Already there: no move (a move under way to elsewhere is called off).
          if (AtTarget(group.state, wanted)) wanted.clear();
          retargeted = wanted != group.state.target;
          group.state.target = std::move(wanted);
        }
        std::optional<GroupWrite> write =
            ReconcileGroup(group, existing->second->state, retargeted, input.live,
                           requests[{module, g}], &out.warnings);
        if (write) out.writes.push_back(std::move(*write));
        continue;
      }
      if (input.unreadable.count({module, g})) {
        out.warnings.push_back("cluster: " + GroupName(module, g) +
                               ": its znode does not hold a group state; left alone");
        continue;
      }
      const std::vector<std::string> replicas = Place(spec, input.live, load);
      if (replicas.empty()) continue;  // no live node: nothing to place on
      if (static_cast<int>(replicas.size()) < spec.replication) {
        out.warnings.push_back("cluster: " + GroupName(module, g) + " asks for " +
                               std::to_string(spec.replication) + " replicas; placed on the " +
                               std::to_string(replicas.size()) + " live node(s)");
      }
      for (const std::string& replica : replicas) ++load[replica];
      GroupWrite write;
      write.kind = GroupWrite::Kind::kCreate;
      write.module = module;
      write.group = g;
      write.state.leader = replicas[0];
      write.state.epoch = std::max<int64_t>(1, spec.created);
      write.state.isr = replicas;
      write.state.min_isr = spec.min_isr;
      write.state.replicas = replicas;
      write.state.leader_incarnation = input.live.at(replicas[0]);
      write.log = "cluster: " + GroupName(module, g) + ": leader " + replicas[0] + " epoch " +
                  std::to_string(write.state.epoch) + " (new module, origin " + spec.origin +
                  "), isr " + NodeList(replicas);
      out.writes.push_back(std::move(write));
    }
  }
  for (const std::string& module : orphans) {
    GroupWrite write;
    write.kind = GroupWrite::Kind::kDeleteModule;
    write.module = module;
    write.log = "cluster: module " + module + " was deleted: deleting its group states";
    out.writes.push_back(std::move(write));
  }
  return out;
}

}  // namespace strata::cluster
