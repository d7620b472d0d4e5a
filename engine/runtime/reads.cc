// EngineImpl's reads and waits (docs/runtime.md, "Threads and partitions"): Select,
// ReadDepot, Stats, Metrics and WaitProcessed run on the caller's thread with a Session borrowed
// from the pool; Barrier waits for every task thread.
#include <algorithm>
#include <latch>

#include "runtime/engine_impl.h"
#include "runtime/meta_tables.h"
#include "runtime/microbatch_executor.h"
#include "runtime/partitioning.h"
#include "runtime/pooled_session.h"
#include "runtime/query_executor.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

// Where the next page of SelectPage starts: a partition, and the last key read of it
// (none: from its first). The token is the value [1, partition, key], or [1, partition]
// from the partition's first key, encoded (strata/value_codec.h); the client treats it as
// opaque bytes.
struct PageToken {
  int partition = 0;
  std::optional<Value> after;
};

std::string EncodePageToken(const PageToken& at) {
  Value::List token{Value(1), Value(at.partition)};
  if (at.after) token.push_back(*at.after);
  const std::vector<uint8_t> bytes = EncodeValue(Value(std::move(token)));
  return std::string(bytes.begin(), bytes.end());
}

Result<PageToken> DecodePageToken(const std::string& token, int partitions) {
  if (token.empty()) return PageToken{};
  Result<Value> v = DecodeValue(token);
  const size_t size = v.ok() && v->is_list() ? v->as_list().size() : 0;
  if ((size != 2 && size != 3) || v->as_list()[0] != Value(1) || !v->as_list()[1].is_int() ||
      v->as_list()[1].as_int() < 0 || v->as_list()[1].as_int() >= partitions) {
    return Status::InvalidArgument(
        "the page token is not one SelectPage returned for this PState (pass the last page's "
        "next_token unchanged, or none for the first page)");
  }
  PageToken at{static_cast<int>(v->as_list()[1].as_int()), std::nullopt};
  if (size == 3) at.after = v->as_list()[2];
  return at;
}

}  // namespace

// A storage error (a failed WiredTiger connection, the session limit) keeps its own code:
// readers must not be told to retry a storage that is gone.
Result<std::unique_ptr<Session>> EngineImpl::TakeSession() {
  {
    MutexLock lock(&pool_mu_);
    if (!pool_.empty()) {
      std::unique_ptr<Session> session = std::move(pool_.back());
      pool_.pop_back();
      return session;
    }
  }
  return storage_->OpenSession();
}

void EngineImpl::ReturnSession(std::unique_ptr<Session> session) {
  MutexLock lock(&pool_mu_);
  pool_.push_back(std::move(session));
}

Result<std::vector<Value>> EngineImpl::Select(const std::string& module, const std::string& pstate,
                                              const Path& path,
                                              std::optional<Value> partition_key) {
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  STRATA_ASSIGN_OR_RETURN(int index, FindPState(*m, pstate));
  const PState& ps = *m->pstates[index];
  STRATA_ASSIGN_OR_RETURN(int partition, SelectPartition(*m, ps, pstate, path, partition_key));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken),
                        [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  // One snapshot for every record the path reads (a subindexed structure, a range), so a
  // select never sees half of a commit; a read of one record needs none (a point read, the
  // hot path of clients, saves the transaction's begin and rollback).
  if (ps.ReadsOneRecord(path)) return ps.Select(*session.get(), partition, path);
  return InSnapshot(*session.get(), [&] { return ps.Select(*session.get(), partition, path); });
}

Result<uint64_t> EngineImpl::Subscribe(const std::string& module, const std::string& pstate,
                                       const Path& path, const SubscribeOptions& options,
                                       SubscriptionCallback callback) {
  if (path.terminal().has_value()) {
    return Status::InvalidArgument(path.ToString() + " is a transform, not a select path");
  }
  STRATA_RETURN_IF_ERROR(path.Validate());
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  STRATA_ASSIGN_OR_RETURN(int index, FindPState(*m, pstate));
  STRATA_ASSIGN_OR_RETURN(
      int partition, SelectPartition(*m, *m->pstates[index], pstate, path, options.partition_key));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken),
                        [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  return subscriptions_->Subscribe(*session.get(), *m, index, partition, path, options,
                                   std::move(callback));
}

void EngineImpl::Unsubscribe(uint64_t id) { subscriptions_->Unsubscribe(id); }

void EngineImpl::RefreshSubscriptions(const ModuleRuntime& m,
                                      const std::set<std::string>& pstates) {
  if (!subscriptions_->active()) return;
  Result<std::unique_ptr<Session>> taken = TakeSession();
  if (!taken.ok()) {
    subscriptions_->End(
        m.name, [&](const std::string& p) { return pstates.empty() || pstates.contains(p); },
        taken.status());
    return;
  }
  PooledSession session(std::move(taken).value(),
                        [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  subscriptions_->Refresh(*session.get(), m, pstates);
}

Result<SelectPageResult> EngineImpl::SelectPage(const std::string& module,
                                                const std::string& pstate, const Path& path,
                                                const std::string& token, int64_t limit) {
  if (limit < 1 || limit > 10'000) {
    return Status::InvalidArgument("a page limit must be 1 to 10000, not " + std::to_string(limit));
  }
  if (path.terminal().has_value()) {
    return Status::InvalidArgument(path.ToString() + " is a transform, not a select path");
  }
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  STRATA_ASSIGN_OR_RETURN(int index, FindPState(*m, pstate));
  const PState& ps = *m->pstates[index];
  const Schema::Kind root = ps.schema().root.kind();
  if (root != Schema::Kind::kMap && root != Schema::Kind::kSet) {
    return Status::InvalidArgument(pstate + " has schema " + ps.schema().ToString() +
                                   ": pages are of a map's or set's keys");
  }
  const int partitions = ps.schema().global ? 1 : m->partitions;
  STRATA_ASSIGN_OR_RETURN(PageToken at, DecodePageToken(token, partitions));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken),
                        [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  // The first `n` keys of partition p after `after`.
  const auto keys = [&](int p, const std::optional<Value>& after, int64_t n) {
    RangeSpec range{after, false, std::nullopt, false, n, false};
    return ps.Select(
        *session.get(), p,
        root == Schema::Kind::kMap ? Path().Range(range).MapKeys() : Path().Range(range).All());
  };
  SelectPageResult page;
  int64_t left = limit;
  int p = at.partition;
  for (; p < partitions && left > 0; ++p) {
    const std::optional<Value> after = p == at.partition ? at.after : std::nullopt;
    // The next keys of the partition (one more, to know whether it has more), then the
    // path over exactly those, in one snapshot.
    bool more = false;
    STRATA_RETURN_IF_ERROR(InSnapshot(*session.get(), [&]() -> Status {
      STRATA_ASSIGN_OR_RETURN(std::vector<Value> views, keys(p, after, left + 1));
      more = static_cast<int64_t>(views.size()) > left;
      if (more) views.resize(static_cast<size_t>(left));
      if (views.empty()) return Status::Ok();
      const Value last = views.back();
      Path page_path = Path().Range({after, false, last, true, std::nullopt, false}).Then(path);
      STRATA_ASSIGN_OR_RETURN(std::vector<Value> values, ps.Select(*session.get(), p, page_path));
      for (Value& v : values) page.values.push_back(std::move(v));
      left -= static_cast<int64_t>(views.size());
      if (more) page.next_token = EncodePageToken({p, last});
      return Status::Ok();
    }));
    if (more) return page;
  }
  // The page ended with partition p - 1: the next one starts at the next partition that
  // has a key, and there is none when none has (so a token always leads to a key).
  for (; left == 0 && p < partitions; ++p) {
    STRATA_ASSIGN_OR_RETURN(std::vector<Value> first, keys(p, std::nullopt, 1));
    if (!first.empty()) {
      page.next_token = EncodePageToken({p, std::nullopt});
      break;
    }
  }
  return page;
}

Result<Value> EngineImpl::Invoke(const std::string& module, const std::string& query,
                                 std::vector<Value> args, const InvokeOptions& options) {
  return queries_->Invoke(module, query, std::move(args), options);
}

Result<Value> EngineImpl::SelectOne(const std::string& module, const std::string& pstate,
                                    const Path& path, std::optional<Value> partition_key) {
  STRATA_ASSIGN_OR_RETURN(std::vector<Value> values,
                          Select(module, pstate, path, std::move(partition_key)));
  if (values.size() == 1) return std::move(values[0]);
  if (values.empty()) return Status::NotFound(path.ToString() + " selects nothing in " + pstate);
  return Status::InvalidArgument(path.ToString() + " selects " + std::to_string(values.size()) +
                                 " values in " + pstate + ", not one");
}

Result<std::vector<DepotEntry>> EngineImpl::ReadDepot(const std::string& module,
                                                      const std::string& depot, int partition,
                                                      int64_t from, int64_t to, int64_t limit) {
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  STRATA_ASSIGN_OR_RETURN(int index, FindDepot(*m, depot));
  if (partition < 0 || partition >= m->partitions) {
    return Status::InvalidArgument("depot " + depot + " has partitions 0 to " +
                                   std::to_string(m->partitions - 1) + ", not " +
                                   std::to_string(partition));
  }
  if (limit <= 0)
    return Status::InvalidArgument("read limit must be positive, not " + std::to_string(limit));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken),
                        [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  STRATA_ASSIGN_OR_RETURN(auto records, m->depots[index]->Read(*session.get(), partition, from, to,
                                                               static_cast<size_t>(limit)));
  std::vector<DepotEntry> out;
  out.reserve(records.size());
  for (strata::DepotRecord& record : records) {
    Result<Value> value = DecodeValue(record.data);
    if (!value.ok()) {
      return Status::Corruption("record " + std::to_string(record.offset) + " of depot " + depot +
                                " partition " + std::to_string(partition) + ": " +
                                value.status().message());
    }
    out.push_back({record.offset, std::move(value).value()});
  }
  return out;
}

void EngineImpl::Barrier() {
  std::latch latch(static_cast<std::ptrdiff_t>(threads_.size()));
  for (auto& thread : threads_) thread->PostBarrier([&latch](TaskThread&) { latch.count_down(); });
  latch.wait();
}

Status EngineImpl::WaitProcessed(const std::string& module) {
  // A recompute running swaps in a new runtime of the module when it has caught up.
  // Passes in which a microbatch committed are repeated (see WaitProcessedOnce), at most
  // this often: a chain of microbatches appending to each other's depots needs one pass per
  // link, and appends that never stop must not keep the caller forever.
  int batch_passes = 0;
  for (;;) {
    STRATA_ASSIGN_OR_RETURN(Pass pass, WaitProcessedOnce(module));
    if (pass == Pass::kReplaced) continue;
    if (pass == Pass::kBatchesMoved && ++batch_passes <= kMaxBatchPasses) continue;
    STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
    {
      MutexLock lock(&m->hold_mu);
      if (!m->rebuild) return Status::Ok();
    }
    if (closing_.load()) return Status::Aborted("the engine is closing");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<EngineImpl::Pass> EngineImpl::WaitProcessedOnce(const std::string& module) {
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  if (m->closed.load()) return Status::NotFound("module " + module + " is being destroyed");
  // A microbatch batch posts the records its steps appended after its commit and before its
  // progress moves: one that commits during this pass (its progress moves, tick depots
  // aside, which always have a next record coming) may have posted them after the Barrier
  // below, so another pass waits for those.
  std::vector<std::pair<ProgressTracker*, int64_t>> batch_progress;
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    if (m->def->depots[d].tick_interval_ms != 0) continue;
    for (int t : m->batch_consumers[d]) {
      for (const auto& tracker : m->trackers[t][d]) {
        batch_progress.emplace_back(tracker.get(), tracker->processed());
      }
    }
  }
  {
    // Appends that arrived during the replays of Open wait in `deferred` lists, out of the
    // task queues, until their partition's replay ends: the Barrier alone would miss them.
    MutexLock lock(&live_mu_);
    while (live_replays_ != 0) live_cv_.Wait(&live_mu_);
  }
  Barrier();  // every append queued before the call has been appended and started
  struct Target {
    ProgressTracker* tracker;
    int64_t end;
  };
  std::vector<Target> targets;
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    for (int p = 0; p < m->partitions; ++p) {
      STRATA_ASSIGN_OR_RETURN(int64_t end, m->depots[d]->EndOffset(p));
      for (int t : m->consumers[d]) targets.push_back({m->trackers[t][d][p].get(), end});
      for (int t : m->batch_consumers[d]) targets.push_back({m->trackers[t][d][p].get(), end});
    }
  }
  m->progress_waiters.fetch_add(1);
  {
    MutexLock lock(&m->progress_mu);
    for (const Target& target : targets) {
      while (target.tracker->processed() < target.end) {
        // A replaced runtime's trackers may never move again (an update dropped them, or
        // rescaled the module); a destroyed one's backfills stop.
        if (m->replaced.load() || m->closed.load()) break;
        m->progress_cv.WaitFor(&m->progress_mu, std::chrono::milliseconds(20));
      }
    }
  }
  m->progress_waiters.fetch_sub(1);
  if (m->closed.load()) return Status::NotFound("module " + module + " is being destroyed");
  if (m->replaced.load()) return Pass::kReplaced;
  for (const auto& [tracker, before] : batch_progress) {
    if (tracker->processed() != before) return Pass::kBatchesMoved;
  }
  return Pass::kDone;
}

Result<ModuleStats> EngineImpl::Stats(const std::string& module, const StatsOptions& options) {
  if (options.failures_from < 0) {
    return Status::InvalidArgument("failures_from must be >= 0, not " +
                                   std::to_string(options.failures_from));
  }
  if (options.failures_limit < 0 || options.failures_limit > StatsOptions::kMaxFailuresLimit) {
    return Status::InvalidArgument("failures_limit must be 0 to " +
                                   std::to_string(StatsOptions::kMaxFailuresLimit) + ", not " +
                                   std::to_string(options.failures_limit));
  }
  {
    ReaderMutexLock lock(&modules_mu_);
    if (auto it = failed_.find(module); it != failed_.end()) {
      ModuleStats stats;
      stats.module = module;
      stats.load_error = it->second.error;
      return stats;
    }
  }
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  ModuleStats stats;
  stats.module = m->name;
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    const std::string& depot = m->def->depots[d].name;
    for (int p = 0; p < m->partitions; ++p) {
      STRATA_ASSIGN_OR_RETURN(int64_t start, m->depots[d]->StartOffset(p));
      STRATA_ASSIGN_OR_RETURN(int64_t end, m->depots[d]->EndOffset(p));
      stats.depots.push_back({depot, p, start, end});
      for (const std::vector<int>* consumers : {&m->consumers[d], &m->batch_consumers[d]}) {
        for (int t : *consumers) {
          const int64_t processed = m->trackers[t][d][p]->processed();
          stats.topologies.push_back(
              {m->def->topologies[t].name, depot, p, processed, end - processed});
        }
      }
    }
  }
  {
    MutexLock lock(&m->failures_mu);
    stats.failures = m->failure_count;
  }
  for (size_t t = 0; t < m->microbatches.size(); ++t) {
    if (!m->microbatches[t]) continue;
    MicrobatchRuntime& mb = *m->microbatches[t];
    MutexLock lock(&mb.mu);
    stats.microbatches.push_back({m->def->topologies[t].name, mb.committed.load(), mb.stalled});
  }
  stats.rebuilds = BackfillProgress(*m);
  for (RebuildProgress& recompute : RecomputeProgress(*m)) {
    stats.rebuilds.push_back(std::move(recompute));
  }
  for (RebuildProgress& migration : MigrationProgress(*m)) {
    stats.rebuilds.push_back(std::move(migration));
  }
  if (options.failures_limit == 0) return stats;
  // The page is read from the failures table (key order: topology, depot, partition,
  // offset), so a failure costs memory only while it is listed.
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken),
                        [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  const std::string prefix = EncodeKey(Value(m->name));
  int64_t skip = options.failures_from;
  Status decode_error;
  STRATA_RETURN_IF_ERROR(session.get()->Scan(
      failures_table_, prefix, PrefixEnd(prefix), false, [&](std::string_view, std::string_view v) {
        if (skip > 0) {
          --skip;
          return true;
        }
        Result<Value> value = DecodeValue(v);
        std::optional<TopologyFailure> failure;
        if (value.ok()) failure = FailureFromValue(*value);
        if (!failure) {
          decode_error =
              Status::Corruption("a failure record of module " + m->name + " does not decode");
          return false;
        }
        stats.failure_page.push_back(std::move(*failure));
        return static_cast<int64_t>(stats.failure_page.size()) < options.failures_limit;
      }));
  STRATA_RETURN_IF_ERROR(decode_error);
  return stats;
}

// Everything is in memory: the counters, the trackers, the depots' offsets, the failure
// count; the storage reads its statistics.
EngineMetrics EngineImpl::Metrics() {
  EngineMetrics metrics;
  std::vector<std::shared_ptr<ModuleRuntime>> modules;
  {
    ReaderMutexLock lock(&modules_mu_);
    for (const auto& [name, m] : modules_) modules.push_back(m);
    for (const auto& [name, failed] : failed_) {
      ModuleMetrics& module = metrics.modules.emplace_back();
      module.module = name;
      module.load_error = failed.error;
    }
  }
  for (const std::shared_ptr<ModuleRuntime>& m : modules) {
    ModuleMetrics& module = metrics.modules.emplace_back();
    module.module = m->name;
    const std::vector<DepotDef>& depots = m->def->depots;
    std::vector<std::vector<int64_t>> ends(depots.size());
    for (size_t d = 0; d < depots.size(); ++d) {
      int64_t records = 0;
      for (int p = 0; p < m->partitions; ++p) {
        Result<int64_t> start = m->depots[d]->StartOffset(p);
        Result<int64_t> end = m->depots[d]->EndOffset(p);
        ends[d].push_back(end.ok() ? *end : 0);
        if (start.ok() && end.ok()) records += *end - *start;
      }
      if (IsMirror(*m, static_cast<int>(d))) continue;
      const DepotCounters& counters = *m->depot_counters[d];
      module.depots.push_back({depots[d].name, counters.appends.load(std::memory_order_relaxed),
                               counters.append_bytes.load(std::memory_order_relaxed), records});
    }
    for (size_t t = 0; t < m->def->topologies.size(); ++t) {
      TopologyMetrics& topology = module.topologies.emplace_back();
      topology.topology = m->def->topologies[t].name;
      topology.kind = m->microbatches[t] ? "microbatch" : "stream";
      topology.steps = m->topology_counters[t]->steps.Snapshot();
      for (size_t d = 0; d < depots.size(); ++d) {
        const std::vector<std::shared_ptr<ProgressTracker>>& trackers = m->trackers[t][d];
        for (size_t p = 0; p < trackers.size(); ++p) {  // none: the topology does not consume d
          const std::shared_ptr<ProgressTracker>& tracker = trackers[p];
          if (!tracker) continue;
          const int64_t processed = tracker->processed();
          topology.partitions.push_back({topology.topology, depots[d].name, static_cast<int>(p),
                                         processed, ends[d][p] - processed});
        }
      }
    }
    MutexLock lock(&m->failures_mu);
    module.failures = m->failure_count;
  }
  std::sort(metrics.modules.begin(), metrics.modules.end(),
            [](const ModuleMetrics& a, const ModuleMetrics& b) { return a.module < b.module; });
  metrics.in_flight_records = limit_.used();
  metrics.max_in_flight_records = limit_.limit();
  metrics.subscriptions = subscriptions_->open();
  metrics.subscription_events = subscriptions_->events();
  const StorageMetrics storage = storage_->Metrics();
  metrics.cache_bytes = storage.cache_bytes;
  metrics.cache_dirty_bytes = storage.cache_dirty_bytes;
  metrics.cache_max_bytes = options_.cache_size_bytes;
  metrics.checkpoints = storage.checkpoints;
  metrics.checkpoint_seconds = storage.checkpoint_seconds;
  metrics.last_checkpoint_seconds = storage.last_checkpoint_seconds;
  metrics.log_flushes = storage.log_flushes;
  metrics.append_phases = {append_phases_.queued.Snapshot(), append_phases_.appended.Snapshot(),
                           append_phases_.flush_wait.Snapshot(),
                           append_phases_.processing.Snapshot()};
  return metrics;
}

}  // namespace strata::runtime
