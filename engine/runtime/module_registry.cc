// EngineImpl's module registry (docs/runtime.md, "Deploy, destroy, metadata and on-disk
// layout"): opening a module's runtime, loading every deployed module at Open (a module that
// cannot load is kept as failed), dropping orphans, Deploy, Destroy, and describing modules.
// Threading: Deploy and Destroy serialize on admin_mu_; loading runs during Open; the module
// tables (modules_, failed_) are read under modules_mu_ by any thread.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "runtime/engine_impl.h"
#include "runtime/meta_tables.h"
#include "runtime/microbatch_executor.h"
#include "runtime/partitioning.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

namespace fs = std::filesystem;

// Whether `file` (a name in the modules directory) is a plugin copy of `module`:
// "<module>.so" or "<module>.v<N>.so" (module names contain no '.').
bool IsFileOfModule(std::string_view file, std::string_view module) {
  if (!file.starts_with(module) || !file.ends_with(".so")) return false;
  file.remove_prefix(module.size());
  if (file == ".so") return true;
  if (!file.starts_with(".v")) return false;
  file.remove_prefix(2);
  file.remove_suffix(3);
  return !file.empty() && file.find_first_not_of("0123456789") == std::string_view::npos;
}

}  // namespace

Result<std::shared_ptr<ModuleRuntime>> EngineImpl::OpenModuleRuntime(
    std::shared_ptr<LoadedModule> loaded, const ModuleRow& row, const Reuse& reuse) {
  const ModuleRuntime* previous = reuse.previous;
  auto m = std::make_shared<ModuleRuntime>();
  m->queries = queries_.get();
  m->subscriptions = subscriptions_.get();
  m->def = &loaded->def();
  m->loaded = std::move(loaded);
  m->name = m->def->name;
  m->partitions = row.partitions;
  m->version = row.version;
  m->file = row.file;
  m->checksum = row.checksum;
  m->depot_generation = row.depot_generation;
  const ModuleDef& def = *m->def;
  const int partitions = row.partitions;
  m->depots.resize(def.depots.size());
  m->taps.resize(def.depots.size());
  m->pstates.resize(def.pstates.size());
  m->pstate_generations.resize(def.pstates.size());
  for (size_t i = 0; i < def.pstates.size(); ++i) {
    auto it = row.pstate_generations.find(def.pstates[i].name);
    m->pstate_generations[i] = it == row.pstate_generations.end() ? 0 : it->second;
  }
  // A previous version's (Update) depot or PState object is shared when the new version
  // keeps it unchanged: a depot's offsets live in its object (Depot::Open allows one).
  if (previous != nullptr && previous->partitions == partitions &&
      previous->depot_generation == m->depot_generation) {
    for (size_t i = 0; i < def.depots.size(); ++i) {
      for (size_t j = 0; j < previous->def->depots.size(); ++j) {
        if (previous->def->depots[j].name == def.depots[i].name &&
            previous->def->depots[j].mirror_of.empty() && def.depots[i].mirror_of.empty()) {
          m->depots[i] = previous->depots[j];
          m->taps[i] = previous->taps[j];
        }
      }
    }
  }
  STRATA_RETURN_IF_ERROR(OpenMirrorDepots(*m));
  if (previous != nullptr && previous->partitions == partitions) {
    for (size_t i = 0; i < def.pstates.size(); ++i) {
      for (size_t j = 0; j < previous->def->pstates.size(); ++j) {
        const PStateDef& p = previous->def->pstates[j];
        if (p.name != def.pstates[i].name ||
            previous->pstate_generations[j] != m->pstate_generations[i]) {
          continue;
        }
        const bool placeholder = reuse.placeholders.count(p.name) != 0;
        if (placeholder ||
            (p.schema == def.pstates[i].schema && reuse.fresh_pstates.count(p.name) == 0)) {
          m->pstates[i] = previous->pstates[j];
        }
      }
    }
  }
  // Depots and PStates with tables on disk are opened (their stored schemas checked) before
  // any missing one is created: a module refused for a schema mismatch at Open creates no
  // table.
  for (const bool existing : {true, false}) {
    for (size_t i = 0; i < def.depots.size(); ++i) {
      if (m->depots[i]) continue;
      const std::string_view bare = BareName(def.depots[i].name);
      STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables,
                              storage_->ListTables(TablePrefix(
                                  "depot.", m->name, def.depots[i].name, m->depot_generation)));
      if (tables.empty() == existing) continue;
      STRATA_ASSIGN_OR_RETURN(m->depots[i], Depot::Open(storage_.get(), m->name, bare, partitions,
                                                        m->depot_generation));
      m->taps[i] = std::make_shared<DepotTaps>();
    }
    for (size_t i = 0; i < def.pstates.size(); ++i) {
      if (m->pstates[i]) continue;
      const PStateDef& pstate = def.pstates[i];
      STRATA_ASSIGN_OR_RETURN(
          std::vector<std::string> tables,
          storage_->ListTables(
              TablePrefix("pstate.", m->name, BareName(pstate.name), m->pstate_generations[i])));
      if (tables.empty() == existing) continue;
      STRATA_ASSIGN_OR_RETURN(m->pstates[i],
                              OpenPState(m->name, pstate, partitions, m->pstate_generations[i]));
    }
  }
  for (const DepotDef& depot : def.depots) {
    m->depot_counters.push_back(metrics_.Depot(m->name, depot.name));
  }
  for (const TopologyDef& topology : def.topologies) {
    m->topology_counters.push_back(metrics_.Topology(m->name, topology.name));
  }
  m->consumers.assign(def.depots.size(), {});
  m->batch_consumers.assign(def.depots.size(), {});
  m->microbatches.assign(def.topologies.size(), nullptr);
  m->pstate_writer.assign(def.pstates.size(), -1);
  m->trackers.assign(def.topologies.size(), {});
  for (size_t t = 0; t < def.topologies.size(); ++t) {
    m->trackers[t].resize(def.depots.size());
    const bool batched = def.topologies[t].kind == TopologyDef::Kind::kMicrobatch;
    if (batched) {
      m->microbatches[t] =
          std::make_shared<MicrobatchRuntime>(static_cast<int>(t), def.depots.size(), partitions);
      for (int w : def.topologies[t].writes) m->pstate_writer[w] = static_cast<int>(t);
    }
    for (int d : def.topologies[t].sources) {
      if (!m->trackers[t][d].empty()) continue;  // a depot named twice as source counts once
      (batched ? m->batch_consumers : m->consumers)[d].push_back(static_cast<int>(t));
      const std::shared_ptr<ProgressTracker>* kept =
          reuse.trackers && previous != nullptr && previous->partitions == partitions &&
                  previous->depot_generation == m->depot_generation
              ? FindTrackers(*previous, def.topologies[t].name, def.depots[d].name)
              : nullptr;
      for (int p = 0; p < partitions; ++p) {
        m->trackers[t][d].push_back(
            kept != nullptr
                ? kept[p]
                : std::make_shared<ProgressTracker>(
                      ProgressKey(m->name, def.topologies[t].name, def.depots[d].name, p), 0));
      }
    }
  }
  for (auto& consumers : m->consumers) std::sort(consumers.begin(), consumers.end());
  for (auto& consumers : m->batch_consumers) std::sort(consumers.begin(), consumers.end());
  m->parts.resize(partitions);
  m->append_queues.resize(def.depots.size());
  for (auto& queues : m->append_queues) {
    for (int p = 0; p < partitions; ++p) queues.push_back(std::make_unique<AppendQueue>());
  }
  const uint64_t seed = HashKey(Value(m->name));
  for (int p = 0; p < partitions; ++p) {
    m->parts[p].owner = threads_[(seed + p) % threads_.size()].get();
  }
  MakeMirrorTaps(m);
  return m;
}

const std::shared_ptr<ProgressTracker>* EngineImpl::FindTrackers(const ModuleRuntime& m,
                                                                 const std::string& topology,
                                                                 const std::string& depot) {
  for (size_t t = 0; t < m.def->topologies.size(); ++t) {
    if (m.def->topologies[t].name != topology) continue;
    for (size_t d = 0; d < m.def->depots.size(); ++d) {
      if (m.def->depots[d].name == depot && !m.trackers[t][d].empty()) {
        return m.trackers[t][d].data();
      }
    }
  }
  return nullptr;
}

Result<std::shared_ptr<PState>> EngineImpl::OpenPState(const std::string& module,
                                                       const PStateDef& pstate, int partitions,
                                                       int generation) {
  PStateOpenOptions options;
  options.generation = generation;
  options.migration = pstate.migration ? &*pstate.migration : nullptr;
  STRATA_ASSIGN_OR_RETURN(
      std::unique_ptr<PState> opened,
      PState::Open(storage_.get(), module, pstate.name, pstate.schema, partitions, options));
  return std::shared_ptr<PState>(std::move(opened));
}

void EngineImpl::MarkCatchingUp(ModuleRuntime& m) {
  ForEachTracker(m, [&m](int t, int d, int p, const std::shared_ptr<ProgressTracker>& tracker) {
    if (tracker->backfilling.load()) m.parts[p].catching_up.emplace_back(t, d);
  });
}

Status EngineImpl::LoadProgressAndFailures(ModuleRuntime& m) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  for (auto& by_depot : m.trackers) {
    for (auto& by_partition : by_depot) {
      for (auto& tracker : by_partition) {
        std::string bytes;
        STRATA_ASSIGN_OR_RETURN(bool found, session->Get(progress_table_, tracker->key(), &bytes));
        if (!found) continue;
        Result<Value> value = DecodeValue(bytes);
        std::optional<Progress> progress;
        if (value.ok()) progress = ProgressFromValue(*value);
        if (!progress) {
          return Status::Corruption("progress marker of module " + m.name + " does not decode");
        }
        tracker = std::make_shared<ProgressTracker>(tracker->key(), progress->processed);
        tracker->backfilling.store(progress->backfilling);
        tracker->recorded_backfilling = progress->backfilling;
      }
    }
  }
  return LoadFailureCount(m);
}

Status EngineImpl::LoadFailureCount(ModuleRuntime& m) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  // Counts the failures, and rewrites the rows an older version stored with a whole record
  // in the message (FailureFromValue cut them as they were read).
  const std::string prefix = EncodeKey(Value(m.name));
  Status decode_error;
  int64_t failure_count = 0;
  std::vector<std::pair<std::string, std::string>> cut_rows;
  STRATA_RETURN_IF_ERROR(session->Scan(
      failures_table_, prefix, PrefixEnd(prefix), false,
      [&](std::string_view k, std::string_view v) {
        Result<Value> value = DecodeValue(v);
        std::optional<TopologyFailure> failure;
        if (value.ok()) failure = FailureFromValue(*value);
        if (!failure) {
          decode_error =
              Status::Corruption("a failure record of module " + m.name + " does not decode");
          return false;
        }
        ++failure_count;
        if (failure->message != value->Find("message")->as_string()) {
          std::string row;
          AppendValue(FailureToValue(*failure), &row);
          cut_rows.emplace_back(std::string(k), std::move(row));
        }
        return true;
      }));
  STRATA_RETURN_IF_ERROR(decode_error);
  {
    MutexLock lock(&m.failures_mu);  // not published yet: never contended
    m.failure_count = failure_count;
  }
  for (const auto& [key, row] : cut_rows) {
    STRATA_RETURN_IF_ERROR(session->Put(failures_table_, key, row));
  }
  return Status::Ok();
}

Status EngineImpl::LoadDeployedModules() {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  std::vector<std::pair<std::string, Value>> rows;
  Status decode_error;
  STRATA_RETURN_IF_ERROR(session->Scan(
      modules_table_, "", "", false, [&](std::string_view key, std::string_view value) {
        Result<Value> name = DecodeKey(key);
        Result<Value> info = DecodeValue(value);
        if (!name.ok() || !info.ok() || !name->is_string() || !info->is_map()) {
          decode_error = Status::Corruption("a row of table meta.modules does not decode");
          return false;
        }
        rows.emplace_back(name->as_string(), std::move(*info));
        return true;
      }));
  STRATA_RETURN_IF_ERROR(decode_error);
  session.reset();
  // A replicated engine starts a module only when it leads it (Replication::Lead), and
  // tables without a row may be a follower's copy of a deploy in progress.
  if (options_.replicated) return Status::Ok();
  // A failed module is deployed too: its tables and file are not orphans.
  std::map<std::string, std::string> deployed;  // module -> the file its row names
  for (const auto& [name, info] : rows) {
    const Value* file = info.Find("file");
    deployed[name] = file != nullptr && file->is_string() ? file->as_string() : "";
  }
  STRATA_RETURN_IF_ERROR(DropOrphans(deployed));
  // Each module loads on its own: one that cannot is kept as failed and the others serve.
  const auto fail = [this](const std::string& name, const Value& info, const Status& st) {
    FailedModule failed;
    const Value* partitions = info.Find("partitions");
    if (partitions != nullptr && partitions->is_int()) {
      failed.partitions = static_cast<int>(partitions->as_int());
    }
    failed.error = st.message();
    WriterMutexLock lock(&modules_mu_);
    failed_[name] = std::move(failed);
  };
  std::map<std::string, std::pair<const Value*, PluginLoad>> pending;  // plugins loaded
  for (const auto& [name, info] : rows) {
    Result<PluginLoad> plugin = LoadDeployedPlugin(name, info);
    if (!plugin.ok()) {
      fail(name, info, plugin.status());
      continue;
    }
    pending.emplace(name, std::make_pair(&info, std::move(plugin).value()));
  }
  // A module starts after the modules it depends on (its mirror depots are theirs); one
  // whose dependency failed, is not deployed or is in a cycle fails.
  while (!pending.empty()) {
    bool started = false;
    for (auto it = pending.begin(); it != pending.end();) {
      const std::string& name = it->first;
      std::vector<std::string> waiting_for;
      std::string broken;
      for (const std::string& used : DependsOn(it->second.second.loaded->def())) {
        if (pending.count(used) != 0) {
          waiting_for.push_back(used);
          continue;
        }
        ReaderMutexLock lock(&modules_mu_);
        if (modules_.count(used) != 0) continue;
        auto failed = failed_.find(used);
        broken = "it depends on module " + used +
                 (failed != failed_.end() ? ", which failed to load (" + failed->second.error + ")"
                                          : ", which is not deployed");
        break;
      }
      if (broken.empty() && !waiting_for.empty()) {
        ++it;
        continue;
      }
      Status st =
          broken.empty() ? StartDeployedModule(name, it->second.second) : Status::NotFound(broken);
      if (!st.ok()) fail(name, *it->second.first, st);
      it = pending.erase(it);
      started = true;
    }
    if (started) continue;
    for (auto& [name, load] : pending) {
      fail(name, *load.first,
           Status::InvalidArgument("it depends on modules that depend on it (a cycle of " +
                                   std::to_string(pending.size()) + " modules)"));
    }
    pending.clear();
  }
  return Status::Ok();
}

Result<EngineImpl::PluginLoad> EngineImpl::LoadDeployedPlugin(const std::string& name,
                                                              const Value& info) {
  STRATA_ASSIGN_OR_RETURN(ModuleRow row, ModuleRowFromValue(name, info));
  if (row.partitions > Depot::kMaxPartitions) {
    return Status::Corruption("the metadata of module " + name +
                              " is malformed: " + info.ToString());
  }
  const std::string path = (fs::path(options_.data_dir) / row.file).string();
  // A row without a checksum was written before checksums were recorded: its file is
  // loaded unchecked this once, and its checksum recorded below.
  const bool legacy = row.checksum.empty();
  if (legacy) {
    STRATA_ASSIGN_OR_RETURN(row.checksum, ModuleFileChecksum(path));
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<LoadedModule> loaded,
                          LoadedModule::Load(path, legacy ? "" : row.checksum));
  if (loaded->def().name != name) {
    return Status::Corruption("the deployed copy " + path + " defines module " +
                              loaded->def().name + ", not " + name);
  }
  return PluginLoad{std::move(row), std::move(loaded), legacy};
}

Status EngineImpl::StartDeployedModule(const std::string& name, PluginLoad& plugin) {
  ModuleRow& row = plugin.row;
  const bool legacy = plugin.legacy;
  const std::string path = (fs::path(options_.data_dir) / row.file).string();
  STRATA_ASSIGN_OR_RETURN(auto m, OpenModuleRuntime(std::move(plugin.loaded), row, Reuse{}));
  STRATA_RETURN_IF_ERROR(LoadProgressAndFailures(*m));
  if (legacy) {
    STRATA_RETURN_IF_ERROR(WriteModuleRow(name, row));
    logger_->Warning("module " + name +
                     " was deployed without a file checksum (by an older version); loaded " + path +
                     " unchecked and recorded its checksum " + row.checksum);
  }
  STRATA_RETURN_IF_ERROR(LoadMigrations(*m));
  STRATA_ASSIGN_OR_RETURN(int stray, DropStrayTables(*m));
  if (stray > 0) {
    logger_->Warning("dropped " + std::to_string(stray) + " tables of module " + name +
                     " that its version " + std::to_string(m->version) +
                     " does not use (left by an update, recompute or rescale that a crash "
                     "interrupted or that it had replaced)");
  }
  MarkCatchingUp(*m);
  STRATA_RETURN_IF_ERROR(StartReplay(m));
  STRATA_RETURN_IF_ERROR(batcher_->Start(m));
  StartMigrations(m);
  WriterMutexLock lock(&modules_mu_);
  modules_[name] = std::move(m);
  return Status::Ok();
}

Status EngineImpl::StartLedModule(const std::string& name) {
  if (closing_.load()) return Status::Aborted("the engine is closing");
  MutexLock admin(&admin_mu_);
  {
    WriterMutexLock lock(&modules_mu_);
    if (modules_.count(name) != 0) return Status::Ok();
    failed_.erase(name);  // a start that failed before is tried again
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  std::string bytes;
  STRATA_ASSIGN_OR_RETURN(bool found, session->Get(modules_table_, EncodeKey(Value(name)), &bytes));
  if (!found) return Status::Ok();  // not deployed yet: Deploy starts it
  Result<Value> info = DecodeValue(bytes);
  if (!info.ok() || !info->is_map()) {
    return Status::Corruption("the row of module " + name + " in meta.modules does not decode");
  }
  Status started = [&]() -> Status {
    STRATA_ASSIGN_OR_RETURN(PluginLoad plugin, LoadDeployedPlugin(name, *info));
    if (!DependsOn(plugin.loaded->def()).empty()) {
      return Status::InvalidArgument("module " + name +
                                     " uses other modules, which is not supported in cluster "
                                     "mode yet");
    }
    // Outbox rows that the previous leader put reached this node after its Open.
    STRATA_RETURN_IF_ERROR(outbox_->Adopt(*session, name));
    STRATA_RETURN_IF_ERROR(CreateUnwrittenPartitions(plugin.loaded->def(), plugin.row));
    return StartDeployedModule(name, plugin);
  }();
  if (!started.ok()) {
    FailedModule failed;
    if (const Value* partitions = info->Find("partitions"); partitions && partitions->is_int()) {
      failed.partitions = static_cast<int>(partitions->as_int());
    }
    failed.error = started.message();
    WriterMutexLock lock(&modules_mu_);
    failed_[name] = std::move(failed);
  }
  return started;
}

Status EngineImpl::CreateUnwrittenPartitions(const ModuleDef& def, const ModuleRow& row) {
  for (const DepotDef& depot : def.depots) {
    if (!depot.mirror_of.empty()) continue;
    const std::string bare(BareName(depot.name));
    STRATA_ASSIGN_OR_RETURN(
        std::vector<std::string> tables,
        storage_->ListTables(TablePrefix("depot.", def.name, depot.name, row.depot_generation)));
    if (tables.empty()) continue;  // not replicated yet: Open creates the depot
    for (int p = 0; p < row.partitions; ++p) {
      STRATA_RETURN_IF_ERROR(
          storage_
              ->OpenTable(Depot::TableName(def.name, bare, p, row.depot_generation),
                          TableKind::kLog)
              .status());
    }
  }
  return Status::Ok();
}

Status EngineImpl::StopModule(const std::string& name) {
  MutexLock admin(&admin_mu_);
  std::shared_ptr<ModuleRuntime> m;
  {
    WriterMutexLock lock(&modules_mu_);
    failed_.erase(name);
    auto it = modules_.find(name);
    if (it == modules_.end()) return Status::Ok();
    m = it->second;
  }
  // As Destroy stops a module, its data kept.
  m->stepped_down->store(true);
  m->closed.store(true);
  {
    MutexLock lock(&m->progress_mu);
    m->progress_cv.SignalAll();
  }
  CancelRebuild(*m);
  Quiesce(*m);
  batcher_->Stop(*m);
  {
    WriterMutexLock lock(&modules_mu_);
    modules_.erase(name);
  }
  subscriptions_->End(
      name, nullptr,
      Status::Aborted("module " + name + " stopped running here (leadership moved)"));
  metrics_.Forget(name);
  // Its last progress markers are written (and logged) before it stops, so that a Lead on
  // this node or on a follower does not replay what was processed. A task thread runs a
  // barrier before it writes the markers its round made dirty: once a second barrier ran,
  // the markers of every completion before the first are written.
  Barrier();
  Barrier();
  SetTrackersDropped(*m, true);  // nothing of it is written from here on
  ReleaseWhenUnused(m);
  return Status::Ok();
}

bool EngineImpl::Running(const std::string& name) {
  ReaderMutexLock lock(&modules_mu_);
  return modules_.count(name) != 0;
}

Result<std::optional<ModuleRow>> EngineImpl::ReadModuleRow(const std::string& name) {
  std::string bytes;
  STRATA_ASSIGN_OR_RETURN(bool found, WithPooledSession([&](Session& session) {
                            return session.Get(modules_table_, EncodeKey(Value(name)), &bytes);
                          }));
  if (!found) return std::optional<ModuleRow>();
  Result<Value> info = DecodeValue(bytes);
  if (!info.ok() || !info->is_map()) {
    return Status::Corruption("the row of module " + name + " in meta.modules does not decode");
  }
  STRATA_ASSIGN_OR_RETURN(ModuleRow row, ModuleRowFromValue(name, *info));
  return std::optional<ModuleRow>(std::move(row));
}

Status EngineImpl::DropLocalCopy(const std::string& name, bool keep_files) {
  MutexLock admin(&admin_mu_);
  if (Running(name)) {
    return Status::InvalidArgument("module " + name + " runs here: stop leading it first");
  }
  STRATA_RETURN_IF_ERROR(ForgetModule(name, /*logged=*/false));
  return DropModuleData(name, keep_files);
}

Status EngineImpl::WriteModuleRow(const std::string& name, const ModuleRow& row) {
  std::string bytes;
  AppendValue(ModuleRowToValue(row), &bytes);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  return session->Put(modules_table_, EncodeKey(Value(name)), bytes);
}

Result<int> EngineImpl::DropStrayTables(const ModuleRuntime& m) {
  // Prefixes (up to the partition number) of the depot and PState tables the module uses,
  // and the names of its rescale maps.
  std::set<std::string> kept;
  for (const DepotDef& d : m.def->depots) {
    kept.insert(TablePrefix("depot.", m.name, BareName(d.name), m.depot_generation));
    kept.insert(RescaleMapTable(m.name, d.name, m.depot_generation));
  }
  for (size_t i = 0; i < m.def->pstates.size(); ++i) {
    kept.insert(
        TablePrefix("pstate.", m.name, BareName(m.def->pstates[i].name), m.pstate_generations[i]));
  }
  int dropped = 0;
  for (const std::string kind : kTableKinds) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables,
                            storage_->ListTables(kind + m.name + "."));
    for (const std::string& table : tables) {
      if (kept.count(table) != 0 || kept.count(table.substr(0, table.rfind('.') + 1)) != 0) {
        continue;
      }
      STRATA_RETURN_IF_ERROR(storage_->DropTable(table));
      ++dropped;
    }
  }
  return dropped;
}

Result<EngineImpl::StagedModule> EngineImpl::StageModule(const std::string& so_path,
                                                         const std::string& verb) {
  std::error_code ec;
  if (!fs::is_regular_file(so_path, ec)) {
    return Status::NotFound("module file " + so_path + " does not exist");
  }
  // Load the engine's own copy, so that the code running is the file kept for restarts.
  StagedModule staged;
  const fs::path dir = fs::path(options_.data_dir) / "modules";
  staged.path = (dir / (".deploy-" + std::to_string(getpid()) + "-" +
                        std::to_string(deploy_counter_.fetch_add(1)) + ".so"))
                    .string();
  fs::copy_file(so_path, staged.path, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::IOError("copying " + so_path + " to " + staged.path + ": " + ec.message());
  // The checksum of the bytes about to be loaded: each Open checks the kept copy against it.
  Result<std::string> checksum = ModuleFileChecksum(staged.path);
  Result<std::unique_ptr<LoadedModule>> loaded =
      checksum.ok() ? LoadedModule::Load(staged.path)
                    : Result<std::unique_ptr<LoadedModule>>(checksum.status());
  if (!loaded.ok()) {
    fs::remove(staged.path, ec);
    return Status(loaded.status().code(), verb + " " + so_path + ": " + loaded.status().message());
  }
  staged.checksum = std::move(checksum).value();
  staged.loaded = std::move(loaded).value();
  return staged;
}

void EngineImpl::DiscardStaged(StagedModule& staged) {
  staged.loaded.reset();
  std::error_code ec;
  fs::remove(staged.path, ec);
}

Status EngineImpl::InstallFileDurably(const std::string& from, const std::string& to) {
  const auto sync = [](const std::string& path, int flags) -> Status {
    const int fd = open(path.c_str(), flags | O_CLOEXEC);
    if (fd < 0) return Status::IOError("opening " + path + ": " + std::strerror(errno));
    const int synced = fsync(fd);
    const int error = errno;
    close(fd);
    if (synced != 0) return Status::IOError("syncing " + path + ": " + std::strerror(error));
    return Status::Ok();
  };
  STRATA_RETURN_IF_ERROR(sync(from, O_RDONLY));
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) return Status::IOError("installing module file " + to + ": " + ec.message());
  return sync(fs::path(to).parent_path().string(), O_RDONLY | O_DIRECTORY);
}

Status EngineImpl::InstallStaged(StagedModule& staged, const std::string& file) {
  const std::string path = (fs::path(options_.data_dir) / file).string();
  Status installed = InstallFileDurably(staged.path, path);
  if (installed.ok()) {
    staged.path = path;
    return Status::Ok();
  }
  DiscardStaged(staged);
  return installed;
}

Result<ModuleInfo> EngineImpl::Deploy(const std::string& so_path, const DeployOptions& options) {
  if (closing_.load()) return Status::Aborted("the engine is closing");
  if (options.partitions < 1 || options.partitions > Depot::kMaxPartitions) {
    return Status::InvalidArgument("a module needs 1 to " + std::to_string(Depot::kMaxPartitions) +
                                   " partitions, not " + std::to_string(options.partitions));
  }
  MutexLock admin(&admin_mu_);
  STRATA_ASSIGN_OR_RETURN(StagedModule staged, StageModule(so_path, "deploying"));
  const std::string name = staged.loaded->def().name;
  {
    ReaderMutexLock lock(&modules_mu_);
    if (modules_.count(name) != 0) {
      DiscardStaged(staged);
      return Status::AlreadyExists("module " + name +
                                   " is already deployed (update it, or destroy it first)");
    }
    if (auto it = failed_.find(name); it != failed_.end()) {
      DiscardStaged(staged);
      return Status::AlreadyExists("module " + name + " is deployed but failed to load (" +
                                   it->second.error + "): destroy it first");
    }
  }
  if (options_.replicated && !DependsOn(staged.loaded->def()).empty()) {
    DiscardStaged(staged);
    return Status::InvalidArgument("deploying " + so_path + " is refused: module " + name +
                                   " uses other modules (MirrorDepot, MirrorPState or "
                                   "MirrorQuery), which is not supported in cluster mode yet");
  }
  if (Status st = CheckDependencies(staged.loaded->def(), options.partitions); !st.ok()) {
    DiscardStaged(staged);
    return Status(st.code(), "deploying " + so_path + " is refused: " + st.message());
  }
  // Data of an earlier module of this name that a crash or failure left behind (without a
  // row, or with a row that Destroy could not delete) must not leak into the new one.
  Status cleared = ForgetModule(name);
  if (cleared.ok()) cleared = DropModuleData(name);
  if (!cleared.ok()) {
    DiscardStaged(staged);
    return Status(cleared.code(),
                  "clearing leftovers of module " + name + ": " + cleared.message());
  }
  ModuleRow row;
  row.partitions = options.partitions;
  row.file = DeployedModuleFile(name);
  row.checksum = staged.checksum;
  STRATA_RETURN_IF_ERROR(InstallStaged(staged, row.file));
  STRATA_ASSIGN_OR_RETURN(auto m, OpenModuleRuntime(std::move(staged.loaded), row, Reuse{}));
  // The row comes after the tables: a crash in between leaves tables without a row, which
  // the next Open (or Deploy of the name) drops.
  STRATA_RETURN_IF_ERROR(WriteModuleRow(name, row));
  STRATA_RETURN_IF_ERROR(storage_->WaitDurable());
  ModuleInfo info = DescribeModule(*m);
  STRATA_RETURN_IF_ERROR(batcher_->Start(m));
  StartMirrors(m);
  WriterMutexLock lock(&modules_mu_);
  modules_[name] = std::move(m);
  return info;
}

Status EngineImpl::Destroy(const std::string& module) {
  MutexLock admin(&admin_mu_);
  bool failed = false;
  {
    ReaderMutexLock lock(&modules_mu_);
    failed = failed_.count(module) != 0;
  }
  if (failed) {
    // Nothing of it runs: its rows go first, durably, then its tables and file, as below.
    STRATA_RETURN_IF_ERROR(ForgetModule(module));
    {
      WriterMutexLock lock(&modules_mu_);
      failed_.erase(module);
    }
    return DropModuleData(module);
  }
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<ModuleRuntime> m, Find(module));
  if (Status st = CheckDependents(module, nullptr, false); !st.ok()) {
    return Status(st.code(), "destroying module " + module + " is refused: " + st.message());
  }
  m->closed.store(true);  // appends are refused from here on
  {
    MutexLock lock(&m->progress_mu);  // WaitProcessed calls on it return
    m->progress_cv.SignalAll();
  }
  CancelRebuild(*m);
  // What was accepted finishes (or fails, finding the module closed); backfills and
  // migrations stop; no task of the module stays queued.
  Quiesce(*m);
  batcher_->Stop(*m);
  {
    WriterMutexLock lock(&modules_mu_);
    modules_.erase(module);
  }
  subscriptions_->End(module, nullptr, Status::NotFound("module " + module + " was destroyed"));
  metrics_.Forget(module);
  SetTrackersDropped(*m, true);
  Barrier();  // progress markers queued before `dropped` was set are written by now
  // Rows first, tables second: a crash in between leaves tables without a module, which
  // Open and the next Deploy of the name drop. The reverse order could reload the module
  // with empty depots under surviving progress markers, which then never advance.
  STRATA_RETURN_IF_ERROR(ForgetModule(module));
  // Readers and flusher callbacks that still hold the module finish quickly; the Depot and
  // PState objects (and the plugin) must be gone before their tables are dropped. Another
  // module's appends must not take it again (its mirror cursors).
  DetachMirrorCursors(*m);
  while (m.use_count() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  m.reset();
  return DropModuleData(module);
}

Status EngineImpl::ForgetModule(const std::string& module, bool logged) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  session->SuspendCapture(!logged);
  STRATA_RETURN_IF_ERROR(session->Begin());
  const std::string prefix = EncodeKey(Value(module));
  std::vector<std::string> keys;
  bool removed_any = false;
  for (TableId table : {progress_table_, failures_table_, outbox_->table()}) {
    keys.clear();
    Status st = session->Scan(table, prefix, PrefixEnd(prefix), false,
                              [&](std::string_view key, std::string_view) {
                                keys.emplace_back(key);
                                return true;
                              });
    for (size_t i = 0; st.ok() && i < keys.size(); ++i)
      st = session->Remove(table, keys[i]).status();
    if (!st.ok()) {
      session->Rollback();
      return st;
    }
    removed_any = removed_any || !keys.empty();
  }
  Result<bool> removed_row = session->Remove(modules_table_, prefix);
  if (!removed_row.ok()) {
    session->Rollback();
    return removed_row.status();
  }
  STRATA_RETURN_IF_ERROR(session->Commit());
  if (!removed_any && !*removed_row) return Status::Ok();
  return storage_->WaitDurable();
}

Status EngineImpl::DropModuleData(const std::string& module, bool keep_files) {
  // Module names cannot contain '.', so these prefixes match this module's tables only.
  for (const std::string kind : kTableKinds) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables,
                            storage_->ListTables(kind + module + "."));
    for (const std::string& table : tables) STRATA_RETURN_IF_ERROR(storage_->DropTable(table));
  }
  if (keep_files) return Status::Ok();
  // Its plugin copies: "<module>.so" (deployed) and "<module>.v<N>.so" (updated).
  const fs::path dir = fs::path(options_.data_dir) / "modules";
  std::error_code ec;
  std::vector<fs::path> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (IsFileOfModule(it->path().filename().string(), module)) files.push_back(it->path());
  }
  if (ec) return Status::IOError("listing " + dir.string() + ": " + ec.message());
  for (const fs::path& file : files) {
    fs::remove(file, ec);
    if (ec) return Status::IOError("removing " + file.string() + ": " + ec.message());
  }
  return Status::Ok();
}

Status EngineImpl::DropOrphans(const std::map<std::string, std::string>& deployed) {
  std::map<std::string, int> dropped;  // by module
  for (const std::string kind : kTableKinds) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables, storage_->ListTables(kind));
    for (const std::string& table : tables) {
      const std::string_view rest = std::string_view(table).substr(kind.size());
      const std::string owner(rest.substr(0, rest.find('.')));
      if (deployed.count(owner) != 0) continue;
      STRATA_RETURN_IF_ERROR(storage_->DropTable(table));
      ++dropped[owner];
    }
  }
  for (const auto& [module, tables] : dropped) {
    logger_->Warning("dropped " + std::to_string(tables) + " tables of module " + module +
                     ", which is not deployed (a crash interrupted its Deploy or Destroy)");
  }
  // Plugin copies of undeployed modules, copies an update replaced, and staged copies of
  // interrupted deploys and updates: every file but those the rows name.
  std::set<std::string> kept;
  for (const auto& [module, file] : deployed) kept.insert(fs::path(file).filename().string());
  const fs::path dir = fs::path(options_.data_dir) / "modules";
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (kept.count(it->path().filename().string()) == 0) stale.push_back(it->path());
  }
  if (ec) return Status::IOError("listing " + dir.string() + ": " + ec.message());
  for (const fs::path& path : stale) {
    fs::remove(path, ec);
    if (ec) return Status::IOError("removing " + path.string() + ": " + ec.message());
  }
  return Status::Ok();
}

Result<std::shared_ptr<ModuleRuntime>> EngineImpl::Find(const std::string& module) {
  ReaderMutexLock lock(&modules_mu_);
  auto it = modules_.find(module);
  if (it != modules_.end()) return it->second;
  // kNotFound: nothing the client sends can reach the module until an operator destroys it
  // or restores its file and restarts the server, so retrying is pointless.
  if (auto failed = failed_.find(module); failed != failed_.end()) {
    return Status::NotFound(
        "module " + module + " is deployed but failed to load, so it serves no requests: " +
        failed->second.error + " (destroy it, or restore its file and restart)");
  }
  return Status::NotFound("no module " + module + " is deployed");
}

Result<int> EngineImpl::FindDepot(const ModuleRuntime& m, const std::string& depot) const {
  for (size_t i = 0; i < m.def->depots.size(); ++i) {
    if (m.def->depots[i].name == depot) return static_cast<int>(i);
  }
  return Status::NotFound("module " + m.name + " has no depot " + depot);
}

Result<int> EngineImpl::FindPState(const ModuleRuntime& m, const std::string& pstate) const {
  for (size_t i = 0; i < m.def->pstates.size(); ++i) {
    if (m.def->pstates[i].name == pstate) return static_cast<int>(i);
  }
  for (const DepotDef& d : m.def->depots) {
    if (d.name == pstate || "$$" + d.name == pstate) {
      return Status::NotFound("module " + m.name + " has no PState " + pstate + ": " + d.name +
                              " is a depot (PStates are named $$…)");
    }
  }
  return Status::NotFound("module " + m.name + " has no PState " + pstate);
}

std::vector<std::string> DependsOn(const ModuleDef& def) {
  std::set<std::string> modules;
  for (const DepotDef& depot : def.depots) {
    if (!depot.mirror_of.empty()) modules.insert(depot.mirror_of);
  }
  for (const MirrorDef& mirror : def.mirror_pstates) modules.insert(mirror.module);
  for (const MirrorDef& mirror : def.mirror_queries) modules.insert(mirror.module);
  return {modules.begin(), modules.end()};
}

ModuleInfo EngineImpl::DescribeModule(const ModuleRuntime& m) {
  ModuleInfo info;
  info.name = m.name;
  info.partitions = m.partitions;
  info.version = m.version;
  for (const DepotDef& d : m.def->depots) {
    info.depots.push_back({d.name,
                           !d.mirror_of.empty() ? "mirror of " + d.mirror_of + "/" + d.name
                           : d.tick_interval_ms > 0
                               ? "ticks every " + std::to_string(d.tick_interval_ms) + " ms"
                               : PartitioningName(d.partitioning),
                           d.record_schema});
  }
  for (const PStateDef& p : m.def->pstates) info.pstates.push_back({p.name, p.schema});
  for (const TopologyDef& t : m.def->topologies) {
    TopologyInfo topology{
        t.name, {}, t.kind == TopologyDef::Kind::kMicrobatch ? "microbatch" : "stream"};
    for (int d : t.sources) {
      const DepotDef& depot = m.def->depots[d];
      topology.sources.push_back(depot.mirror_of.empty() ? depot.name
                                                         : depot.mirror_of + "/" + depot.name);
    }
    info.topologies.push_back(std::move(topology));
  }
  for (const QueryDef& q : m.def->queries) {
    QueryInfo query{q.topology.name, {}};
    for (const QueryParam& param : q.params) query.params.emplace_back(param.name, param.schema);
    info.queries.push_back(std::move(query));
  }
  info.depends_on = DependsOn(*m.def);
  return info;
}

ModuleInfo EngineImpl::DescribeFailed(const std::string& name, const FailedModule& failed) {
  ModuleInfo info;
  info.name = name;
  info.partitions = failed.partitions;
  info.load_error = failed.error;
  return info;
}

Result<std::vector<ModuleInfo>> EngineImpl::Modules() {
  ReaderMutexLock lock(&modules_mu_);
  std::map<std::string, ModuleInfo> by_name;  // loaded and failed modules, by name
  for (const auto& [name, m] : modules_) {
    ModuleInfo info = DescribeModule(*m);
    info.dependents = DependentsOf(name);
    by_name.emplace(name, std::move(info));
  }
  for (const auto& [name, failed] : failed_) by_name.emplace(name, DescribeFailed(name, failed));
  std::vector<ModuleInfo> out;
  for (auto& [name, info] : by_name) out.push_back(std::move(info));
  return out;
}

Result<ModuleInfo> EngineImpl::Describe(const std::string& module) {
  {
    ReaderMutexLock lock(&modules_mu_);
    if (auto it = failed_.find(module); it != failed_.end()) {
      return DescribeFailed(module, it->second);
    }
  }
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  ModuleInfo info = DescribeModule(*m);
  ReaderMutexLock lock(&modules_mu_);
  info.dependents = DependentsOf(module);
  return info;
}

}  // namespace strata::runtime
