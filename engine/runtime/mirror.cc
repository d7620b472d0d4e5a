// EngineImpl's module dependencies (docs/runtime.md, "Mirror depots"; docs/modules.md,
// "Module dependencies"): opening a module's mirror depots on the other module's Depot
// objects, the cursors that feed them to its topologies, and the checks that refuse a
// deploy with missing dependencies and a destroy or update that would break a dependent.
#include <algorithm>
#include <map>
#include <set>

#include "runtime/engine_impl.h"
#include "runtime/microbatch_executor.h"
#include "runtime/stream_executor.h"
#include "runtime/update_plan.h"

namespace strata::runtime {
namespace {

// As for backfills (backfill.cc): records a cursor starts per task, and how far it may run
// ahead of its topology's progress before it parks until completions catch up.
constexpr size_t kMirrorChunk = 256;
constexpr int64_t kMirrorAhead = 4096;

// Wakes the worker of a microbatch topology that consumes a mirror depot (it plans its
// batches from the depot's end offsets; without the wake it would notice within its idle
// wait).
class BatchTap final : public DepotTap {
 public:
  explicit BatchTap(std::weak_ptr<MicrobatchRuntime> mb) : mb_(std::move(mb)) {}
  void Appended(int) override {
    std::shared_ptr<MicrobatchRuntime> mb = mb_.lock();
    if (!mb) return;
    MutexLock lock(&mb->mu);
    mb->wake = true;
    mb->cv.SignalAll();
  }

 private:
  std::weak_ptr<MicrobatchRuntime> mb_;
};

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// What `def` uses of module `other`: "depot *d", "PState $$p", "query q".
std::vector<std::string> UsesOf(const ModuleDef& def, const std::string& other) {
  std::vector<std::string> uses;
  for (const DepotDef& depot : def.depots) {
    if (depot.mirror_of == other) uses.push_back("depot " + depot.name);
  }
  for (const MirrorDef& mirror : def.mirror_pstates) {
    if (mirror.module == other) uses.push_back("PState " + mirror.name);
  }
  for (const MirrorDef& mirror : def.mirror_queries) {
    if (mirror.module == other) uses.push_back("query " + mirror.name);
  }
  return uses;
}

bool DeclaresQuery(const ModuleDef& def, const std::string& name) {
  for (const QueryDef& query : def.queries) {
    if (query.topology.name == name) return true;
  }
  return false;
}

// Whether `def` still declares what the use "depot *d" / "PState $$p" / "query q" names.
bool Provides(const ModuleDef& def, const std::string& use) {
  const size_t space = use.find(' ');
  const std::string kind = use.substr(0, space);
  const std::string name = use.substr(space + 1);
  if (kind == "depot") return Named(def.depots, name) != nullptr;
  if (kind == "PState") return Named(def.pstates, name) != nullptr;
  return DeclaresQuery(def, name);
}

}  // namespace

void DepotTaps::Add(std::weak_ptr<DepotTap> tap) {
  MutexLock lock(&mu_);
  taps_.push_back(std::move(tap));
  any_.store(true);
}

void DepotTaps::Appended(int partition) {
  if (!any_.load()) return;
  std::vector<std::shared_ptr<DepotTap>> live;
  {
    MutexLock lock(&mu_);
    std::erase_if(taps_, [&live](const std::weak_ptr<DepotTap>& weak) {
      std::shared_ptr<DepotTap> tap = weak.lock();
      if (!tap) return true;
      live.push_back(std::move(tap));
      return false;
    });
    any_.store(!taps_.empty());
  }
  for (const std::shared_ptr<DepotTap>& tap : live) tap->Appended(partition);
}

Status EngineImpl::CheckDependencies(const ModuleDef& def, int partitions) {
  std::vector<std::string> problems;
  for (const std::string& other : DependsOn(def)) {
    const std::vector<std::string> uses = UsesOf(def, other);
    Result<std::shared_ptr<ModuleRuntime>> found = Find(other);
    if (!found.ok()) {
      problems.push_back("module " + other + " (for its " + Joined(uses) + ") " +
                         (found.status().message().find("failed to load") != std::string::npos
                              ? "is deployed but failed to load"
                              : "is not deployed"));
      continue;
    }
    const ModuleRuntime& m = **found;
    std::vector<std::string> missing;
    for (const std::string& use : uses) {
      if (!Provides(*m.def, use)) missing.push_back(use);
    }
    if (!missing.empty()) {
      problems.push_back("module " + other + " has no " + Joined(missing));
    }
    bool mirrors_depot = false;
    for (const DepotDef& depot : def.depots)
      mirrors_depot = mirrors_depot || depot.mirror_of == other;
    if (mirrors_depot && m.partitions != partitions) {
      problems.push_back("module " + def.name + " would have " + std::to_string(partitions) +
                         " partitions but module " + other + ", whose depots it mirrors, has " +
                         std::to_string(m.partitions) +
                         " (a record of partition p is consumed on partition p: give both the "
                         "same count)");
    }
  }
  if (problems.empty()) return Status::Ok();
  std::string message = "module " + def.name + " depends on what is missing: ";
  for (size_t i = 0; i < problems.size(); ++i) message += (i == 0 ? "" : "; ") + problems[i];
  return Status::InvalidArgument(message);
}

std::vector<std::string> EngineImpl::DependentsOf(const std::string& module) {
  std::vector<std::string> dependents;
  for (const auto& [name, m] : modules_) {
    if (name == module) continue;
    for (const std::string& used : DependsOn(*m->def)) {
      if (used == module) dependents.push_back(name);
    }
  }
  return dependents;  // modules_ is ordered by name
}

Status EngineImpl::CheckDependents(const std::string& module, const ModuleDef* next, bool rescale) {
  std::vector<std::string> problems;
  ReaderMutexLock lock(&modules_mu_);
  for (const std::string& dependent : DependentsOf(module)) {
    const ModuleDef& def = *modules_.at(dependent)->def;
    const std::vector<std::string> uses = UsesOf(def, module);
    if (next == nullptr) {
      problems.push_back("module " + dependent + " uses its " + Joined(uses));
      continue;
    }
    std::vector<std::string> dropped;
    for (const std::string& use : uses) {
      if (!Provides(*next, use)) dropped.push_back(use);
    }
    if (!dropped.empty()) {
      problems.push_back("module " + dependent + " uses its " + Joined(dropped) +
                         ", which the new build does not declare");
    }
    if (rescale) {
      for (const std::string& use : uses) {
        if (use.starts_with("depot ")) {
          problems.push_back("module " + dependent + " consumes its " + use +
                             " partition by partition, so its partition count cannot change");
          break;
        }
      }
    }
  }
  if (problems.empty()) return Status::Ok();
  std::string message = "modules depend on " + module + ": ";
  for (size_t i = 0; i < problems.size(); ++i) message += (i == 0 ? "" : "; ") + problems[i];
  return Status::InvalidArgument(
      message + (next == nullptr ? " (destroy them first)" : " (update or destroy them first)"));
}

Status EngineImpl::CheckNoCycle(const ModuleDef& def) {
  ReaderMutexLock lock(&modules_mu_);
  // Depth first through the deployed modules' current dependencies, from the new build's.
  std::vector<std::vector<std::string>> paths;
  for (const std::string& used : DependsOn(def)) paths.push_back({def.name, used});
  std::set<std::string> seen;
  while (!paths.empty()) {
    std::vector<std::string> path = std::move(paths.back());
    paths.pop_back();
    const std::string& at = path.back();
    if (at == def.name) {
      std::string chain;
      for (const std::string& name : path) chain += (chain.empty() ? "" : " -> ") + name;
      return Status::InvalidArgument("module " + def.name +
                                     " would depend on itself through its dependencies (" + chain +
                                     "): modules cannot depend on each other in a cycle");
    }
    if (!seen.insert(at).second) continue;
    auto it = modules_.find(at);
    if (it == modules_.end()) continue;
    for (const std::string& used : DependsOn(*it->second->def)) {
      std::vector<std::string> longer = path;
      longer.push_back(used);
      paths.push_back(std::move(longer));
    }
  }
  return Status::Ok();
}

Status EngineImpl::OpenMirrorDepots(ModuleRuntime& m) {
  for (size_t i = 0; i < m.def->depots.size(); ++i) {
    const DepotDef& def = m.def->depots[i];
    if (def.mirror_of.empty()) continue;
    Result<std::shared_ptr<ModuleRuntime>> found = Find(def.mirror_of);
    if (!found.ok()) {
      return Status::NotFound("module " + m.name + " mirrors depot " + def.name + " of module " +
                              def.mirror_of + ": " + found.status().message());
    }
    const ModuleRuntime& other = **found;
    Result<int> index = FindDepot(other, def.name);
    if (!index.ok()) {
      return Status::NotFound("module " + m.name + " mirrors depot " + def.name + " of module " +
                              def.mirror_of + ": " + index.status().message());
    }
    if (other.partitions != m.partitions) {
      return Status::InvalidArgument("module " + m.name + " has " + std::to_string(m.partitions) +
                                     " partitions but mirrors depot " + def.name + " of module " +
                                     def.mirror_of + ", which has " +
                                     std::to_string(other.partitions) + ": they must be equal");
    }
    m.depots[i] = other.depots[*index];
    m.taps[i] = other.taps[*index];
  }
  return Status::Ok();
}

void EngineImpl::MakeMirrorTaps(const std::shared_ptr<ModuleRuntime>& m) {
  const ModuleDef& def = *m->def;
  m->mirror_cursors.assign(def.topologies.size(), {});
  for (size_t t = 0; t < def.topologies.size(); ++t) {
    m->mirror_cursors[t].resize(def.depots.size());
    for (int d : def.topologies[t].sources) {
      if (!IsMirror(*m, d)) continue;
      if (m->microbatches[t]) {
        if (m->mirror_cursors[t][d] == nullptr) {  // once per (topology, depot)
          auto tap = std::make_shared<BatchTap>(m->microbatches[t]);
          m->taps[d]->Add(tap);
          m->mirror_taps.push_back(std::move(tap));
        }
        continue;
      }
      if (m->mirror_cursors[t][d] != nullptr) continue;  // a depot named twice as source
      const int topology = static_cast<int>(t);
      auto post = [this, weak = std::weak_ptr<ModuleRuntime>(m), topology, d](int p) {
        std::shared_ptr<ModuleRuntime> runtime = weak.lock();
        if (!runtime) return;
        runtime->parts[p].Post([this, runtime, topology, d, p](TaskThread& thread) {
          MirrorChunk(thread, runtime, topology, d, p);
        });
      };
      auto cursor = std::make_shared<MirrorCursor>(topology, d, m->partitions, std::move(post));
      m->taps[d]->Add(cursor);
      m->mirror_cursors[t][d] = std::move(cursor);
    }
  }
}

void EngineImpl::StartMirrors(const std::shared_ptr<ModuleRuntime>& m) {
  for (const auto& by_depot : m->mirror_cursors) {
    for (const std::shared_ptr<MirrorCursor>& cursor : by_depot) {
      if (!cursor) continue;
      const bool first = !cursor->started;
      cursor->started = true;
      for (int p = 0; p < m->partitions; ++p) {
        // The chain starts at the topology's progress: nothing of it is in flight (a new
        // runtime, or one whose module was quiesced).
        const ProgressTracker& tracker = *m->trackers[cursor->topology][cursor->depot][p];
        if (first) {
          cursor->parts[p].next.store(tracker.processed());
          cursor->Post(p);
        } else {
          cursor->Wake(p);  // a stopped chain (Resume): its `next` is its progress
        }
      }
    }
  }
}

void EngineImpl::MirrorChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                             int topology, int depot, int partition) {
  MirrorCursor& cursor = *m->mirror_cursors[topology][depot];
  MirrorCursor::Part& part = cursor.parts[partition];
  // Stopped by an update or a recompute's swap (the next runtime resumes from the
  // topology's progress), a destroy, or Close (the next Open resumes).
  if (m->stopping.load() || m->closed.load() || closing_.load()) {
    part.idle.store(true);
    return;
  }
  const std::shared_ptr<ProgressTracker>& tracker = m->trackers[topology][depot][partition];
  int64_t next = part.next.load();
  part.ahead.store(false);
  if (next - tracker->processed() > kMirrorAhead) {
    part.ahead.store(true);
    part.idle.store(true);
    // A completion between the check and the flag did not see it: check again.
    if (next - tracker->processed() > kMirrorAhead || !part.idle.exchange(false)) return;
    part.ahead.store(false);
  }
  part.appended.store(false);
  // A shadow stops where its leader (the live cursor) stands.
  const int64_t to = cursor.leader ? cursor.leader->parts[partition].next.load() : INT64_MAX;
  const std::vector<int> only{topology};
  bool at_end = false;
  Result<std::vector<strata::DepotRecord>> records =
      next < to ? m->depots[depot]->Read(thread.session(), partition, next, to, kMirrorChunk)
                : std::vector<strata::DepotRecord>{};
  if (records.ok()) {
    for (const strata::DepotRecord& record : *records) {
      StartStoredRecord(thread, m, depot, partition, record.offset, record.data, Status::Ok(),
                        only);
      next = record.offset + 1;
    }
    at_end = records->size() < kMirrorChunk;
  } else {
    const int64_t resume = ReplayRecordByRecord(
        thread, *m, depot, partition, next,
        [&](int64_t offset, std::string_view data, const Status& error) {
          StartStoredRecord(thread, m, depot, partition, offset, data, error, only);
          next = offset + 1;
        });
    at_end = resume < 0;
  }
  part.next.store(next);
  // The live cursor moved: a recompute's shadow cursor following it may read on.
  if (!m->is_shadow) {
    if (const std::shared_ptr<ModuleRuntime>& shadow = m->parts[partition].shadow) {
      if (const auto& follower = shadow->mirror_cursors[topology][depot]) follower->Wake(partition);
    }
  }
  if (!at_end) {
    cursor.Post(partition);
    return;
  }
  if (tracker->backfilling.load()) {
    // Caught up (a topology added by an update, or a shadow): recorded, shown by stats.
    std::erase(m->parts[partition].catching_up, std::pair<int, int>{topology, depot});
    tracker->backfilling.store(false);
    if (!tracker->dirty.exchange(true)) thread.MarkDirty(tracker);
    if (m->progress_waiters.load() > 0) {
      MutexLock lock(&m->progress_mu);
      m->progress_cv.SignalAll();
    }
  }
  part.idle.store(true);
  // An append committed after the read but told the tap before `idle` was set: read again.
  if (part.appended.load()) cursor.Wake(partition);
}

void EngineImpl::WakeMirror(const std::shared_ptr<ModuleRuntime>& m, const TopologyRun& run) {
  const int depot = run.record->id.depot;
  const int partition = run.record->id.partition;
  MirrorCursor* cursor = m->mirror_cursors[run.topology][depot].get();
  if (cursor == nullptr) return;
  MirrorCursor::Part& part = cursor->parts[partition];
  if (!part.idle.load() || !part.ahead.load()) return;
  if (part.next.load() - run.tracker->processed() > kMirrorAhead / 2) return;
  cursor->Wake(partition);
}

void EngineImpl::FollowLeaders(ModuleRuntime& s, const ModuleRuntime& m) {
  for (size_t t = 0; t < s.mirror_cursors.size(); ++t) {
    for (size_t d = 0; d < s.mirror_cursors[t].size(); ++d) {
      if (s.mirror_cursors[t][d]) s.mirror_cursors[t][d]->leader = m.mirror_cursors[t][d];
    }
  }
}

void EngineImpl::WaitMirrorsAligned(ModuleRuntime& s) {
  for (const auto& by_depot : s.mirror_cursors) {
    for (const std::shared_ptr<MirrorCursor>& cursor : by_depot) {
      if (!cursor || !cursor->leader) continue;
      for (int p = 0; p < s.partitions; ++p) {
        const int64_t target = cursor->leader->parts[p].next.load();
        const ProgressTracker& tracker = *s.trackers[cursor->topology][cursor->depot][p];
        cursor->Wake(p);  // the leader's last move may have come after the shadow parked
        s.progress_waiters.fetch_add(1);
        {
          MutexLock lock(&s.progress_mu);
          while (tracker.processed() < target && !closing_.load()) {
            s.progress_cv.WaitFor(&s.progress_mu, std::chrono::milliseconds(5));
          }
        }
        s.progress_waiters.fetch_sub(1);
      }
    }
  }
}

}  // namespace strata::runtime
