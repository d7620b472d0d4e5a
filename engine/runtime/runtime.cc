#include "runtime/runtime.h"

#include <algorithm>
#include <cstdio>

#include "strata/value_codec.h"

namespace strata::runtime {

void InFlightLimit::Acquire(int64_t n, Admitted admitted) {
  n = std::min(n, limit_);
  {
    std::lock_guard lock(mu_);
    if (!waiters_.empty() || used_ + n > limit_) {
      waiters_.push_back({n, std::move(admitted)});
      return;
    }
    used_ += n;
  }
  admitted(n);
}

void InFlightLimit::Release(int64_t n) {
  if (n == 0) return;
  std::vector<Waiter> ready;
  {
    std::lock_guard lock(mu_);
    used_ -= n;
    while (!waiters_.empty() && used_ + waiters_.front().n <= limit_) {
      used_ += waiters_.front().n;
      ready.push_back(std::move(waiters_.front()));
      waiters_.pop_front();
    }
  }
  for (Waiter& waiter : ready) waiter.admitted(waiter.n);
}

void ClientBatch::RecordReached() {
  if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (finished.exchange(true)) return;
  done(std::move(results));
}

void ClientBatch::Fail(Status status) {
  if (finished.exchange(true)) return;
  done(std::move(status));
}

bool ProgressTracker::Complete(int64_t offset) {
  std::lock_guard lock(mu_);
  int64_t base = base_.load(std::memory_order_relaxed);
  if (offset != base) {
    done_above_.insert(offset);
    return false;
  }
  ++base;
  while (!done_above_.empty() && *done_above_.begin() == base) {
    done_above_.erase(done_above_.begin());
    ++base;
  }
  base_.store(base, std::memory_order_release);
  return true;
}

TaskThread::TaskThread(int index, std::unique_ptr<Session> session, TableId progress_table,
                       Settle settle)
    : index_(index),
      session_(std::move(session)),
      progress_table_(progress_table),
      settle_(std::move(settle)) {}

TaskThread::~TaskThread() {
  if (thread_.joinable()) thread_.join();
}

void TaskThread::Start() { thread_ = std::thread([this] { Loop(); }); }

void TaskThread::Post(Task task) { Enqueue(std::move(task), false); }

void TaskThread::PostEvent(Task task) { Enqueue(std::move(task), true); }

void TaskThread::Enqueue(Task task, bool event) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back({std::move(task), event});
  }
  cv_.notify_one();
}

void TaskThread::SettleGroup() {
  if (!group_open_) return;
  group_open_ = false;  // first: settle_ may call session()
  settle_(*this);
}

void TaskThread::MarkDirty(std::shared_ptr<ProgressTracker> tracker) {
  {
    std::lock_guard lock(mu_);
    dirty_.push_back(std::move(tracker));
  }
  cv_.notify_one();
}

void TaskThread::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
}

void TaskThread::Loop() {
  std::deque<Entry> batch;
  std::vector<std::shared_ptr<ProgressTracker>> dirty;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty() || !dirty_.empty(); });
      if (stopping_ && queue_.empty() && dirty_.empty()) return;
      batch.swap(queue_);
    }
    for (Entry& entry : batch) {
      if (!entry.event) SettleGroup();
      entry.task(*this);
    }
    batch.clear();
    SettleGroup();  // completions (and so progress markers) of the batch's events
    {
      std::lock_guard lock(mu_);
      dirty.swap(dirty_);
    }
    if (!dirty.empty()) WriteProgress(dirty);
    dirty.clear();
  }
}

// Progress markers of a batch of tasks share one small transaction. A marker only ever
// names offsets whose processing committed before it, so the log order guarantees that a
// surviving marker never claims more than survived (docs/runtime.md, "Recovery").
void TaskThread::WriteProgress(std::vector<std::shared_ptr<ProgressTracker>>& trackers) {
  Status st = session_->Begin();
  std::vector<std::pair<ProgressTracker*, int64_t>> written;
  for (const std::shared_ptr<ProgressTracker>& tracker : trackers) {
    tracker->dirty.store(false, std::memory_order_release);
    if (!st.ok() || tracker->dropped.load(std::memory_order_acquire)) continue;
    const int64_t processed = tracker->processed();
    if (processed == tracker->recorded) continue;
    std::string bytes;
    AppendValue(Value(processed), &bytes);
    st = session_->Put(progress_table_, tracker->key(), bytes);
    written.emplace_back(tracker.get(), processed);
  }
  if (st.ok()) st = session_->Commit();
  if (!st.ok()) {
    if (session_->in_transaction()) session_->Rollback();
    // The markers stay behind: replay after a crash starts earlier, which is allowed.
    std::fprintf(stderr, "strata: writing topology progress failed: %s\n", st.ToString().c_str());
    return;
  }
  for (auto& [tracker, processed] : written) tracker->recorded = processed;
}

}  // namespace strata::runtime
