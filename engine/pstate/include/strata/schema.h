// PState schemas: the shape of a PState's data, which parts are stored one element per
// record (subindexed), and the check every write passes. See docs/paths.md and
// docs/storage.md ("PState tables").
//
//   Schema::Map(Schema::String(),
//               Schema::Record({{"balance", Schema::Int64()},
//                               {"follows", Schema::Set(Schema::String()).Subindexed()}}))
//
// Schemas are immutable values: cheap to copy (shared), safe to share between threads.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"
#include "strata/value.h"

namespace strata {

class Schema {
 public:
  enum class Kind : uint8_t {
    kAny,
    kBool,
    kInt64,
    kDouble,
    kString,
    kBytes,
    kMap,
    kSet,
    kList,
    kRecord
  };
  struct Field;

  Schema();  // any

  static Schema Any();
  static Schema Bool();
  static Schema Int64();
  static Schema Double();
  static Schema String();
  static Schema Bytes();
  // Sorted by key (the Value order).
  static Schema Map(Schema key, Schema value);
  // Sorted (the Value order).
  static Schema Set(Schema element);
  static Schema List(Schema element);
  // Fixed keys: a map from field name to value whose fields are all optional. Fields are
  // kept sorted by name; a duplicate name is reported by PStateSchema::Check.
  static Schema Record(std::vector<Field> fields);

  // This map, set or list stored one element per record (PStateSchema::Check rejects the
  // flag anywhere else).
  Schema Subindexed() const;

  Kind kind() const;
  bool subindexed() const;
  // Map key / set element schema.
  const Schema& key() const;
  // Map value / list element schema.
  const Schema& value() const;
  const std::vector<Field>& fields() const;
  // The field's schema, or nullptr.
  const Schema* field(std::string_view name) const;
  // Whether this or anything inside it is subindexed.
  bool has_subindexed() const;

  // Wire/metadata form: a leaf is its name ("int64"); composites are maps such as
  // {"type":"map","key":"string","value":"int64","subindexed":true},
  // {"type":"record","fields":{"balance":"int64"}}.
  Value ToValue() const;
  static Result<Schema> FromValue(const Value& v);
  // e.g. map<string, record{balance: int64, follows: subindexed set<string>}>
  std::string ToString() const;

  friend bool operator==(const Schema& a, const Schema& b);

 private:
  struct Rep;
  explicit Schema(std::shared_ptr<const Rep> rep);
  // Builds a Rep with `build` and derives has_subindexed.
  template <typename Build>
  static Schema Make(Build build);
  std::shared_ptr<const Rep> rep_;
};

struct Schema::Field {
  std::string name;
  Schema schema;
};

std::string_view SchemaKindName(Schema::Kind kind);

// The schema of one PState: its root value, and whether it has one partition (global) or
// one per module partition.
struct PStateSchema {
  Schema root;
  bool global = false;

  // Structural rules: subindexed only on maps, sets and lists, and only where the
  // structure can be stored by itself (the root, a value of a subindexed or root map, a
  // field of a record in such a place); never inside a blob, a set or a list element;
  // record field names unique.
  Status Check() const;

  // {"schema": <Schema::ToValue>, "global": bool}
  Value ToValue() const;
  static Result<PStateSchema> FromValue(const Value& v);
  // "global <root>" or "<root>"
  std::string ToString() const;

  friend bool operator==(const PStateSchema& a, const PStateSchema& b) {
    return a.global == b.global && a.root == b.root;
  }
};

// Whether the PState data stored under `stored` can be served under `declared` as it is
// (docs/modules.md, "Migrations"): false when the two are equal; true when `declared` only
// widens `stored` — a leaf or composite became `any`, a record gained fields — anywhere
// (map keys and values, set and list elements, record fields, recursively). Otherwise
// kInvalidArgument naming both schemas in full and the first place that differs, e.g.
//   map<string, int64> cannot become map<string, string> without a migration: value of
//   the map: int64 became string
// Never widening, because the stored layout or data would not fit: `global` or a
// subindexed flag changed; a part with something subindexed inside became `any`; a record
// lost a field, or gained one with a subindexed part while it had none (it is one blob
// then); any other change of type.
Result<bool> SchemaWidens(const PStateSchema& stored, const PStateSchema& declared);

// A module's migration of one PState whose root is a map with blob values (docs/modules.md,
// "Migrations"): `fn` turns a value stored under a top-level key into the value the new
// schema expects. It must be idempotent — given an already migrated value it returns it
// unchanged — because reads apply it to every value until the background pass has
// rewritten them all. It never throws (the SDK wraps the user function; an exception is a
// kUserError). `id` names the migration: the runtime records by it that the rewrite
// finished. Built in the plugin; `fn` is code of the plugin.
struct MigrationDef {
  std::string id;
  std::function<Result<Value>(const Value&)> fn;
};

// Checks `v` against `schema`. A violation is kSchemaViolation naming where it is
// (`location` extended by keys and fields, e.g. $$accounts["alice"].balance), the expected
// type and the actual value. nil matches only `any`; records may lack fields but not have
// unknown ones. A valid value costs no string work.
Status ValidateValue(const Schema& schema, const Value& v, std::string_view location);
// The same, with the location built only for a violation.
template <typename Location>
Status ValidateValueAt(const Schema& schema, const Value& v, Location location) {
  Status st = ValidateValue(schema, v, "");
  return st.ok() ? st : ValidateValue(schema, v, location());
}

}  // namespace strata
