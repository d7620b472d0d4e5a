// EngineImpl's recovery at Open (docs/runtime.md, "Progress and at-least-once recovery",
// "Topology appends"): replaying each depot partition from its topologies' recorded progress
// on the partition's owner thread, and appending the outbox rows a crash left.
#include <algorithm>

#include "runtime/engine_impl.h"
#include "runtime/stream_executor.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

// Records replayed per task: other work of the thread interleaves between chunks.
constexpr size_t kReplayChunk = 256;

}  // namespace

Result<std::vector<EngineImpl::LeftOverAppend>> EngineImpl::LeftOverAppends(
    const ModuleRuntime& m) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  std::vector<LeftOverAppend> appends;
  STRATA_RETURN_IF_ERROR(
      outbox_->ForEachLeftOver(*session, m.name, [&](Outbox::Entry entry) -> Status {
        Result<int> depot = FindDepot(m, entry.depot);
        if (!depot.ok() || entry.partition < 0 || entry.partition >= m.partitions) {
          return Status::Corruption("meta.outbox holds a record for " + entry.module + " " +
                                    entry.depot + " partition " + std::to_string(entry.partition) +
                                    ", which the module does not have");
        }
        STRATA_ASSIGN_OR_RETURN(Value record, DecodeValue(entry.record));
        LeftOverAppend append{*depot, entry.partition, AppendItem{}};
        append.item.record = std::move(record);
        append.item.bytes = std::move(entry.record);
        append.item.outbox_key = std::move(entry.key);
        appends.push_back(std::move(append));
        return Status::Ok();
      }));
  return appends;
}

Status EngineImpl::StartReplay(const std::shared_ptr<ModuleRuntime>& m) {
  STRATA_ASSIGN_OR_RETURN(std::vector<LeftOverAppend> left_over, LeftOverAppends(*m));
  // Every count is set before the first post publishes the module to a task thread (a
  // replay finishing early must not see a partition's count still growing).
  // A mirror depot is not replayed here: its cursors (StartMirrors) read it from each
  // topology's progress, which is the replay.
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    if (m->consumers[d].empty() || IsMirror(*m, d)) continue;
    for (int p = 0; p < m->partitions; ++p) ++m->parts[p].replays_pending;
    MutexLock lock(&live_mu_);
    live_replays_ += m->partitions;
  }
  // The outbox rows a crash left go first into their partitions' queues: their drain tasks
  // run before any replay chunk and, finding the partition replaying, wait in its deferred
  // list ahead of the appends the replayed steps make.
  for (LeftOverAppend& append : left_over) {
    std::vector<AppendItem> items;
    items.push_back(std::move(append.item));
    PostAppend(m, append.depot, append.partition, std::move(items));
  }
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    if (m->consumers[d].empty() || IsMirror(*m, d)) continue;
    for (int p = 0; p < m->partitions; ++p) {
      // Backfilling topologies are not replayed: their cursors (StartBackfills) catch up.
      int64_t from = INT64_MAX;
      for (int t : m->consumers[d]) {
        if (!m->parts[p].CatchingUp(t, d)) from = std::min(from, m->trackers[t][d][p]->processed());
      }
      m->parts[p].Post(
          [this, m, d, p, from](TaskThread& thread) { ReplayChunk(thread, m, d, p, from); });
    }
  }
  StartBackfills(m);
  return Status::Ok();
}

// Replays depot partition records [next, end) through every topology whose progress is at
// or below each record, a chunk per task so that other work of the thread interleaves.
// Replay is paced by the queue (one chunk per pass), not by the in-flight limit: records it
// starts may wait for appends deferred behind another partition's replay, so waiting for
// the limit here could deadlock.
void EngineImpl::ReplayChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                             int partition, int64_t next) {
  Result<std::vector<strata::DepotRecord>> records =
      next == INT64_MAX
          ? std::vector<strata::DepotRecord>{}  // every consumer is backfilling
          : m->depots[depot]->Read(thread.session(), partition, next, INT64_MAX, kReplayChunk);
  int64_t resume = -1;  // where the next chunk starts; -1: the end is reached
  if (records.ok()) {
    for (const strata::DepotRecord& record : *records) {
      ReplayRecord(thread, m, depot, partition, record.offset, record.data, Status::Ok());
    }
    if (records->size() == kReplayChunk) resume = records->back().offset + 1;
  } else {
    resume = ReplayRecordByRecord(thread, *m, depot, partition, next,
                                  [&](int64_t offset, std::string_view data, const Status& error) {
                                    ReplayRecord(thread, m, depot, partition, offset, data, error);
                                  });
  }
  // Only the owner thread appends to the partition, so the end cannot move while it
  // replays: appends wait in `deferred` until FinishReplay.
  if (resume < 0) return FinishReplay(thread, *m, partition);
  m->parts[partition].Post([this, m, depot, partition, resume](TaskThread& t) {
    ReplayChunk(t, m, depot, partition, resume);
  });
}

// A chunk that cannot be read (a record missing below the end offset, a block that fails
// its checksum) is read again one record at a time, so that only the records that cannot be
// read fail — each recorded as a failure of its topologies, which lets their progress pass
// it (otherwise WaitProcessed would wait for it forever) — and replay goes on after them.
int64_t EngineImpl::ReplayRecordByRecord(TaskThread& thread, ModuleRuntime& m, int depot,
                                         int partition, int64_t next,
                                         const StoredRecordVisitor& start) {
  Depot& d = *m.depots[depot];
  const std::string& depot_name = m.def->depots[depot].name;
  Result<int64_t> end = d.EndOffset(partition);
  if (!end.ok()) {
    logger_->Error("replaying " + depot_name + " partition " + std::to_string(partition) +
                   " of module " + m.name + " stopped at offset " + std::to_string(next) + ": " +
                   end.status().ToString());
    return -1;
  }
  const int64_t stop = std::min(*end, next + static_cast<int64_t>(kReplayChunk));
  for (int64_t offset = next; offset < stop; ++offset) {
    Result<std::vector<strata::DepotRecord>> one =
        d.Read(thread.session(), partition, offset, offset + 1, 1);
    if (one.ok() && one->size() == 1) {
      start(offset, (*one)[0].data, Status::Ok());
      continue;
    }
    const Status error = one.ok() ? Status::Corruption("offset " + std::to_string(offset) +
                                                       " reads as nothing below the end offset " +
                                                       std::to_string(*end))
                                  : one.status();
    logger_->Error("replaying " + depot_name + " partition " + std::to_string(partition) +
                   " of module " + m.name + ": offset " + std::to_string(offset) +
                   " cannot be read, recorded as a failure of each topology that consumes it: " +
                   error.ToString());
    start(offset, {}, error);
  }
  return stop < *end ? stop : -1;
}

void EngineImpl::ReplayRecord(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                              int depot, int partition, int64_t offset, std::string_view data,
                              const Status& read_error) {
  std::vector<int> topologies;
  for (int t : m->consumers[depot]) {
    if (m->trackers[t][depot][partition]->processed() <= offset &&
        !m->parts[partition].CatchingUp(t, depot)) {
      topologies.push_back(t);
    }
  }
  StartStoredRecord(thread, m, depot, partition, offset, data, read_error, topologies);
}

void EngineImpl::StartStoredRecord(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                                   int depot, int partition, int64_t offset, std::string_view data,
                                   const Status& read_error, const std::vector<int>& topologies) {
  if (topologies.empty()) return;
  std::shared_ptr<AckNode> node = NewNode(m, RecordId{depot, partition, offset}, topologies);
  Result<Value> value = read_error.ok() ? DecodeValue(data) : Result<Value>(read_error);
  if (value.ok()) return StartRecord(thread, node, topologies, *value);
  for (size_t slot = 0; slot < topologies.size(); ++slot) {
    auto run = std::make_shared<TopologyRun>();
    run->record = node;
    run->topology = topologies[slot];
    run->slot = static_cast<int>(slot);
    run->tracker = m->trackers[run->topology][depot][partition];
    if (read_error.ok()) {
      executor_->RecordGiveUp(thread, *m, *run,
                              "replay could not decode the record: " + value.status().ToString());
    } else {
      executor_->RecordGiveUp(thread, *m, *run,
                              "replay could not read the record: " + read_error.ToString());
    }
    CompleteEvent(run);
  }
}

std::shared_ptr<AckNode> EngineImpl::NewNode(const std::shared_ptr<ModuleRuntime>& m, RecordId id,
                                             const std::vector<int>& topologies) {
  auto node = std::make_shared<AckNode>();
  node->module = m;
  node->id = id;
  node->pending.store(static_cast<int64_t>(topologies.size()));
  {
    MutexLock lock(&node->mu);  // not shared yet: never contended
    for (int t : topologies) node->ack_returns.emplace_back(m->def->topologies[t].name, Value());
  }
  AddLiveNodes(*m, 1);
  return node;
}

void EngineImpl::FinishReplay(TaskThread& thread, ModuleRuntime& m, int partition) {
  PartitionRuntime& part = m.parts[partition];
  if (--part.replays_pending == 0) {
    std::deque<Task> deferred;
    deferred.swap(part.deferred);
    for (Task& task : deferred) task(thread);
  }
  MutexLock lock(&live_mu_);
  if (--live_replays_ == 0) live_cv_.SignalAll();
}

}  // namespace strata::runtime
