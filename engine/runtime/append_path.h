// The append path's pieces (docs/runtime.md, "The append path", "Memory bounds"): the
// in-flight limit on client records, the records waiting for a depot partition, and the
// queue they wait in. EngineImpl's append methods are in append_path.cc.
//
// Threading: InFlightLimit is thread-safe; an AppendQueue is filled by any thread and
// drained by the owner thread of its partition, under its mutex.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "runtime/ack_tree.h"
#include "strata/thread_annotations.h"
#include "strata/value.h"

namespace strata::runtime {

// Counts appended client records not yet fully processed. Admission never blocks: a batch
// that does not fit waits in a FIFO and is admitted by the Release that makes room.
class InFlightLimit {
 public:
  using Admitted = std::function<void(int64_t permits)>;
  explicit InFlightLimit(int64_t limit) : limit_(limit) {}
  // Takes n permits (n capped at the limit) and calls admitted(n) — at once, on the
  // caller's thread, when they fit and no earlier batch waits; else later, on the thread
  // of the Release that makes room. Batches are admitted in call order.
  void Acquire(int64_t n, Admitted admitted) EXCLUDES(mu_);
  // Returns n permits and runs the waiting batches that now fit (outside the lock).
  void Release(int64_t n) EXCLUDES(mu_);
  // The permits taken now, and the limit.
  int64_t used() const EXCLUDES(mu_);
  int64_t limit() const { return limit_; }

 private:
  struct Waiter {
    int64_t n;
    Admitted admitted;
  };
  const int64_t limit_;
  mutable Mutex mu_;
  int64_t used_ GUARDED_BY(mu_) = 0;
  std::deque<Waiter> waiters_ GUARDED_BY(mu_);
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
  Mutex mu;
  std::deque<AppendItem> items GUARDED_BY(mu);
};

}  // namespace strata::runtime
