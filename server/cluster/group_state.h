// The state of a replication group: /groups/<module>/<group> holding
// {"leader":NODE,"epoch":N,"isr":[NODE,...],"min_isr":N,"replicas":[NODE,...],
//  "leader_incarnation":"PID@STARTED"[,"target":[NODE,...]]} (docs/cluster.md). Two fences
// guard every write. It is a compare-and-set on the znode's version: a writer that read
// version V can only write over V (another writer came first: read again). And it is made
// in one ZooKeeper multi with a check that the writer's controller candidacy still exists:
// a controller whose candidacy ended (its session expired or it withdrew) cannot write,
// even in a new session and even when nobody wrote the state since it read it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"
#include "zk_client.h"

namespace strata::cluster {

inline constexpr std::string_view kGroupsPath = "/groups";

struct GroupState {
  std::string leader;            // the node id of the group's leader; "" while offline
  int64_t epoch = 0;             // bumped by each change of leader
  std::vector<std::string> isr;  // the in-sync replicas, node ids
  int min_isr = 1;               // the fewest in-sync replicas that acknowledge a write
  // The nodes holding a copy, in order of preference for leadership (the first live
  // member of the ISR leads).
  std::vector<std::string> replicas;
  // The leader's incarnation (membership.h, Incarnation) when it was made leader: a leader
  // whose incarnation changed restarted, and the controller bumps the epoch.
  std::string leader_incarnation;
  // A move in progress (docs/cluster.md, "Rebalance"): the replicas the group goes to, the
  // first its leader; empty when none. Its members join `replicas` and catch up; once all
  // are in the ISR, replicas become `target` (and target[0] leads).
  std::vector<std::string> target;

  bool operator==(const GroupState&) const = default;
};

struct VersionedGroupState {
  GroupState state;
  int32_t version = 0;  // the znode's version: what CompareAndSet expects
};

std::string GroupStateJson(const GroupState& state);
// kCorruption naming `path` when `json` is not a group state. JSON written before
// "replicas" and "leader_incarnation" existed parses with replicas = isr and an empty
// incarnation.
Result<GroupState> ParseGroupState(const std::string& path, std::string_view json);

// Reads and writes group states in `client`'s session (which outlives the store). Module
// and group names are non-empty and hold no '/' (kInvalidArgument). Any thread but the
// client's event thread.
class GroupStateStore {
 public:
  // `candidate` is the writer's candidacy in the controller election
  // (ControllerElection::candidate(), e.g. "candidate-0000000007"), made by the controller
  // once its election found it the lowest: a candidacy that was the lowest stays the
  // lowest while it exists (later ones get higher numbers), so "it still exists" is "the
  // writer is still the controller". Every write fails with kAborted, writing nothing,
  // once that znode is gone. Reads are not fenced.
  GroupStateStore(ZkClient& client, std::string candidate);

  // kNotFound when the group has no state yet.
  Result<VersionedGroupState> Read(const std::string& module, const std::string& group);
  // Creates the group's state (version 0). kAlreadyExists when it has one; kAborted when
  // the candidacy is gone.
  Status Create(const std::string& module, const std::string& group, const GroupState& state);
  // Writes `state` when the znode is still at `expected_version`; returns the new version.
  // kAborted when the version moved (another writer came first: read again) or the
  // candidacy is gone (no longer the controller), kNotFound when the group has no state.
  Result<int32_t> CompareAndSet(const std::string& module, const std::string& group,
                                const GroupState& state, int32_t expected_version);

 private:
  ZkClient& client_;
  const std::string guard_;  // the candidacy's path, /controller/<candidate>
};

}  // namespace strata::cluster
