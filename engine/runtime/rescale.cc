// EngineImpl's rescale (docs/modules.md, "Changing the partition count"): an update with a
// new partition count copies every depot record into the next generation of its depot's
// tables, at the partition its depot's partitioning chooses among the new count (records
// of one old partition keep their order), recording each record's new place against its
// old one in the table rescale.<module>.<depot>@<generation>; then a shadow runtime
// recomputes every PState from the copies; then one transaction switches the module to the
// new generation, partition count and build. The running version keeps serving reads
// throughout; appends wait at the update gate (Quiesce) until the switch.
#include <chrono>
#include <thread>

#include "runtime/engine_impl.h"
#include "runtime/partitioning.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

constexpr size_t kCopyChunk = 1024;

}  // namespace

std::string EngineImpl::RescaleMapTable(const std::string& module, const std::string& depot,
                                        int generation) {
  return "rescale." + module + "." + std::string(BareName(depot)) + "@" +
         std::to_string(generation);
}

// The partition a record of old partition `from` moves to: its hash for a hash-partitioned
// depot; otherwise (random, topology appends) `from` modulo the new count.
static Result<int> RescaledPartition(const DepotDef& depot, const Value& record, int from,
                                     int partitions) {
  if (depot.partitioning.kind == DepotPartitioning::Kind::kHash) {
    return ChoosePartition(depot, record, partitions, 0);
  }
  return from % partitions;
}

Status EngineImpl::CopyDepot(const ModuleRuntime& old, int old_index, const DepotDef& def,
                             int partitions, int generation, int64_t* copied) {
  STRATA_ASSIGN_OR_RETURN(
      std::unique_ptr<Depot> target,
      Depot::Open(storage_.get(), old.name, BareName(def.name), partitions, generation));
  STRATA_ASSIGN_OR_RETURN(
      TableId map,
      storage_->OpenTable(RescaleMapTable(old.name, def.name, generation), TableKind::kBytes));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  Depot& source = *old.depots[old_index];
  for (int p = 0; p < old.partitions; ++p) {
    STRATA_ASSIGN_OR_RETURN(int64_t from, source.StartOffset(p));
    for (;;) {
      STRATA_ASSIGN_OR_RETURN(std::vector<strata::DepotRecord> records,
                              source.Read(*session, p, from, INT64_MAX, kCopyChunk));
      if (records.empty()) break;
      std::vector<std::vector<const strata::DepotRecord*>> by_partition(partitions);
      for (const strata::DepotRecord& record : records) {
        STRATA_ASSIGN_OR_RETURN(Value value, DecodeValue(record.data));
        STRATA_ASSIGN_OR_RETURN(int q, RescaledPartition(def, value, p, partitions));
        by_partition[q].push_back(&record);
      }
      for (int q = 0; q < partitions; ++q) {
        if (by_partition[q].empty()) continue;
        STRATA_ASSIGN_OR_RETURN(int64_t first, target->EndOffset(q));
        std::vector<std::string_view> views;
        for (const strata::DepotRecord* record : by_partition[q]) views.push_back(record->data);
        const auto map_rows = [&](Session& s) -> Status {
          for (size_t i = 0; i < by_partition[q].size(); ++i) {
            std::string key;
            AppendKey(Value(p), &key);
            AppendKey(Value(by_partition[q][i]->offset), &key);
            std::string place;
            AppendValue(Value::ListOf({q, first + static_cast<int64_t>(i)}), &place);
            STRATA_RETURN_IF_ERROR(s.Put(map, key, place));
          }
          return Status::Ok();
        };
        STRATA_RETURN_IF_ERROR(target->AppendBatch(*session, q, views, map_rows).status());
      }
      *copied += static_cast<int64_t>(records.size());
      from = records.back().offset + 1;
    }
  }
  return Status::Ok();
}

Result<UpdateResult> EngineImpl::Rescale(std::shared_ptr<ModuleRuntime> old, StagedModule& staged,
                                         const UpdatePlan& plan, ModuleRow row, int partitions) {
  const std::string name = old->name;
  const ModuleDef& next_def = staged.loaded->def();
  const int from_partitions = old->partitions;
  row.partitions = partitions;
  row.depot_generation = old->depot_generation + 1;
  row.pstate_generations.clear();
  for (const PStateDef& p : next_def.pstates) {
    int generation = 0;
    for (size_t j = 0; j < old->def->pstates.size(); ++j) {
      if (old->def->pstates[j].name == p.name) generation = old->pstate_generations[j];
    }
    row.pstate_generations[p.name] = generation + 1;
  }
  // Tables of the new generations: an earlier rescale that failed in this process may have
  // left some (a crash leaves them too, and Open drops those).
  const auto drop_new_tables = [&]() -> Status {
    std::vector<std::string> prefixes;
    for (const DepotDef& d : next_def.depots) {
      prefixes.push_back(TablePrefix("depot.", name, d.name, row.depot_generation));
      prefixes.push_back(RescaleMapTable(name, d.name, row.depot_generation));
    }
    for (const PStateDef& p : next_def.pstates) {
      prefixes.push_back(TablePrefix("pstate.", name, p.name, row.pstate_generations[p.name]));
    }
    for (const std::string& prefix : prefixes) {
      STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables, storage_->ListTables(prefix));
      for (const std::string& table : tables) STRATA_RETURN_IF_ERROR(storage_->DropTable(table));
    }
    return Status::Ok();
  };

  const auto started = std::chrono::steady_clock::now();
  Quiesce(*old);
  std::shared_ptr<ModuleRuntime> s;
  const auto fail = [&](const Status& st) {
    {
      MutexLock lock(&old->hold_mu);
      old->rebuild.reset();
    }
    if (s) {
      s->stopping.store(true);
      Barrier();
      WaitNoLiveNodes(*s);
      ReleaseWhenUnused(s);
    }
    Status dropped = drop_new_tables();
    if (!dropped.ok()) logger_->Warning("rescale clean-up: " + dropped.ToString());
    DiscardStaged(staged);
    SetTrackersDropped(*old, false);
    Resume(old);
    return Status(st.code(), "rescaling module " + name + " from " +
                                 std::to_string(from_partitions) + " to " +
                                 std::to_string(partitions) +
                                 " partitions failed, nothing changed: " + st.message());
  };
  if (Status st = drop_new_tables(); !st.ok()) return fail(st);

  // 1. The records, into the new generation of each kept depot.
  int64_t copied = 0;
  for (const DepotDef& d : next_def.depots) {
    for (size_t j = 0; j < old->def->depots.size(); ++j) {
      if (old->def->depots[j].name != d.name) continue;
      Status st =
          CopyDepot(*old, static_cast<int>(j), d, partitions, row.depot_generation, &copied);
      if (!st.ok()) return fail(st);
    }
  }
  logger_->Info("rescaling module " + name + ": copied " + std::to_string(copied) +
                " depot records into " + std::to_string(partitions) +
                " partitions; recomputing its PStates");

  // 2. Every PState, recomputed from the copies by the new build's topologies.
  Result<std::shared_ptr<ModuleRuntime>> opened = OpenModuleRuntime(staged.loaded, row, Reuse{});
  if (!opened.ok()) return fail(opened.status());
  s = std::move(opened).value();
  MakeShadow(*s, std::vector<bool>(next_def.pstates.size(), true));
  {
    MutexLock lock(&old->hold_mu);
    old->rebuild = s;  // its progress shows in stats
  }
  StartBackfills(s);
  while (!CaughtUp(*s) || s->live_nodes.load() != 0) {
    if (closing_.load()) return fail(Status::Aborted("the engine is closing"));
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  {
    MutexLock lock(&old->hold_mu);
    old->rebuild.reset();
  }

  // The old trackers write no more progress: their keys are rewritten below (Update's
  // order for dropped pairs: the flag, then a barrier for writes already queued).
  SetTrackersDropped(*old, true);
  Barrier();

  // 3. The switch: the row, every progress row at the copies' ends, the failures of the
  // recomputation in place of the old ones, migrations marked done (the PStates were
  // rebuilt by the new code), in one transaction.
  Status switched = CommitDurably([&](Session& session) -> Status {
    std::string bytes;
    AppendValue(ModuleRowToValue(row), &bytes);
    STRATA_RETURN_IF_ERROR(session.Put(modules_table_, EncodeKey(Value(name)), bytes));
    const std::string prefix = EncodeKey(Value(name));
    for (TableId table : {progress_table_, failures_table_}) {
      STRATA_RETURN_IF_ERROR(RemovePrefix(session, table, prefix));
    }
    for (const auto& by_depot : s->trackers) {
      for (const auto& by_partition : by_depot) {
        for (const auto& tracker : by_partition) {
          std::string value;
          AppendValue(ProgressToValue(tracker->processed(), false), &value);
          STRATA_RETURN_IF_ERROR(session.Put(progress_table_, tracker->key(), value));
        }
      }
    }
    {
      MutexLock lock(&s->failures_mu);
      for (const auto& [key, failure] : s->shadow_failures) {
        std::string value;
        AppendValue(FailureToValue(failure), &value);
        STRATA_RETURN_IF_ERROR(session.Put(failures_table_, key, value));
      }
    }
    return MarkMigrationsDone(session, *s);
  });
  if (!switched.ok()) return fail(switched);

  // Committed: the rescaled version is the module now.
  Result<std::shared_ptr<ModuleRuntime>> next_opened =
      OpenModuleRuntime(staged.loaded, row, Reuse{s.get(), {}, false, {}});
  Status after = next_opened.status();
  std::shared_ptr<ModuleRuntime> next;
  if (after.ok()) {
    next = std::move(next_opened).value();
    after = LoadProgressAndFailures(*next);
    if (after.ok()) after = LoadMigrations(*next);
  }
  if (!after.ok()) {
    const std::string error = "rescaled to " + std::to_string(partitions) +
                              " partitions (version " + std::to_string(row.version) +
                              ") but could not open it: " + after.message() +
                              " (restart the server to load it)";
    Abandon(old, error);
    return Status::Internal("module " + name + " " + error);
  }
  Publish(old, next);
  StartMigrations(next);
  const auto resumed = std::chrono::steady_clock::now();

  ReleaseWhenUnused(s);
  return FinishUpdate(std::move(old), *next, plan,
                      std::chrono::duration_cast<std::chrono::microseconds>(resumed - started));
}

Status EngineImpl::MarkMigrationsDone(Session& session, const ModuleRuntime& m) {
  for (size_t i = 0; i < m.def->pstates.size(); ++i) {
    const PStateDef& def = m.def->pstates[i];
    if (!def.migration) continue;
    for (int p = 0; p < m.pstates[i]->partitions(); ++p) {
      std::string marker;
      AppendValue(MigrationMarker(def.migration->id, "", true), &marker);
      STRATA_RETURN_IF_ERROR(
          session.Put(progress_table_, MigrationMarkerKey(m.name, def.name, p), marker));
    }
  }
  return Status::Ok();
}

}  // namespace strata::runtime
