// The microbatch executor (microbatch_executor.h): a worker per microbatch topology running
// batches, each in one transaction.
#include "runtime/microbatch_executor.h"

#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "runtime/combiners.h"
#include "runtime/engine_impl.h"
#include "runtime/meta_tables.h"
#include "runtime/partitioning.h"
#include "runtime/query_executor.h"
#include "runtime/topology_append.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

constexpr RecordId kCombined{-1, -1, -1};

bool IsRecord(const RecordId& id) { return id.depot >= 0; }

// The group a combined value descends from: the combining op, the key's partition and the
// encoded key.
std::string GroupOrigin(int op, int partition, const std::string& encoded_key) {
  return std::to_string(op) + "/" + std::to_string(partition) + "/" + encoded_key;
}

// A value on its way through the batch: its partition, and the record it descends from, or
// (source kCombined) the group it descends from, after an Aggregate or a GroupBy.
struct Item {
  int partition;
  RecordId source;
  Value value;
  std::string origin;  // GroupOrigin, for a combined value
};

// What the batch dropped after its attempts: a record (all its effects in the topology), or
// a group (its combined value and everything that descends from it).
struct Dropped {
  std::set<std::tuple<int, int, int64_t>> records;             // (depot, partition, offset)
  std::set<std::string> groups;                                // GroupOrigin
  std::vector<std::pair<RecordId, TopologyFailure>> failures;  // the rows to write
  bool Has(const Item& item) const {
    return IsRecord(item.source)
               ? records.count({item.source.depot, item.source.partition, item.source.offset}) != 0
               : groups.count(item.origin) != 0;
  }
};

// Where an attempt failed, so that the next attempt can drop it: the record, or the group.
struct FailurePoint {
  RecordId source = kCombined;
  int partition = -1;
  std::string origin;  // for a combined value
  Status error;
  bool overtime = false;
  std::string Key() const {
    if (IsRecord(source)) {
      return "r" + std::to_string(source.depot) + "/" + std::to_string(source.partition) + "/" +
             std::to_string(source.offset);
    }
    return "g" + origin;
  }
};

// A depot record a topology step appended, released after the batch commits.
struct BatchAppend {
  int depot;
  int partition;
  AppendItem item;
};

// What a batch's transforms wrote, by partition, while subscriptions were open
// (SubscriptionHub): notified once the batch commits.
struct BatchTouches {
  std::map<int, std::vector<Touch>> by_partition;
  void Record(const ModuleRuntime& m, int partition, int pstate, const Path& path) {
    if (Watched(m)) by_partition[partition].push_back({pstate, LeadingKey(path)});
  }
};

// The TopologyContext of a microbatch step: PState reads and writes go to the batch's open
// transaction on the current partition; emits are collected; appends are written to the
// outbox in the transaction and released after the commit.
class BatchContext final : public TopologyContext {
 public:
  // `topology`: the microbatch topology's index in the module's declarations.
  BatchContext(ModuleRuntime& module, int topology, Outbox& outbox, Session& session,
               std::vector<BatchAppend>* appends, BatchTouches* touches)
      : module_(module),
        topology_index_(topology),
        topology_(module.def->topologies[topology]),
        outbox_(outbox),
        session_(session),
        appends_(appends),
        touches_(touches) {}

  void Bind(int partition, RecordId source, std::string origin, std::vector<Item>* emitted) {
    partition_ = partition;
    source_ = source;
    origin_ = std::move(origin);
    emitted_ = emitted;
  }

  int partition() const override { return partition_; }
  int num_partitions() const override { return module_.partitions; }
  RecordId source() const override { return source_; }

  Result<std::vector<Value>> Select(const PStateRef& ref, const Path& path) override {
    if (!ref.module.empty()) return module_.queries->SelectMirror(module_, ref, path, nullptr);
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    return pstate->Select(session_, PartitionOf(*pstate), path);
  }
  Result<Value> SelectOne(const PStateRef& ref, const Path& path) override {
    if (!ref.module.empty()) return module_.queries->SelectOneMirror(module_, ref, path, nullptr);
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    return pstate->SelectOne(session_, PartitionOf(*pstate), path);
  }
  Result<int64_t> Transform(const PStateRef& ref, const Path& path) override {
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    if (module_.pstate_writer[ref.index] != topology_index_) {
      return Status::InvalidArgument(
          "microbatch topology " + topology_.name + " writes " + ref.name +
          " but does not declare it: add .Writes(" + ref.name +
          ") (a microbatch is the only writer of the PStates it writes)");
    }
    if (pstate->schema().global && partition_ != 0) {
      return Status::InvalidArgument(ref.name +
                                     " is a global PState: only partition 0 may write it, "
                                     "and this step runs on partition " +
                                     std::to_string(partition_) + " (route with Global() first)");
    }
    touches_->Record(module_, PartitionOf(*pstate), ref.index, path);
    return pstate->Transform(session_, PartitionOf(*pstate), path);
  }
  Status Append(const DepotRef& ref, Value record) override {
    STRATA_ASSIGN_OR_RETURN(
        std::optional<TopologyAppend> append,
        PrepareTopologyAppend(module_, outbox_, session_, partition_, ref, std::move(record), {}));
    if (append) appends_->push_back({append->depot, append->partition, std::move(append->item)});
    return Status::Ok();
  }
  void Emit(Value value) override {
    if (emitted_ != nullptr) emitted_->push_back({partition_, source_, std::move(value), origin_});
  }
  void SetAckReturn(Value) override {}  // a batch's records have no one ack return each
  Result<Value> Invoke(const QueryRef& query, std::vector<Value> args) override {
    return module_.queries->InvokeFrom(module_, query, std::move(args), nullptr);
  }

 private:
  Result<const PState*> Resolve(const PStateRef& ref) const { return PStateOf(module_, ref); }
  int PartitionOf(const PState& pstate) const { return pstate.schema().global ? 0 : partition_; }

  ModuleRuntime& module_;
  const int topology_index_;
  const TopologyDef& topology_;
  Outbox& outbox_;
  Session& session_;
  std::vector<BatchAppend>* appends_;
  BatchTouches* touches_;
  int partition_ = 0;
  RecordId source_ = kCombined;
  std::string origin_;
  std::vector<Item>* emitted_ = nullptr;
};

// The meta.progress key of a microbatch topology's last committed batch id.
std::string BatchKey(const std::string& module, const std::string& topology) {
  return ProgressKey(module, topology, "$batch", 0);
}

// The meta.progress key of batch `n`'s plan: {depot name: [end offset by partition]}.
std::string PlanKey(const std::string& module, const std::string& topology, int64_t n) {
  return EncodeKey(Value(module)) + EncodeKey(Value(topology)) + EncodeKey(Value("$plan")) +
         EncodeKey(Value(n));
}

}  // namespace

// The records of one batch: by [depot][partition], from `from` to `to`.
struct BatchPlan {
  // Live batches: whether `to` reached, on every source partition, the end the depot had
  // when the batch was planned (a backfill that caught up).
  bool caught_up = false;
  int64_t batch = 0;
  std::vector<std::vector<int64_t>> from;
  std::vector<std::vector<int64_t>> to;
  std::vector<std::vector<std::vector<DepotRecord>>> records;
};

// Runs one attempt of a batch in `session`'s open transaction; returns the failure that
// stopped it, if any. Effects: the PState writes, outbox rows (in the transaction) and
// `appends`.
class BatchRun {
 public:
  // `topology`: the microbatch topology's index in the module's declarations.
  BatchRun(EngineImpl& engine, ModuleRuntime& m, int topology, Session& session,
           const BatchPlan& plan, const Dropped& dropped, std::vector<BatchAppend>* appends)
      : engine_(engine),
        m_(m),
        topology_(m.def->topologies[topology]),
        plan_(plan),
        dropped_(dropped),
        ctx_(m, topology, *engine.outbox_, session, appends, &touches_),
        session_(session) {}

  const BatchTouches& touches() const { return touches_; }

  std::optional<FailurePoint> Run() {
    std::vector<Item> frontier;
    for (int d : topology_.sources) {
      for (int p = 0; p < m_.partitions; ++p) {
        for (const DepotRecord& record : plan_.records[d][p]) {
          if (dropped_.records.count({d, p, record.offset}) != 0) continue;
          Result<Value> value = DecodeValue(record.data);
          if (!value.ok()) {
            return FailurePoint{{d, p, record.offset}, p, {}, value.status(), false};
          }
          frontier.push_back({p, RecordId{d, p, record.offset}, std::move(value).value(), {}});
        }
      }
    }
    const int n = static_cast<int>(topology_.ops.size());
    for (int i = 0; i < n && !frontier.empty(); ++i) {
      const TopologyOp& op = topology_.ops[i];
      std::vector<Item> next;
      std::optional<FailurePoint> failed;
      switch (op.kind) {
        case TopologyOp::Kind::kEach:
          failed = Each(i, op, frontier, &next);
          break;
        case TopologyOp::Kind::kAggregate:
          failed = Aggregate(i, op, frontier, &next);
          break;
        case TopologyOp::Kind::kGroupBy:
          failed = Grouped(i, op, topology_.ops[i + 1], frontier, &next);
          ++i;  // the EachGroup ran with it
          break;
        case TopologyOp::Kind::kEachGroup:
          break;  // only after kGroupBy (the loader checks it)
        default:
          failed = Move(i, op, frontier);
          next = std::move(frontier);
          break;
      }
      if (failed) return failed;
      frontier = std::move(next);
    }
    return std::nullopt;
  }

 private:
  std::optional<FailurePoint> Each(int i, const TopologyOp& op, const std::vector<Item>& in,
                                   std::vector<Item>* out) {
    for (const Item& item : in) {
      if (dropped_.Has(item)) continue;
      ctx_.Bind(item.partition, item.source, item.origin, out);
      const auto started = std::chrono::steady_clock::now();
      Status st = op.fn(ctx_, item.value);
      const bool overtime = Overtime(started, &st);
      if (!st.ok()) return Failure(i, item, st, overtime);
    }
    return std::nullopt;
  }

  // Moves each value to its partition (a partitioner op).
  std::optional<FailurePoint> Move(int i, const TopologyOp& op, std::vector<Item>& items) {
    std::vector<Item> moved;
    moved.reserve(items.size());
    int64_t seq = 0;
    for (Item& item : items) {
      if (dropped_.Has(item)) continue;
      switch (op.kind) {
        case TopologyOp::Kind::kHashPartition: {
          if (!op.key_fn) {
            item.partition = HashPartition(item.value, m_.partitions);
            break;
          }
          Result<Value> key = op.key_fn(item.value);
          if (!key.ok()) return Failure(i, item, key.status(), false);
          item.partition = HashPartition(*key, m_.partitions);
          break;
        }
        case TopologyOp::Kind::kAllPartitions:
          for (int p = 0; p + 1 < m_.partitions; ++p) {
            moved.push_back({p, item.source, item.value, item.origin});
          }
          item.partition = m_.partitions - 1;
          break;
        case TopologyOp::Kind::kGlobal:
          item.partition = 0;
          break;
        case TopologyOp::Kind::kShuffle:  // deterministic: a re-run or recompute agrees
          item.partition =
              HashPartition(Value::ListOf({Value(plan_.batch), Value(seq++)}), m_.partitions);
          break;
        case TopologyOp::Kind::kDirect: {
          Result<int64_t> p = op.partition_fn(item.value);
          if (!p.ok()) return Failure(i, item, p.status(), false);
          if (*p < 0 || *p >= m_.partitions) {
            return Failure(
                i, item,
                Status::InvalidArgument("direct chose partition " + std::to_string(*p) +
                                        ", outside [0, " + std::to_string(m_.partitions) + ")"),
                false);
          }
          item.partition = static_cast<int>(*p);
          break;
        }
        default:
          break;
      }
      moved.push_back(std::move(item));
    }
    items = std::move(moved);
    return std::nullopt;
  }

  struct Group {
    Value key;
    Value partial;
    std::vector<Value> values;
  };
  using Groups = std::map<std::pair<int, std::string>, Group>;  // (partition, encoded key)

  // Groups `in` by op.key_fn; `combine`: fold each value into the group's partial with the
  // combiner, else keep the values.
  std::optional<FailurePoint> Collect(int i, const TopologyOp& op, const std::vector<Item>& in,
                                      int fixed_partition, bool combine, Groups* groups) {
    for (const Item& item : in) {
      if (dropped_.Has(item)) continue;
      Result<Value> key = op.key_fn(item.value);
      if (!key.ok()) return Failure(i, item, key.status(), false);
      std::string encoded = EncodeKey(*key);
      const int p = fixed_partition >= 0 ? fixed_partition : HashPartition(*key, m_.partitions);
      if (dropped_.groups.count(GroupOrigin(i, p, encoded)) != 0) continue;
      Group& g = (*groups)[{p, std::move(encoded)}];
      if (g.key.is_nil()) g.key = std::move(key).value();
      if (!combine) {
        g.values.push_back(item.value);
        continue;
      }
      Result<Value> partial = CombinerPartial(op.combiner, item.value);
      if (!partial.ok()) return Failure(i, item, partial.status(), false);
      Result<Value> merged = CombinerMerge(op.combiner, g.partial, *partial);
      if (!merged.ok()) return Failure(i, item, merged.status(), false);
      g.partial = std::move(merged).value();
    }
    return std::nullopt;
  }

  std::optional<FailurePoint> Aggregate(int i, const TopologyOp& op, const std::vector<Item>& in,
                                        std::vector<Item>* out) {
    const PState& pstate = *m_.pstates[op.pstate];
    Groups groups;
    if (auto failed = Collect(i, op, in, pstate.schema().global ? 0 : -1, true, &groups)) {
      return failed;
    }
    for (auto& [where, g] : groups) {
      const Item at{where.first, kCombined, g.key, GroupOrigin(i, where.first, where.second)};
      Result<Path> path = op.path_of ? op.path_of(g.key) : Result<Path>(Path().Key(g.key));
      if (!path.ok()) return Failure(i, at, path.status(), false);
      Result<Value> stored = pstate.SelectOne(session_, where.first, *path);
      if (!stored.ok()) return Failure(i, at, stored.status(), false);
      Result<Value> folded = CombinerMerge(op.combiner, *stored, g.partial);
      if (!folded.ok()) return Failure(i, at, folded.status(), false);
      Path write = *path;
      write.Set(*folded);
      touches_.Record(m_, where.first, op.pstate, write);
      Result<int64_t> written = pstate.Transform(session_, where.first, write);
      if (!written.ok()) return Failure(i, at, written.status(), false);
      out->push_back(
          {where.first, kCombined, Value::ListOf({g.key, std::move(folded).value()}), at.origin});
    }
    return std::nullopt;
  }

  std::optional<FailurePoint> Grouped(int i, const TopologyOp& op, const TopologyOp& each,
                                      const std::vector<Item>& in, std::vector<Item>* out) {
    Groups groups;
    if (auto failed = Collect(i, op, in, -1, false, &groups)) return failed;
    for (auto& [where, g] : groups) {
      const Item at{where.first, kCombined, g.key, GroupOrigin(i, where.first, where.second)};
      ctx_.Bind(where.first, kCombined, at.origin, out);
      const auto started = std::chrono::steady_clock::now();
      Status st = each.group_fn(ctx_, g.key, g.values);
      const bool overtime = Overtime(started, &st);
      if (!st.ok()) return Failure(i + 1, at, st, overtime);
    }
    return std::nullopt;
  }

  bool Overtime(std::chrono::steady_clock::time_point started, Status* error) const {
    const int64_t limit = engine_.options_.step_timeout_ms;
    if (limit <= 0) return false;
    const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count();
    if (elapsed <= limit) return false;
    if (error->ok()) {
      *error = Status::UserError("the step ran for " + std::to_string(elapsed) +
                                 " ms, longer than the step timeout of " + std::to_string(limit) +
                                 " ms (EngineOptions::step_timeout_ms)");
    }
    return true;
  }

  // A failure of `item` (a value descending from a record, or a group) at op `op`.
  FailurePoint Failure(int op, const Item& item, const Status& error, bool overtime) const {
    FailurePoint f;
    f.source = item.source;
    f.partition = item.partition;
    f.origin = item.origin;
    f.error = Status(error.code(), "op " + std::to_string(op) + ": " + error.message());
    f.overtime = overtime;
    return f;
  }

  EngineImpl& engine_;
  ModuleRuntime& m_;
  const TopologyDef& topology_;
  const BatchPlan& plan_;
  const Dropped& dropped_;
  BatchTouches touches_;
  BatchContext ctx_;
  Session& session_;
};

namespace {

// Reads batch `plan.batch`'s records [from, to) of every source partition.
Status ReadRecords(ModuleRuntime& m, const TopologyDef& t, Session& session, BatchPlan* plan) {
  plan->records.assign(m.depots.size(), std::vector<std::vector<DepotRecord>>(m.partitions));
  for (int d : t.sources) {
    for (int p = 0; p < m.partitions; ++p) {
      int64_t next = plan->from[d][p];
      while (next < plan->to[d][p]) {
        STRATA_ASSIGN_OR_RETURN(std::vector<DepotRecord> records,
                                m.depots[d]->Read(session, p, next, plan->to[d][p], 4096));
        if (records.empty()) {
          return Status::Corruption("depot " + m.def->depots[d].name + " partition " +
                                    std::to_string(p) + " has no record at offset " +
                                    std::to_string(next) + " below its end");
        }
        next = records.back().offset + 1;
        for (DepotRecord& r : records) plan->records[d][p].push_back(std::move(r));
      }
    }
  }
  return Status::Ok();
}

// A plan row: {"*depot": {"from": [offset by partition], "to": [...]}} for each source.
Value PlanToValue(const ModuleRuntime& m, const TopologyDef& t, const BatchPlan& plan) {
  Value::Map ranges;
  for (int d : t.sources) {
    Value::List from;
    Value::List to;
    for (int p = 0; p < m.partitions; ++p) {
      from.emplace_back(plan.from[d][p]);
      to.emplace_back(plan.to[d][p]);
    }
    ranges.emplace_back(
        Value(m.def->depots[d].name),
        Value::MapOf({{"from", Value(std::move(from))}, {"to", Value(std::move(to))}}));
  }
  return Value::MapOf(std::move(ranges));
}

// Reads a plan row into plan->from / to. A source the row does not name (one an update
// added after the batch) had no records in the batch.
Status PlanFromValue(const ModuleRuntime& m, const TopologyDef& t, const Value& v,
                     BatchPlan* plan) {
  if (!v.is_map()) return Status::InvalidArgument("not a map");
  for (int d : t.sources) {
    const Value* range = v.Find(Value(m.def->depots[d].name));
    if (range == nullptr) {
      plan->to[d] = plan->from[d];
      continue;
    }
    const Value* from = range->is_map() ? range->Find(Value("from")) : nullptr;
    const Value* to = range->is_map() ? range->Find(Value("to")) : nullptr;
    for (const Value* ends : {from, to}) {
      if (ends == nullptr || !ends->is_list() ||
          ends->as_list().size() != static_cast<size_t>(m.partitions)) {
        return Status::InvalidArgument("the range of " + m.def->depots[d].name +
                                       " is not {from, to} with " + std::to_string(m.partitions) +
                                       " offsets each");
      }
      for (const Value& o : ends->as_list()) {
        if (!o.is_int()) return Status::InvalidArgument("an offset is not an int");
      }
    }
    for (int p = 0; p < m.partitions; ++p) {
      plan->from[d][p] = from->as_list()[p].as_int();
      plan->to[d][p] = to->as_list()[p].as_int();
    }
  }
  return Status::Ok();
}

}  // namespace

Status MicrobatchExecutor::Start(const std::shared_ptr<ModuleRuntime>& m) {
  Status st = StartWorkers(m);
  if (!st.ok()) Stop(*m);  // those started before the error: no thread outlives a refusal
  return st;
}

Status MicrobatchExecutor::StartWorkers(const std::shared_ptr<ModuleRuntime>& m) {
  for (size_t t = 0; t < m->microbatches.size(); ++t) {
    const std::shared_ptr<MicrobatchRuntime>& mb = m->microbatches[t];
    if (!mb || mb->worker.joinable()) continue;
    const TopologyDef& topology = m->def->topologies[t];
    mb->applied.assign(m->depots.size(), std::vector<int64_t>(m->partitions, 0));
    bool backfilling = false;
    for (int d : topology.sources) {
      for (int p = 0; p < m->partitions; ++p) {
        const ProgressTracker& tracker = *m->trackers[t][d][p];
        mb->applied[d][p] = tracker.processed();
        backfilling = backfilling || tracker.backfilling.load();
      }
    }
    {
      MutexLock lock(&mb->mu);
      mb->durable = mb->applied;
      mb->stop = false;
    }
    mb->batch = 0;
    mb->rows_written = false;
    if (!m->is_shadow) {
      STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine_.storage_->OpenSession());
      std::string bytes;
      STRATA_ASSIGN_OR_RETURN(bool found, session->Get(engine_.progress_table_,
                                                       BatchKey(m->name, topology.name), &bytes));
      if (found) {
        Result<Value> v = DecodeValue(bytes);
        if (!v.ok() || !v->is_int()) {
          return Status::Corruption("the batch row of microbatch topology " + topology.name +
                                    " of module " + m->name + " does not decode");
        }
        mb->batch = v->as_int();
      }
    }
    mb->committed.store(mb->batch);
    mb->backfilling.store(backfilling && !m->is_shadow);
    mb->worker = std::thread(
        [this, weak = std::weak_ptr<ModuleRuntime>(m), raw = mb.get()] { Run(weak, raw); });
  }
  return Status::Ok();
}

void MicrobatchExecutor::Stop(ModuleRuntime& m) {
  for (const std::shared_ptr<MicrobatchRuntime>& mb : m.microbatches) {
    if (!mb) continue;
    {
      MutexLock lock(&mb->mu);
      mb->stop = true;
      mb->cv.SignalAll();
    }
    if (mb->worker.joinable()) mb->worker.join();
    // The last batch's durability callback has run (its progress trackers moved), so a
    // successor starting from the trackers starts after it.
    MutexLock lock(&mb->mu);
    while (mb->committed.load() < mb->batch) mb->cv.WaitFor(&mb->mu, std::chrono::milliseconds(5));
  }
}

void MicrobatchExecutor::Enqueue(ModuleRuntime& m, int depot, int partition,
                                 const std::vector<std::shared_ptr<AckNode>>& nodes,
                                 const std::vector<int>& counted) {
  for (int t : m.batch_consumers[depot]) {
    MicrobatchRuntime& mb = *m.microbatches[t];
    std::vector<std::shared_ptr<AckNode>> done;  // applied already: complete at once
    {
      MutexLock lock(&mb.mu);
      if (std::find(counted.begin(), counted.end(), t) != counted.end()) {
        const int64_t durable = mb.durable[depot][partition];
        for (const std::shared_ptr<AckNode>& node : nodes) {
          if (!node->waits_batches) continue;
          if (node->id.offset < durable) {
            done.push_back(node);
          } else {
            mb.waiters[depot][partition].push_back({node->id.offset, node});
          }
        }
      }
      mb.wake = true;
      mb.cv.SignalAll();
    }
    for (const std::shared_ptr<AckNode>& node : done) engine_.CompleteNodePart(node);
  }
}

void MicrobatchExecutor::WaitDrained(ModuleRuntime& m) {
  // Only Quiesce calls it, with the module's gate closed: the depots' ends stop moving.
  while (!Drained(m) && !engine_.closing_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

bool MicrobatchExecutor::Drained(ModuleRuntime& m) {
  for (size_t t = 0; t < m.microbatches.size(); ++t) {
    const std::shared_ptr<MicrobatchRuntime>& mb = m.microbatches[t];
    if (!mb || !mb->worker.joinable()) continue;
    MutexLock lock(&mb->mu);
    for (int d : m.def->topologies[t].sources) {
      // Another module appends to a mirror depot, which this module's gate does not stop:
      // a quiesced module's batches stop wherever they stand.
      if (IsMirror(m, d)) continue;
      for (int p = 0; p < m.partitions; ++p) {
        Result<int64_t> end = m.depots[d]->EndOffset(p);
        if (end.ok() && mb->durable[d][p] < *end) return false;
      }
    }
  }
  return true;
}

bool MicrobatchExecutor::Replayed(const ModuleRuntime& s, const ModuleRuntime& m) {
  for (size_t t = 0; t < s.microbatches.size(); ++t) {
    if (!s.microbatches[t]) continue;
    for (size_t u = 0; u < m.microbatches.size(); ++u) {
      if (m.microbatches[u] && m.def->topologies[u].name == s.def->topologies[t].name &&
          s.microbatches[t]->committed.load() < m.microbatches[u]->committed.load()) {
        return false;
      }
    }
  }
  return true;
}

void MicrobatchExecutor::WaitReplayed(ModuleRuntime& s, const ModuleRuntime& m) {
  while (!Replayed(s, m) && !engine_.closing_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void MicrobatchExecutor::Run(std::weak_ptr<ModuleRuntime> weak, MicrobatchRuntime* mb) {
  Result<std::unique_ptr<Session>> opened = engine_.storage_->OpenSession();
  if (!opened.ok()) {
    engine_.logger_->Error("a microbatch worker could not open a session: " +
                           opened.status().ToString());
    return;
  }
  Session& session = **opened;
  const EngineOptions& options = engine_.options_;
  auto backoff = std::chrono::milliseconds(0);
  for (;;) {
    {
      MutexLock lock(&mb->mu);
      if (backoff.count() > 0) mb->cv.WaitFor(&mb->mu, backoff);
      if (mb->stop) return;
      mb->wake = false;
    }
    std::shared_ptr<ModuleRuntime> m = weak.lock();
    if (!m) return;
    const TopologyDef& topology = m->def->topologies[mb->topology];
    // The plan: from the last batch's ends to the depots' ends, bounded; a shadow replays
    // the plan the live topology recorded.
    BatchPlan plan;
    plan.batch = mb->batch + 1;
    plan.from = mb->applied;
    plan.to = mb->applied;
    bool have = false;
    Status st;
    if (m->is_shadow) {
      std::string bytes;
      Result<bool> found =
          session.Get(engine_.progress_table_, PlanKey(m->name, topology.name, plan.batch), &bytes);
      if (found.ok() && *found) {
        Result<Value> v = DecodeValue(bytes);
        st = v.ok() ? PlanFromValue(*m, topology, *v, &plan) : v.status();
        if (!st.ok()) {
          st = Status::Corruption("the plan of batch " + std::to_string(plan.batch) +
                                  " of microbatch topology " + topology.name +
                                  " does not decode: " + st.message());
        }
        have = st.ok();
      }
    } else {
      // The bounds hold for the whole batch, shared evenly by the source partitions (each
      // takes at least one record): a batch is one transaction, which must fit the cache.
      const int64_t shares = static_cast<int64_t>(topology.sources.size()) * m->partitions;
      const int64_t max_records = std::max<int64_t>(1, options.microbatch_max_records / shares);
      const size_t max_bytes = options.microbatch_max_bytes / static_cast<uint64_t>(shares);
      std::vector<std::vector<int64_t>> ends = plan.from;
      for (int d : topology.sources) {
        for (int p = 0; p < m->partitions && st.ok(); ++p) {
          Result<int64_t> end = m->depots[d]->EndOffset(p);
          if (!end.ok()) {
            st = end.status();
            break;
          }
          ends[d][p] = *end;
          plan.to[d][p] = std::min(*end, plan.from[d][p] + max_records);
          have = have || plan.to[d][p] > plan.from[d][p];
        }
      }
      if (st.ok() && have) st = ReadRecords(*m, topology, session, &plan);
      plan.caught_up = st.ok() && have;
      for (int d : topology.sources) {
        for (int p = 0; p < m->partitions && st.ok() && have; ++p) {
          std::vector<DepotRecord>& records = plan.records[d][p];
          size_t bytes = 0;
          size_t keep = 0;
          while (keep < records.size() &&
                 (keep == 0 || bytes + records[keep].data.size() <= max_bytes)) {
            bytes += records[keep++].data.size();
          }
          records.resize(keep);
          plan.to[d][p] = plan.from[d][p] + static_cast<int64_t>(keep);
          plan.caught_up = plan.caught_up && plan.to[d][p] >= ends[d][p];
        }
      }
    }
    if (st.ok() && have && m->is_shadow) st = ReadRecords(*m, topology, session, &plan);
    if (!st.ok()) {
      engine_.logger_->Error("microbatch topology " + topology.name + " of module " + m->name +
                             " could not plan batch " + std::to_string(plan.batch) + ": " +
                             st.ToString());
      backoff = std::chrono::milliseconds(100);
      continue;
    }
    if (!have) {
      // Nothing to do: wait for an append (Enqueue) or, in a shadow, for the next plan.
      MutexLock lock(&mb->mu);
      if (!mb->wake && !mb->stop) {
        mb->cv.WaitFor(&mb->mu, std::chrono::milliseconds(m->is_shadow ? 5 : 200));
      }
      backoff = std::chrono::milliseconds(0);
      continue;
    }
    const auto started = std::chrono::steady_clock::now();
    st = RunBatch(*m, topology, session, mb, plan);
    m->topology_counters[mb->topology]->steps.Observe(std::chrono::steady_clock::now() - started);
    if (!st.ok()) {
      {
        MutexLock lock(&mb->mu);
        mb->stalled = st.ToString();
      }
      engine_.logger_->Error("microbatch topology " + topology.name + " of module " + m->name +
                             ": batch " + std::to_string(plan.batch) +
                             " could not commit (it runs again): " + st.ToString());
      backoff = std::min<std::chrono::milliseconds>(
          std::max(backoff * 2, std::chrono::milliseconds(100)), std::chrono::milliseconds(10000));
      continue;
    }
    backoff = std::chrono::milliseconds(0);
  }
}

Status MicrobatchExecutor::RunBatch(ModuleRuntime& m, const TopologyDef& topology, Session& session,
                                    MicrobatchRuntime* mb, const BatchPlan& plan) {
  const EngineOptions& options = engine_.options_;
  Dropped dropped;
  std::map<std::string, int> attempts;  // by FailurePoint::Key
  std::vector<BatchAppend> appends;
  bool rows_flag = false;  // the backfill flag of the progress rows the batch wrote
  for (;;) {
    appends.clear();
    STRATA_RETURN_IF_ERROR(session.Begin());
    BatchRun run(engine_, m, mb->topology, session, plan, dropped, &appends);
    std::optional<FailurePoint> failed = run.Run();
    if (failed) {
      session.Rollback();
      if (dropped.Has({failed->partition, failed->source, Value(), failed->origin})) {
        // Dropped values are skipped: this is a bug of the executor, not of the step. The
        // batch stalls (retried with a pause) rather than spinning.
        return Status::Internal(
            "batch " + std::to_string(plan.batch) +
            ": a value failed again after it was dropped: " + failed->error.ToString());
      }
      {
        MutexLock lock(&mb->mu);
        if (mb->stop) return Status::Aborted("the worker is stopping");
      }
      const int made = ++attempts[failed->Key()];
      if (made < options.max_step_attempts && !failed->overtime) continue;
      TopologyFailure f;
      f.topology = topology.name;
      f.message = ShortFailureMessage("on partition " + std::to_string(failed->partition) +
                                      " after " + std::to_string(made) +
                                      (made == 1 ? " attempt" : " attempts") + " in batch " +
                                      std::to_string(plan.batch) + ": " + failed->error.ToString());
      if (IsRecord(failed->source)) {
        const RecordId& r = failed->source;
        dropped.records.insert({r.depot, r.partition, r.offset});
        f.depot = m.def->depots[r.depot].name;
        f.partition = r.partition;
        f.offset = r.offset;
      } else {
        dropped.groups.insert(failed->origin);
        f.depot = "$batch";
        f.partition = failed->partition;
        f.offset = plan.batch;
        engine_.logger_->Warning("microbatch topology " + topology.name + " of module " + m.name +
                                 " dropped a group (after an Aggregate or a GroupBy) " + f.message);
      }
      dropped.failures.emplace_back(failed->source, std::move(f));
      continue;
    }
    // The batch's progress, plan and failures commit with its effects.
    Status st;
    if (!m.is_shadow) {
      // A partition's row changes only when the batch read records there, or when the
      // backfill flag the rows carry changes (every row is written by the first batch).
      // The batch that catches up writes the rows without the backfill flag.
      const bool backfilling = mb->backfilling.load() && !plan.caught_up;
      rows_flag = backfilling;
      const bool all_rows = !mb->rows_written || backfilling != mb->rows_backfilling;
      for (int d : topology.sources) {
        for (int p = 0; p < m.partitions && st.ok(); ++p) {
          if (!all_rows && plan.to[d][p] == plan.from[d][p]) continue;
          std::string row;
          AppendValue(ProgressToValue(plan.to[d][p], backfilling), &row);
          st = session.Put(engine_.progress_table_,
                           ProgressKey(m.name, topology.name, m.def->depots[d].name, p), row);
        }
      }
      std::string row;
      if (st.ok()) {
        AppendValue(Value(plan.batch), &row);
        st = session.Put(engine_.progress_table_, BatchKey(m.name, topology.name), row);
      }
      if (st.ok()) {
        row.clear();
        AppendValue(PlanToValue(m, topology, plan), &row);
        st = session.Put(engine_.progress_table_, PlanKey(m.name, topology.name, plan.batch), row);
      }
      // One row per key: two groups of one partition failing in one batch share the key
      // of the batch's failure on that partition, and the first one is kept.
      std::set<std::string> keys;
      for (const auto& [source, f] : dropped.failures) {
        if (!st.ok()) break;
        std::string key = FailureKey(m.name, f);
        if (!keys.insert(key).second) continue;
        row.clear();
        AppendValue(FailureToValue(f), &row);
        st = session.Put(engine_.failures_table_, key, row);
      }
    }
    if (st.ok()) st = session.Commit();
    if (!st.ok()) {
      if (session.in_transaction()) session.Rollback();
      return st;
    }
    if (!m.is_shadow) {
      mb->rows_written = true;
      mb->rows_backfilling = rows_flag;
    }
    for (const auto& [partition, touches] : run.touches().by_partition) {
      engine_.subscriptions_->Notify(session, m, partition, touches);
    }
    break;
  }
  {
    MutexLock lock(&m.failures_mu);
    std::set<std::string> keys;
    for (auto& [source, f] : dropped.failures) {
      std::string key = FailureKey(m.name, f);
      if (!keys.insert(key).second) continue;
      if (m.is_shadow) {
        m.shadow_failures.emplace(std::move(key), f);
      } else {
        ++m.failure_count;
      }
    }
  }
  {
    MutexLock lock(&mb->mu);
    mb->stalled.clear();
  }
  mb->batch = plan.batch;
  mb->applied = plan.to;
  if (mb->backfilling.load()) {
    if (plan.caught_up) {
      mb->backfilling.store(false);
      for (int d : topology.sources) {
        for (int p = 0; p < m.partitions; ++p)
          m.trackers[mb->topology][d][p]->backfilling.store(false);
      }
    }
  }
  // Appends of the batch's steps join their depots' queues like any topology append.
  std::shared_ptr<ModuleRuntime> shared;
  for (BatchAppend& append : appends) {
    if (!shared) shared = m.shared_from_this();
    std::vector<AppendItem> items;
    items.push_back(std::move(append.item));
    engine_.PostAppend(shared, append.depot, append.partition, std::move(items));
  }
  // Once the batch is durable its records' acks complete, with their failures.
  auto failures = std::make_shared<std::map<std::tuple<int, int, int64_t>, std::string>>();
  for (const auto& [source, f] : dropped.failures) {
    if (IsRecord(source)) {
      (*failures)[{source.depot, source.partition, source.offset}] =
          "topology " + f.topology + " gave up on " + f.depot + " partition " +
          std::to_string(f.partition) + " offset " + std::to_string(f.offset) + " " + f.message;
    }
  }
  const int64_t batch = plan.batch;
  auto to = std::make_shared<std::vector<std::vector<int64_t>>>(plan.to);
  std::vector<int> sources = topology.sources;
  std::weak_ptr<ModuleRuntime> weak = m.weak_from_this();
  engine_.storage_->WhenDurable([this, weak, mb, batch, to, failures, sources,
                                 t = mb->topology](Status st) {
    std::shared_ptr<ModuleRuntime> m = weak.lock();
    if (!m) return;
    std::vector<std::shared_ptr<AckNode>> done;
    {
      MutexLock lock(&mb->mu);
      for (int d : sources) {
        for (int p = 0; p < m->partitions; ++p) {
          mb->durable[d][p] = (*to)[d][p];
          std::deque<MicrobatchRuntime::Waiter>& waiting = mb->waiters[d][p];
          while (!waiting.empty() && waiting.front().offset < (*to)[d][p]) {
            done.push_back(std::move(waiting.front().node));
            waiting.pop_front();
          }
        }
      }
      mb->committed.store(batch);
      mb->cv.SignalAll();
    }
    for (int d : sources) {
      for (int p = 0; p < m->partitions; ++p) m->trackers[t][d][p]->AdvanceTo((*to)[d][p]);
    }
    for (const std::shared_ptr<AckNode>& node : done) {
      auto failure = failures->find({node->id.depot, node->id.partition, node->id.offset});
      if (!st.ok() || failure != failures->end()) {
        MutexLock lock(&node->mu);
        if (node->failure.ok()) {
          node->failure = !st.ok() ? Status(st.code(), "flushing the log failed: " + st.message())
                                   : Status::UserError(failure->second);
        }
      }
      engine_.CompleteNodePart(node);
    }
    if (m->progress_waiters.load() > 0) {
      MutexLock lock(&m->progress_mu);
      m->progress_cv.SignalAll();
    }
  });
  return Status::Ok();
}

}  // namespace strata::runtime
