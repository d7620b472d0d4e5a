// Task threads (task_thread.h): the loop that serves lanes in rounds, barriers, and the
// progress markers written after each round.
#include "runtime/task_thread.h"

#include <algorithm>
#include <iterator>

#include "runtime/ack_tree.h"
#include "runtime/meta_tables.h"
#include "strata/value_codec.h"

namespace strata::runtime {

TaskThread::TaskThread(int index, std::unique_ptr<Session> session, TableId progress_table,
                       Logger& logger, Settle settle)
    : index_(index),
      session_(std::move(session)),
      progress_table_(progress_table),
      logger_(logger),
      settle_(std::move(settle)) {}

TaskThread::~TaskThread() {
  if (thread_.joinable()) thread_.join();
}

void TaskThread::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void TaskThread::Post(const std::shared_ptr<TaskLane>& lane, Task task) {
  Enqueue(lane, std::move(task), false);
}

void TaskThread::PostEvent(const std::shared_ptr<TaskLane>& lane, Task task) {
  Enqueue(lane, std::move(task), true);
}

void TaskThread::Enqueue(const std::shared_ptr<TaskLane>& lane, Task task, bool event) {
  {
    MutexLock lock(&mu_);
    lane->entries.push_back({std::move(task), event, next_seq_++});
    if (!lane->scheduled) {
      lane->scheduled = true;
      ring_.push_back(lane);
    }
  }
  cv_.Signal();
}

void TaskThread::PostBarrier(Task task) {
  {
    MutexLock lock(&mu_);
    barriers_.push_back({std::move(task), next_seq_++});
  }
  cv_.Signal();
}

void TaskThread::SettleGroup() {
  if (!group_open_) return;
  group_open_ = false;  // first: settle_ may call session()
  settle_(*this);
}

void TaskThread::MarkDirty(std::shared_ptr<ProgressTracker> tracker) {
  {
    MutexLock lock(&mu_);
    dirty_.push_back(std::move(tracker));
  }
  cv_.Signal();
}

void TaskThread::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.Signal();
}

void TaskThread::Loop() {
  std::vector<TaskLane::Entry> slice;
  std::vector<std::shared_ptr<ProgressTracker>> dirty;
  for (;;) {
    size_t round = 0;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && ring_.empty() && barriers_.empty() && dirty_.empty()) cv_.Wait(&mu_);
      if (stopping_ && ring_.empty() && barriers_.empty() && dirty_.empty()) return;
      round = ring_.size();  // the lanes with tasks now; lanes that get tasks meanwhile wait
    }
    RunDueBarriers();
    for (size_t i = 0; i < round && RunSlice(slice); ++i) RunDueBarriers();
    SettleGroup();  // completions (and so progress markers) of the round's events
    {
      MutexLock lock(&mu_);
      dirty.swap(dirty_);
    }
    if (!dirty.empty()) WriteProgress(dirty);
    dirty.clear();
  }
}

bool TaskThread::RunSlice(std::vector<TaskLane::Entry>& slice) {
  std::shared_ptr<TaskLane> lane;
  {
    MutexLock lock(&mu_);
    if (ring_.empty()) return false;
    lane = std::move(ring_.front());
    ring_.pop_front();
    const size_t n = std::min(lane->entries.size(), kSliceTasks);
    std::move(lane->entries.begin(), lane->entries.begin() + n, std::back_inserter(slice));
    lane->entries.erase(lane->entries.begin(), lane->entries.begin() + n);
  }
  const auto start = std::chrono::steady_clock::now();
  size_t ran = 0;
  while (ran < slice.size()) {
    TaskLane::Entry& entry = slice[ran++];
    if (!entry.event) SettleGroup();
    entry.task(*this);
    entry.task = nullptr;  // releases what the task held now, not with the next slice
    if (std::chrono::steady_clock::now() - start >= kSliceTime) break;
  }
  MutexLock lock(&mu_);
  // What the slice did not run goes back to the front of the lane, in order.
  lane->entries.insert(lane->entries.begin(), std::make_move_iterator(slice.begin() + ran),
                       std::make_move_iterator(slice.end()));
  slice.clear();
  if (lane->entries.empty()) {
    lane->scheduled = false;
  } else {
    ring_.push_back(std::move(lane));
  }
  return true;
}

void TaskThread::RunDueBarriers() {
  MutexLock lock(&mu_);
  while (!barriers_.empty()) {
    // Every lane with tasks is in the ring here, and a lane's tasks are in posting order.
    uint64_t oldest = UINT64_MAX;
    for (const std::shared_ptr<TaskLane>& lane : ring_)
      oldest = std::min(oldest, lane->entries.front().seq);
    if (oldest < barriers_.front().seq) return;
    Task task = std::move(barriers_.front().task);
    barriers_.pop_front();
    lock.Unlock();
    SettleGroup();
    task(*this);
    lock.Lock();
  }
}

// Progress markers of a batch of tasks share one small transaction. A marker only ever
// names offsets whose processing committed before it, so the log order guarantees that a
// surviving marker never claims more than survived (docs/runtime.md, "Recovery").
void TaskThread::WriteProgress(std::vector<std::shared_ptr<ProgressTracker>>& trackers) {
  Status st = session_->Begin();
  struct Written {
    ProgressTracker* tracker;
    int64_t processed;
    bool backfilling;
  };
  std::vector<Written> written;
  for (const std::shared_ptr<ProgressTracker>& tracker : trackers) {
    tracker->dirty.store(false, std::memory_order_release);
    if (!st.ok() || tracker->dropped.load(std::memory_order_acquire) || !tracker->persistent)
      continue;
    const int64_t processed = tracker->processed();
    const bool backfilling = tracker->backfilling.load(std::memory_order_acquire);
    if (processed == tracker->recorded && backfilling == tracker->recorded_backfilling) continue;
    std::string bytes;
    AppendValue(ProgressToValue(processed, backfilling), &bytes);
    st = session_->Put(progress_table_, tracker->key(), bytes);
    written.push_back({tracker.get(), processed, backfilling});
  }
  if (st.ok()) st = session_->Commit();
  if (!st.ok()) {
    if (session_->in_transaction()) session_->Rollback();
    // The markers stay behind: replay after a crash starts earlier, which is allowed.
    logger_.Error("writing topology progress failed (replay after a crash starts earlier): " +
                  st.ToString());
    return;
  }
  for (const Written& w : written) {
    w.tracker->recorded = w.processed;
    w.tracker->recorded_backfilling = w.backfilling;
  }
}

}  // namespace strata::runtime
