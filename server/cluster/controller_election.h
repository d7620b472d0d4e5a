// Controller election, ZooKeeper's ephemeral-sequential recipe: each candidate creates
// /controller/candidate-<sequence> (EPHEMERAL_SEQUENTIAL, holding its node id); the lowest
// sequence is the controller. A candidate that is not the lowest watches only the
// candidate just below it, so that a departure wakes one candidate, not all of them (no
// herd effect). Nothing else is written: who the controller is derives from the
// candidates (CurrentController).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "strata/status.h"
#include "strata/thread_annotations.h"
#include "zk_client.h"

namespace strata::cluster {

inline constexpr std::string_view kControllerPath = "/controller";

class ControllerElection {
 public:
  // Called on the election's thread with IsController(): once after the first evaluation,
  // then on every change. It may call the client (it is not the client's event thread).
  using OnChange = std::function<void(bool is_controller)>;

  // Enters the election in `client`'s session, which outlives the election. Returns once
  // the candidate znode exists; the first evaluation follows on the election's thread.
  static Result<std::unique_ptr<ControllerElection>> Enter(ZkClient& client,
                                                           const std::string& node_id,
                                                           OnChange on_change);
  // Withdraws: stops the thread, deletes the candidate znode (when the session still can).
  ~ControllerElection();
  ControllerElection(const ControllerElection&) = delete;
  ControllerElection& operator=(const ControllerElection&) = delete;

  // Whether this candidate is the lowest, as last evaluated. Any thread. Stays true while
  // the session is disconnected but not expired: a controller's writes are fenced by the
  // versions of what it writes (group_state.h), not by this flag.
  bool IsController() const;
  // The candidate's znode name, e.g. "candidate-0000000007".
  const std::string& candidate() const { return candidate_; }

  // The node id held by the lowest candidate; "" when there is none. Not on the event
  // thread.
  static Result<std::string> CurrentController(ZkClient& client);

 private:
  struct Wakeup;
  ControllerElection(ZkClient& client, std::string candidate, OnChange on_change);
  void Run();
  // One evaluation: decides IsController and sets the watch (on the predecessor, or on
  // its own candidate for the controller). Sets *again when the watched candidate is gone
  // already (evaluate again at once); an error is retried after a short pause.
  Status Evaluate(bool* again);

  ZkClient& client_;
  const std::string candidate_;
  const OnChange on_change_;
  // Shared with the watches, which may fire after the election is gone.
  const std::shared_ptr<Wakeup> wakeup_;
  mutable Mutex mu_;
  bool is_controller_ GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace strata::cluster
