// ClusterService: the requests that are different in cluster mode (docs/cluster.md,
// "Requests in a cluster"), between the Dispatcher and the cluster's parts (ClusterNode's
// ZooKeeper view, the ReplicaManager): the leader check that redirects a request to its
// module's leader, deploy and destroy across the cluster, the Placement answer and the
// requests nodes send each other (fetches, epoch ends, module files). Null in the
// Dispatcher without --cluster. Thread-safe; the blocking calls run on the blocking pool.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include "cluster_node.h"
#include "replica_manager.h"
#include "strata/engine.h"
#include "strata/protocol/messages.h"

namespace strata::server {

class ClusterService {
 public:
  // All three outlive the service. `max_frame_size` is the server's --max-frame-size: the
  // answers to fetches and snapshot requests are sized to fit it.
  ClusterService(Engine& engine, cluster::ClusterNode& node, cluster::ReplicaManager& replicas,
                 uint32_t max_frame_size)
      : engine_(engine), node_(node), replicas_(replicas), max_frame_size_(max_frame_size) {}

  // The module a request is served by the leader of, or nullopt (requests any node
  // answers: Hello, ListModules, Stats of every module, Placement, deploy).
  static std::optional<std::string> LedModuleOf(const protocol::RequestBody& body);

  // nullopt when this node serves `module` now; else the error response to send: NOT_LEADER
  // with the leader's address in Error.leader, NOT_FOUND for a module the cluster lacks.
  // `append`: NOT_ENOUGH_REPLICAS too, when the ISR is below min_isr.
  std::optional<protocol::Response> Refusal(uint64_t id, const std::string& module, bool append);

  // Deploy across the cluster (blocking): refuses a replication above the live nodes,
  // writes the module's spec (this node its origin), waits until the controller placed
  // its group with this node as leader and this node leads it, then deploys, and answers
  // once the in-sync replicas have the deploy durably (kTimeout, kAborted or
  // kNotEnoughReplicas otherwise: deployed here, it may or may not be kept). When the
  // engine's deploy fails, the spec is deleted again.
  Result<ModuleInfo> Deploy(const std::string& so_path, int partitions, int replication,
                            int min_isr);
  // Destroy across the cluster (blocking; at the leader): the engine destroys the module,
  // then its spec goes, and every follower drops its copy; answered once the controller
  // deleted the module's groups and this node dropped its copy (kTimeout after
  // kPlacementTimeout). Again after a destroy whose removal of the spec failed: the spec
  // goes.
  Status Destroy(const std::string& module);
  // The name of the module the plugin at `so_path` defines (loads it).
  Result<std::string> ModuleNameOf(const std::string& so_path);
  // Update at the leader (blocking; the caller checked the leadership with Refusal): the
  // engine's update, answered once the in-sync replicas have the new version's row durably
  // (as Deploy). Every follower then reloads its copy from a snapshot of this node's rows
  // (docs/cluster.md, "Changing a module in a cluster").
  Result<UpdateResult> Update(const std::string& so_path, const UpdateOptions& options);

  // The answers to the cluster requests.
  protocol::Response Placement(uint64_t id);
  // Asks the controller for a rebalance and answers the placement once it took it
  // (TIMEOUT after kPlacementTimeout).
  protocol::Response Rebalance(uint64_t id);
  void Fetch(uint64_t id, const protocol::ReplicaFetchRequest& request,
             std::function<void(protocol::Response)> reply);
  protocol::Response EpochEnd(uint64_t id, const protocol::ReplicaEpochRequest& request);
  protocol::Response ModuleFile(uint64_t id, const protocol::ModuleFileRequest& request);
  protocol::Response Snapshot(uint64_t id, const protocol::ReplicaSnapshotRequest& request);

  // GET /rest/<module>/replica: this node's copy of the module's group 0 — {"module",
  // "group", "role" ("leader", "follower"), "epoch", "log_start", "log_end", "rebuilding",
  // "applied_end",
  // "durable_end", "high_watermark" (leader; else null), "isr", "digest"} — so that the
  // fault tests can tell that replicas with the same applied end hold the same rows.
  // kNotFound when this node holds no copy of it.
  Result<Value> ReplicaState(const std::string& module);

  // How long Deploy waits for the controller's placement, then for the in-sync replicas.
  static constexpr std::chrono::milliseconds kPlacementTimeout{15000};

 private:
  // Waits (up to kPlacementTimeout) until the in-sync replicas of `module` have this node's
  // log durably (through offset `through` when >= 0); the errors say the module is
  // `done_what` here but maybe not kept.
  Status WaitForInSyncReplicas(const std::string& module, const std::string& done_what,
                               int64_t through = -1);
  // Room in a frame for what an answer carries besides its entries' or rows' bytes.
  static constexpr size_t kAnswerOverhead = 4096;
  // The entry or row bytes asked of ReplicationImpl for one answer.
  int64_t AnswerBudget() const;
  bool Fits(size_t payload_bytes) const;
  // INVALID_ARGUMENT: `what` (one entry or row) cannot be sent in a frame of this node.
  Status TooLarge(const std::string& what, size_t bytes) const;

  Engine& engine_;
  cluster::ClusterNode& node_;
  cluster::ReplicaManager& replicas_;
  const uint32_t max_frame_size_;
};

// An error response carrying the leader's address (NOT_LEADER) when `status` is kNotLeader.
protocol::Response ClusterErrorResponse(uint64_t id, const Status& status,
                                        const std::string& leader_address);

}  // namespace strata::server
