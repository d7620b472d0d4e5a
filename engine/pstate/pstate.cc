#include "pstate/pstate.h"

#include "path/navigate.h"
#include "pstate/layout.h"
#include "pstate/stored_node.h"
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

// Writes the schema record of a new table, or checks that an existing one matches.
Status CheckSchemaRecord(Session& session, TableId table, const std::string& table_name,
                         const PStateSchema& schema) {
  std::string bytes;
  STRATA_ASSIGN_OR_RETURN(bool found, session.Get(table, pstate_layout::kSchemaKey, &bytes));
  if (!found) {
    std::string encoded;
    AppendValue(schema.ToValue(), &encoded);
    return session.Put(table, pstate_layout::kSchemaKey, encoded);
  }
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
  if (!(*existing == schema)) {
    return Status::InvalidArgument("table " + table_name + " holds a PState with schema " +
                                   existing->ToString() + ", not " + schema.ToString());
  }
  return Status::Ok();
}

}  // namespace

PState::PState(std::string module, std::string name, PStateSchema schema,
               std::vector<TableId> tables)
    : module_(std::move(module)),
      name_(std::move(name)),
      location_("$$" + name_),
      schema_(std::move(schema)),
      tables_(std::move(tables)) {}

std::string PState::TableName(std::string_view module, std::string_view name, int partition) {
  return "pstate." + std::string(module) + "." + std::string(name) + "." +
         std::to_string(partition);
}

Result<std::unique_ptr<PState>> PState::Open(Storage* storage, std::string_view module,
                                             std::string_view name, const PStateSchema& schema,
                                             int partitions) {
  if (name.substr(0, 2) == "$$") name.remove_prefix(2);
  STRATA_RETURN_IF_ERROR(CheckName("module", module));
  STRATA_RETURN_IF_ERROR(CheckName("PState", name));
  if (partitions < 1) {
    return Status::InvalidArgument("PState $$" + std::string(name) +
                                   " needs at least 1 partition, got " +
                                   std::to_string(partitions));
  }
  Status st = schema.Check();
  if (!st.ok())
    return Status::InvalidArgument("PState $$" + std::string(name) + ": " + st.message());
  const int tables = schema.global ? 1 : partitions;
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage->OpenSession());
  std::vector<TableId> ids;
  for (int p = 0; p < tables; ++p) {
    const std::string table_name = TableName(module, name, p);
    STRATA_ASSIGN_OR_RETURN(TableId id, storage->OpenTable(table_name, TableKind::kBytes));
    STRATA_RETURN_IF_ERROR(CheckSchemaRecord(*session, id, table_name, schema));
    ids.push_back(id);
  }
  return std::unique_ptr<PState>(
      new PState(std::string(module), std::string(name), schema, std::move(ids)));
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
  pstate_internal::StoreContext ctx{&session, table, location_};
  pstate_internal::RootNode root(&ctx, schema_.root);
  return nav::SelectFrom(*root, path);
}

Result<Value> PState::SelectOne(Session& session, int partition, const Path& path) const {
  STRATA_ASSIGN_OR_RETURN(TableId table, TableFor(partition));
  pstate_internal::StoreContext ctx{&session, table, location_};
  pstate_internal::RootNode root(&ctx, schema_.root);
  return nav::SelectOneFrom(*root, path);
}

Result<int64_t> PState::Transform(Session& session, int partition, const Path& path) const {
  STRATA_ASSIGN_OR_RETURN(TableId table, TableFor(partition));
  const bool own_transaction = !session.in_transaction();
  // Snapshot isolation: in WiredTiger 3.2.1 only it detects write-write conflicts, so two
  // sessions transforming the same records cannot lose an update (one gets kAborted).
  if (own_transaction) STRATA_RETURN_IF_ERROR(session.Begin(/*snapshot=*/true));
  pstate_internal::StoreContext ctx{&session, table, location_};
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

}  // namespace strata
