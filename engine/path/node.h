// The navigation core's view of data (engine-internal; not part of the module SDK).
//
// A Node is one position inside a nested value: a Value in memory (ValueNode, possibly
// inside a blob loaded from storage), or a stored container whose elements are separate
// records (engine/pstate). The core (navigate.h) runs select and transform over Nodes only,
// so one implementation of every navigator serves in-memory values, blobs and subindexed
// structures alike.
//
// Ownership and lifetime: a child Node may refer to its parent, so the caller keeps a
// parent alive while any of its children is in use, and calls Flush() on a node it
// obtained (from Child, Scan or a factory) when done with it, before its parent's next
// sibling is visited. Nodes are used by one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/status.h"
#include "strata/value.h"

namespace strata::nav {

// The shape at a node. kNil covers both "absent" and "present and nil".
enum class Kind : uint8_t { kNil, kScalar, kList, kMap, kSet };

Kind KindOf(const Value& v);
std::string_view KindName(Kind kind);

struct KeyBound {
  Value key;
  bool inclusive = true;
};

// A range of keys in the Value order; an absent bound is open.
struct KeyRange {
  std::optional<KeyBound> lo;
  std::optional<KeyBound> hi;

  bool Contains(const Value& key) const;
  bool AboveLow(const Value& key) const;
  bool BelowHigh(const Value& key) const;
  // The keys in both ranges.
  static KeyRange Intersect(const KeyRange& a, const KeyRange& b);
};

class Node;
using NodePtr = std::unique_ptr<Node>;

struct ChildEntry {
  Value key;
  NodePtr node;
};

class Node {
 public:
  virtual ~Node() = default;

  virtual Result<Kind> GetKind() = 0;
  // False when there is no value here at all (a map key that is absent); a present nil
  // value exists.
  virtual Result<bool> Exists() = 0;
  // The whole value (nil when absent). Loads a stored container completely.
  virtual Result<Value> Read() = 0;
  // Read() for the last use of this node: may move the value out instead of copying it.
  virtual Result<Value> Take() { return Read(); }
  // Elements of a list, map or set; 0 for nil. An error for scalars.
  virtual Result<int64_t> Size() = 0;

  // The child at `key`: a map's value, a set's member, a list's element (int index). The
  // child of an absent key is a node that does not exist; writing it creates it. Callers
  // check the kind first: Child on a scalar is an error.
  virtual Result<NodePtr> Child(const Value& key) = 0;
  // Appends to *out the children of a map or set whose keys are in `range`, ascending (or
  // descending when `reverse`), at most `max` of them.
  virtual Status Scan(const KeyRange& range, bool reverse, size_t max,
                      std::vector<ChildEntry>* out) = 0;

  // Replaces the value here, creating it (and the maps above it) when absent.
  virtual Status Write(Value v) = 0;
  // Deletes this element from its container (no-op when absent).
  virtual Status Remove() = 0;
  // List append (nil becomes a list) and set add (nil becomes a set).
  virtual Status Append(const std::vector<Value>& items) = 0;
  virtual Status AddToSet(const std::vector<Value>& items) = 0;

  // Writes back buffered changes. Called once by whoever obtained the node.
  virtual Status Flush() { return Status::Ok(); }
  // Whether "first", "all" ... visit this node's keys in descending order (range views).
  virtual bool reversed() const { return false; }

  // Where this node is, for messages: $$name["key"].field[3]
  virtual void AppendLocation(std::string* out) const = 0;
  std::string Location() const;
};

// Where a ValueNode's root value comes from and goes to.
class Sink {
 public:
  virtual ~Sink() = default;
  // Sets *out and returns true when a value is present.
  virtual Result<bool> Load(Value* out) = 0;
  // Validates and stores the new root value.
  virtual Status Store(const Value& v) = 0;
  // Deletes the root value.
  virtual Status Erase() = 0;
  // Whether Store and Erase work without a Load first (the sink finds out itself whether a
  // value was there): a write of the whole root value then skips reading the old one.
  virtual bool StoresWithoutLoad() const { return false; }
  virtual void AppendLocation(std::string* out) const = 0;
};

// The state shared by the ValueNodes of one value (path/value_node.h): the Value, whether
// it was loaded from its sink and changed since, and the sink. Flush() of the root node
// writes the value back through the sink if it changed.
struct ValueHolder {
  ValueHolder() = default;
  ValueHolder(const ValueHolder&) = delete;  // `value` may point at `own`
  ValueHolder& operator=(const ValueHolder&) = delete;

  Sink* sink = nullptr;
  Value own;
  Value* value = &own;
  bool loaded = false;
  bool exists = false;
  bool dirty = false;
  // Non-empty: the value is a read-only view and mutations fail naming it.
  std::string read_only;
  // ValueNodes below the root that are alive (the root may give the value away only when
  // there are none).
  int live_nodes = 0;

  Status Load();
};

// A read-only node over `v` (views such as size): writes fail naming `what`. Its location
// is `where`'s, which must outlive it.
NodePtr MakeConstNode(Value v, std::string what, const Node& where);

// A node over a Value the caller owns and keeps alive; writes change *value in place
// (nothing to flush). A non-empty `read_only` makes every write fail naming it.
NodePtr MakeBorrowedValueNode(Value* value, std::string read_only, std::string location);

// Appends `[json]` for a map key or list index.
void AppendKeyLocation(const Value& key, std::string* out);

}  // namespace strata::nav
