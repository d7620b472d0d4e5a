// The ack tree (docs/runtime.md, "Ack levels and the ack tree"): completing events, runs
// and record nodes, client batches, and the progress trackers that a completed run moves.
// Threading: any thread (task threads, the storage flusher); see ack_tree.h.
#include "runtime/ack_tree.h"

#include <chrono>

#include "runtime/engine_impl.h"

namespace strata::runtime {

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

// Observes the interval between two marks when both were reached.
void ObserveBetween(DurationHistogram& h, int64_t from, int64_t to) {
  if (from != 0 && to != 0) h.Observe(std::chrono::nanoseconds(to - from));
}

}  // namespace

void ClientBatch::RecordReached() {
  if (remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (finished.exchange(true)) return;
  if (phases != nullptr) {
    const int64_t started = times.append_started.load(std::memory_order_relaxed);
    const int64_t committed = times.append_committed.load(std::memory_order_relaxed);
    const int64_t durable = times.durable.load(std::memory_order_relaxed);
    ObserveBetween(phases->queued, times.admitted.load(std::memory_order_relaxed), started);
    ObserveBetween(phases->appended, started, committed);
    ObserveBetween(phases->flush_wait, committed, durable);
    if (level == AckLevel::kProcessed || level == AckLevel::kProcessedStreams) {
      ObserveBetween(phases->processing, durable, SteadyNowNs());
    }
  }
  done(std::move(results));
}

void ClientBatch::Fail(Status status) {
  if (finished.exchange(true)) return;
  done(std::move(status));
}

bool ProgressTracker::Complete(int64_t offset) {
  MutexLock lock(&mu_);
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

void ProgressTracker::AdvanceTo(int64_t end) {
  MutexLock lock(&mu_);
  if (end <= base_.load(std::memory_order_relaxed)) return;
  done_above_.erase(done_above_.begin(), done_above_.lower_bound(end));
  base_.store(end, std::memory_order_release);
}

void EngineImpl::CompleteEvent(const std::shared_ptr<TopologyRun>& run) {
  if (run->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) CompleteRun(run);
}

void EngineImpl::CompleteRun(const std::shared_ptr<TopologyRun>& run) {
  const std::shared_ptr<AckNode>& node = run->record;
  ModuleRuntime& m = *node->module;
  if (run->tracker->Complete(node->id.offset)) {
    if (!run->tracker->dirty.exchange(true)) {
      m.parts[node->id.partition].owner->MarkDirty(run->tracker);
    }
    if (m.progress_waiters.load() > 0) {
      MutexLock lock(&m.progress_mu);
      m.progress_cv.SignalAll();
    }
    WakeBackfill(node->module, *run);
  }
  CompleteNodePart(node);
}

void EngineImpl::CompleteNodePart(const std::shared_ptr<AckNode>& node) {
  if (node->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (node->batch) {
    ClientBatch& batch = *node->batch;
    const bool processed =
        batch.level == AckLevel::kProcessed || batch.level == AckLevel::kProcessedStreams;
    if (processed) {
      AppendResult& result = batch.results[node->batch_index];
      MutexLock lock(&node->mu);
      result.ack_returns = std::move(node->ack_returns);
      result.failure = node->failure;
    }
    // The permit first: once the batch's `done` has run, its records hold none.
    if (static_cast<int64_t>(node->batch_index) < batch.permits) limit_.Release(1);
    if (processed) batch.RecordReached();
  }
  if (node->parent) {
    {
      MutexLock lock(&node->mu);
      if (!node->failure.ok()) {
        MutexLock parent_lock(&node->parent->record->mu);
        if (node->parent->record->failure.ok()) node->parent->record->failure = node->failure;
      }
    }
    CompleteEvent(node->parent);
  }
  ReleaseLiveNodes(*node->module, 1);
}

void EngineImpl::AddLiveNodes(ModuleRuntime& m, int64_t n) {
  m.live_nodes.fetch_add(n);
  MutexLock lock(&live_mu_);
  live_nodes_ += n;
}

void EngineImpl::ReleaseLiveNodes(ModuleRuntime& m, int64_t n) {
  if (m.live_nodes.fetch_sub(n) == n && m.progress_waiters.load() > 0) {
    MutexLock lock(&m.progress_mu);
    m.progress_cv.SignalAll();
  }
  MutexLock lock(&live_mu_);
  live_nodes_ -= n;
  if (live_nodes_ == 0) live_cv_.SignalAll();
}

}  // namespace strata::runtime
