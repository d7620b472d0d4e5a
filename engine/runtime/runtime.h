// Internals of the embedded engine (engine.h): task threads, deployed modules, the ack tree
// and topology progress. docs/runtime.md describes the design; this header states who owns
// what and which thread touches it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "depot/depot.h"
#include "module/loader.h"
#include "storage/storage.h"
#include "strata/engine.h"
#include "strata/module.h"
#include "strata/pstate.h"

namespace strata::runtime {

class TaskThread;
struct ModuleRuntime;
struct TopologyRun;

// A unit of work for one task thread, run with that thread's Session.
using Task = std::function<void(TaskThread& thread)>;

// Counts appended client records not yet fully processed. Admission never blocks: a batch
// that does not fit waits in a FIFO and is admitted by the Release that makes room.
class InFlightLimit {
 public:
  using Admitted = std::function<void(int64_t permits)>;
  explicit InFlightLimit(int64_t limit) : limit_(limit) {}
  // Takes n permits (n capped at the limit) and calls admitted(n) — at once, on the
  // caller's thread, when they fit and no earlier batch waits; else later, on the thread
  // of the Release that makes room. Batches are admitted in call order.
  void Acquire(int64_t n, Admitted admitted);
  // Returns n permits and runs the waiting batches that now fit (outside the lock).
  void Release(int64_t n);

 private:
  struct Waiter {
    int64_t n;
    Admitted admitted;
  };
  const int64_t limit_;
  std::mutex mu_;
  int64_t used_ = 0;             // GUARDED_BY(mu_)
  std::deque<Waiter> waiters_;  // GUARDED_BY(mu_)
};

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
  bool Complete(int64_t offset);
  const std::string& key() const { return key_; }  // its row in the progress table

  // The value last written to the progress table (owner thread only).
  int64_t recorded = 0;
  // Set while it waits in its owner thread's dirty list.
  std::atomic<bool> dirty{false};
  // Set by Destroy: never write it again.
  std::atomic<bool> dropped{false};

 private:
  const std::string key_;
  std::mutex mu_;
  std::set<int64_t> done_above_;  // GUARDED_BY(mu_): completed offsets above base_
  std::atomic<int64_t> base_;     // written under mu_
};

// One appended depot record: completes when it is durable (client records) and every
// consuming topology has finished it. Then it completes its client slot, or the event of
// its parent run (records a topology appended), and releases its in-flight permit.
struct RecordNode {
  std::shared_ptr<ModuleRuntime> module;
  RecordId id;
  std::atomic<int64_t> pending{0};
  std::shared_ptr<ClientBatch> batch;  // client records
  size_t batch_index = 0;
  std::shared_ptr<TopologyRun> parent;  // records appended by a topology step
  std::mutex mu;
  std::vector<std::pair<std::string, Value>> ack_returns;  // GUARDED_BY(mu), per consumer
  Status failure;                                          // GUARDED_BY(mu), first one
};

// One record going through one topology: counts its events in flight (an event adds its
// children before it completes, so zero means every branch has finished).
struct TopologyRun {
  std::shared_ptr<RecordNode> record;
  int topology = -1;
  int slot = -1;  // index in record->ack_returns
  std::shared_ptr<ProgressTracker> tracker;
  std::atomic<int64_t> pending{1};
};

// One record waiting to be appended to a depot partition.
struct AppendItem {
  Value record;
  std::string bytes;
  std::shared_ptr<ClientBatch> batch;  // client records
  size_t batch_index = 0;
  std::shared_ptr<TopologyRun> parent;  // records appended by a topology step
};

// Records waiting for one depot partition's owner thread, in arrival order. A drain task,
// which takes all of them, is queued on the owner exactly while `items` is not empty.
struct AppendQueue {
  std::mutex mu;
  std::deque<AppendItem> items;  // GUARDED_BY(mu)
};

// A topology event: run ops [op, ...) of the run's topology on a partition with `input`.
struct Event {
  std::shared_ptr<TopologyRun> run;
  int op = 0;
  Value input;
};

// A task thread: one Session, one FIFO queue, the partitions it owns. Tasks run one at a
// time in posting order, so the work of one partition is serialized and ordered.
//
// Event groups: a topology event (a task posted with PostEvent) may leave work open on the
// session — a transaction that consecutive events share — and call GroupOpened(). The
// thread then calls `settle` (given at construction; it commits the group and releases its
// events' effects) before it runs a task posted with Post, after each batch it drains, and
// before session() hands the session out. So code that takes session() never sees a
// group's transaction, and only events run while one is open.
class TaskThread {
 public:
  using Settle = std::function<void(TaskThread& thread)>;
  TaskThread(int index, std::unique_ptr<Session> session, TableId progress_table, Settle settle);
  ~TaskThread();  // joins; Stop() first
  void Start();
  void Post(Task task);
  void PostEvent(Task task);
  // Queues a tracker whose progress marker must be written (by this thread, which owns the
  // tracker's depot partition).
  void MarkDirty(std::shared_ptr<ProgressTracker> tracker);
  // Lets the thread finish its queue, then exit.
  void Stop();

  // The session with no event group open (settles an open one first). Thread only.
  Session& session() {
    SettleGroup();
    return *session_;
  }
  // The session as it is, for the events of the open group. Thread only.
  Session& group_session() { return *session_; }
  // Marks a group open: `settle` runs at the next settling point. Thread only.
  void GroupOpened() { group_open_ = true; }
  // Runs `settle` now if a group is open. Thread only.
  void SettleGroup();
  int index() const { return index_; }

 private:
  struct Entry {
    Task task;
    bool event;  // posted with PostEvent: runs with the group open
  };
  void Enqueue(Task task, bool event);
  void Loop();
  void WriteProgress(std::vector<std::shared_ptr<ProgressTracker>>& trackers);

  const int index_;
  const std::unique_ptr<Session> session_;
  const TableId progress_table_;
  const Settle settle_;
  bool group_open_ = false;  // thread only
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Entry> queue_;                                // GUARDED_BY(mu_)
  std::vector<std::shared_ptr<ProgressTracker>> dirty_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                                  // GUARDED_BY(mu_)
};

// State of one module partition, touched only by its owner thread.
struct PartitionRuntime {
  TaskThread* owner = nullptr;
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
  std::atomic<bool> closed{false};      // set by Destroy: appends are refused

  // Progress waiters (WaitProcessed).
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  std::atomic<int> progress_waiters{0};

  std::mutex failures_mu;
  int64_t failure_count = 0;  // GUARDED_BY(failures_mu): rows of the failures table
};

}  // namespace strata::runtime
