// Internals of the embedded engine (engine.h): task threads, deployed modules, the ack tree
// and topology progress. docs/runtime.md describes the design; this header states who owns
// what and which thread touches it.
#pragma once

#include <atomic>
#include <chrono>
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
#include "pstate/pstate.h"
#include "storage/storage.h"
#include "strata/engine.h"
#include "strata/module.h"

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
  // Records appended by a topology step: their meta.outbox row, deleted in the transaction
  // that appends them (outbox.h).
  std::string outbox_key;
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

// The tasks waiting for one module partition on its owner thread, in posting order. The
// partition owns it (PartitionRuntime::lane); the owner's ring holds it while it has tasks.
// Touched only under the owner TaskThread's lock.
struct TaskLane {
  struct Entry {
    Task task;
    bool event = false;  // posted with PostEvent: runs with the group open
    uint64_t seq = 0;    // the owner's posting order, over all its lanes and barriers
  };
  std::deque<Entry> entries;
  bool scheduled = false;  // in the ring, or being run
};

// A task thread: one Session, the partitions it owns, and for each of them a lane of tasks.
// Tasks of one partition run one at a time in posting order, so its work is serialized and
// ordered. The thread serves its lanes in rounds: each lane with tasks runs a slice — at
// most kSliceTasks tasks and, once a task ends, no more after kSliceTime — then the next
// lane. So one partition's backlog (the hops of a record that fans out to 250,000 values)
// delays another partition or module on the thread by about one slice per busy lane, not
// by the whole backlog (docs/runtime.md, "Fairness").
//
// Event groups: a topology event (a task posted with PostEvent) may leave work open on the
// session — a transaction that consecutive events share — and call GroupOpened(). The
// thread then calls `settle` (given at construction; it commits the group and releases its
// events' effects) before it runs a task posted with Post or PostBarrier, after each round,
// and before session() hands the session out. So code that takes session() never sees a
// group's transaction, and only events run while one is open.
class TaskThread {
 public:
  using Settle = std::function<void(TaskThread& thread)>;
  static constexpr size_t kSliceTasks = 256;
  static constexpr std::chrono::microseconds kSliceTime{2000};

  TaskThread(int index, std::unique_ptr<Session> session, TableId progress_table, Settle settle);
  ~TaskThread();  // joins; Stop() first
  void Start();
  void Post(const std::shared_ptr<TaskLane>& lane, Task task);
  void PostEvent(const std::shared_ptr<TaskLane>& lane, Task task);
  // Runs `task` once every task posted to this thread before it (on any lane) has run.
  void PostBarrier(Task task);
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
  struct Barrier {
    Task task;
    uint64_t seq;
  };
  void Enqueue(const std::shared_ptr<TaskLane>& lane, Task task, bool event);
  void Loop();
  // Runs one slice of the lane at the front of the ring; false when the ring is empty.
  bool RunSlice(std::vector<TaskLane::Entry>& slice);
  // Runs the barriers whose earlier tasks have all run.
  void RunDueBarriers();
  void WriteProgress(std::vector<std::shared_ptr<ProgressTracker>>& trackers);

  const int index_;
  const std::unique_ptr<Session> session_;
  const TableId progress_table_;
  const Settle settle_;
  bool group_open_ = false;  // thread only
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  // Lanes with tasks, in serving order. A lane being run is out of the ring; its remaining
  // tasks are put back before the lock is released between slices.
  std::deque<std::shared_ptr<TaskLane>> ring_;             // GUARDED_BY(mu_)
  std::deque<Barrier> barriers_;                           // GUARDED_BY(mu_)
  uint64_t next_seq_ = 0;                                  // GUARDED_BY(mu_)
  std::vector<std::shared_ptr<ProgressTracker>> dirty_;  // GUARDED_BY(mu_)
  bool stopping_ = false;                                  // GUARDED_BY(mu_)
};

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
  std::atomic<bool> closed{false};      // set by Destroy: appends are refused

  // Progress waiters (WaitProcessed).
  std::mutex progress_mu;
  std::condition_variable progress_cv;
  std::atomic<int> progress_waiters{0};

  std::mutex failures_mu;
  int64_t failure_count = 0;  // GUARDED_BY(failures_mu): rows of the failures table
};

}  // namespace strata::runtime
