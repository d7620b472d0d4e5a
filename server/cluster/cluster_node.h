// ClusterNode: one stratad's part in the cluster (docs/cluster.md, "Coordination"). Joining
// connects a ZooKeeper session, registers the node (membership.h) and enters the controller
// election (controller_election.h); from then on a thread of its own keeps a view of the
// live nodes, the controller, the modules (module_spec.h) and the replica groups' states
// (group_state.h), from watches, and rejoins after a session expiry. While the node is the
// controller, the same thread runs the controller (controller.h) after every change.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster_url.h"
#include "controller.h"
#include "controller_election.h"
#include "membership.h"
#include "module_spec.h"
#include "placement.h"
#include "strata/status.h"
#include "strata/thread_annotations.h"
#include "zk_client.h"

namespace strata::cluster {

struct ClusterView;

struct ClusterNodeOptions {
  ClusterUrl url;
  NodeInfo self;  // id, advertise, http, pid, started
  std::chrono::milliseconds session_timeout{6000};
  std::chrono::milliseconds connect_timeout{10000};
  // While this node is the controller: when the placement has stayed unbalanced this long
  // (AutoRebalanceMoves in placement.h: same live nodes, same groups to move), it asks for
  // a rebalance itself (docs/cluster.md, "Automatic rebalance"). 0: never.
  std::chrono::milliseconds auto_rebalance_after{0};
  // Where the node's log lines go ("cluster: ..."); called on the joining thread and on the
  // node's thread, never at once.
  std::function<void(const std::string&)> log_info;
  std::function<void(const std::string&)> log_warning;
  // Called on the node's thread after every change of its view (below), with the new
  // view: a node, module or group state that changed, the controller, a lost connection
  // (controller ""); the first call, from Join, is on the joining thread. It may call CreateModule,
  // DeleteModule, RequestIsrChange and View, not WaitForGroup nor Leave (the node's thread is the
  // one that updates the view).
  std::function<void(const ClusterView&)> on_view_change;
};

// What the node knows of the cluster, as of its last watch.
struct ClusterView {
  std::string node;  // this node's id
  // The controller's node id; "" while unknown: disconnected from ZooKeeper, or between
  // sessions.
  std::string controller;
  bool is_controller = false;
  // The live nodes, by id. A node disconnected from ZooKeeper keeps the nodes, modules and
  // groups it last knew.
  std::vector<NodeInfo> nodes;
  std::map<std::string, ModuleSpec> modules;  // /modules, by name
  // Modules whose /modules znode does not hold a spec (they exist; their spec is unknown).
  std::set<std::string> unreadable_modules;
  std::vector<GroupView> groups;  // /groups, by module then group

  // The state of `module`'s `group`; null when the view has none.
  const GroupView* FindGroup(const std::string& module, int group) const;

  bool operator==(const ClusterView&) const = default;
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

  // The calls below are made in the node's current session, from any thread but the
  // ZooKeeper client's event thread, and not after Leave (kAborted "... has left"). While
  // the node is disconnected they fail with ZooKeeper's connection error.

  // Creates /modules/<spec.name> (kAlreadyExists naming the module when it exists;
  // kInvalidArgument for an empty name or one holding '/'). The controller then places the
  // module's group.
  Status CreateModule(const ModuleSpec& spec);
  // Deletes /modules/<name> (kNotFound when it does not exist). The controller then
  // deletes the module's group states.
  Status DeleteModule(const std::string& name);
  // Asks the controller to set `module`'s `group`'s ISR to `isr` (a group's leader does,
  // leading at `epoch`): creates /isr-change/req-<sequence>. The controller applies it when
  // `epoch` is still the group's and the ISR holds the leader and only replicas.
  // True while the view is current: connected to ZooKeeper, in a session, and read since
  // the connection was (re)established. A node whose view is not current cannot tell that
  // it still leads anything: another node may lead its groups by now. Cheap (an atomic).
  bool ViewCurrent() const { return current_.load(std::memory_order_acquire); }
  // `resign`: the leader cannot lead; `isr` is the ISR without it (isr_change.h).
  Status RequestIsrChange(const std::string& module, int group, int64_t epoch,
                          const std::vector<std::string>& isr, bool resign = false);
  // Asks the controller for a rebalance (docs/cluster.md, "Rebalance"): creates /rebalance
  // (it may exist: one rebalance serves both) and waits until the controller has deleted
  // it, having given every group its target; kTimeout after `timeout`.
  Status RequestRebalance(std::chrono::milliseconds timeout);
  // Waits until the view has a state of `module`'s `group` for which `predicate` holds
  // (called under the view's lock: it must not call the node), and returns it. kTimeout
  // naming the group and its last state after `timeout`. Not on the node's thread.
  Result<GroupView> WaitForGroup(const std::string& module, int group,
                                 const std::function<bool(const GroupView&)>& predicate,
                                 std::chrono::milliseconds timeout);

 private:
  explicit ClusterNode(const ClusterNodeOptions& options);
  // Connects a new session, registers, enters the election and reads the view.
  Status Connect();
  void Run();
  // Reads the nodes, the controller, the modules and the groups (setting the watches that
  // are not set), logs the changes, tells on_view_change, and reconciles when this node is
  // the controller.
  Status Refresh();
  // The controller's automatic rebalance (node's thread, after a reconciliation of `input`
  // that changed nothing): notes since when the placement is unbalanced, asks for a rebalance once
  // it has been for options_.auto_rebalance_after, and sets recheck_at_ until then.
  void AutoRebalance(const PlacementInput& input);
  // The module specs; `unreadable` gets the modules whose znode holds no spec.
  Result<std::map<std::string, ModuleSpec>> ReadModules(std::set<std::string>* unreadable);
  // The group states; `unreadable` gets the groups whose znode holds no group state.
  Result<std::vector<GroupView>> ReadGroups(std::set<std::pair<std::string, int>>* unreadable);
  // A watch for `key` (e.g. "children /groups") that wakes the node's thread; null when one
  // is set already and has not fired (watches are one-shot: this keeps one per znode
  // rather than one per refresh). Disarm(key) when the operation that was to set it failed.
  Watch Arm(const std::string& key);
  void Disarm(const std::string& key);
  // Replaces the view (and wakes WaitForGroup); tells on_view_change when it changed.
  void SetView(const std::function<void(ClusterView&)>& update);
  // Runs `operation` with the session's client for a caller thread (see CreateModule).
  Status WithClient(const std::function<Status(ZkClient&)>& operation);
  void Wake(bool expired);
  // The client's connection to the ensemble was lost (false) or is back (true).
  void OnConnection(bool connected);

  const ClusterNodeOptions options_;
  // Owned by the node's thread after Join (the joining thread before), which replaces or
  // resets client_ only under mu_ while no caller uses it (users_ == 0).
  std::unique_ptr<ZkClient> client_;
  std::unique_ptr<ControllerElection> election_;
  std::unique_ptr<Controller> controller_;

  mutable Mutex mu_;
  CondVar cv_;
  bool refresh_ GUARDED_BY(mu_) = false;
  bool expired_ GUARDED_BY(mu_) = false;
  bool stop_ GUARDED_BY(mu_) = false;
  bool lost_ GUARDED_BY(mu_) = false;             // the connection was lost: log it
  bool lost_controller_ GUARDED_BY(mu_) = false;  // ... while the view said controller
  uint64_t disconnects_ GUARDED_BY(mu_) = 0;      // connections lost so far
  std::atomic<bool> current_{false};              // ViewCurrent()
  ClusterView view_ GUARDED_BY(mu_);
  CondVar view_cv_;                              // view_ changed
  int users_ GUARDED_BY(mu_) = 0;                // callers inside WithClient
  bool left_ GUARDED_BY(mu_) = false;            // Leave() was called
  std::set<std::string> armed_ GUARDED_BY(mu_);  // watches set that have not fired
  // When the node's thread refreshes again unwoken (an automatic rebalance falls due).
  std::optional<std::chrono::steady_clock::time_point> recheck_at_ GUARDED_BY(mu_);
  // Node's thread only: the unbalanced placement seen last (live nodes and groups to move;
  // "" when balanced) and since when.
  std::string unbalanced_;
  std::chrono::steady_clock::time_point unbalanced_since_;
  std::thread thread_;
};

}  // namespace strata::cluster
