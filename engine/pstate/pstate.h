// A PState: a durable, partitioned, schema-checked nested value, read with select paths
// and updated with transform paths (strata/path.h). Each partition is one byte-keyed
// table, pstate.<module>.<name>.<partition> (pstate.<module>.<name>@<generation>.<partition>
// for a generation > 0, see PStateOpenOptions), laid out as docs/storage.md ("PState tables")
// specifies: subindexed structures are stored one element per record, so they are range
// scanned and paginated without being loaded whole and know their size in O(1).
// Engine-internal (it exposes storage/storage.h): users reach PStates through strata/engine.h
// and a topology's TopologyContext (strata/module.h).
//
// Threading: a PState is immutable after Open, but for whether its migration is active
// (an atomic flag), and may be used from any thread; every call takes the caller's Session,
// which belongs to the calling thread.
//
// Migrations (docs/modules.md, "Migrations"): while a PState opened with a migration has it
// active, every Select, SelectOne and Transform sees each value of the root map passed
// through the migration's function first (a transform that writes a value stores the
// migrated one); MigrateSome rewrites the stored values a batch at a time, and
// FinishMigration stops applying the function once they all are.
//
// Transactions and durability: Transform writes inside the session's open transaction when
// there is one (so the runtime commits PState writes together with its progress marker;
// on error the caller must roll that transaction back, as part of the transform may have
// been written). Otherwise it runs in a snapshot-isolation transaction of its own, committed
// on success and rolled back on error; if another session wrote the same records
// concurrently it fails with kAborted and changes nothing (retry it). The runtime avoids
// such conflicts by giving each partition one writer thread. A commit is visible at once and
// durable after the next log flush (Storage::WhenDurable / WaitDurable). Select reads committed
// data (and the session's own uncommitted writes); run it inside Session::Begin(/*snapshot=*/true)
// for one consistent view across several records.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storage/storage.h"
#include "strata/path.h"
#include "strata/schema.h"

namespace strata {

struct PStateOpenOptions {
  // Which tables: 0 is pstate.<module>.<name>.<p>, g > 0 is pstate.<module>.<name>@<g>.<p>.
  // A recompute builds generation g+1 beside the live generation g, then the module's
  // metadata switches to it.
  int generation = 0;
  // The module's migration of this PState (strata/schema.h), or nullptr. It must outlive
  // the PState (it is code of the module's plugin). Only for a root map whose values are
  // each one blob (not subindexed, no subindexed part). Active from Open until
  // FinishMigration.
  const MigrationDef* migration = nullptr;
};

class PState {
 public:
  // Checks the schema (PStateSchema::Check) and the names ([A-Za-z0-9_-]+; a leading "$$"
  // on `name` is dropped), then opens or creates the tables: one for a global PState,
  // `partitions` otherwise. `storage` must outlive the PState.
  // A table that exists holds the schema it was last opened with (its schema record). When
  // that differs from `schema`, the tables are opened, and their schema records rewritten
  // to `schema` (in one transaction), if CheckSchemaChange accepts the change; else
  // kInvalidArgument naming the table and its message. A migration on a schema it does not
  // apply to (a root map with blob values) is kInvalidArgument too.
  static Result<std::unique_ptr<PState>> Open(Storage* storage, std::string_view module,
                                              std::string_view name, const PStateSchema& schema,
                                              int partitions,
                                              const PStateOpenOptions& options = {});

  // OK when data stored under `stored` can be served under `declared`: they are equal, or
  // `declared` only widens `stored` (SchemaWidens), or `migration` is given and bridges the
  // change — both are maps at the root whose values are blobs, with the same `global` and
  // root subindexed flag, and keys that are equal or widened. Else kInvalidArgument naming
  // both schemas and why (SchemaWidens' message without a migration). Open applies it to
  // every existing table; the runtime can ask it before it commits to an update.
  static Status CheckSchemaChange(const PStateSchema& stored, const PStateSchema& declared,
                                  const MigrationDef* migration);

  // Every value the path navigates to in `partition`, in navigation order.
  Result<std::vector<Value>> Select(Session& session, int partition, const Path& path) const;
  // Whether selecting `path` reads a single stored record: it navigates only by key/must
  // into a root map whose values are stored one blob each (no subindexed part). Such a read
  // is atomic by itself; any other may read several records, and needs a snapshot
  // transaction (Session::Begin(true)) to see one commit whole.
  bool ReadsOneRecord(const Path& path) const;
  // Exactly one value: kNotFound when the path matches none, kInvalidArgument (with the
  // count) when it matches several.
  Result<Value> SelectOne(Session& session, int partition, const Path& path) const;
  // Applies the path's terminal at every place it navigates to; returns how many places.
  // Every written value is checked against the schema first (kSchemaViolation names the
  // place). kAborted is a write conflict: roll back and retry.
  Result<int64_t> Transform(Session& session, int partition, const Path& path) const;

  // The background pass of a migration: rewrites the next `limit` (> 0) or fewer values of
  // the root map in `partition` whose encoded key (strata/key_codec.h) is greater than
  // `after` (from the first when `after` is empty), each passed through the migration and
  // checked against the schema; a value the function returns unchanged is not written.
  // Returns the encoded key of the last value it rewrote, to pass as `after` next time, or
  // nullopt when none remained. Writes in the session's open transaction when there is one
  // (the caller commits it, e.g. with its record of how far the pass got), else in one of
  // its own. Applies the migration whether or not it is still active. Errors: the
  // function's (its code kept; kUserError for an exception) and kSchemaViolation for a
  // result the schema refuses, both naming the migration and the key; kInvalidArgument
  // when the PState has no migration; kAborted is a write conflict (roll back, retry).
  Result<std::optional<std::string>> MigrateSome(Session& session, int partition,
                                                 std::string_view after, size_t limit) const;
  // Stops applying the migration to reads and transforms (once MigrateSome has rewritten
  // every partition). Takes effect for calls that begin after it returns. Any thread.
  void FinishMigration() { migrating_.store(false, std::memory_order_release); }
  // Whether reads and transforms apply a migration now.
  bool migrating() const { return migrating_.load(std::memory_order_acquire); }
  // The migration given to Open (nullptr when none), active or finished.
  const MigrationDef* migration() const { return migration_; }

  const std::string& module() const { return module_; }
  const std::string& name() const { return name_; }
  const PStateSchema& schema() const { return schema_; }
  int partitions() const { return static_cast<int>(tables_.size()); }
  int generation() const { return generation_; }

  // "pstate.<module>.<name>.<partition>" for generation 0,
  // "pstate.<module>.<name>@<generation>.<partition>" after.
  static std::string TableName(std::string_view module, std::string_view name, int partition,
                               int generation = 0);

 private:
  PState(std::string module, std::string name, PStateSchema schema, std::vector<TableId> tables,
         const PStateOpenOptions& options);
  Result<TableId> TableFor(int partition) const;
  // MigrateSome's writes: `batch` holds (record key, stored bytes) of root map values.
  Status RewriteMigrated(Session& session, TableId table,
                         const std::vector<std::pair<std::string, std::string>>& batch) const;
  // The migration reads and transforms apply now, or nullptr.
  const MigrationDef* ActiveMigration() const { return migrating() ? migration_ : nullptr; }

  std::string module_;
  std::string name_;
  std::string location_;  // "$$name"
  PStateSchema schema_;
  std::vector<TableId> tables_;
  int generation_;
  const MigrationDef* migration_;
  std::atomic<bool> migrating_;
};

}  // namespace strata
