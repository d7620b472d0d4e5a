// Task threads (docs/runtime.md, "Threads and partitions", "Fairness"): each owns a
// Session and the partitions assigned to it, and runs their tasks, one at a time, in lanes
// served in rounds; after each round it settles its event group and writes the progress
// markers queued on it.
//
// Threading: Post*, MarkDirty and Stop may be called from any thread; the methods marked
// "Thread only" only from the task thread itself (inside a task).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "storage/storage.h"
#include "strata/logger.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

class TaskThread;
class ProgressTracker;

// A unit of work for one task thread, run with that thread's Session.
using Task = std::function<void(TaskThread& thread)>;

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

  // `logger` outlives the thread (the engine's).
  TaskThread(int index, std::unique_ptr<Session> session, TableId progress_table, Logger& logger,
             Settle settle);
  ~TaskThread();  // joins; Stop() first
  void Start();
  void Post(const std::shared_ptr<TaskLane>& lane, Task task) EXCLUDES(mu_);
  void PostEvent(const std::shared_ptr<TaskLane>& lane, Task task) EXCLUDES(mu_);
  // Runs `task` once every task posted to this thread before it (on any lane) has run.
  void PostBarrier(Task task) EXCLUDES(mu_);
  // Queues a tracker whose progress marker must be written (by this thread, which owns the
  // tracker's depot partition).
  void MarkDirty(std::shared_ptr<ProgressTracker> tracker) EXCLUDES(mu_);
  // Lets the thread finish its queue, then exit.
  void Stop() EXCLUDES(mu_);

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
  void Enqueue(const std::shared_ptr<TaskLane>& lane, Task task, bool event) EXCLUDES(mu_);
  void Loop() EXCLUDES(mu_);
  // Runs one slice of the lane at the front of the ring; false when the ring is empty.
  bool RunSlice(std::vector<TaskLane::Entry>& slice) EXCLUDES(mu_);
  // Runs the barriers whose earlier tasks have all run.
  void RunDueBarriers() EXCLUDES(mu_);
  void WriteProgress(std::vector<std::shared_ptr<ProgressTracker>>& trackers);

  const int index_;
  const std::unique_ptr<Session> session_;
  const TableId progress_table_;
  Logger& logger_;
  const Settle settle_;
  bool group_open_ = false;  // thread only
  std::thread thread_;
  Mutex mu_;
  CondVar cv_;  // signalled when a task, barrier or dirty tracker arrives, and by Stop
  // Lanes with tasks, in serving order. A lane being run is out of the ring; its remaining
  // tasks are put back before the lock is released between slices.
  std::deque<std::shared_ptr<TaskLane>> ring_ GUARDED_BY(mu_);
  std::deque<Barrier> barriers_ GUARDED_BY(mu_);
  uint64_t next_seq_ GUARDED_BY(mu_) = 0;
  std::vector<std::shared_ptr<ProgressTracker>> dirty_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace strata::runtime
