#include "pstate/pstate.h"

#include "path/navigate.h"
#include "pstate/layout.h"
#include "pstate/stored_node.h"
#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata {

namespace {

Status CheckName(std::string_view what, std::string_view name) {
  const bool ok = !name.empty() && name.find_first_not_of(
                                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789_-") == std::string_view::npos;
  if (ok) return Status::Ok();
  return Status::InvalidArgument(std::string(what) + " name \"" + std::string(name) +
                                 "\" must be non-empty and use only A-Z a-z 0-9 _ -");
}

// The schema record of `table`, or nullopt for a new table.
Result<std::optional<PStateSchema>> ReadSchemaRecord(Session& session, TableId table,
                                                     const std::string& table_name) {
  std::string bytes;
  STRATA_ASSIGN_OR_RETURN(bool found, session.Get(table, pstate_layout::kSchemaKey, &bytes));
  if (!found) return std::optional<PStateSchema>();
  Result<Value> stored = DecodeValue(bytes);
  if (!stored.ok()) {
    return Status::Corruption("schema record of table " + table_name +
                              " does not decode: " + stored.status().message());
  }
  Result<PStateSchema> existing = PStateSchema::FromValue(*stored);
  if (!existing.ok()) {
    return Status::Corruption("schema record of table " + table_name +
                              " is malformed: " + existing.status().message());
  }
  return std::optional<PStateSchema>(std::move(existing).value());
}

// Whether `schema` has the shape a migration applies to: a map at the root whose values
// are each one blob.
bool MigratableShape(const PStateSchema& schema) {
  return schema.root.kind() == Schema::Kind::kMap &&
         !pstate_internal::StoredByItself(schema.root.value());
}

}  // namespace

PState::PState(std::string module, std::string name, PStateSchema schema,
               std::vector<TableId> tables, const PStateOpenOptions& options)
    : module_(std::move(module)),
      name_(std::move(name)),
      location_("$$" + name_),
      schema_(std::move(schema)),
      tables_(std::move(tables)),
      generation_(options.generation),
      migration_(options.migration),
      migrating_(options.migration != nullptr) {}

std::string PState::TableName(std::string_view module, std::string_view name, int partition,
                              int generation) {
  std::string out = "pstate." + std::string(module) + "." + std::string(name);
  if (generation > 0) {
    out += '@';
    out += std::to_string(generation);
  }
  out += '.';
  out += std::to_string(partition);
  return out;
}

Status PState::CheckSchemaChange(const PStateSchema& stored, const PStateSchema& declared,
                                 const MigrationDef* migration) {
  if (stored == declared) return Status::Ok();
  if (migration == nullptr) return SchemaWidens(stored, declared).status();
  const std::string head = stored.ToString() + " cannot become " + declared.ToString() +
                           " with migration \"" + migration->id + "\": ";
  if (stored.global != declared.global || !MigratableShape(stored) || !MigratableShape(declared) ||
      stored.root.subindexed() != declared.root.subindexed()) {
    return Status::InvalidArgument(
        head +
        "a migration rewrites the values of a map at the root, each stored as one blob, and "
        "keeps how the PState is stored (global, subindexed); these are not two such maps");
  }
  if (!(stored.root.key() == declared.root.key()) &&
      !SchemaWidens(PStateSchema{stored.root.key()}, PStateSchema{declared.root.key()}).ok()) {
    return Status::InvalidArgument(head + "its keys would change from " +
                                   stored.root.key().ToString() + " to " +
                                   declared.root.key().ToString() +
                                   ", but a migration rewrites the values of the map, not its "
                                   "keys (keys may only widen, e.g. to any)");
  }
  return Status::Ok();
}

Result<std::unique_ptr<PState>> PState::Open(Storage* storage, std::string_view module,
                                             std::string_view name, const PStateSchema& schema,
                                             int partitions, const PStateOpenOptions& options) {
  if (name.substr(0, 2) == "$$") name.remove_prefix(2);
  STRATA_RETURN_IF_ERROR(CheckName("module", module));
  STRATA_RETURN_IF_ERROR(CheckName("PState", name));
  if (partitions < 1) {
    return Status::InvalidArgument("PState $$" + std::string(name) +
                                   " needs at least 1 partition, got " +
                                   std::to_string(partitions));
  }
  if (options.generation < 0) {
    return Status::InvalidArgument("PState $$" + std::string(name) +
                                   ": table generation must be >= 0, got " +
                                   std::to_string(options.generation));
  }
  Status st = schema.Check();
  if (!st.ok())
    return Status::InvalidArgument("PState $$" + std::string(name) + ": " + st.message());
  if (const MigrationDef* m = options.migration) {
    if (m->id.empty() || !m->fn) {
      return Status::InvalidArgument("PState $$" + std::string(name) +
                                     ": a migration needs an id and a function");
    }
    if (!MigratableShape(schema)) {
      return Status::InvalidArgument(
          "PState $$" + std::string(name) + ": migration \"" + m->id +
          "\" needs a map at the root whose values are each one blob (no subindexed part), not " +
          schema.ToString());
    }
  }
  const int tables = schema.global ? 1 : partitions;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage->OpenSession());
  std::vector<TableId> ids;
  std::vector<TableId> to_write;  // new tables and tables whose schema record changes
  for (int p = 0; p < tables; ++p) {
    const std::string table_name = TableName(module, name, p, options.generation);
    STRATA_ASSIGN_OR_RETURN(TableId id, storage->OpenTable(table_name, TableKind::kBytes));
    STRATA_ASSIGN_OR_RETURN(std::optional<PStateSchema> stored,
                            ReadSchemaRecord(*session, id, table_name));
    if (stored && !(*stored == schema)) {
      st = CheckSchemaChange(*stored, schema, options.migration);
      if (!st.ok()) {
        return Status::InvalidArgument("table " + table_name + " holds a PState with schema " +
                                       stored->ToString() + ", not " + schema.ToString() + " (" +
                                       st.message() + ")");
      }
    }
    if (!stored || !(*stored == schema)) to_write.push_back(id);
    ids.push_back(id);
  }
  if (!to_write.empty()) {
    std::string encoded;
    AppendValue(schema.ToValue(), &encoded);
    STRATA_RETURN_IF_ERROR(session->Begin());
    for (TableId id : to_write) {
      st = session->Put(id, pstate_layout::kSchemaKey, encoded);
      if (!st.ok()) {
        session->Rollback();
        return st;
      }
    }
    STRATA_RETURN_IF_ERROR(session->Commit());
  }
  return std::unique_ptr<PState>(
      new PState(std::string(module), std::string(name), schema, std::move(ids), options));
}

Result<TableId> PState::TableFor(int partition) const {
  if (partition < 0 || partition >= partitions()) {
    return Status::InvalidArgument("PState " + location_ + " has " + std::to_string(partitions()) +
                                   " partition(s); there is no partition " +
                                   std::to_string(partition));
  }
  return tables_[partition];
}

Result<std::vector<Value>> PState::Select(Session& session, int partition, const Path& path) const {
  STRATA_ASSIGN_OR_RETURN(TableId table, TableFor(partition));
  pstate_internal::StoreContext ctx{&session, table, location_, ActiveMigration()};
  pstate_internal::RootNode root(&ctx, schema_.root);
  return nav::SelectFrom(*root, path);
}

bool PState::ReadsOneRecord(const Path& path) const {
  const Schema& root = schema_.root;
  if (root.kind() != Schema::Kind::kMap || root.value().has_subindexed()) return false;
  if (path.navigators().empty()) return false;
  for (const Navigator& nav : path.navigators()) {
    if (nav.kind != Navigator::Kind::kKey && nav.kind != Navigator::Kind::kMust) return false;
  }
  return true;
}

Result<Value> PState::SelectOne(Session& session, int partition, const Path& path) const {
  STRATA_ASSIGN_OR_RETURN(TableId table, TableFor(partition));
  pstate_internal::StoreContext ctx{&session, table, location_, ActiveMigration()};
  pstate_internal::RootNode root(&ctx, schema_.root);
  return nav::SelectOneFrom(*root, path);
}

Result<int64_t> PState::Transform(Session& session, int partition, const Path& path) const {
  STRATA_ASSIGN_OR_RETURN(TableId table, TableFor(partition));
  const bool own_transaction = !session.in_transaction();
  // Snapshot isolation: in WiredTiger 3.2.1 only it detects write-write conflicts, so two
  // sessions transforming the same records cannot lose an update (one gets kAborted).
  if (own_transaction) STRATA_RETURN_IF_ERROR(session.Begin(/*snapshot=*/true));
  pstate_internal::StoreContext ctx{&session, table, location_, ActiveMigration()};
  pstate_internal::RootNode root(&ctx, schema_.root);
  Result<int64_t> applied = nav::TransformFrom(*root, path);
  Status st = applied.ok() ? root->Flush() : applied.status();
  if (!st.ok()) {
    if (own_transaction) session.Rollback();
    return st;
  }
  if (own_transaction) STRATA_RETURN_IF_ERROR(session.Commit());
  return applied;
}

Result<std::optional<std::string>> PState::MigrateSome(Session& session, int partition,
                                                       std::string_view after, size_t limit) const {
  if (migration_ == nullptr) {
    return Status::InvalidArgument("PState " + location_ + " has no migration to apply");
  }
  if (limit == 0) return Status::InvalidArgument("MigrateSome needs a limit > 0");
  STRATA_ASSIGN_OR_RETURN(TableId table, TableFor(partition));
  // The values of the root map are blobs (Open checked), so every key from the first
  // element byte on is one value: no subtree to skip.
  std::string begin = after.empty() ? pstate_layout::ElementsBegin("") : std::string(after) + '\0';
  std::vector<std::pair<std::string, std::string>> batch;
  STRATA_RETURN_IF_ERROR(
      session.Scan(table, begin, "", false, [&](std::string_view key, std::string_view value) {
        batch.emplace_back(key, value);
        return batch.size() < limit;
      }));
  if (batch.empty()) return std::optional<std::string>();
  const bool own_transaction = !session.in_transaction();
  if (own_transaction) STRATA_RETURN_IF_ERROR(session.Begin(/*snapshot=*/true));
  Status st = RewriteMigrated(session, table, batch);
  if (!st.ok()) {
    if (own_transaction) session.Rollback();
    return st;
  }
  if (own_transaction) STRATA_RETURN_IF_ERROR(session.Commit());
  return std::optional<std::string>(std::move(batch.back().first));
}

Status PState::RewriteMigrated(
    Session& session, TableId table,
    const std::vector<std::pair<std::string, std::string>>& batch) const {
  const Schema& value_schema = schema_.root.value();
  for (const auto& [key, bytes] : batch) {
    auto where = [&, &key = key] {
      Result<Value> k = DecodeKey(key);
      std::string out = location_;
      if (k.ok()) {
        nav::AppendKeyLocation(*k, &out);
      } else {
        out += " key " + ToJson(Value::BytesOf(key));
      }
      return out;
    };
    Result<Value> old = DecodeValue(bytes);
    if (!old.ok()) {
      return Status::Corruption("stored value at " + where() +
                                " does not decode: " + old.status().message());
    }
    STRATA_ASSIGN_OR_RETURN(Value migrated,
                            pstate_internal::Migrate(*migration_, value_schema, *old, where));
    if (migrated == *old) continue;
    std::string encoded;
    AppendValue(migrated, &encoded);
    STRATA_RETURN_IF_ERROR(session.Put(table, key, encoded));
  }
  return Status::Ok();
}

}  // namespace strata
