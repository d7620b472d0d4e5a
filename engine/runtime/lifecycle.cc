// EngineImpl's module lifecycle (docs/modules.md, "Changing a deployed module";
// docs/runtime.md, "Update"): Update replaces a module's code in place, Recompute rebuilds
// PStates from the log, and an update with a new partition count rescales.
//
// An update is crash-safe because one transaction switches versions: the module's
// meta.modules row (which names the plugin file) together with the progress rows of the
// (topology, depot) pairs it adds or drops. Everything before that commit (a staged file,
// new empty tables) is dropped at the next Open as stray; everything after it (dropping the
// replaced tables and file) is redone there.
#include <chrono>
#include <filesystem>
#include <thread>

#include "runtime/engine_impl.h"
#include "runtime/microbatch_executor.h"
#include "runtime/update_plan.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

namespace fs = std::filesystem;

}  // namespace

void EngineImpl::Quiesce(ModuleRuntime& m, ModuleRuntime* also) {
  {
    MutexLock lock(&m.hold_mu);
    m.updating = true;
  }
  m.stopping.store(true);
  // Calls that passed the gate post their records once admitted; records in flight and
  // the appends their steps make complete; replays of Open end.
  while (m.admitting.load() != 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
  {
    MutexLock lock(&live_mu_);
    while (live_replays_ != 0) live_cv_.Wait(&live_mu_);
  }
  // Until nothing moves: a microbatch's batch may append records (then live nodes again),
  // and records whose appenders did not wait for microbatches (kProcessedStreams) are not
  // live nodes but must be applied too.
  for (;;) {
    Barrier();  // queued drains have appended and started their records
    WaitNoLiveNodes(m);
    batcher_->WaitDrained(m);
    Barrier();
    if (m.live_nodes.load() == 0 && batcher_->Drained(m)) break;
  }
  // Idle now, and nothing can give them work (the gate is closed, the ticker skips a module
  // being updated): the microbatch workers stop, their last batch durable.
  batcher_->Stop(m);
  if (also != nullptr) {
    WaitNoLiveNodes(*also);
    batcher_->WaitReplayed(*also, m);
  }
  Barrier();  // cursor tasks posted by the last completions have seen `stopping`
}

ModuleRow EngineImpl::RowOf(const ModuleRuntime& m) {
  ModuleRow row;
  row.partitions = m.partitions;
  row.file = m.file;
  row.checksum = m.checksum;
  row.version = m.version;
  row.depot_generation = m.depot_generation;
  for (size_t i = 0; i < m.def->pstates.size(); ++i) {
    row.pstate_generations[m.def->pstates[i].name] = m.pstate_generations[i];
  }
  return row;
}

void EngineImpl::ReleaseWhenUnused(std::shared_ptr<ModuleRuntime>& m) {
  DetachMirrorCursors(*m);  // another module's appends must not take it again
  while (m.use_count() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  m.reset();
}

void EngineImpl::Resume(const std::shared_ptr<ModuleRuntime>& m) {
  m->stopping.store(false);
  if (Status st = batcher_->Start(m); !st.ok()) {
    logger_->Error("module " + m->name +
                   ": its microbatch topologies could not restart: " + st.ToString());
  }
  StartBackfills(m);
  StartMigrations(m);
  DrainHeld(*m, m);
}

void EngineImpl::DrainHeld(ModuleRuntime& from, const std::shared_ptr<ModuleRuntime>& to) {
  for (;;) {
    std::vector<HeldAppend> held;
    {
      MutexLock lock(&from.hold_mu);
      if (from.held.empty()) {
        if (&from == to.get()) {
          from.updating = false;  // the gate opens
        } else {
          from.successor = to;  // later calls are forwarded
        }
        return;
      }
      held.swap(from.held);
      from.held_records = 0;
    }
    // No lock is held: a call's callback may run now and append again.
    for (HeldAppend& h : held) {
      AppendToRuntime(to, h.depot, std::move(h.records), h.level, std::move(h.done),
                      /*bypass_gate=*/true);
    }
  }
}

void EngineImpl::Publish(const std::shared_ptr<ModuleRuntime>& old,
                         const std::shared_ptr<ModuleRuntime>& next) {
  {
    MutexLock lock(&next->hold_mu);
    next->updating = true;  // new calls queue behind the held ones
  }
  // The old version's microbatch workers (idle since Quiesce drained them) stop before the
  // new version's start from the same progress.
  batcher_->Stop(*old);
  if (Status st = batcher_->Start(next); !st.ok()) {
    logger_->Error("module " + next->name +
                   ": its microbatch topologies could not start: " + st.ToString());
  }
  {
    WriterMutexLock modules(&modules_mu_);
    modules_[next->name] = next;
  }
  old->replaced.store(true);
  {
    MutexLock lock(&old->progress_mu);
    old->progress_cv.SignalAll();
  }
  DrainHeld(*old, next);   // the calls held at the old version's gate, in order
  DrainHeld(*next, next);  // then those that found the new version meanwhile
}

void EngineImpl::Abandon(const std::shared_ptr<ModuleRuntime>& old, const std::string& error) {
  batcher_->Stop(*old);
  {
    WriterMutexLock lock(&modules_mu_);
    modules_.erase(old->name);
    failed_[old->name] = FailedModule{old->partitions, error};
  }
  std::vector<HeldAppend> held;
  {
    MutexLock lock(&old->hold_mu);
    old->gone = error;
    held.swap(old->held);
  }
  old->replaced.store(true);
  for (HeldAppend& h : held) h.done(Status::NotFound("module " + old->name + ": " + error));
}

Result<UpdateResult> EngineImpl::Update(const std::string& so_path, const UpdateOptions& options) {
  if (closing_.load()) return Status::Aborted("the engine is closing");
  if (options.partitions < 0 || options.partitions > Depot::kMaxPartitions) {
    return Status::InvalidArgument("partitions must be 0 (keep) or 1 to " +
                                   std::to_string(Depot::kMaxPartitions) + ", not " +
                                   std::to_string(options.partitions));
  }
  MutexLock admin(&admin_mu_);
  STRATA_ASSIGN_OR_RETURN(StagedModule staged, StageModule(so_path, "updating from"));
  const std::string name = staged.loaded->def().name;
  std::shared_ptr<ModuleRuntime> old;
  {
    ReaderMutexLock lock(&modules_mu_);
    if (auto it = failed_.find(name); it != failed_.end()) {
      DiscardStaged(staged);
      return Status::NotFound("module " + name + " is deployed but failed to load (" +
                              it->second.error +
                              "): it cannot be updated; destroy it and deploy the new build");
    }
    auto it = modules_.find(name);
    if (it == modules_.end()) {
      DiscardStaged(staged);
      return Status::NotFound("no module " + name + " is deployed (" + so_path + " defines " +
                              name + "): deploy it first");
    }
    old = it->second;
  }
  Result<UpdatePlan> planned = PlanUpdate(*old->def, staged.loaded->def(), options.drop);
  if (!planned.ok()) {
    DiscardStaged(staged);
    return Status(planned.status().code(),
                  "updating module " + name + " from " + so_path +
                      " is refused, nothing changed: " + planned.status().message());
  }
  UpdatePlan plan = std::move(planned).value();
  {
    const bool rescale = options.partitions != 0 && options.partitions != old->partitions;
    const ModuleDef& next_def = staged.loaded->def();
    Status st = CheckDependents(name, &next_def, rescale);
    if (st.ok()) st = CheckDependencies(next_def, rescale ? options.partitions : old->partitions);
    if (st.ok()) st = CheckNoCycle(next_def);
    if (!st.ok()) {
      Status refused(st.code(), "updating module " + name + " from " + so_path +
                                    " is refused, nothing changed: " + st.message());
      DiscardStaged(staged);
      return refused;
    }
  }

  {
    MutexLock lock(&old->hold_mu);
    if (old->rebuild) {
      DiscardStaged(staged);
      return Status::Busy("a recompute of module " + name +
                          " is running: update it once the recompute has finished (stats shows "
                          "its progress)");
    }
  }
  if (options.partitions != 0 && options.partitions != old->partitions) {
    for (const TopologyDef& t : staged.loaded->def().topologies) {
      if (t.kind != TopologyDef::Kind::kMicrobatch) continue;
      // The message first: `t` lives in the staged build.
      Status refused = Status::InvalidArgument(
          "module " + name + " has microbatch topology " + t.name +
          ", and changing the partitions of a module with microbatch topologies is not "
          "supported yet: nothing changed");
      DiscardStaged(staged);
      return refused;
    }
  }
  ModuleRow row = RowOf(*old);
  row.version = old->version + 1;
  row.file = "modules/" + name + ".v" + std::to_string(row.version) + ".so";
  row.checksum = staged.checksum;
  for (const std::string& dropped : plan.dropped) row.pstate_generations.erase(dropped);
  STRATA_RETURN_IF_ERROR(InstallStaged(staged, row.file));
  if (options.partitions != 0 && options.partitions != old->partitions) {
    return Rescale(std::move(old), staged, plan, std::move(row), options.partitions);
  }
  const ModuleDef& next_def = staged.loaded->def();

  // The new version's runtime, built while the old one still runs (creating tables takes
  // time): kept depots, PStates and trackers shared; new tables created (strays if a crash
  // comes before the commit below). PStates whose schema widens or that
  // have a migration (in either version) are reopened after the commit: reopening rewrites
  // their stored schema, which the old version would refuse, and a migration is code of
  // its own plugin, which must not outlive it in a shared PState object.
  Reuse reuse{old.get(), {}, true, {}};
  reuse.placeholders.insert(plan.widened.begin(), plan.widened.end());
  reuse.placeholders.insert(plan.migrated.begin(), plan.migrated.end());
  for (const PStateDef& p : next_def.pstates) {
    const PStateDef* before = Named(old->def->pstates, p.name);
    if (before != nullptr && (before->migration || p.migration)) reuse.placeholders.insert(p.name);
  }
  const std::set<std::string> reopen = reuse.placeholders;
  Result<std::shared_ptr<ModuleRuntime>> opened = OpenModuleRuntime(staged.loaded, row, reuse);
  if (!opened.ok()) {
    DiscardStaged(staged);
    return Status(opened.status().code(), "updating module " + name + " failed, nothing changed: " +
                                              opened.status().message());
  }
  std::shared_ptr<ModuleRuntime> next = std::move(opened).value();
  const auto started = std::chrono::steady_clock::now();
  Quiesce(*old);
  // From here on nothing of the module runs: its trackers stand still.
  std::vector<ProgressTracker*> gone_trackers;
  const auto fail = [&](const Status& st) {
    next.reset();
    DiscardStaged(staged);
    for (ProgressTracker* tracker : gone_trackers) tracker->dropped.store(false);
    Resume(old);
    return Status(st.code(),
                  "updating module " + name + " failed, nothing changed: " + st.message());
  };

  // The (topology, depot) pairs of the old version that the new one does not keep stop
  // writing progress now (Destroy's order: the flag, then a barrier for queued writes).
  struct Pair {
    std::string topology;
    std::string depot;
  };
  std::vector<Pair> gone;
  for (size_t t = 0; t < old->def->topologies.size(); ++t) {
    const TopologyDef& topology = old->def->topologies[t];
    const TopologyDef* kept = Named(next_def.topologies, topology.name);
    for (size_t d = 0; d < old->def->depots.size(); ++d) {
      if (old->trackers[t][d].empty()) continue;
      bool still = false;
      if (kept != nullptr) {
        for (int s : kept->sources)
          still = still || next_def.depots[s].name == old->def->depots[d].name;
      }
      if (still) continue;
      gone.push_back({topology.name, old->def->depots[d].name});
      for (auto& tracker : old->trackers[t][d]) {
        tracker->dropped.store(true);
        gone_trackers.push_back(tracker.get());
      }
    }
  }
  if (!gone.empty()) Barrier();

  // New pairs: backfill from offset 0, or start at the current end.
  std::vector<std::string> backfilling;
  struct NewProgress {
    std::string key;
    Value value;
  };
  std::vector<NewProgress> new_progress;
  for (size_t t = 0; t < next_def.topologies.size(); ++t) {
    for (size_t d = 0; d < next_def.depots.size(); ++d) {
      if (next->trackers[t][d].empty()) continue;
      if (FindTrackers(*old, next_def.topologies[t].name, next_def.depots[d].name) != nullptr) {
        continue;
      }
      for (int p = 0; p < next->partitions; ++p) {
        std::shared_ptr<ProgressTracker>& tracker = next->trackers[t][d][p];
        Result<int64_t> end = next->depots[d]->EndOffset(p);
        if (!end.ok()) return fail(end.status());
        const bool from_end = options.new_topologies_from_end || *end == 0;
        tracker = std::make_shared<ProgressTracker>(tracker->key(), from_end ? *end : 0);
        tracker->backfilling.store(!from_end);
        tracker->recorded_backfilling = !from_end;
        new_progress.push_back({tracker->key(), ProgressToValue(tracker->processed(), !from_end)});
      }
      if (!options.new_topologies_from_end && !Contains(backfilling, next_def.topologies[t].name)) {
        backfilling.push_back(next_def.topologies[t].name);
      }
    }
  }

  // The switch: one transaction, durable before the new version runs.
  Status switched = CommitDurably([&](Session& session) -> Status {
    std::string bytes;
    AppendValue(ModuleRowToValue(row), &bytes);
    STRATA_RETURN_IF_ERROR(session.Put(modules_table_, EncodeKey(Value(name)), bytes));
    for (const Pair& pair : gone) {
      for (int p = 0; p < old->partitions; ++p) {
        STRATA_RETURN_IF_ERROR(
            session.Remove(progress_table_, ProgressKey(name, pair.topology, pair.depot, p))
                .status());
      }
      // The pair's failures: keys start with its progress key without the partition.
      std::string prefix;
      AppendKey(Value(name), &prefix);
      AppendKey(Value(pair.topology), &prefix);
      AppendKey(Value(pair.depot), &prefix);
      STRATA_RETURN_IF_ERROR(RemovePrefix(session, failures_table_, prefix));
    }
    for (size_t t = 0; t < old->def->topologies.size(); ++t) {
      const TopologyDef& topology = old->def->topologies[t];
      if (topology.kind != TopologyDef::Kind::kMicrobatch ||
          Named(next_def.topologies, topology.name) != nullptr) {
        continue;
      }
      // A dropped microbatch's batch id, plans and batch failures ("$batch", "$plan").
      for (const char* kind : {"$batch", "$plan"}) {
        std::string prefix;
        AppendKey(Value(name), &prefix);
        AppendKey(Value(topology.name), &prefix);
        AppendKey(Value(kind), &prefix);
        STRATA_RETURN_IF_ERROR(RemovePrefix(session, progress_table_, prefix));
        STRATA_RETURN_IF_ERROR(RemovePrefix(session, failures_table_, prefix));
      }
    }
    for (const NewProgress& progress : new_progress) {
      std::string value;
      AppendValue(progress.value, &value);
      STRATA_RETURN_IF_ERROR(session.Put(progress_table_, progress.key, value));
    }
    return Status::Ok();
  });
  if (!switched.ok()) return fail(switched);

  // Committed: the new version is the module now, also after a crash. What fails from here
  // leaves it failed until a restart opens it.
  Status after = Status::Ok();
  for (size_t i = 0; i < next_def.pstates.size() && after.ok(); ++i) {
    if (reopen.count(next_def.pstates[i].name) == 0) continue;
    Result<std::shared_ptr<PState>> reopened =
        OpenPState(name, next_def.pstates[i], next->partitions, next->pstate_generations[i]);
    if (reopened.ok()) next->pstates[i] = std::move(reopened).value();
    after = reopened.status();
  }
  if (after.ok()) after = LoadFailureCount(*next);
  if (after.ok()) after = LoadMigrations(*next);
  if (!after.ok()) {
    const std::string error = "updated to version " + std::to_string(row.version) +
                              " but could not open it: " + after.message() +
                              " (restart the server to load it)";
    Abandon(old, error);
    return Status::Internal("module " + name + " " + error);
  }
  MarkCatchingUp(*next);

  Publish(old, next);
  StartBackfills(next);
  StartMigrations(next);
  const auto resumed = std::chrono::steady_clock::now();

  UpdateResult result =
      FinishUpdate(std::move(old), *next, plan,
                   std::chrono::duration_cast<std::chrono::microseconds>(resumed - started));
  result.backfilling = backfilling;
  return result;
}

Status EngineImpl::CommitDurably(const std::function<Status(Session&)>& writes) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  STRATA_RETURN_IF_ERROR(session->Begin());
  if (Status st = writes(*session); !st.ok()) {
    session->Rollback();
    return st;
  }
  STRATA_RETURN_IF_ERROR(session->Commit());
  return storage_->WaitDurable();
}

Status EngineImpl::RemovePrefix(Session& session, TableId table, const std::string& prefix) {
  std::vector<std::string> keys;
  STRATA_RETURN_IF_ERROR(session.Scan(table, prefix, PrefixEnd(prefix), false,
                                      [&](std::string_view key, std::string_view) {
                                        keys.emplace_back(key);
                                        return true;
                                      }));
  for (const std::string& key : keys) STRATA_RETURN_IF_ERROR(session.Remove(table, key).status());
  return Status::Ok();
}

void EngineImpl::CarrySubscriptions(const ModuleRuntime& old, const ModuleRuntime& next) {
  const std::string updated =
      "module " + next.name + " was updated to version " + std::to_string(next.version);
  if (old.partitions != next.partitions) {
    subscriptions_->End(next.name, nullptr,
                        Status::NotFound(updated + " with " + std::to_string(next.partitions) +
                                         " partitions instead of " +
                                         std::to_string(old.partitions) + ": subscribe again"));
    return;
  }
  std::set<std::string> kept;
  for (const PStateDef& p : next.def->pstates) kept.insert(p.name);
  subscriptions_->End(
      next.name, [&](const std::string& p) { return !kept.contains(p); },
      Status::NotFound(updated + ", which dropped the PState"));
  RefreshSubscriptions(next, {});
}

UpdateResult EngineImpl::FinishUpdate(std::shared_ptr<ModuleRuntime> old, const ModuleRuntime& next,
                                      const UpdatePlan& plan, std::chrono::microseconds pause) {
  // The old version's objects must be gone before the tables only it used are dropped; a
  // crash before that leaves strays that Open drops.
  const std::string old_file = old->file;
  CarrySubscriptions(*old, next);
  ReleaseWhenUnused(old);
  Status cleaned = DropStrayTables(next).status();
  std::error_code ec;
  fs::remove(fs::path(options_.data_dir) / old_file, ec);
  if (!cleaned.ok()) {
    logger_->Warning("module " + next.name + " was updated to version " +
                     std::to_string(next.version) +
                     ", but dropping the tables it no longer uses failed (the next start "
                     "retries): " +
                     cleaned.ToString());
  }
  UpdateResult result;
  result.info = DescribeModule(next);
  {
    ReaderMutexLock lock(&modules_mu_);
    result.info.dependents = DependentsOf(next.name);
  }
  result.version = next.version;
  result.created = plan.created;
  result.dropped = plan.dropped;
  result.widened = plan.widened;
  result.migrated = plan.migrated;
  result.pause_us = pause.count();
  return result;
}

}  // namespace strata::runtime
