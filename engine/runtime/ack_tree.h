// The ack tree and topology progress (docs/runtime.md, "Ack levels and the ack tree",
// "Progress and at-least-once recovery"): an AckNode per appended record, a TopologyRun per
// (record, consuming topology), the client side of an AppendAsync call, and a progress
// tracker per (topology, depot partition). EngineImpl completes them (ack_tree.cc).
//
// Threading: nodes and runs are created on the owner thread of their depot partition and
// completed on any thread (task threads, the storage flusher); the counters are atomic and
// the fields marked GUARDED_BY under their mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "strata/engine.h"
#include "strata/histogram.h"
#include "strata/module.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

struct ModuleRuntime;
struct TopologyRun;

// Where client appends spend their time (EngineMetrics::append_phases), one observation per
// batch that reached its level: see EngineMetrics.
struct AppendPhaseHistograms {
  DurationHistogram queued;
  DurationHistogram appended;
  DurationHistogram flush_wait;
  DurationHistogram processing;
};

// Steady-clock nanoseconds (0: not yet) at which a client batch got somewhere; each is set
// once, by the first of its records to get there (MarkOnce).
struct BatchTimes {
  std::atomic<int64_t> admitted{0};
  std::atomic<int64_t> append_started{0};
  std::atomic<int64_t> append_committed{0};
  std::atomic<int64_t> durable{0};
};
int64_t SteadyNowNs();
inline void MarkOnce(std::atomic<int64_t>& mark, int64_t now) {
  int64_t unset = 0;
  mark.compare_exchange_strong(unset, now, std::memory_order_relaxed);
}

// The client side of one AppendAsync call: one result per record, completed when each
// record reaches the requested level.
struct ClientBatch {
  AckLevel level = AckLevel::kProcessed;
  Engine::AppendCallback done;
  std::vector<AppendResult> results;  // slot i written only by the completion of record i
  std::atomic<int64_t> remaining{0};  // records that have not reached `level`
  // The first `permits` records each release one permit when complete. Set when the batch
  // is admitted, before its records are posted.
  int64_t permits = 0;

  // Set at creation; `phases` (may be null) gets the batch's times when it succeeds.
  BatchTimes times;
  AppendPhaseHistograms* phases = nullptr;

  // Records that record `index` reached the level; calls `done` after the last one.
  void RecordReached();
  // Fails the whole batch once (the first error wins); later completions are ignored.
  void Fail(Status status);
  std::atomic<bool> finished{false};
};

// Per (topology, depot partition): which records are fully processed. Offsets start in
// order on the partition's owner thread; they complete in any order on any thread.
class ProgressTracker {
 public:
  ProgressTracker(std::string key, int64_t recorded)
      : recorded(recorded), key_(std::move(key)), base_(recorded) {}

  // Every offset below it is complete.
  int64_t processed() const { return base_.load(std::memory_order_acquire); }
  // Marks `offset` complete; returns true when processed() moved.
  bool Complete(int64_t offset) EXCLUDES(mu_);
  // Marks every offset below `end` complete (a microbatch's durable batch).
  void AdvanceTo(int64_t end) EXCLUDES(mu_);
  const std::string& key() const { return key_; }  // its row in the progress table

  // The value last written to the progress table (owner thread only).
  int64_t recorded = 0;
  // Set while it waits in its owner thread's dirty list.
  std::atomic<bool> dirty{false};
  // Set by Destroy, and by Update for a (topology, depot) pair the new version drops:
  // never write it again.
  std::atomic<bool> dropped{false};
  // Catching up (a backfill): its topology takes no live records on this partition yet and
  // its cursor has started every offset below backfill_next. Its progress row records the
  // state ({"offset", "backfill": true}), so a restart resumes the backfill instead of
  // replaying it. `parked`: the cursor waits for completions (too far ahead of processed()).
  std::atomic<bool> backfilling{false};
  std::atomic<int64_t> backfill_next{0};
  std::atomic<bool> parked{false};
  bool recorded_backfilling = false;  // with `recorded` (owner thread only)
  // Whether this tracker's progress is written to meta.progress (not for a recompute's
  // trackers, which exist only until the swap).
  bool persistent = true;

 private:
  const std::string key_;
  Mutex mu_;
  std::set<int64_t> done_above_ GUARDED_BY(mu_);  // completed offsets above base_
  std::atomic<int64_t> base_;                     // written under mu_
};

// One appended depot record: completes when it is durable (client records) and every
// consuming topology has finished it. Then it completes its client slot, or the event of
// its parent run (records a topology appended), and releases its in-flight permit.
struct AckNode {
  std::shared_ptr<ModuleRuntime> module;
  RecordId id;
  std::atomic<int64_t> pending{0};
  std::shared_ptr<ClientBatch> batch;  // client records
  size_t batch_index = 0;
  std::shared_ptr<TopologyRun> parent;  // records appended by a topology step
  // Whether the node counts a part for each consuming microbatch topology: not for a client
  // record appended at kProcessedStreams, nor for the records its steps append, recursively.
  bool waits_batches = true;
  Mutex mu;
  std::vector<std::pair<std::string, Value>> ack_returns GUARDED_BY(mu);  // per consumer
  Status failure GUARDED_BY(mu);                                          // the first one
};

// One record going through one topology: counts its events in flight (an event adds its
// children before it completes, so zero means every branch has finished).
struct TopologyRun {
  std::shared_ptr<AckNode> record;
  int topology = -1;
  int slot = -1;  // index in record->ack_returns
  std::shared_ptr<ProgressTracker> tracker;
  std::atomic<int64_t> pending{1};
};

}  // namespace strata::runtime
