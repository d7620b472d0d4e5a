// Controller: the controller's side of the cluster (docs/cluster.md, "The controller").
// ClusterNode calls Reconcile on its own thread after every change it watched — of /nodes,
// /modules, /groups, /isr-change — while its election says it is the controller. Reconcile
// reads the pending ISR change requests, decides with placement.h's Reconcile and makes the
// writes: group states through GroupStateStore (compare-and-set fenced by the candidacy),
// the subtree of a deleted module, then the deletion of the requests it read. Each decision
// is logged ("cluster: module m group 0: leader n2 epoch 3 (n1's session ended), isr
// [n2,n3]").
#pragma once

#include <functional>
#include <string>

#include "group_state.h"
#include "placement.h"
#include "strata/status.h"
#include "zk_client.h"

namespace strata::cluster {

// Exists while a rebalance is asked for (docs/cluster.md, "Rebalance"): created by any node
// (ClusterNode::RequestRebalance), deleted by the controller once it gave every group its
// target.
inline constexpr std::string_view kRebalancePath = "/rebalance";

class Controller {
 public:
  using Log = std::function<void(const std::string&)>;

  // Writes in `client`'s session (which outlives the controller), fenced by `candidate`,
  // the election's candidacy (ControllerElection::candidate()).
  Controller(ZkClient& client, std::string candidate, Log log_info, Log log_warning);

  // One reconciliation from `input` (the live nodes, modules and groups as just read; its
  // isr_changes are read here, with `on_isr_change` set on /isr-change's children when
  // given, and its rebalance, with `on_rebalance` set on /rebalance's existence). The writes are
  // made in order; the first that fails stops it: kAborted when a group state moved since it was
  // read or the candidacy is gone, kAlreadyExists when a group state was created meanwhile,
  // kNotFound when one was deleted — the caller reads again and calls again. The ISR change
  // requests are deleted only once every write was made, and /rebalance then. Not on the client's
  // event thread. True when it changed nothing — no write, no request, no rebalance: the
  // groups are as `input` has them.
  Result<bool> Reconcile(PlacementInput input, Watch on_isr_change, Watch on_rebalance = nullptr);

 private:
  // Reads /isr-change's requests, in the order they were made; a request that does not
  // parse is logged and deleted.
  Result<std::vector<IsrChangeRequest>> ReadIsrChanges(Watch on_isr_change);
  Status Write(const GroupWrite& write);
  // Deletes /groups/<module> and its children, unless /modules/<module> exists again (a
  // deploy of the same name since the input was read).
  Status DeleteModuleGroups(const std::string& module);

  ZkClient& client_;
  GroupStateStore store_;
  const Log log_info_;
  const Log log_warning_;
};

}  // namespace strata::cluster
