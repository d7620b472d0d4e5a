// ValueNode: see path/value_node.h.
#include "path/value_node.h"

#include <algorithm>
#include <functional>
#include <type_traits>

#include "strata/json.h"

namespace strata::nav {

Status ValueHolder::Load() {
  if (loaded) return Status::Ok();
  STRATA_ASSIGN_OR_RETURN(exists, sink->Load(value));
  loaded = true;
  return Status::Ok();
}

Kind KindOf(const Value& v) {
  switch (v.type()) {
    case Type::kNil:
      return Kind::kNil;
    case Type::kList:
      return Kind::kList;
    case Type::kMap:
      return Kind::kMap;
    case Type::kSet:
      return Kind::kSet;
    default:
      return Kind::kScalar;
  }
}

std::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kNil:
      return "nil";
    case Kind::kScalar:
      return "scalar";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "map";
    case Kind::kSet:
      return "set";
  }
  return "?";
}

bool KeyRange::AboveLow(const Value& key) const {
  if (!lo) return true;
  auto c = Value::Compare(key, lo->key);
  return lo->inclusive ? c >= 0 : c > 0;
}

bool KeyRange::BelowHigh(const Value& key) const {
  if (!hi) return true;
  auto c = Value::Compare(key, hi->key);
  return hi->inclusive ? c <= 0 : c < 0;
}

bool KeyRange::Contains(const Value& key) const { return AboveLow(key) && BelowHigh(key); }

KeyRange KeyRange::Intersect(const KeyRange& a, const KeyRange& b) {
  KeyRange r = a;
  // A bound of b replaces r's when it is tighter: further in, or equal and exclusive.
  if (b.lo && (!r.lo || Value::Compare(b.lo->key, r.lo->key) > 0 ||
               (b.lo->key == r.lo->key && !b.lo->inclusive))) {
    r.lo = b.lo;
  }
  if (b.hi && (!r.hi || Value::Compare(b.hi->key, r.hi->key) < 0 ||
               (b.hi->key == r.hi->key && !b.hi->inclusive))) {
    r.hi = b.hi;
  }
  return r;
}

std::string Node::Location() const {
  std::string out;
  AppendLocation(&out);
  return out;
}

void AppendKeyLocation(const Value& key, std::string* out) {
  *out += '[';
  *out += ToJson(key);
  *out += ']';
}

namespace {

// The child of `parent` at `key`, or nullptr when there is none.
Value* ChildOf(Value* parent, const Value& key) {
  switch (parent->type()) {
    case Type::kMap:
      return parent->Find(key);
    case Type::kList: {
      if (!key.is_int()) return nullptr;
      auto& list = parent->as_list();
      int64_t i = key.as_int();
      return i >= 0 && i < static_cast<int64_t>(list.size()) ? &list[i] : nullptr;
    }
    case Type::kSet: {
      const auto& set = parent->as_set();
      auto it = std::lower_bound(set.begin(), set.end(), key);
      // Members are only read through this pointer: writes go through Value::Add/Remove,
      // and writes below a member are refused (members are immutable).
      return it != set.end() && *it == key ? const_cast<Value*>(&*it) : nullptr;
    }
    default:
      return nullptr;
  }
}

std::string Describe(const Value& v) {
  return std::string(TypeName(v.type())) + " " + v.ToString();
}

}  // namespace

ValueNode::ValueNode(ValueHolder* holder, std::vector<Value> steps, bool owns_flush)
    : holder_(holder), steps_(std::move(steps)), owns_flush_(owns_flush) {
  if (!owns_flush_) ++holder_->live_nodes;
}

ValueNode::~ValueNode() {
  if (!owns_flush_) --holder_->live_nodes;
}

Result<Kind> ValueNode::GetKind() {
  STRATA_ASSIGN_OR_RETURN(Value * v, Resolve(steps_.size()));
  return v ? KindOf(*v) : Kind::kNil;
}

Result<bool> ValueNode::Exists() {
  STRATA_ASSIGN_OR_RETURN(Value * v, Resolve(steps_.size()));
  return v != nullptr;
}

Result<Value> ValueNode::Read() {
  STRATA_ASSIGN_OR_RETURN(Value * v, Resolve(steps_.size()));
  return v ? *v : Value();
}

Result<Value> ValueNode::Take() {
  if (!steps_.empty() || !owns_flush_ || holder_->live_nodes != 0 || holder_->dirty) return Read();
  STRATA_RETURN_IF_ERROR(holder_->Load());
  if (!holder_->exists) return Value();
  Value out = std::move(*holder_->value);
  holder_->loaded = false;
  return out;
}

Result<int64_t> ValueNode::Size() {
  STRATA_ASSIGN_OR_RETURN(Value * v, Resolve(steps_.size()));
  if (v == nullptr || v->is_nil()) return int64_t{0};
  if (KindOf(*v) == Kind::kScalar) {
    return Status::InvalidArgument("size needs a list, map or set at " + Location() + ", found " +
                                   Describe(*v));
  }
  return static_cast<int64_t>(v->size());
}

Result<NodePtr> ValueNode::Child(const Value& key) {
  std::vector<Value> steps;
  steps.reserve(steps_.size() + 1);
  steps.insert(steps.end(), steps_.begin(), steps_.end());
  steps.push_back(key);
  return NodePtr(std::make_unique<ValueNode>(holder_, std::move(steps), false));
}

Status ValueNode::Scan(const KeyRange& range, bool reverse, size_t max,
                       std::vector<ChildEntry>* out) {
  STRATA_ASSIGN_OR_RETURN(Value * v, Resolve(steps_.size()));
  if (v == nullptr || (!v->is_map() && !v->is_set())) return Status::Ok();
  std::vector<const Value*> keys;
  keys.reserve(v->size());
  if (v->is_map()) {
    for (const auto& e : v->as_map()) keys.push_back(&e.first);
  } else {
    for (const auto& e : v->as_set()) keys.push_back(&e);
  }
  auto lo = std::partition_point(keys.begin(), keys.end(),
                                 [&](const Value* k) { return !range.AboveLow(*k); });
  auto hi =
      std::partition_point(lo, keys.end(), [&](const Value* k) { return range.BelowHigh(*k); });
  const size_t n = std::min(max, static_cast<size_t>(hi - lo));
  std::vector<Value> picked;
  picked.reserve(n);
  for (size_t i = 0; i < n; ++i) picked.push_back(reverse ? **(hi - 1 - i) : **(lo + i));
  for (Value& key : picked) {
    STRATA_ASSIGN_OR_RETURN(NodePtr child, Child(key));
    out->push_back(ChildEntry{std::move(key), std::move(child)});
  }
  return Status::Ok();
}

Status ValueNode::Write(Value v) {
  STRATA_RETURN_IF_ERROR(CheckWritable());
  if (steps_.empty()) {
    if (holder_->loaded || !holder_->sink->StoresWithoutLoad()) {
      STRATA_RETURN_IF_ERROR(holder_->Load());
    }
    *holder_->value = std::move(v);
    holder_->loaded = true;
    return MarkWritten();
  }
  STRATA_ASSIGN_OR_RETURN(Value * parent, ResolveParentForWrite());
  const Value& key = steps_.back();
  switch (parent->type()) {
    case Type::kMap:
      parent->Insert(key, std::move(v));
      break;
    case Type::kList: {
      Value* slot = ChildOf(parent, key);
      if (slot == nullptr) return OutOfRange(parent, steps_.size() - 1);
      *slot = std::move(v);
      break;
    }
    case Type::kSet:
      if (v != key) {
        return Status::InvalidArgument("set members cannot be changed in place at " + Location() +
                                       ": " + key.ToString() + " would become " + v.ToString() +
                                       " (remove it and add the new member)");
      }
      parent->Add(std::move(v));
      break;
    default:
      return Status::Internal("ResolveParentForWrite returned a non-container");
  }
  return MarkWritten();
}

Status ValueNode::Remove() {
  STRATA_RETURN_IF_ERROR(CheckWritable());
  STRATA_RETURN_IF_ERROR(holder_->Load());
  if (steps_.empty()) {
    if (!holder_->exists) return Status::Ok();
    *holder_->value = Value();
    holder_->exists = false;
    holder_->dirty = true;
    return Status::Ok();
  }
  STRATA_ASSIGN_OR_RETURN(Value * parent, Resolve(steps_.size() - 1));
  if (parent == nullptr) return Status::Ok();
  const Value& key = steps_.back();
  bool removed = false;
  switch (parent->type()) {
    case Type::kMap:
      removed = parent->Erase(key);
      break;
    case Type::kSet:
      removed = parent->Remove(key);
      break;
    case Type::kList: {
      Value* slot = ChildOf(parent, key);
      if (slot != nullptr) {
        auto& list = parent->as_list();
        list.erase(list.begin() + (slot - list.data()));
        removed = true;
      }
      break;
    }
    default:
      break;
  }
  if (removed) holder_->dirty = true;
  return Status::Ok();
}

Status ValueNode::Append(const std::vector<Value>& items) {
  STRATA_RETURN_IF_ERROR(CheckWritable());
  STRATA_ASSIGN_OR_RETURN(Value * v, Resolve(steps_.size()));
  if (v == nullptr || v->is_nil()) return Write(Value(Value::List(items)));
  if (!v->is_list()) return WrongKind("append", "a list", *v);
  auto& list = v->as_list();
  list.insert(list.end(), items.begin(), items.end());
  holder_->dirty = true;
  return Status::Ok();
}

Status ValueNode::AddToSet(const std::vector<Value>& items) {
  STRATA_RETURN_IF_ERROR(CheckWritable());
  STRATA_ASSIGN_OR_RETURN(Value * v, Resolve(steps_.size()));
  if (v == nullptr || v->is_nil()) return Write(Value::SetOf(Value::Set(items)));
  if (!v->is_set()) return WrongKind("add_to_set", "a set", *v);
  for (const Value& item : items) {
    if (v->Add(item)) holder_->dirty = true;
  }
  return Status::Ok();
}

Status ValueNode::Flush() {
  if (!owns_flush_ || !holder_->dirty) return Status::Ok();
  holder_->dirty = false;
  return holder_->exists ? holder_->sink->Store(*holder_->value) : holder_->sink->Erase();
}

void ValueNode::AppendLocation(std::string* out) const { AppendPrefix(steps_.size(), out); }

void ValueNode::AppendPrefix(size_t depth, std::string* out) const {
  holder_->sink->AppendLocation(out);
  for (size_t i = 0; i < depth; ++i) AppendKeyLocation(steps_[i], out);
}

std::string ValueNode::PrefixLocation(size_t depth) const {
  std::string out;
  AppendPrefix(depth, &out);
  return out;
}

Status ValueNode::CheckWritable() const {
  if (holder_->read_only.empty()) return Status::Ok();
  return Status::InvalidArgument(holder_->read_only + " at " + Location() +
                                 " is read-only: a transform cannot write through it");
}

Status ValueNode::WrongKind(std::string_view op, std::string_view expected,
                            const Value& found) const {
  return Status::InvalidArgument(std::string(op) + " needs " + std::string(expected) + " at " +
                                 Location() + ", found " + Describe(found));
}

Status ValueNode::OutOfRange(const Value* container, size_t depth) const {
  if (container->is_list()) {
    return Status::InvalidArgument("list index " + steps_[depth].ToString() +
                                   " is out of range at " + PrefixLocation(depth) + " (size " +
                                   std::to_string(container->size()) + ")");
  }
  return Status::InvalidArgument("cannot write key " + steps_[depth].ToString() + " into " +
                                 Describe(*container) + " at " + PrefixLocation(depth));
}

Status ValueNode::MarkWritten() {
  holder_->exists = true;
  holder_->dirty = true;
  return Status::Ok();
}

Result<Value*> ValueNode::Resolve(size_t depth) {
  STRATA_RETURN_IF_ERROR(holder_->Load());
  if (!holder_->exists) return nullptr;
  Value* cur = holder_->value;
  for (size_t i = 0; i < depth && cur != nullptr; ++i) cur = ChildOf(cur, steps_[i]);
  return cur;
}

Result<Value*> ValueNode::ResolveParentForWrite() {
  STRATA_RETURN_IF_ERROR(holder_->Load());
  if (!holder_->exists || holder_->value->is_nil()) {
    *holder_->value = Value::EmptyMap();
    holder_->exists = true;
    holder_->dirty = true;
  }
  Value* cur = holder_->value;
  for (size_t i = 0; i + 1 < steps_.size(); ++i) {
    if (cur->is_set()) {
      return Status::InvalidArgument("cannot write inside set member " + steps_[i].ToString() +
                                     " at " + PrefixLocation(i) + ": set members are immutable");
    }
    Value* next = ChildOf(cur, steps_[i]);
    if (next == nullptr) {
      if (!cur->is_map()) return OutOfRange(cur, i);
      next = &cur->Insert(steps_[i], Value::EmptyMap());
      holder_->dirty = true;
    } else if (next->is_nil()) {
      *next = Value::EmptyMap();
      holder_->dirty = true;
    }
    cur = next;
  }
  if (KindOf(*cur) == Kind::kScalar) return OutOfRange(cur, steps_.size() - 1);
  return cur;
}

namespace {

// The sink of a preloaded value that is never loaded or stored; it names its location
// through LocationT (a string, or the node it was derived from).
template <typename LocationT>
class ConstSink final : public Sink {
 public:
  explicit ConstSink(LocationT location) : location_(std::move(location)) {}
  Result<bool> Load(Value*) override { return Status::Internal("a const node is preloaded"); }
  Status Store(const Value&) override { return Status::Internal("a const node is read-only"); }
  Status Erase() override { return Status::Internal("a const node is read-only"); }
  void AppendLocation(std::string* out) const override {
    if constexpr (std::is_same_v<LocationT, std::string>) {
      *out += location_;
    } else {
      location_.get().AppendLocation(out);
    }
  }

 private:
  LocationT location_;
};

}  // namespace

NodePtr MakeConstNode(Value v, std::string what, const Node& where) {
  // The location is built only when a message needs it (a size select runs per delivery
  // in W3; building it eagerly took 1.8 % of the server's CPU there).
  auto node = std::make_unique<SinkValueNode<ConstSink<std::reference_wrapper<const Node>>>>(
      std::move(v), std::cref(where));
  node->holder().read_only = std::move(what);
  return node;
}

NodePtr MakeBorrowedValueNode(Value* value, std::string read_only, std::string location) {
  auto node =
      std::make_unique<SinkValueNode<ConstSink<std::string>>>(std::nullopt, std::move(location));
  ValueHolder& holder = node->holder();
  holder.value = value;
  holder.loaded = true;
  holder.exists = true;
  holder.read_only = std::move(read_only);
  // Writes land in *value directly, so there is nothing to flush.
  node->DisownFlush();
  return node;
}

}  // namespace strata::nav
