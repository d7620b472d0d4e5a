// Stored nodes (engine-internal): the navigation core's view (path/node.h) of one PState
// partition table laid out as pstate/layout.h describes. Subindexed containers and records
// with subindexed fields are nodes that read and write their element records directly;
// blob values are ValueNodes whose sink is their record.
//
// Nodes read and write through ctx->session, in whatever transaction it has open; they are
// used by the session's thread only and live for one select or transform. The schema
// passed to RootNode must outlive the nodes.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "path/node.h"
#include "storage/storage.h"
#include "strata/schema.h"

namespace strata::pstate_internal {

struct StoreContext {
  Session* session;
  TableId table;
  std::string_view root_location;  // "$$name", the start of every location in messages
  // Set while a migration is active: every value of the root map (a blob: the loader and
  // PState::Open refuse migrations elsewhere) is passed through it when loaded.
  const MigrationDef* migration = nullptr;
};

// The node of the root value of the partition, built in place: every select and
// transform has one, and this spares each of them an allocation.
class RootNode {
 public:
  RootNode(StoreContext* ctx, const Schema& root);
  ~RootNode();
  RootNode(const RootNode&) = delete;
  RootNode& operator=(const RootNode&) = delete;

  nav::Node& operator*() { return *node_; }
  nav::Node* operator->() { return node_; }

 private:
  static constexpr size_t kInPlaceBytes = 256;
  alignas(std::max_align_t) unsigned char in_place_[kInPlaceBytes];
  nav::Node* node_ = nullptr;
  nav::NodePtr heap_;  // a root stored as one blob
};

// Whether a value with this schema, at a place where values may be stored by themselves,
// is stored in records of its own (a subindexed container, or a record with subindexed
// fields) rather than as one blob.
bool StoredByItself(const Schema& schema);

// `old` passed through `migration`, checked against `value_schema` (the root map's value
// schema). `where()` names the value ($$name["key"]); it is only called on error, which is
// the function's own (its code kept, e.g. kUserError for an exception) or kSchemaViolation,
// each naming the migration and the place.
Result<Value> Migrate(const MigrationDef& migration, const Schema& value_schema, const Value& old,
                      const std::function<std::string()>& where);

}  // namespace strata::pstate_internal
