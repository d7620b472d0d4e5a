// ValueNode (engine-internal): a position inside a Value held in memory. The root node of a
// value owns its ValueHolder (SinkValueNode); nodes below it address their position by the
// keys from the root, re-resolved on each use (inserting or erasing elements moves Values in
// their vectors, so pointers into the tree would not survive a sibling's transform), and
// point at the root's holder, which outlives them because a parent outlives its children
// (path/node.h).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "path/node.h"

namespace strata::nav {

class ValueNode : public Node {
 public:
  // `holder` outlives the node. The root node (owns_flush) writes the value back in Flush.
  ValueNode(ValueHolder* holder, std::vector<Value> steps, bool owns_flush);
  ~ValueNode() override;
  Result<Kind> GetKind() override;
  Result<bool> Exists() override;
  Result<Value> Read() override;
  // A root node with no other node on its value, and no change to write back, gives the
  // value away; the holder reloads it if it is asked again.
  Result<Value> Take() override;
  Result<int64_t> Size() override;
  Result<NodePtr> Child(const Value& key) override;
  Status Scan(const KeyRange& range, bool reverse, size_t max,
              std::vector<ChildEntry>* out) override;
  Status Write(Value v) override;
  Status Remove() override;
  Status Append(const std::vector<Value>& items) override;
  Status AddToSet(const std::vector<Value>& items) override;
  Status Flush() override;
  void AppendLocation(std::string* out) const override;

 protected:
  ValueHolder* holder_;
  std::vector<Value> steps_;
  bool owns_flush_;

 private:
  void AppendPrefix(size_t depth, std::string* out) const;
  std::string PrefixLocation(size_t depth) const;
  Status CheckWritable() const;
  Status WrongKind(std::string_view op, std::string_view expected, const Value& found) const;
  // Error for a write below `container` (reached by the first `depth` steps) at steps_[depth].
  Status OutOfRange(const Value* container, size_t depth) const;
  Status MarkWritten();
  // The value at the first `depth` steps, or nullptr when absent.
  Result<Value*> Resolve(size_t depth);
  // The container that will hold this node's value, turning absent or nil levels into
  // maps (as `key` navigation promises). Writing below a set member, into a scalar, or at
  // a list index out of range is an error.
  Result<Value*> ResolveParentForWrite();
};

// The root ValueNode of one value, with its holder and its sink (a SinkT built from the
// constructor's arguments) in the same object.
template <typename SinkT>
class SinkValueNode final : public ValueNode {
 public:
  template <typename... Args>
  explicit SinkValueNode(std::optional<Value> preloaded, Args&&... args)
      : ValueNode(&root_holder_, {}, true), sink_(std::forward<Args>(args)...) {
    root_holder_.sink = &sink_;
    if (preloaded) {
      root_holder_.own = std::move(*preloaded);
      root_holder_.loaded = true;
      root_holder_.exists = true;
    }
  }

  ValueHolder& holder() { return root_holder_; }
  // For values that are written in place and never stored back (borrowed values).
  void DisownFlush() { owns_flush_ = false; }

 private:
  ValueHolder root_holder_;
  SinkT sink_;
};

// A value node with a SinkT sink; `preloaded` is the sink's current value when the caller
// already has it (nullopt: the sink is asked on first use).
template <typename SinkT, typename... Args>
NodePtr MakeValueNode(std::optional<Value> preloaded, Args&&... args) {
  return std::make_unique<SinkValueNode<SinkT>>(std::move(preloaded), std::forward<Args>(args)...);
}

}  // namespace strata::nav
