// A PState: a durable, partitioned, schema-checked nested value, read with select paths
// and updated with transform paths (strata/path.h). Each partition is one byte-keyed
// table, pstate.<module>.<name>.<partition>, laid out as docs/storage.md ("PState tables")
// specifies: subindexed structures are stored one element per record, so they are range
// scanned and paginated without being loaded whole and know their size in O(1).
// Engine-internal (it exposes storage/storage.h): users reach PStates through strata/engine.h
// and a topology's TopologyContext (strata/module.h).
//
// Threading: a PState is immutable after Open and may be used from any thread; every call
// takes the caller's Session, which belongs to the calling thread.
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

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.h"
#include "strata/path.h"
#include "strata/schema.h"

namespace strata {

class PState {
 public:
  // Checks the schema (PStateSchema::Check) and the names ([A-Za-z0-9_-]+; a leading "$$"
  // on `name` is dropped), then opens or creates the tables: one for a global PState,
  // `partitions` otherwise. A table that exists must have been created with the same
  // schema (kInvalidArgument otherwise). `storage` must outlive the PState.
  static Result<std::unique_ptr<PState>> Open(Storage* storage, std::string_view module,
                                              std::string_view name, const PStateSchema& schema,
                                              int partitions);

  // Every value the path navigates to in `partition`, in navigation order.
  Result<std::vector<Value>> Select(Session& session, int partition, const Path& path) const;
  // Exactly one value: kNotFound when the path matches none, kInvalidArgument (with the
  // count) when it matches several.
  Result<Value> SelectOne(Session& session, int partition, const Path& path) const;
  // Applies the path's terminal at every place it navigates to; returns how many places.
  // Every written value is checked against the schema first (kSchemaViolation names the
  // place). kAborted is a write conflict: roll back and retry.
  Result<int64_t> Transform(Session& session, int partition, const Path& path) const;

  const std::string& module() const { return module_; }
  const std::string& name() const { return name_; }
  const PStateSchema& schema() const { return schema_; }
  int partitions() const { return static_cast<int>(tables_.size()); }

  // "pstate.<module>.<name>.<partition>"
  static std::string TableName(std::string_view module, std::string_view name, int partition);

 private:
  PState(std::string module, std::string name, PStateSchema schema, std::vector<TableId> tables);
  Result<TableId> TableFor(int partition) const;

  std::string module_;
  std::string name_;
  std::string location_;  // "$$name"
  PStateSchema schema_;
  std::vector<TableId> tables_;
};

}  // namespace strata
