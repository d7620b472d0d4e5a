// The microbatch topology executor (docs/runtime.md, "Microbatch topologies"), a peer of the
// stream executor. Each microbatch topology of a running module has a worker thread that
// runs batches one after the other: it fixes the batch's offset range on every source depot
// partition (bounded in records and bytes), runs the whole chain over those records — steps,
// partitioners, Aggregate and GroupBy — in one WiredTiger transaction of its own session,
// and commits the effects of every partition together with the topology's progress and the
// batch's plan. So a batch is applied exactly once, and a reader never sees part of one.
// After the commit is durable it completes the acks of the batch's records.
//
// A shadow runtime (a recompute) replays the recorded plans instead of choosing ranges, so
// its PStates are the fold of exactly the batches the live topology applied.
//
// Threading: a MicrobatchRuntime's worker owns its batch state; waiters and flags are
// guarded by its mutex. Enqueue runs on task threads (RunAppend), the durability callback
// on the storage flusher, Start/Stop/WaitDrained on admin threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/ack_tree.h"
#include "runtime/module_runtime.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

class EngineImpl;
struct BatchPlan;

// One microbatch topology of one module runtime.
struct MicrobatchRuntime {
  MicrobatchRuntime(int topology, size_t depots, int partitions)
      : topology(topology),
        waiters(depots, std::vector<std::deque<Waiter>>(partitions)),
        durable(depots, std::vector<int64_t>(partitions, 0)) {}

  struct Waiter {
    int64_t offset;
    std::shared_ptr<AckNode> node;
  };

  const int topology;
  // The worker's: the last batch committed and, by [depot][partition], its end offsets.
  int64_t batch = 0;
  std::vector<std::vector<int64_t>> applied;
  // The worker's too: whether a batch since Start wrote every progress row, and the backfill flag
  // they carry.
  bool rows_written = false;
  bool rows_backfilling = false;
  // While it catches up with records appended before it existed (a new topology after an
  // update): acks do not wait for it.
  std::atomic<bool> backfilling{false};
  // The last batch committed (read by other threads).
  std::atomic<int64_t> committed{0};

  Mutex mu;
  CondVar cv;  // signalled on wake, stop, and each durable batch
  bool wake GUARDED_BY(mu) = false;
  bool stop GUARDED_BY(mu) = false;
  // Records whose `processed` ack waits for this topology, by [depot][partition], in offset
  // order; and the end offsets of the last durable batch.
  std::vector<std::vector<std::deque<Waiter>>> waiters GUARDED_BY(mu);
  std::vector<std::vector<int64_t>> durable GUARDED_BY(mu);
  // Why the last batch could not commit (empty: it did); shown by stats.
  std::string stalled GUARDED_BY(mu);
  std::thread worker;
};

class MicrobatchExecutor {
 public:
  explicit MicrobatchExecutor(EngineImpl& engine) : engine_(engine) {}

  // Starts the workers of `m`'s microbatch topologies from their recorded progress (a
  // shadow: from offset 0, replaying the recorded plans).
  Status Start(const std::shared_ptr<ModuleRuntime>& m);
  // Stops and joins them (a batch in progress finishes first) and waits until their last
  // batch is durable and its progress trackers have moved.
  void Stop(ModuleRuntime& m);
  // Wakes the workers of the microbatch topologies consuming (depot, partition), and
  // registers each node that counts a part for the topologies `counted` (those not
  // backfilling; see WaitsFor) to complete with the batch that applies its record. Owner
  // thread of the partition, right after the records were appended.
  void Enqueue(ModuleRuntime& m, int depot, int partition,
               const std::vector<std::shared_ptr<AckNode>>& nodes, const std::vector<int>& counted);
  // Whether `node` (its batch and parent set) waits for microbatch topologies
  // (AckNode::waits_batches): not at AckLevel::kProcessedStreams, which a record appended by
  // a step inherits from the record it descends from.
  static bool WaitsFor(const AckNode& node) {
    if (node.batch) return node.batch->level != AckLevel::kProcessedStreams;
    if (node.parent) return node.parent->record->waits_batches;
    return true;
  }
  // Blocks until Drained(m) (Quiesce: the module's gate is closed).
  void WaitDrained(ModuleRuntime& m);
  // Whether every running microbatch topology of `m` has applied every record its depots
  // hold now.
  static bool Drained(ModuleRuntime& m);
  // Blocks until each microbatch topology of the shadow `s` has replayed the batches the
  // live runtime `m` committed.
  void WaitReplayed(ModuleRuntime& s, const ModuleRuntime& m);
  // Whether every microbatch topology of the shadow `s` has replayed every recorded plan.
  static bool Replayed(const ModuleRuntime& s, const ModuleRuntime& m);

 private:
  Status StartWorkers(const std::shared_ptr<ModuleRuntime>& m);
  void Run(std::weak_ptr<ModuleRuntime> weak, MicrobatchRuntime* mb);
  // Runs and commits batch `plan`: steps that fail are retried, then dropped and recorded;
  // a failed commit is returned (the caller runs the batch again later).
  Status RunBatch(ModuleRuntime& m, const TopologyDef& topology, Session& session,
                  MicrobatchRuntime* mb, const BatchPlan& plan);

  EngineImpl& engine_;
};

}  // namespace strata::runtime
