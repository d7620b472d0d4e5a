// ReplicaManager: what one stratad does for the replica groups it holds a copy of
// (docs/cluster.md, "Replication between nodes"). From each change of the cluster's group
// states (ClusterNode's view) it makes this node lead the groups the controller made it
// leader of (Replication::Lead, which starts the module), follow the others — a Fetcher
// thread per followed group pulls the leader's log — and drop its copy of modules that
// were destroyed or moved away. As a leader it answers its followers' fetches (long
// polls), keeps each led group's high watermark, holds acknowledgements until the in-sync
// replicas have the append durably (the engine's ack gate), and asks the controller to
// shrink the ISR of followers that lag and to grow it when they caught up.
//
// Thread-safe. OnView runs on ClusterNode's thread; the rest on any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster_node.h"
#include "group_state.h"
#include "high_watermark.h"
#include "strata/engine.h"
#include "strata/replication.h"

namespace strata::cluster {

class Fetcher;

// One replica group as the controller placed it, and where its leader listens.
struct GroupAssignment {
  std::string module;
  int group = 0;
  GroupState state;
  std::string leader_address;  // the leader's advertise address; "" when unknown
};

// The groups of a view, with their leaders' addresses.
std::vector<GroupAssignment> AssignmentsOf(const ClusterView& view);
// The names of a view's modules (those whose spec does not parse included: they exist).
std::set<std::string> ModulesOf(const ClusterView& view);

struct ReplicaManagerOptions {
  std::string node_id;
  std::string incarnation;  // this process's (membership.h, Incarnation)
  // A follower of the ISR that has not had the leader's whole log for this long is
  // dropped from it (the leader asks the controller).
  std::chrono::milliseconds replica_lag{10000};
  // How long a follower's fetch waits at the leader for new entries.
  std::chrono::milliseconds fetch_wait{500};
  // Log compaction (docs/cluster.md, "Log compaction and snapshots"): each group's log keeps
  // at least this many entries behind its end (a leader also keeps those above its high
  // watermark); older ones are deleted. A replica that falls further behind loads a
  // snapshot of the leader's rows. 0: logs are never compacted.
  int64_t log_retention = 1'000'000;
  // Asks the controller for an ISR (ClusterNode::RequestIsrChange).
  std::function<Status(const std::string& module, int group, int64_t epoch,
                       const std::vector<std::string>& isr)>
      request_isr_change;
  // Asks the controller to hand a group this node cannot lead to another in-sync replica
  // (ClusterNode::RequestIsrChange with resign): `isr` is the ISR without this node.
  std::function<Status(const std::string& module, int group, int64_t epoch,
                       const std::vector<std::string>& isr)>
      request_resign;
  std::function<void(const std::string&)> log_info;
  std::function<void(const std::string&)> log_warning;
};

// A follower's fetch, as the leader receives it (the protocol's ReplicaFetchRequest).
struct FetchAsk {
  std::string module;
  int group = 0;
  std::string node;
  int64_t epoch = 0;
  int64_t from = 0;
  int64_t durable_end = 0;
  int64_t max_bytes = 1 << 20;
  std::chrono::milliseconds wait{500};
};
struct FetchAnswer {
  int64_t epoch = 0;
  std::vector<ReplicaEntry> entries;
  int64_t log_end = 0;
  int64_t high_watermark = 0;
  int64_t log_start = 0;  // above the ask's `from`: the follower needs a snapshot (no entries)
};
// A follower's request for a chunk of the leader's rows (the protocol's
// ReplicaSnapshotRequest).
struct SnapshotAsk {
  std::string module;
  int group = 0;
  std::string node;
  int64_t epoch = 0;
  SnapshotCursor after;
  int64_t max_bytes = 4 << 20;
};

class ReplicaManager {
 public:
  // `engine` is replicated (engine.replication() != null) and outlives the manager.
  ReplicaManager(Engine& engine, ReplicaManagerOptions options);
  // Stops every fetcher and the ticker; leads nothing any more (the engine's modules stop
  // when the engine closes).
  ~ReplicaManager();
  ReplicaManager(const ReplicaManager&) = delete;
  // Stops the fetchers and the ticker and fails the appends waiting for replicas (kAborted):
  // at shutdown, once the node left the cluster. Later views are ignored, and CheckLeader
  // answers kNotLeader. Idempotent.
  void Shutdown();
  ReplicaManager& operator=(const ReplicaManager&) = delete;

  // The groups of every module, as the controller placed them, and the modules the cluster
  // has (/modules), from a new view. This node drops its copy of a module that is gone from
  // `modules` (destroyed) or whose groups are all placed on other nodes — also a copy it
  // kept on disk without holding it since its start (it was down when the module was
  // destroyed or moved); a group missing from `groups` while its module exists (not placed
  // yet, or its state did not parse) is left as it is.
  void OnAssignments(const std::vector<GroupAssignment>& groups,
                     const std::set<std::string>& modules);

  // OK when this node leads every group of `module` now. Else kNotLeader with the
  // leader's address in *leader_address ("" when there is none now), or kNotFound when
  // the cluster has no such module.
  Status CheckLeader(const std::string& module, std::string* leader_address) const;
  // CheckLeader, then kNotEnoughReplicas when a group's ISR is below its min_isr.
  Status CheckAppend(const std::string& module, std::string* leader_address) const;
  // Blocks until the view has no group of `module` (the controller deleted them) and this
  // node has dropped its copy, or `timeout` (kTimeout). After a destroy: a deploy of the
  // same name then gets new groups, not the old ones.
  Status WaitUntilGone(const std::string& module, std::chrono::milliseconds timeout);
  // Blocks until this node leads `module` (as OnAssignments makes it), or `timeout`.
  Status WaitUntilLeading(const std::string& module, std::chrono::milliseconds timeout);

  // The engine's ack gate (EngineOptions::ack_gate): releases once the high watermark of
  // each of the module's groups has passed its log end as of now.
  // `through` >= 0: once the module's group 0 has the entries below it instead (its log
  // end as of now otherwise).
  void GateAck(const std::string& module, std::function<void(Status)> release,
               int64_t through = -1);

  // A follower's fetch: answered at once when there are entries from ask.from, else when
  // the log passes it or after ask.wait (empty). kNotLeader when this node does not lead
  // the group at exactly ask.epoch.
  void Fetch(const FetchAsk& ask, std::function<void(Result<FetchAnswer>)> done);
  // A chunk of the group's rows for a follower that needs entries this leader compacted
  // away. kNotLeader when this node does not lead the group at exactly ask.epoch; kAborted
  // while the asking node is in the group's ISR (a replica whose tables are being replaced
  // must not be promoted): this leader asks the controller to remove it, and the follower
  // asks again.
  Result<SnapshotChunk> Snapshot(const SnapshotAsk& ask);
  // KIP-279's OffsetsForLeaderEpoch, as the group's leader at `epoch`.
  Result<EpochEnd> EpochEndFor(const std::string& module, int group, int64_t epoch,
                               int64_t log_epoch);

  // For GET /rest/<module>/replica: this node's state of each group it holds.
  struct GroupReport {
    std::string module;
    int group = 0;
    std::string role;  // "leader", "follower"
    int64_t epoch = 0;
    int64_t high_watermark = -1;  // leader only
    std::vector<std::string> isr;
  };
  std::vector<GroupReport> Report() const;

 private:
  struct Led {
    int64_t epoch = 0;
    std::shared_ptr<HighWatermark> hw;
    std::vector<std::string> replicas;
    std::chrono::steady_clock::time_point last_isr_request{};
    std::vector<std::string> last_isr_asked;
  };
  using Key = std::pair<std::string, int>;

  struct Waiting;  // the long polls waiting for entries (replica_manager.cc)

  void Tick();
  // Compacts the logs of the groups this node holds (log_retention), at most once a second.
  void CompactLogs();
  void LeadGroup(const GroupAssignment& a);
  void StopLeading(const Key& key, const std::string& why);
  // Stops the group's fetcher, if any, and waits for its thread (its call in flight is
  // interrupted).
  void StopFetcher(const Key& key);
  std::shared_ptr<HighWatermark> FindHw(const Key& key, int64_t epoch) const;
  void RefreshLeaderDurable(const Key& key, const std::shared_ptr<HighWatermark>& hw);

  Engine& engine_;
  Replication& replication_;
  const ReplicaManagerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<Key, GroupAssignment> assignments_;  // the last view's
  std::map<Key, Led> led_;                      // groups this node leads now
  std::map<Key, std::unique_ptr<Fetcher>> fetchers_;
  std::map<std::string, int> groups_of_;  // module -> its groups in the view
  std::set<std::string> dropping_;        // modules OnAssignments is dropping the copy of
  // Long polls waiting for entries, with their deadlines (the ticker answers them empty).
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::function<void()>>> polls_;
  const std::shared_ptr<Waiting> waiting_;
  std::chrono::steady_clock::time_point last_compaction_{};  // the ticker's
  bool stop_ = false;
  // stop_, for the long polls' answers, which may run once the manager is gone.
  const std::shared_ptr<std::atomic<bool>> stopping_ = std::make_shared<std::atomic<bool>>(false);
  std::thread ticker_;
};

}  // namespace strata::cluster
