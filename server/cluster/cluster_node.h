// ClusterNode: one stratad's part in the cluster (docs/cluster.md, "Coordination"). Joining
// connects a ZooKeeper session, registers the node (membership.h) and enters the controller
// election (controller_election.h); from then on a thread of its own keeps a view of the
// live nodes and the controller, from watches, and rejoins after a session expiry.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cluster_url.h"
#include "controller_election.h"
#include "membership.h"
#include "strata/status.h"
#include "strata/thread_annotations.h"
#include "zk_client.h"

namespace strata::cluster {

struct ClusterNodeOptions {
  ClusterUrl url;
  NodeInfo self;  // id, advertise, http, pid, started
  std::chrono::milliseconds session_timeout{6000};
  std::chrono::milliseconds connect_timeout{10000};
  // Where the node's log lines go ("cluster: ..."); called on the joining thread and on the
  // node's thread, never at once.
  std::function<void(const std::string&)> log_info;
  std::function<void(const std::string&)> log_warning;
};

// What the node knows of the cluster, as of its last watch.
struct ClusterView {
  std::string node;  // this node's id
  // The controller's node id; "" while unknown: disconnected from ZooKeeper, or between
  // sessions.
  std::string controller;
  bool is_controller = false;
  std::vector<NodeInfo> nodes;  // the live nodes, by id
};

class ClusterNode {
 public:
  // Connects (kTimeout "cannot reach ZooKeeper at ..." after options.connect_timeout),
  // registers (kAlreadyExists "node-id X is already registered by HOST:PORT" when a live
  // node has the id) and enters the election; logs "cluster: node X joined, controller is Y".
  static Result<std::unique_ptr<ClusterNode>> Join(const ClusterNodeOptions& options);
  // Leave()s.
  ~ClusterNode();
  ClusterNode(const ClusterNode&) = delete;
  ClusterNode& operator=(const ClusterNode&) = delete;

  // Closes the session, so that the registration and the candidacy go at once (not after
  // the session timeout). Idempotent; the view is then empty but for the node's id. The
  // thread that joined, or any one thread.
  void Leave();

  // Any thread.
  ClusterView View() const;

 private:
  explicit ClusterNode(const ClusterNodeOptions& options);
  // Connects a new session, registers, enters the election and reads the view.
  Status Connect();
  void Run();
  // Reads the nodes (setting the next membership watch) and the controller; logs changes.
  Status Refresh();
  void Wake(bool expired);
  // The client's connection to the ensemble was lost (false) or is back (true).
  void OnConnection(bool connected);

  const ClusterNodeOptions options_;
  // Owned by the node's thread after Join (the joining thread before).
  std::unique_ptr<ZkClient> client_;
  std::unique_ptr<ControllerElection> election_;

  mutable Mutex mu_;
  CondVar cv_;
  bool refresh_ GUARDED_BY(mu_) = false;
  bool expired_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  bool lost_ GUARDED_BY(mu_) = false;             // the connection was lost: log it
  bool lost_controller_ GUARDED_BY(mu_) = false;  // ... while the view said controller
  uint64_t disconnects_ GUARDED_BY(mu_) = 0;      // connections lost so far
  ClusterView view_ GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace strata::cluster
