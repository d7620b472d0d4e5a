// A deployed, loaded module as the runtime holds it: its plugin, depots, PStates, progress
// trackers, append queues and the state of each of its partitions (docs/runtime.md).
//
// Threading: immutable after it is published except where noted; a PartitionRuntime is
// touched only by its owner task thread.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "depot/depot.h"
#include "module/loader.h"
#include "pstate/pstate.h"
#include "runtime/ack_tree.h"
#include "runtime/append_path.h"
#include "runtime/metrics_registry.h"
#include "runtime/mirror.h"
#include "runtime/task_thread.h"
#include "strata/module.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

struct MicrobatchRuntime;  // microbatch_executor.h
class QueryExecutor;       // query_executor.h
class SubscriptionHub;     // subscriptions.h

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
  // (topology, depot) pairs still catching up on this partition (a backfill or a
  // recompute): live records skip them; their cursor reads the depot until it reaches the
  // end, and then they take live records (docs/runtime.md, "Backfill").
  std::vector<std::pair<int, int>> catching_up;
  // The module's rebuild (a Recompute) once it started here: each record appended to the
  // partition is also started in the rebuild's topologies that have caught up.
  std::shared_ptr<ModuleRuntime> shadow;
  bool CatchingUp(int topology, int depot) const {
    for (const auto& [t, d] : catching_up) {
      if (t == topology && d == depot) return true;
    }
    return false;
  }
};

// The background pass of one PState's migration (migration.cc): per partition, the encoded
// key of the last value rewritten and whether the partition is done (owner thread only);
// `left` counts partitions not done. Its state is recorded in meta.progress, so a restart
// or the next version resumes it.
struct MigrationPass {
  std::string id;
  std::vector<std::string> after;
  std::vector<char> done;
  std::atomic<int> left{0};
  std::atomic<bool> failed{false};  // the function failed: the pass stopped (see the log)
};

// An AppendAsync call that arrived while its module was being updated: it is replayed
// against the new version once it is installed (EngineImpl::Update).
struct HeldAppend {
  std::string depot;
  std::vector<Value> records;
  AckLevel level;
  Engine::AppendCallback done;
};

// A deployed module. Shared by the engine's module table and by the work in flight for it.
// Immutable after Open except where noted.
struct ModuleRuntime : std::enable_shared_from_this<ModuleRuntime> {
  // Declared first, so destroyed last: the code of every function in `def` (and of the
  // tasks that hold them) lives in the plugin.
  std::shared_ptr<LoadedModule> loaded;  // shared by the versions a rebuild swaps
  const ModuleDef* def = nullptr;
  std::string name;
  int partitions = 0;
  // The engine's: every TopologyContext of the module invokes queries and reads mirror
  // PStates through it.
  QueryExecutor* queries = nullptr;
  // The engine's live subscriptions: writers record what they touch and notify it after
  // their commits. Null in a rebuild's shadow (its tables are not the live PStates).
  SubscriptionHub* subscriptions = nullptr;
  // From the module's meta.modules row (docs/runtime.md, "Deploy, destroy, metadata and
  // on-disk layout"): the version (1 at deploy, +1 per update), the file of its plugin, the
  // generation of its depot tables (+1 per rescale) and of each PState's tables (+1 per
  // recompute or rescale), by PState index.
  int version = 1;
  std::string file;
  std::string checksum;
  int depot_generation = 0;
  std::vector<int> pstate_generations;
  // By PState index: its migration's pass while one runs (null otherwise).
  std::vector<std::shared_ptr<MigrationPass>> migrations;
  // Shared with the module's next version (Update) while it keeps the same depot or PState.
  // A mirror depot (DepotDef::mirror_of) is the other module's Depot object.
  std::vector<std::shared_ptr<Depot>> depots;
  std::vector<std::shared_ptr<PState>> pstates;
  // By depot index: who mirrors the depot (shared like `depots`; for a mirror depot, the
  // other module's taps, to which this runtime adds its own).
  std::vector<std::shared_ptr<DepotTaps>> taps;
  // mirror_cursors[topology][depot]: the cursor of a stream topology over a mirror depot
  // (null otherwise); mirror_taps: the taps that wake microbatch topologies consuming a
  // mirror depot. Both are registered in the other module's `taps` while this runtime lives.
  std::vector<std::vector<std::shared_ptr<MirrorCursor>>> mirror_cursors;
  std::vector<std::shared_ptr<DepotTap>> mirror_taps;
  // depot index -> consuming topology indexes: stream topologies in `consumers`,
  // microbatch topologies in `batch_consumers`.
  std::vector<std::vector<int>> consumers;
  std::vector<std::vector<int>> batch_consumers;
  // By topology index: the microbatch's runtime state (null for a stream topology).
  std::vector<std::shared_ptr<MicrobatchRuntime>> microbatches;
  // By PState index: the microbatch topology that writes it, or -1 (streams may write it).
  std::vector<int> pstate_writer;
  // trackers[topology][depot][partition]; null when the topology does not consume the depot.
  std::vector<std::vector<std::vector<std::shared_ptr<ProgressTracker>>>> trackers;
  std::vector<PartitionRuntime> parts;  // each touched only by its owner thread
  // By depot and topology index: their counters (MetricsRegistry; a mirror depot's are
  // unused: its records are appended by the module that owns it).
  std::vector<std::shared_ptr<DepotCounters>> depot_counters;
  std::vector<std::shared_ptr<TopologyCounters>> topology_counters;
  // append_queues[depot][partition] (EngineImpl::PostAppend).
  std::vector<std::vector<std::unique_ptr<AppendQueue>>> append_queues;
  // Set by Destroy (and a replicated engine's Follow): appends are refused.
  std::atomic<bool> closed{false};
  // Set by a replicated engine's Follow before it stops the module: the appends whose
  // callback has not run yet fail with kAborted (leadership moved). Shared with the
  // callbacks, which outlive the runtime.
  std::shared_ptr<std::atomic<bool>> stepped_down = std::make_shared<std::atomic<bool>>(false);

  // A rebuild (Recompute, rescale) runs the module's topologies in a second runtime, a
  // *shadow*, over the same code: it writes every PState into tables of its own (the next
  // generation), so that a step reading another PState sees the state of the same log
  // prefix; it drops its depot appends and ack returns (the log already holds those
  // records), and keeps its failures in `shadow_failures` instead of meta.failures. Its
  // trackers are not persisted. `swap_in` (by PState index) says which of its PStates
  // replace the live ones at the end; the others are scratch, dropped after the swap.
  bool is_shadow = false;
  std::vector<bool> swap_in;
  // The live module's shadow while a Recompute runs (set under admin_mu_).
  std::shared_ptr<ModuleRuntime> rebuild;
  // Record nodes of the module not complete yet (Update waits for zero).
  std::atomic<int64_t> live_nodes{0};
  // AppendAsync calls past the update gate whose records are not yet posted to the
  // partitions (waiting for the in-flight limit).
  std::atomic<int64_t> admitting{0};
  // Set by Update: catch-up cursors stop starting records (they resume from their
  // progress in the next version).
  std::atomic<bool> stopping{false};

  // The update gate: while `updating`, AppendAsync calls are held in `held`; once the next
  // version is installed they go to `successor`, as does every later call that still found
  // this version.
  Mutex hold_mu;
  bool updating GUARDED_BY(hold_mu) = false;
  std::shared_ptr<ModuleRuntime> successor GUARDED_BY(hold_mu);
  std::vector<HeldAppend> held GUARDED_BY(hold_mu);
  int64_t held_records GUARDED_BY(hold_mu) = 0;
  // Set when an update committed but its version could not be opened: calls are answered
  // with kNotFound and this reason.
  std::string gone GUARDED_BY(hold_mu);
  // Set by Publish once a successor is installed: WaitProcessed stops waiting on this
  // runtime's trackers (some may never move again) and looks the module up again.
  std::atomic<bool> replaced{false};

  // Progress waiters (WaitProcessed).
  Mutex progress_mu;
  CondVar progress_cv;  // signalled under progress_mu when a tracker of the module moves
  std::atomic<int> progress_waiters{0};

  Mutex failures_mu;
  int64_t failure_count GUARDED_BY(failures_mu) = 0;  // rows of the failures table
  std::map<std::string, TopologyFailure> shadow_failures GUARDED_BY(failures_mu);  // by key
};

// The PState a step names (TopologyContext), checked against the module's declarations.
inline Result<const PState*> PStateOf(const ModuleRuntime& m, const PStateRef& ref) {
  const std::vector<PStateDef>& defs = m.def->pstates;
  if (ref.index < 0 || ref.index >= static_cast<int>(defs.size()) ||
      defs[ref.index].name != ref.name) {
    return Status::InvalidArgument("module " + m.name + " has no PState " + ref.name);
  }
  return m.pstates[ref.index].get();
}

// Detaches every mirror cursor of `m` (MirrorCursor::Detach).
inline void DetachMirrorCursors(const ModuleRuntime& m) {
  for (const auto& by_depot : m.mirror_cursors) {
    for (const std::shared_ptr<MirrorCursor>& cursor : by_depot) {
      if (cursor) cursor->Detach();
    }
  }
}

inline bool IsMirror(const ModuleRuntime& m, int depot) {
  return !m.def->depots[depot].mirror_of.empty();
}

// The modules whose depots, PStates or queries `def` uses (MirrorDepot, MirrorPState,
// MirrorQuery), sorted, each once.
std::vector<std::string> DependsOn(const ModuleDef& def);

// Calls fn(topology, depot, partition, tracker) for every progress tracker of `m`.
template <typename F>
void ForEachTracker(const ModuleRuntime& m, F fn) {
  for (size_t t = 0; t < m.trackers.size(); ++t) {
    for (size_t d = 0; d < m.trackers[t].size(); ++d) {
      for (size_t p = 0; p < m.trackers[t][d].size(); ++p) {
        fn(static_cast<int>(t), static_cast<int>(d), static_cast<int>(p), m.trackers[t][d][p]);
      }
    }
  }
}

// Sets the `dropped` flag of every tracker of `m` (they write no more progress).
inline void SetTrackersDropped(const ModuleRuntime& m, bool dropped) {
  ForEachTracker(m, [dropped](int, int, int, const std::shared_ptr<ProgressTracker>& tracker) {
    tracker->dropped.store(dropped);
  });
}

}  // namespace strata::runtime
