// EngineImpl's rebuilds (docs/runtime.md, "Recompute"): Recompute runs the module's
// topologies over its depots from offset 0 in a shadow runtime that writes the PStates it
// rebuilds into their next table generation, while the live module keeps serving reads
// and processing appends; once the shadow has caught up it takes the live records too, and
// a swap (the module's row naming the new generation) replaces the live PStates.
//
// The shadow shares the live module's depots, code and task lanes: a cursor of the shadow
// and the appends of the partition run in one FIFO lane on the partition's owner thread, so
// the cursor that reaches the end of the depot hands over to the appends without a gap.
#include <chrono>
#include <thread>

#include "runtime/engine_impl.h"
#include "runtime/microbatch_executor.h"

namespace strata::runtime {

Result<std::shared_ptr<ModuleRuntime>> EngineImpl::OpenShadow(const ModuleRuntime& m,
                                                              const ModuleRow& row,
                                                              const std::vector<bool>& targets) {
  // Leftovers of an earlier rebuild of the same generation (a cancelled one) start over.
  for (size_t i = 0; i < targets.size(); ++i) {
    const PStateDef& pstate = m.def->pstates[i];
    STRATA_ASSIGN_OR_RETURN(
        std::vector<std::string> tables,
        storage_->ListTables(
            TablePrefix("pstate.", m.name, pstate.name, row.pstate_generations.at(pstate.name))));
    for (const std::string& table : tables) STRATA_RETURN_IF_ERROR(storage_->DropTable(table));
  }
  Reuse reuse;
  reuse.previous = &m;
  reuse.trackers = false;
  for (const PStateDef& pstate : m.def->pstates) reuse.fresh_pstates.insert(pstate.name);
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<ModuleRuntime> s,
                          OpenModuleRuntime(m.loaded, row, reuse));
  for (int p = 0; p < s->partitions; ++p) s->parts[p].lane = m.parts[p].lane;
  MakeShadow(*s, targets);
  return s;
}

void EngineImpl::MakeShadow(ModuleRuntime& s, std::vector<bool> swap_in) {
  s.is_shadow = true;
  s.subscriptions = nullptr;  // its writes are not the live PStates' (SwapRecomputed refreshes)
  s.swap_in = std::move(swap_in);
  ForEachTracker(s, [&s](int t, int, int, const std::shared_ptr<ProgressTracker>& tracker) {
    tracker->persistent = false;
    // A microbatch topology of the shadow catches up by replaying plans (Replayed).
    tracker->backfilling.store(s.microbatches[t] == nullptr);
  });
  MarkCatchingUp(s);
}

void EngineImpl::WaitNoLiveNodes(ModuleRuntime& r) {
  r.progress_waiters.fetch_add(1);
  {
    MutexLock lock(&r.progress_mu);
    while (r.live_nodes.load() != 0) {
      r.progress_cv.WaitFor(&r.progress_mu, std::chrono::milliseconds(5));
    }
  }
  r.progress_waiters.fetch_sub(1);
}

std::string EngineImpl::SwapInNames(const ModuleRuntime& s) {
  std::string names;
  for (size_t i = 0; i < s.swap_in.size(); ++i) {
    if (s.swap_in[i]) names += (names.empty() ? "" : ", ") + s.def->pstates[i].name;
  }
  return names;
}

Status EngineImpl::Recompute(const std::string& module, const std::vector<std::string>& pstates) {
  if (closing_.load()) return Status::Aborted("the engine is closing");
  if (pstates.empty()) return Status::InvalidArgument("name at least one PState to recompute");
  MutexLock admin(&admin_mu_);
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<ModuleRuntime> m, Find(module));
  std::vector<bool> targets(m->def->pstates.size(), false);
  for (const std::string& name : pstates) {
    STRATA_ASSIGN_OR_RETURN(int index, FindPState(*m, name));
    targets[index] = true;
  }
  {
    MutexLock lock(&m->hold_mu);
    if (m->rebuild) {
      return Status::AlreadyExists(
          "a recompute of module " + module + " (" + SwapInNames(*m->rebuild) +
          ") is running: wait for it to finish (stats shows its progress)");
    }
  }
  // Every PState is rebuilt, into its next generation; only the targets are swapped in.
  ModuleRow row = RowOf(*m);
  for (auto& [name, generation] : row.pstate_generations) ++generation;
  Result<std::shared_ptr<ModuleRuntime>> opened = OpenShadow(*m, row, targets);
  if (!opened.ok()) {
    return Status(opened.status().code(),
                  "starting the recompute of module " + module + ": " + opened.status().message());
  }
  std::shared_ptr<ModuleRuntime> s = std::move(opened).value();
  {
    MutexLock lock(&m->hold_mu);
    m->rebuild = s;
  }
  FollowLeaders(*s, *m);
  // Each partition learns of the shadow before the shadow's cursor for it runs (one lane).
  for (int p = 0; p < m->partitions; ++p) {
    m->parts[p].Post([m, s, p](TaskThread&) { m->parts[p].shadow = s; });
  }
  StartBackfills(s);
  STRATA_RETURN_IF_ERROR(batcher_->Start(s));
  MutexLock lock(&rebuild_threads_mu_);
  rebuild_threads_.emplace_back([this, module, s] { FinishRecompute(module, s); });
  return Status::Ok();
}

bool EngineImpl::ReplayedLive(const std::string& module, const ModuleRuntime& s) {
  Result<std::shared_ptr<ModuleRuntime>> m = Find(module);
  return !m.ok() || MicrobatchExecutor::Replayed(s, **m);
}

bool EngineImpl::CaughtUp(const ModuleRuntime& s) {
  bool caught_up = true;
  ForEachTracker(s, [&](int, int, int, const std::shared_ptr<ProgressTracker>& tracker) {
    caught_up = caught_up && !tracker->backfilling.load();
  });
  return caught_up;
}

void EngineImpl::FinishRecompute(const std::string& module, std::shared_ptr<ModuleRuntime> s) {
  // Microbatch topologies of the shadow replay the live one's plans (WaitReplayed at the
  // swap covers the batches the live topology commits meanwhile).
  while (!CaughtUp(*s) || !ReplayedLive(module, *s)) {
    if (s->stopping.load()) return;  // cancelled (Destroy)
    if (closing_.load()) {
      batcher_->Stop(*s);
      logger_->Warning("the recompute of " + SwapInNames(*s) + " of module " + module +
                       " had not caught up when the engine closed: it is discarded (the live "
                       "PStates stay); run it again");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  MutexLock admin(&admin_mu_);
  Result<std::shared_ptr<ModuleRuntime>> m = Find(module);
  if (!m.ok() || closing_.load()) return;
  {
    MutexLock lock(&(*m)->hold_mu);
    if ((*m)->rebuild != s) return;  // cancelled
  }
  Status st = SwapRecomputed(std::move(m).value(), s);
  if (!st.ok()) {
    logger_->Error("the recompute of module " + module + " could not replace the live PStates " +
                   "(they keep serving; recompute again): " + st.ToString());
  }
}

Status EngineImpl::SwapRecomputed(std::shared_ptr<ModuleRuntime> m,
                                  const std::shared_ptr<ModuleRuntime>& s) {
  Quiesce(*m, s.get());
  // The live mirror cursors stopped where the next runtime resumes them: the shadow's
  // (which another module's appends keep waking) stop at the same offsets.
  WaitMirrorsAligned(*s);
  s->stopping.store(true);
  DetachMirrorCursors(*s);
  Barrier();
  WaitNoLiveNodes(*s);
  batcher_->Stop(*s);
  ModuleRow row = RowOf(*m);
  std::set<std::string> fresh;
  for (size_t i = 0; i < s->swap_in.size(); ++i) {
    if (!s->swap_in[i]) continue;
    row.pstate_generations[m->def->pstates[i].name] = s->pstate_generations[i];
    fresh.insert(m->def->pstates[i].name);
  }
  Status st = WriteModuleRow(m->name, row);
  if (st.ok()) st = storage_->WaitDurable();
  Result<std::shared_ptr<ModuleRuntime>> opened =
      st.ok() ? OpenModuleRuntime(m->loaded, row, {m.get(), fresh, true, {}})
              : Result<std::shared_ptr<ModuleRuntime>>(st);
  if (opened.ok()) st = LoadFailureCount(**opened);
  if (opened.ok() && st.ok()) st = LoadMigrations(**opened);
  if (!opened.ok() || !st.ok()) {
    // The row may name the new generation already: the next Open loads it; until then the
    // live PStates keep serving.
    CancelRebuild(*m);
    Resume(m);
    return opened.ok() ? st : opened.status();
  }
  std::shared_ptr<ModuleRuntime> next = std::move(opened).value();
  MarkCatchingUp(*next);
  Publish(m, next);
  StartBackfills(next);
  StartMigrations(next);
  {
    MutexLock lock(&m->hold_mu);
    m->rebuild.reset();
  }
  std::set<std::string> swapped;
  for (size_t p = 0; p < s->swap_in.size(); ++p) {
    if (s->swap_in[p]) swapped.insert(next->def->pstates[p].name);
  }
  RefreshSubscriptions(*next, swapped);
  // The replaced tables go once nothing uses them.
  ReleaseWhenUnused(m);
  Status dropped = DropStrayTables(*next).status();
  if (!dropped.ok()) {
    logger_->Warning("module " + next->name + " replaced its recomputed PStates, but dropping " +
                     "the old tables failed (the next start retries): " + dropped.ToString());
  }
  return Status::Ok();
}

void EngineImpl::CancelRebuild(ModuleRuntime& m) {
  std::shared_ptr<ModuleRuntime> s;
  {
    MutexLock lock(&m.hold_mu);
    s = std::move(m.rebuild);
  }
  if (!s) return;
  s->stopping.store(true);
  DetachMirrorCursors(*s);
  batcher_->Stop(*s);
  for (int p = 0; p < m.partitions; ++p) {
    m.parts[p].Post([&m, p](TaskThread&) { m.parts[p].shadow.reset(); });
  }
  Barrier();
  WaitNoLiveNodes(*s);
}

std::vector<RebuildProgress> EngineImpl::RecomputeProgress(const ModuleRuntime& m) {
  std::shared_ptr<ModuleRuntime> s;
  {
    MutexLock lock(const_cast<Mutex*>(&m.hold_mu));
    s = m.rebuild;
  }
  if (!s) return {};
  RebuildProgress progress{s->partitions == m.partitions ? "recompute" : "rescale", {}, 0, 0};
  // The shadow's own declarations: a rescale's new build may declare other PStates.
  for (size_t i = 0; i < s->swap_in.size(); ++i) {
    if (s->swap_in[i]) progress.names.push_back(s->def->pstates[i].name);
  }
  ForEachTracker(*s, [&](int, int d, int p, const std::shared_ptr<ProgressTracker>& tracker) {
    AddProgress(*s, d, p, *tracker, &progress);
  });
  return {progress};
}

}  // namespace strata::runtime
