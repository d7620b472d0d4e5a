// EngineImpl's migrations (docs/modules.md, "Migrations"; docs/runtime.md, "Migrations"):
// a PState whose module declares a migration applies it to every value it reads at once
// (engine/pstate), and a background pass rewrites the stored values a batch at a time on
// each partition's owner thread, so that topology writes to the partition never conflict
// with it. Each batch commits with a marker in meta.progress, key (module, "$migration",
// PState, partition) and value {"id", "after", "done"}: a restart or the next version
// resumes after the last committed batch; once every partition is done, reads stop
// applying the function.
#include "runtime/engine_impl.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

constexpr size_t kMigrateBatch = 256;

}  // namespace

Value MigrationMarker(const std::string& id, const std::string& after, bool done) {
  return Value::MapOf({{"id", id}, {"after", Value::BytesOf(after)}, {"done", done}});
}

std::string MigrationMarkerKey(const std::string& module, const std::string& pstate,
                               int partition) {
  return ProgressKey(module, "$migration", pstate, partition);
}

Status EngineImpl::LoadMigrations(ModuleRuntime& m) {
  m.migrations.assign(m.def->pstates.size(), nullptr);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  for (size_t i = 0; i < m.def->pstates.size(); ++i) {
    const PStateDef& def = m.def->pstates[i];
    if (!def.migration) continue;
    auto pass = std::make_shared<MigrationPass>();
    pass->id = def.migration->id;
    const int partitions = m.pstates[i]->partitions();
    pass->after.assign(partitions, "");
    pass->done.assign(partitions, 0);
    int left = partitions;
    for (int p = 0; p < partitions; ++p) {
      std::string bytes;
      STRATA_ASSIGN_OR_RETURN(
          bool found,
          session->Get(progress_table_, MigrationMarkerKey(m.name, def.name, p), &bytes));
      if (!found) continue;
      Result<Value> marker = DecodeValue(bytes);
      const Value* id = marker.ok() ? marker->Find("id") : nullptr;
      const Value* after = marker.ok() ? marker->Find("after") : nullptr;
      const Value* done = marker.ok() ? marker->Find("done") : nullptr;
      if (id == nullptr || after == nullptr || done == nullptr || !id->is_string() ||
          !after->is_bytes() || !done->is_bool()) {
        return Status::Corruption("the migration marker of " + def.name + " partition " +
                                  std::to_string(p) + " of module " + m.name + " does not decode");
      }
      if (id->as_string() != pass->id) continue;  // an earlier migration's
      pass->after[p] = after->as_bytes();
      pass->done[p] = done->as_bool();
      if (pass->done[p]) --left;
    }
    pass->left.store(left);
    if (left == 0) {
      m.pstates[i]->FinishMigration();
      continue;
    }
    m.migrations[i] = std::move(pass);
  }
  return Status::Ok();
}

void EngineImpl::StartMigrations(const std::shared_ptr<ModuleRuntime>& m) {
  for (int i = 0; i < static_cast<int>(m->migrations.size()); ++i) {
    const std::shared_ptr<MigrationPass>& pass = m->migrations[i];
    if (!pass) continue;
    for (int p = 0; p < static_cast<int>(pass->done.size()); ++p) {
      if (pass->done[p]) continue;
      // A global PState's one partition is module partition 0's.
      m->parts[p].Post([this, m, i, p](TaskThread& thread) { MigrateChunk(thread, m, i, p); });
    }
  }
}

void EngineImpl::MigrateChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                              int pstate, int partition) {
  if (m->stopping.load() || m->closed.load() || closing_.load()) return;  // resumed later
  MigrationPass& pass = *m->migrations[pstate];
  PState& ps = *m->pstates[pstate];
  Session& session = thread.session();
  Status st = session.Begin();
  Result<std::optional<std::string>> last =
      st.ok() ? ps.MigrateSome(session, partition, pass.after[partition], kMigrateBatch)
              : Result<std::optional<std::string>>(st);
  const bool done = last.ok() && !last->has_value();
  const std::string after = last.ok() && last->has_value() ? **last : pass.after[partition];
  if (last.ok()) {
    std::string marker;
    AppendValue(MigrationMarker(pass.id, after, done), &marker);
    st = session.Put(progress_table_,
                     MigrationMarkerKey(m->name, m->def->pstates[pstate].name, partition), marker);
    if (st.ok()) st = session.Commit();
  } else {
    st = last.status();
  }
  if (!st.ok()) {
    if (session.in_transaction()) session.Rollback();
    if (st.code() == StatusCode::kAborted) {  // a write conflict: try the batch again
      m->parts[partition].Post(
          [this, m, pstate, partition](TaskThread& t) { MigrateChunk(t, m, pstate, partition); });
      return;
    }
    pass.failed.store(true);
    logger_->Error(
        "the migration " + pass.id + " of " + m->def->pstates[pstate].name + " (module " + m->name +
        ") stopped on partition " + std::to_string(partition) +
        "; reads keep applying it, and the next start or update retries: " + st.ToString());
    return;
  }
  pass.after[partition] = after;
  if (!done) {
    m->parts[partition].Post(
        [this, m, pstate, partition](TaskThread& t) { MigrateChunk(t, m, pstate, partition); });
    return;
  }
  pass.done[partition] = 1;
  if (pass.left.fetch_sub(1) == 1) ps.FinishMigration();
}

std::vector<RebuildProgress> EngineImpl::MigrationProgress(const ModuleRuntime& m) {
  std::vector<RebuildProgress> out;
  for (size_t i = 0; i < m.migrations.size(); ++i) {
    const std::shared_ptr<MigrationPass>& pass = m.migrations[i];
    if (!pass || pass->left.load() == 0) continue;
    const int64_t partitions = static_cast<int64_t>(pass->done.size());
    out.push_back(
        {"migration", {m.def->pstates[i].name}, partitions - pass->left.load(), partitions});
  }
  return out;
}

}  // namespace strata::runtime
