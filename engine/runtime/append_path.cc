// EngineImpl's append path (docs/runtime.md, "The append path", "Memory bounds"):
// AppendAsync on the caller's thread (checks, partitions, encoding, the disk-room check, the
// in-flight limit), the per-partition append queues, and on the owner thread the drains that
// append chunks to the depot (removing their outbox rows) and start each record through its
// consuming topologies.
#include "runtime/append_path.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iterator>

#include "module/record_check.h"
#include "runtime/engine_impl.h"
#include "runtime/microbatch_executor.h"
#include "runtime/partitioning.h"
#include "runtime/stream_executor.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

namespace fs = std::filesystem;

// The most records and bytes of a depot partition's append queue appended in one
// transaction.
constexpr size_t kMaxDrainRecords = 1024;
constexpr size_t kMaxDrainBytes = 4 << 20;

// How often AppendAsync reads the data directory's free space.
constexpr std::chrono::milliseconds kDiskCheckInterval{100};

}  // namespace

void InFlightLimit::Acquire(int64_t n, Admitted admitted) {
  n = std::min(n, limit_);
  {
    MutexLock lock(&mu_);
    if (!waiters_.empty() || used_ + n > limit_) {
      waiters_.push_back({n, std::move(admitted)});
      return;
    }
    used_ += n;
  }
  admitted(n);
}

int64_t InFlightLimit::used() const {
  MutexLock lock(&mu_);
  return used_;
}

void InFlightLimit::Release(int64_t n) {
  if (n == 0) return;
  std::vector<Waiter> ready;
  {
    MutexLock lock(&mu_);
    used_ -= n;
    while (!waiters_.empty() && used_ + waiters_.front().n <= limit_) {
      used_ += waiters_.front().n;
      ready.push_back(std::move(waiters_.front()));
      waiters_.pop_front();
    }
  }
  for (Waiter& waiter : ready) waiter.admitted(waiter.n);
}

void EngineImpl::AppendAsync(const std::string& module, const std::string& depot,
                             std::vector<Value> records, AckLevel level, AppendCallback done) {
  if (closing_.load()) return done(Status::Aborted("the engine is closing"));
  Result<std::shared_ptr<ModuleRuntime>> found = Find(module);
  if (!found.ok()) return done(found.status());
  if (options_.ack_gate && level >= AckLevel::kAppended) {
    done = GateAcks(module, std::move(done));
  }
  if (options_.replicated) done = AbortWhenSteppedDown(**found, std::move(done));
  AppendToRuntime(std::move(found).value(), depot, std::move(records), level, std::move(done));
}

Engine::AppendCallback EngineImpl::GateAcks(const std::string& module, AppendCallback done) {
  return [gate = &options_.ack_gate, module,
          done = std::move(done)](Result<std::vector<AppendResult>> results) mutable {
    if (!results.ok()) return done(std::move(results));
    auto shared = std::make_shared<std::pair<AppendCallback, Result<std::vector<AppendResult>>>>(
        std::move(done), std::move(results));
    (*gate)(module, [shared](Status released) {
      if (released.ok()) return shared->first(std::move(shared->second));
      shared->first(std::move(released));
    });
  };
}

Engine::AppendCallback EngineImpl::AbortWhenSteppedDown(const ModuleRuntime& m,
                                                        AppendCallback done) {
  return [stepped_down = m.stepped_down, module = m.name,
          done = std::move(done)](Result<std::vector<AppendResult>> results) {
    if (stepped_down->load()) {
      return done(Status::Aborted("leadership moved while the append to module " + module +
                                  " waited for its acknowledgement: the append may or may not "
                                  "be kept"));
    }
    done(std::move(results));
  };
}

void EngineImpl::AppendToRuntime(std::shared_ptr<ModuleRuntime> m, const std::string& depot,
                                 std::vector<Value> records, AckLevel level, AppendCallback done,
                                 bool bypass_gate) {
  // The update gate (Update): a call that reaches a version being replaced waits for the
  // next one, and one that reaches a replaced version goes to its successor.
  for (;;) {
    MutexLock lock(&m->hold_mu);
    if (m->successor) {
      std::shared_ptr<ModuleRuntime> next = m->successor;
      lock.Unlock();
      m = std::move(next);
      continue;
    }
    if (m->closed.load()) {
      lock.Unlock();
      return done(Status::NotFound("module " + m->name + " is being destroyed"));
    }
    if (!m->gone.empty()) {
      const std::string gone = m->gone;
      lock.Unlock();
      return done(Status::NotFound("module " + m->name + ": " + gone));
    }
    if (m->updating && !bypass_gate) {
      const int64_t n = static_cast<int64_t>(records.size());
      if (m->held_records + n > options_.max_in_flight_records) {
        const int64_t held = m->held_records;
        lock.Unlock();
        return done(Status::Busy("module " + m->name + " is being updated and already holds " +
                                 std::to_string(held) +
                                 " records until the new version is installed; retry shortly"));
      }
      m->held_records += n;
      m->held.push_back({depot, std::move(records), level, std::move(done)});
      return;
    }
    m->admitting.fetch_add(1);  // under hold_mu: an update closing the gate waits for it
    break;
  }
  // Decrements `admitting` on every way out before the records are posted.
  struct Admitting {
    ModuleRuntime* m;
    ~Admitting() {
      if (m != nullptr) m->admitting.fetch_sub(1);
    }
  } admitting{m.get()};
  const std::string& module = m->name;
  if (m->closed.load()) return done(Status::NotFound("module " + module + " is being destroyed"));
  Result<int> d = FindDepot(*m, depot);
  if (!d.ok()) return done(d.status());
  const DepotDef& def = m->def->depots[*d];
  if (!def.mirror_of.empty()) {
    return done(Status::InvalidArgument("depot " + depot + " of module " + module +
                                        " is a mirror of module " + def.mirror_of +
                                        "'s: append to " + def.mirror_of + " " + depot));
  }
  if (def.partitioning.kind == DepotPartitioning::Kind::kNoClientAppends) {
    return done(Status::InvalidArgument("depot " + depot + " of module " + module +
                                        " takes no client appends (only its topologies append)"));
  }
  if (records.empty()) return done(std::vector<AppendResult>{});
  if (Status room = DiskRoomForAppends(); !room.ok()) return done(room);
  // Every record is checked before any is queued: a refused batch leaves nothing in the log.
  for (size_t i = 0; i < records.size(); ++i) {
    if (Status st = CheckRecord(def, records[i]); !st.ok()) {
      return done(Status::SchemaViolation(
          "record " + std::to_string(i) + " of the batch of " + std::to_string(records.size()) +
          " does not match the record schema " + def.record_schema.ToString() + " of depot " +
          def.name + " (module " + module +
          "), so no record of the batch was appended: " + st.message()));
    }
  }
  auto batch = std::make_shared<ClientBatch>();
  batch->level = level;
  batch->done = std::move(done);
  batch->times.admitted.store(SteadyNowNs(), std::memory_order_relaxed);
  batch->phases = &append_phases_;
  batch->results.resize(records.size());
  batch->remaining.store(static_cast<int64_t>(records.size()));
  std::vector<std::vector<AppendItem>> by_partition(m->partitions);
  for (size_t i = 0; i < records.size(); ++i) {
    Result<int> p = ChoosePartition(def, records[i], m->partitions, 0);
    if (!p.ok()) return batch->Fail(p.status());
    Result<std::vector<uint8_t>> bytes = EncodeValueChecked(records[i]);
    if (!bytes.ok()) return batch->Fail(bytes.status());
    batch->results[i].partition = *p;
    AppendItem item;
    item.bytes.assign(bytes->begin(), bytes->end());
    item.record = std::move(records[i]);
    item.batch = batch;
    item.batch_index = i;
    by_partition[*p].push_back(std::move(item));
  }
  // Never blocks the caller (a server network thread must not wait for task threads): a
  // batch that does not fit under the in-flight limit waits for admission, in call order.
  auto parts = std::make_shared<std::vector<std::vector<AppendItem>>>(std::move(by_partition));
  admitting.m = nullptr;  // the admission below decrements it once the records are posted
  limit_.Acquire(static_cast<int64_t>(records.size()),
                 [this, m, depot_index = *d, batch, parts](int64_t permits) {
                   batch->permits = permits;
                   // kNone answers at admission with the partitions only, but after the
                   // records are queued, so a WaitProcessed after its `done` covers them.
                   // The copy is taken before they are posted (their completions write the
                   // slots); `finished` keeps those completions from answering again.
                   std::vector<AppendResult> admitted;
                   if (batch->level == AckLevel::kNone) {
                     admitted = batch->results;
                     batch->finished.store(true);
                   }
                   for (int p = 0; p < m->partitions; ++p) {
                     if (!(*parts)[p].empty())
                       PostAppend(m, depot_index, p, std::move((*parts)[p]));
                   }
                   m->admitting.fetch_sub(1);
                   if (batch->level == AckLevel::kNone) batch->done(std::move(admitted));
                 });
}

Status EngineImpl::DiskRoomForAppends() {
  if (options_.min_free_disk_bytes == 0) return Status::Ok();
  const int64_t now = SteadyNowNs();
  int64_t checked = disk_checked_ns_.load(std::memory_order_relaxed);
  if ((checked == 0 || now - checked >= std::chrono::nanoseconds(kDiskCheckInterval).count()) &&
      disk_checked_ns_.compare_exchange_strong(checked, now)) {  // one caller reads it
    std::error_code ec;
    const fs::space_info space = fs::space(options_.data_dir, ec);
    if (!ec) disk_available_.store(space.available, std::memory_order_relaxed);
  }
  const uint64_t available = disk_available_.load(std::memory_order_relaxed);
  if (available >= options_.min_free_disk_bytes) return Status::Ok();
  return Status::IOError("the disk of data directory " + options_.data_dir + " has " +
                         std::to_string(available >> 20) + " MiB available, below the " +
                         std::to_string(options_.min_free_disk_bytes >> 20) +
                         " MiB that appends need (min_free_disk_bytes): appends are refused "
                         "until space is freed; reads and processing go on");
}

// Appends to one depot partition queue up while its owner is busy: the first items into an
// empty queue post the task that drains it, so what is queued until that task runs is
// appended together — in transactions of at most kMaxDrainRecords / kMaxDrainBytes, each
// with one wait for durability. The task is posted under the queue's lock and takes the
// whole queue, so once this returns, a queued drain task will append `items`
// (WaitProcessed's barrier relies on it).
void EngineImpl::PostAppend(const std::shared_ptr<ModuleRuntime>& m, int depot, int partition,
                            std::vector<AppendItem> items) {
  AddLiveNodes(*m, static_cast<int64_t>(items.size()));  // released as each node completes
  AppendQueue& queue = *m->append_queues[depot][partition];
  MutexLock lock(&queue.mu);
  const bool was_empty = queue.items.empty();
  std::move(items.begin(), items.end(), std::back_inserter(queue.items));
  if (!was_empty) return;
  m->parts[partition].Post([this, m, depot, partition](TaskThread& thread) {
    auto drained = std::make_shared<std::deque<AppendItem>>();
    {
      AppendQueue& queue = *m->append_queues[depot][partition];
      MutexLock lock(&queue.mu);
      drained->swap(queue.items);
    }
    PartitionRuntime& part = m->parts[partition];
    if (part.replays_pending > 0) {
      part.deferred.push_back([this, m, depot, partition, drained](TaskThread& t) {
        AppendDrained(t, m, depot, partition, *drained);
      });
      return;
    }
    AppendDrained(thread, m, depot, partition, *drained);
  });
}

void EngineImpl::AppendDrained(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                               int depot, int partition, std::deque<AppendItem>& drained) {
  std::vector<AppendItem> chunk;
  while (!drained.empty()) {
    chunk.clear();
    size_t bytes = 0;
    do {  // at least one record, however big: a client request is at most one frame
      bytes += drained.front().bytes.size();
      chunk.push_back(std::move(drained.front()));
      drained.pop_front();
    } while (!drained.empty() && chunk.size() < kMaxDrainRecords &&
             bytes + drained.front().bytes.size() <= kMaxDrainBytes);
    RunAppend(thread, m, depot, partition, chunk);
  }
}

void EngineImpl::RunAppend(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                           int partition, std::vector<AppendItem>& items) {
  Result<int64_t> first = Status::NotFound("module " + m->name + " is being destroyed");
  if (!m->closed.load()) {
    std::vector<std::string_view> views;
    views.reserve(items.size());
    bool from_outbox = false;
    const int64_t started = SteadyNowNs();
    for (const AppendItem& item : items) {
      views.push_back(item.bytes);
      from_outbox = from_outbox || !item.outbox_key.empty();
      if (item.batch) MarkOnce(item.batch->times.append_started, started);
    }
    // Topology appends leave the outbox in the transaction that appends them.
    std::function<Status(Session&)> remove_outbox_rows;
    if (from_outbox) {
      remove_outbox_rows = [&](Session& session) {
        for (const AppendItem& item : items) {
          if (!item.outbox_key.empty())
            STRATA_RETURN_IF_ERROR(outbox_->Remove(session, item.outbox_key));
        }
        return Status::Ok();
      };
    }
    first = m->depots[depot]->AppendBatch(thread.session(), partition, views, remove_outbox_rows);
    if (first.ok()) {
      const int64_t committed = SteadyNowNs();
      for (const AppendItem& item : items) {
        if (item.batch) MarkOnce(item.batch->times.append_committed, committed);
      }
    }
  }
  if (!first.ok()) {
    const Status error(first.status().code(), "appending to depot " + m->def->depots[depot].name +
                                                  " partition " + std::to_string(partition) + ": " +
                                                  first.status().message());
    for (AppendItem& item : items) {
      if (item.batch) {
        item.batch->Fail(error);
        if (static_cast<int64_t>(item.batch_index) < item.batch->permits) limit_.Release(1);
      }
      if (item.parent) {
        {
          MutexLock lock(&item.parent->record->mu);
          if (item.parent->record->failure.ok()) item.parent->record->failure = error;
        }
        CompleteEvent(item.parent);
      }
    }
    ReleaseLiveNodes(*m, static_cast<int64_t>(items.size()));
    return;
  }
  DepotCounters& counters = *m->depot_counters[depot];
  counters.appends.fetch_add(static_cast<int64_t>(items.size()), std::memory_order_relaxed);
  int64_t bytes = 0;
  for (const AppendItem& item : items) bytes += static_cast<int64_t>(item.bytes.size());
  counters.append_bytes.fetch_add(bytes, std::memory_order_relaxed);
  // Modules that mirror the depot read the records with cursors of their own; they are
  // only told (the acks never wait for them).
  if (const std::shared_ptr<DepotTaps>& taps = m->taps[depot]) taps->Appended(partition);
  // Topologies catching up on this partition (a backfill) read these records later from
  // the depot: they are not started here, and the acks do not wait for them.
  const PartitionRuntime& part = m->parts[partition];
  std::vector<int> live_consumers;
  if (!part.catching_up.empty()) {
    for (int t : m->consumers[depot]) {
      if (!part.CatchingUp(t, depot)) live_consumers.push_back(t);
    }
  }
  const std::vector<int>& consumers =
      part.catching_up.empty() ? m->consumers[depot] : live_consumers;
  // Microbatch topologies take the records in their next batch; a record's node waits for
  // those not backfilling, unless its appender asked not to (kProcessedStreams).
  std::vector<int> batched;
  for (int t : m->batch_consumers[depot]) {
    if (!m->microbatches[t]->backfilling.load()) batched.push_back(t);
  }
  std::vector<std::shared_ptr<AckNode>> nodes;
  std::vector<std::shared_ptr<AckNode>> flushed;  // those whose durability part is a flush
  nodes.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto node = std::make_shared<AckNode>();
    node->module = m;
    node->id = RecordId{depot, partition, *first + static_cast<int64_t>(i)};
    node->batch = std::move(items[i].batch);
    node->batch_index = items[i].batch_index;
    node->parent = std::move(items[i].parent);
    node->waits_batches = MicrobatchExecutor::WaitsFor(*node);
    const bool waits = node->waits_batches;
    // +1: durability — unless the node waits for a microbatch anyway and nothing waits for
    // its durability alone (kAppended): a batch holding the record is durable only after the
    // record, which committed first in the same log. Then no flush is started for the
    // record itself, and the batch's flush covers both (one flush on the ack's path, not two).
    const bool implied =
        waits && !batched.empty() && (!node->batch || node->batch->level == AckLevel::kProcessed);
    node->pending.store(static_cast<int64_t>(consumers.size() + (waits ? batched.size() : 0)) +
                        (implied ? 0 : 1));
    {
      MutexLock lock(&node->mu);  // not shared yet: never contended
      node->ack_returns.reserve(consumers.size() + batched.size());
      for (int t : consumers) node->ack_returns.emplace_back(m->def->topologies[t].name, Value());
      if (waits) {
        for (int t : batched) node->ack_returns.emplace_back(m->def->topologies[t].name, Value());
      }
    }
    if (node->batch) node->batch->results[node->batch_index].offset = node->id.offset;
    if (!implied) flushed.push_back(node);
    nodes.push_back(std::move(node));
  }
  if (!flushed.empty()) {
    storage_->WhenDurable([this, flushed = std::move(flushed)](Status st) {
      const int64_t durable = SteadyNowNs();
      for (const std::shared_ptr<AckNode>& node : flushed) {
        if (node->batch) {
          MarkOnce(node->batch->times.durable, durable);
          if (!st.ok()) {
            node->batch->Fail(Status(st.code(), "flushing the log failed: " + st.message()));
          } else if (node->batch->level == AckLevel::kAppended) {
            node->batch->RecordReached();
          }
        }
        CompleteNodePart(node);
      }
    });
  }
  if (!m->batch_consumers[depot].empty()) batcher_->Enqueue(*m, depot, partition, nodes, batched);
  for (size_t i = 0; i < items.size(); ++i)
    StartRecord(thread, nodes[i], consumers, items[i].record);
  // A rebuild running beside the module takes the records too, in the topologies that
  // have caught up with this partition (the others read them from the depot later).
  if (const std::shared_ptr<ModuleRuntime>& shadow = part.shadow) {
    std::vector<int> caught_up;
    for (int t : shadow->consumers[depot]) {
      if (!shadow->parts[partition].CatchingUp(t, depot)) caught_up.push_back(t);
    }
    if (caught_up.empty()) return;
    for (size_t i = 0; i < items.size(); ++i) {
      const RecordId id{depot, partition, *first + static_cast<int64_t>(i)};
      StartRecord(thread, NewNode(shadow, id, caught_up), caught_up, items[i].record);
    }
  }
}

void EngineImpl::StartRecord(TaskThread& thread, const std::shared_ptr<AckNode>& node,
                             const std::vector<int>& topologies, const Value& record) {
  ModuleRuntime& m = *node->module;
  const RecordId& id = node->id;
  for (size_t slot = 0; slot < topologies.size(); ++slot) {
    auto run = std::make_shared<TopologyRun>();
    run->record = node;
    run->topology = topologies[slot];
    run->slot = static_cast<int>(slot);
    run->tracker = m.trackers[run->topology][id.depot][id.partition];
    executor_->RunEvent(thread, m, id.partition, Event{std::move(run), 0, record});
  }
}

}  // namespace strata::runtime
