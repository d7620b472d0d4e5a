// EngineImpl's backfill (docs/runtime.md, "Backfill"): catching a topology up with a depot
// partition from its recorded progress while live records keep flowing to the others — a
// new topology after an update, or a rebuild. One cursor per backfilling tracker runs on
// the partition's owner thread; since only that thread appends to the partition, the
// cursor that reads up to the end of the depot can hand over to live processing without a
// gap or an overlap: every later record is started by the append that commits it.
#include "runtime/engine_impl.h"
#include "runtime/stream_executor.h"

namespace strata::runtime {
namespace {

// Records a cursor starts per task (other work of the thread runs between chunks), and
// how far it may run ahead of its topology's progress before it parks until completions
// catch up (bounding the events and hops in flight for one backfill).
constexpr size_t kBackfillChunk = 256;
constexpr int64_t kBackfillAhead = 4096;

}  // namespace

void EngineImpl::StartBackfills(const std::shared_ptr<ModuleRuntime>& m) {
  ForEachTracker(*m, [&](int t, int d, int p, const std::shared_ptr<ProgressTracker>& tracker) {
    if (!tracker->backfilling.load() || m->microbatches[t]) return;  // a batch catches up
    if (IsMirror(*m, d)) return;  // its mirror cursor catches up (StartMirrors)
    tracker->backfill_next.store(tracker->processed());
    tracker->parked.store(false);
    m->parts[p].Post([this, m, t, d, p](TaskThread& thread) { BackfillChunk(thread, m, t, d, p); });
  });
  StartMirrors(m);
}

void EngineImpl::BackfillChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                               int topology, int depot, int partition) {
  // Stopped by an update (the next version resumes it from the tracker's progress), a
  // destroy, or Close (the next Open resumes it).
  if (m->stopping.load() || m->closed.load() || closing_.load()) return;
  const std::shared_ptr<ProgressTracker>& tracker = m->trackers[topology][depot][partition];
  int64_t next = tracker->backfill_next.load();
  if (next - tracker->processed() > kBackfillAhead) {
    tracker->parked.store(true);
    // A completion between the check and the flag did not see it: check again.
    if (next - tracker->processed() > kBackfillAhead || !tracker->parked.exchange(false)) return;
  }
  const std::vector<int> only{topology};
  Result<std::vector<strata::DepotRecord>> records =
      m->depots[depot]->Read(thread.session(), partition, next, INT64_MAX, kBackfillChunk);
  bool at_end = false;
  if (records.ok()) {
    for (const strata::DepotRecord& record : *records) {
      StartStoredRecord(thread, m, depot, partition, record.offset, record.data, Status::Ok(),
                        only);
      next = record.offset + 1;
    }
    at_end = records->size() < kBackfillChunk;
  } else {
    const int64_t resume = ReplayRecordByRecord(
        thread, *m, depot, partition, next,
        [&](int64_t offset, std::string_view data, const Status& error) {
          StartStoredRecord(thread, m, depot, partition, offset, data, error, only);
        });
    at_end = resume < 0;
    if (!at_end) next = resume;
  }
  if (!at_end) {
    tracker->backfill_next.store(next);
    m->parts[partition].Post([this, m, topology, depot, partition](TaskThread& t) {
      BackfillChunk(t, m, topology, depot, partition);
    });
    return;
  }
  // Caught up: from the next append on, the topology takes the partition's live records.
  std::vector<std::pair<int, int>>& catching_up = m->parts[partition].catching_up;
  std::erase(catching_up, std::pair<int, int>{topology, depot});
  tracker->backfill_next.store(INT64_MAX);
  tracker->backfilling.store(false);
  if (!tracker->dirty.exchange(true)) thread.MarkDirty(tracker);  // records the new state
  if (m->progress_waiters.load() > 0) {
    MutexLock lock(&m->progress_mu);
    m->progress_cv.SignalAll();
  }
}

void EngineImpl::WakeBackfill(const std::shared_ptr<ModuleRuntime>& m, const TopologyRun& run) {
  if (IsMirror(*m, run.record->id.depot)) return WakeMirror(m, run);
  ProgressTracker& tracker = *run.tracker;
  if (!tracker.parked.load(std::memory_order_relaxed)) return;
  if (tracker.backfill_next.load() - tracker.processed() > kBackfillAhead / 2) return;
  if (!tracker.parked.exchange(false)) return;
  const int topology = run.topology;
  const int depot = run.record->id.depot;
  const int partition = run.record->id.partition;
  m->parts[partition].Post([this, m, topology, depot, partition](TaskThread& thread) {
    BackfillChunk(thread, m, topology, depot, partition);
  });
}

void EngineImpl::AddProgress(const ModuleRuntime& m, int depot, int partition,
                             const ProgressTracker& tracker, RebuildProgress* progress) {
  Result<int64_t> start = m.depots[depot]->StartOffset(partition);
  Result<int64_t> end = m.depots[depot]->EndOffset(partition);
  if (!start.ok() || !end.ok()) return;
  progress->records_done += std::max<int64_t>(0, std::min(*end, tracker.processed()) - *start);
  progress->records_total += *end - *start;
}

std::vector<RebuildProgress> EngineImpl::BackfillProgress(const ModuleRuntime& m) {
  std::vector<RebuildProgress> by_topology;
  std::vector<bool> backfilling(m.trackers.size(), false);
  for (const TopologyDef& t : m.def->topologies)
    by_topology.push_back({"backfill", {t.name}, 0, 0});
  ForEachTracker(m, [&](int t, int d, int p, const std::shared_ptr<ProgressTracker>& tracker) {
    backfilling[t] = backfilling[t] || tracker->backfilling.load();
    AddProgress(m, d, p, *tracker, &by_topology[t]);
  });
  std::vector<RebuildProgress> out;
  for (size_t t = 0; t < by_topology.size(); ++t) {
    if (backfilling[t]) out.push_back(std::move(by_topology[t]));
  }
  return out;
}

}  // namespace strata::runtime
