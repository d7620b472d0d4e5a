// A deployed, loaded module as the runtime holds it: its plugin, depots, PStates, progress
// trackers, append queues and the state of each of its partitions (docs/runtime.md).
//
// Threading: immutable after it is published except where noted; a PartitionRuntime is
// touched only by its owner task thread.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "depot/depot.h"
#include "module/loader.h"
#include "pstate/pstate.h"
#include "runtime/ack_tree.h"
#include "runtime/append_path.h"
#include "runtime/task_thread.h"
#include "strata/module.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

// State of one module partition, touched only by its owner thread (`owner` and `lane` are
// set before the module is published and never change; the lane's contents are guarded by
// the owner's lock).
struct PartitionRuntime {
  TaskThread* owner = nullptr;
  std::shared_ptr<TaskLane> lane = std::make_shared<TaskLane>();  // its tasks on `owner`
  void Post(Task task) { owner->Post(lane, std::move(task)); }
  void PostEvent(Task task) { owner->PostEvent(lane, std::move(task)); }
  // While recorded progress is replayed after Open, appends to the partition wait here so
  // that records are still processed in offset order.
  int replays_pending = 0;  // depots of the partition still replaying
  std::deque<Task> deferred;
};

// A deployed module. Shared by the engine's module table and by the work in flight for it.
// Immutable after Open except where noted.
struct ModuleRuntime {
  // Declared first, so destroyed last: the code of every function in `def` (and of the
  // tasks that hold them) lives in the plugin.
  std::unique_ptr<LoadedModule> loaded;
  const ModuleDef* def = nullptr;
  std::string name;
  int partitions = 0;
  std::vector<std::unique_ptr<Depot>> depots;
  std::vector<std::unique_ptr<PState>> pstates;
  std::vector<std::vector<int>> consumers;  // depot index -> consuming topology indexes
  // trackers[topology][depot][partition]; null when the topology does not consume the depot.
  std::vector<std::vector<std::vector<std::shared_ptr<ProgressTracker>>>> trackers;
  std::vector<PartitionRuntime> parts;  // each touched only by its owner thread
  // append_queues[depot][partition] (EngineImpl::PostAppend).
  std::vector<std::vector<std::unique_ptr<AppendQueue>>> append_queues;
  std::atomic<bool> closed{false};  // set by Destroy: appends are refused

  // Progress waiters (WaitProcessed).
  Mutex progress_mu;
  CondVar progress_cv;  // signalled under progress_mu when a tracker of the module moves
  std::atomic<int> progress_waiters{0};

  Mutex failures_mu;
  int64_t failure_count GUARDED_BY(failures_mu) = 0;  // rows of the failures table
};

}  // namespace strata::runtime
