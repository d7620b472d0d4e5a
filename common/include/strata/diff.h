// Diffs: fine-grained changes of a nested Value, as live subscriptions push them
// (docs/subscriptions.md). A list of diffs applied in order to the value before gives the
// value after. The engine derives them (DiffValues); clients apply them (ApplyDiff).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "strata/status.h"
#include "strata/value.h"

namespace strata {

struct Diff {
  enum class Op : uint8_t {
    kReplace,     // the value at `at` becomes `value` (`at` empty: the whole value)
    kKeySet,      // the map at `at` maps `key` to `value` (a new key, or a new value)
    kKeyRemoved,  // the map at `at` no longer has `key`
    kSetAdded,    // the set at `at` gains the element `value`
    kSetRemoved,  // the set at `at` loses the element `value`
    kSeqInsert,   // the list at `at` gets `value` before position `index` (= size: at the end)
    kSeqRemove,   // the list at `at` loses its element at `index` (later ones move down)
    kResync,      // the whole value is now `value` (no finer diff could be given)
  };
  Op op = Op::kReplace;
  // Where the change is: the steps from the root of the value to the container changed (or,
  // for kReplace, to the value replaced), each a map key or, in a list, an int index.
  std::vector<Value> at;
  Value key;          // kKeySet, kKeyRemoved
  Value value;        // kReplace, kKeySet, kSetAdded, kSetRemoved, kSeqInsert, kResync
  int64_t index = 0;  // kSeqInsert, kSeqRemove

  bool operator==(const Diff&) const = default;
};

// "replace", "key_set", "key_removed", "set_added", "set_removed", "seq_insert",
// "seq_remove", "resync": the names of docs/subscriptions.md, also used on the wire.
std::string_view DiffOpName(Diff::Op op);
std::optional<Diff::Op> DiffOpFromName(std::string_view name);

// The diffs that turn `before` into `after`: none when they are equal. Maps and sets are
// compared key by key and element by element, recursing into a changed value that is a
// container of the same kind on both sides; lists by a shortest edit script (inserts and
// removes; an element that changed in place is recursed into when both are containers of
// the same kind, else replaced); anything else is a kReplace. nullopt when that takes more than
// `max_ops` diffs: then the caller sends a kResync.
std::optional<std::vector<Diff>> DiffValues(const Value& before, const Value& after,
                                            size_t max_ops);

// Applies one diff to *value in place. kInvalidArgument (naming the step) when the diff
// does not fit the value: a step into something that is not a map or list or that is
// absent, a container of the wrong kind, an index out of range. *value is unchanged then.
Status ApplyDiff(Value* value, const Diff& diff);

// Readable form for logs, the shell and test output, e.g. `key_set ["alice"] "bio" = "hi"`.
std::string DiffToString(const Diff& diff);

}  // namespace strata
