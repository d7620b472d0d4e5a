// Mirror depots (docs/runtime.md, "Mirror depots"): how a module's topologies consume the
// records of another module's depot (ModuleBuilder::MirrorDepot). The consuming module's
// runtime shares the other module's Depot object; a cursor per (stream topology, mirror
// depot, partition) reads it from the topology's own progress on the consuming module's
// partition lane, and parks at the end until the depot's module appends again (a *tap* on
// the depot tells it). The appending module never waits for its mirrors.
//
// Threading: DepotTaps is thread-safe. A MirrorCursor's flags are atomics shared by its
// chain of chunk tasks (on the partition's owner thread) and the threads that wake it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "strata/thread_annotations.h"

namespace strata::runtime {

// A consumer, in another module, of one depot's records: told when records were committed
// to a partition.
class DepotTap {
 public:
  virtual ~DepotTap() = default;
  // Records were committed to `partition` of the depot (they are readable). Runs on the
  // thread that appended them: must not block.
  virtual void Appended(int partition) = 0;
};

// The taps of one depot. Shared by the versions of the depot's module that share its Depot
// object (an update), and by the runtimes of the modules that mirror it, which add their
// taps when they open; a tap is dropped once its owner is gone.
class DepotTaps {
 public:
  void Add(std::weak_ptr<DepotTap> tap) EXCLUDES(mu_);
  // Tells every live tap. Called by the depot's append path after each commit; costs one
  // atomic load when the depot has no mirror.
  void Appended(int partition) EXCLUDES(mu_);

 private:
  Mutex mu_;
  std::vector<std::weak_ptr<DepotTap>> taps_ GUARDED_BY(mu_);
  std::atomic<bool> any_{false};
};

// The cursor of one stream topology over one mirror depot, for every partition. Each
// partition has at most one chain of chunk tasks running at a time: the chain holds a
// token, and gives it up by setting `idle` when it stops (at the end of the depot, too far
// ahead of its topology's progress, or stopped by an update, destroy or close). Whoever
// clears `idle` (exchange) takes the token and posts the next chunk: an append (Appended),
// a completion that brings progress near enough (EngineImpl::WakeMirror), a restart of the
// runtime (EngineImpl::StartMirrors).
class MirrorCursor final : public DepotTap {
 public:
  struct Part {
    // The next offset to start (the chain's; read by wakers).
    std::atomic<int64_t> next{0};
    std::atomic<bool> idle{false};
    // It stopped too far ahead of progress (only completions wake it then for that reason).
    std::atomic<bool> ahead{false};
    // Records were appended since the running chunk began to read: it must read again.
    std::atomic<bool> appended{false};
  };

  // `post(partition)` posts a chunk of the chain to the partition's lane.
  MirrorCursor(int topology, int depot, int partitions, std::function<void(int)> post)
      : topology(topology), depot(depot), parts(partitions), post_(std::move(post)) {}

  void Appended(int partition) override {
    Part& part = parts[partition];
    part.appended.store(true);
    if (part.idle.exchange(false)) Post(partition);
  }
  // Takes the token when it is free and posts a chunk; returns whether it did.
  bool Wake(int partition) {
    if (!parts[partition].idle.exchange(false)) return false;
    Post(partition);
    return true;
  }
  // Posts a chunk, unless the cursor is detached.
  void Post(int partition) EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    if (!detached_) post_(partition);
  }
  // From now on nothing is posted: the runtime that owns the cursor is being released
  // (Destroy, the end of an update or a recompute's swap), and a post would hold it again
  // (`post_` locks it) after its last holder let it go. Its chains must have stopped.
  void Detach() EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    detached_ = true;
  }

  const int topology;
  const int depot;
  std::vector<Part> parts;
  // Set by StartMirrors when the chains first start (admin thread only): until then no
  // chain holds the token and none is idle, so nothing wakes it.
  bool started = false;
  // In a recompute's shadow: the live module's cursor of the same topology and depot, set
  // before the shadow's chains start. The shadow's never reads past the leader's `next`
  // (so that both stand at the same offset at the swap); the leader wakes it as it moves
  // (through PartitionRuntime::shadow).
  std::shared_ptr<MirrorCursor> leader;

 private:
  const std::function<void(int)> post_;
  Mutex mu_;
  bool detached_ GUARDED_BY(mu_) = false;
};

}  // namespace strata::runtime
