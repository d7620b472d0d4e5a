// The walker: one recursive function over Nodes for select and transform. Views that exist
// only during navigation (map entries, map keys, sorted ranges, size) are Nodes defined
// here on top of any other Node, so they work the same over memory and storage.
#include "path/navigate.h"

#include <cmath>

#include "path/value_node.h"
#include "strata/navigate.h"

namespace strata {
namespace nav {
namespace {

// How many children a walk over a map or set holds at once; bounds memory on large
// subindexed containers.
constexpr size_t kScanBatch = 256;

using NavKind = Navigator::Kind;

enum class Mode : uint8_t { kSelect, kTransform };

// A navigator, with key/must split into one step per key.
struct Step {
  NavKind kind;
  const Navigator* nav;
  const Value* key;  // key/must: this step's key
};

// The steps of a path. Most paths have one key per key/must navigator, and then the steps
// are the navigators themselves (no allocation: this is on every point select's path).
class Steps {
 public:
  explicit Steps(const Path& path) : navs_(path.navigators()) {
    for (const Navigator& nav : navs_) {
      if ((nav.kind == NavKind::kKey || nav.kind == NavKind::kMust) && nav.keys.size() != 1) {
        Expand();
        break;
      }
    }
  }

  size_t size() const { return expanded_.empty() ? navs_.size() : expanded_.size(); }

  Step operator[](size_t i) const {
    if (!expanded_.empty()) return expanded_[i];
    const Navigator& nav = navs_[i];
    const bool keyed = nav.kind == NavKind::kKey || nav.kind == NavKind::kMust;
    return Step{nav.kind, &nav, keyed ? &nav.keys[0] : nullptr};
  }

 private:
  void Expand() {
    for (const Navigator& nav : navs_) {
      if (nav.kind == NavKind::kKey || nav.kind == NavKind::kMust) {
        for (const Value& key : nav.keys) expanded_.push_back(Step{nav.kind, &nav, &key});
      } else {
        expanded_.push_back(Step{nav.kind, &nav, nullptr});
      }
    }
  }

  const std::vector<Navigator>& navs_;
  std::vector<Step> expanded_;
};

std::string StepName(const Step& step) {
  if (step.key == nullptr) return NavigatorToString(*step.nav);
  Navigator single;
  single.kind = step.kind;
  single.keys = {*step.key};
  return NavigatorToString(single);
}

std::string Describe(const Value& v) {
  return std::string(TypeName(v.type())) + " " + v.ToString();
}

Status WrongKind(const std::string& what, std::string_view expected, Node& node) {
  Result<Value> v = node.Read();
  std::string found = v.ok() ? Describe(*v) : "an unreadable value";
  return Status::InvalidArgument(what + " needs " + std::string(expected) + " at " +
                                 node.Location() + ", found " + found);
}

// Predicates compare numbers by value across int and double (1 eq 1.0); everything else by
// the Value total order.
int ComparePredicate(const Value& a, const Value& b) {
  auto num = [](const Value& v, long double* out) {
    if (v.is_int()) {
      *out = static_cast<long double>(v.as_int());
      return true;
    }
    if (v.is_double() && !std::isnan(v.as_double())) {
      *out = v.as_double();
      return true;
    }
    return false;
  };
  long double x, y;
  if (a.type() != b.type() && num(a, &x) && num(b, &y)) return x < y ? -1 : (x > y ? 1 : 0);
  auto c = Value::Compare(a, b);
  return c < 0 ? -1 : (c > 0 ? 1 : 0);
}

bool Holds(PredicateOp op, const Value& v, const Value& arg) {
  if (op == PredicateOp::kExists) return !v.is_nil();
  const int c = ComparePredicate(v, arg);
  switch (op) {
    case PredicateOp::kEq:
      return c == 0;
    case PredicateOp::kNe:
      return c != 0;
    case PredicateOp::kLt:
      return c < 0;
    case PredicateOp::kLe:
      return c <= 0;
    case PredicateOp::kGt:
      return c > 0;
    case PredicateOp::kGe:
      return c >= 0;
    case PredicateOp::kExists:
      break;
  }
  return false;
}

Result<Value> AddNumbers(const Value& cur, const Value& n, Node& node) {
  if (cur.is_nil()) return n;
  if (cur.is_int() && n.is_int()) {
    int64_t sum;
    if (__builtin_add_overflow(cur.as_int(), n.as_int(), &sum)) {
      return Status::InvalidArgument("add(" + n.ToString() + ") overflows int64 at " +
                                     node.Location() + " (value " + cur.ToString() + ")");
    }
    return Value(sum);
  }
  auto as_double = [](const Value& v) {
    return v.is_int() ? static_cast<double>(v.as_int()) : v.as_double();
  };
  if ((cur.is_int() || cur.is_double()) && (n.is_int() || n.is_double())) {
    return Value(as_double(cur) + as_double(n));
  }
  return Status::InvalidArgument("add(" + n.ToString() + ") needs a number at " + node.Location() +
                                 ", found " + Describe(cur));
}

// Forwards to a node owned by someone else, who also flushes it.
class BorrowedNode final : public Node {
 public:
  explicit BorrowedNode(Node& n) : n_(n) {}
  Result<Kind> GetKind() override { return n_.GetKind(); }
  Result<bool> Exists() override { return n_.Exists(); }
  Result<Value> Read() override { return n_.Read(); }
  Result<int64_t> Size() override { return n_.Size(); }
  Result<NodePtr> Child(const Value& key) override { return n_.Child(key); }
  Status Scan(const KeyRange& r, bool rev, size_t max, std::vector<ChildEntry>* out) override {
    return n_.Scan(r, rev, max, out);
  }
  Status Write(Value v) override { return n_.Write(std::move(v)); }
  Status Remove() override { return n_.Remove(); }
  Status Append(const std::vector<Value>& items) override { return n_.Append(items); }
  Status AddToSet(const std::vector<Value>& items) override { return n_.AddToSet(items); }
  bool reversed() const override { return n_.reversed(); }
  void AppendLocation(std::string* out) const override { n_.AppendLocation(out); }

 private:
  Node& n_;
};

// A map key seen as a value (map_keys, an entry's element 0): removing it removes the
// entry; keys cannot be changed in place.
class KeySink final : public Sink {
 public:
  KeySink(Node& map, Value key) : map_(map), key_(std::move(key)) {}
  Result<bool> Load(Value* out) override {
    *out = key_;
    return true;
  }
  Status Store(const Value& v) override {
    if (v == key_) return Status::Ok();
    return Status::InvalidArgument("map keys cannot be changed by a transform: key " +
                                   key_.ToString() + " at " + map_.Location() + " would become " +
                                   v.ToString() + " (remove the entry and set the new key)");
  }
  Status Erase() override {
    STRATA_ASSIGN_OR_RETURN(NodePtr child, map_.Child(key_));
    STRATA_RETURN_IF_ERROR(child->Remove());
    return child->Flush();
  }
  void AppendLocation(std::string* out) const override {
    map_.AppendLocation(out);
    *out += "(key ";
    *out += key_.ToString();
    *out += ')';
  }

 private:
  Node& map_;
  Value key_;
};

// Where a key outside a range view would be: absent, and not writable through the view.
class OutsideSink final : public Sink {
 public:
  OutsideSink(Node& view, Value key) : view_(view), key_(std::move(key)) {}
  Result<bool> Load(Value*) override { return false; }
  Status Store(const Value&) override { return Refuse(); }
  Status Erase() override { return Status::Ok(); }
  void AppendLocation(std::string* out) const override {
    view_.AppendLocation(out);
    AppendKeyLocation(key_, out);
  }

 private:
  Status Refuse() const {
    return Status::InvalidArgument("key " + key_.ToString() +
                                   " is outside the range navigated at " + view_.Location());
  }
  Node& view_;
  Value key_;
};

// A map entry as the two-element list [key, value] (all, first, last on maps).
class EntryNode final : public Node {
 public:
  EntryNode(Node& map, Value key, NodePtr value)
      : map_(map), key_(std::move(key)), value_(std::move(value)) {}

  Result<Kind> GetKind() override { return Kind::kList; }
  Result<bool> Exists() override { return value_->Exists(); }
  Result<Value> Read() override {
    STRATA_ASSIGN_OR_RETURN(Value v, value_->Read());
    return Value(Value::List{key_, std::move(v)});
  }
  Result<int64_t> Size() override { return int64_t{2}; }
  Result<NodePtr> Child(const Value& index) override {
    if (index == Value(0)) {
      return MakeValueNode<KeySink>(key_, map_, key_);
    }
    if (index == Value(1)) return NodePtr(std::make_unique<BorrowedNode>(*value_));
    return Status::InvalidArgument("a map entry has elements 0 (key) and 1 (value), not " +
                                   index.ToString() + ", at " + Location());
  }
  Status Scan(const KeyRange&, bool, size_t, std::vector<ChildEntry>*) override {
    return Status::Ok();
  }
  Status Write(Value v) override {
    if (!v.is_list() || v.as_list().size() != 2) {
      return Status::InvalidArgument("a map entry at " + Location() +
                                     " can only become a [key, value] list, got " + v.ToString());
    }
    Value::List& kv = v.as_list();
    STRATA_RETURN_IF_ERROR(KeySink(map_, key_).Store(kv[0]));
    return value_->Write(std::move(kv[1]));
  }
  Status Remove() override { return value_->Remove(); }
  Status Append(const std::vector<Value>&) override {
    return Status::InvalidArgument("cannot append to the map entry at " + Location());
  }
  Status AddToSet(const std::vector<Value>&) override {
    return Status::InvalidArgument("add_to_set needs a set at " + Location() +
                                   ", found a map entry");
  }
  Status Flush() override { return value_->Flush(); }
  void AppendLocation(std::string* out) const override { value_->AppendLocation(out); }

 private:
  Node& map_;
  Value key_;
  NodePtr value_;
};

// A sorted range of a map or set (the range navigator): a map or set made of the base's
// keys in the range, limited to the first `limit` of them in its order.
class RangeView final : public Node {
 public:
  RangeView(Node& base, Kind kind, const RangeSpec& spec) : base_(base), kind_(kind) {
    if (spec.from) range_.lo = KeyBound{*spec.from, spec.from_inclusive};
    if (spec.to) range_.hi = KeyBound{*spec.to, spec.to_inclusive};
    limit_ = spec.limit;
    reverse_ = spec.reverse;
  }

  Result<Kind> GetKind() override { return kind_; }
  Result<bool> Exists() override { return base_.Exists(); }

  Result<Value> Read() override {
    Value::Map entries;
    Value::Set members;
    // Reads the window directly with the limit, without resolving it to a bound first.
    int64_t remaining = empty_ ? 0 : limit_.value_or(INT64_MAX);
    KeyRange r = range_;
    while (remaining > 0) {
      std::vector<ChildEntry> batch;
      const size_t want = static_cast<size_t>(std::min<int64_t>(remaining, kScanBatch));
      STRATA_RETURN_IF_ERROR(base_.Scan(r, reverse_, want, &batch));
      for (ChildEntry& e : batch) {
        if (kind_ == Kind::kMap) {
          STRATA_ASSIGN_OR_RETURN(Value v, e.node->Read());
          entries.emplace_back(e.key, std::move(v));
        } else {
          members.push_back(e.key);
        }
      }
      remaining -= static_cast<int64_t>(batch.size());
      if (batch.size() < want) break;
      Advance(&r, batch.back().key);
    }
    return kind_ == Kind::kMap ? Value::MapOf(std::move(entries))
                               : Value::SetOf(std::move(members));
  }

  Result<int64_t> Size() override {
    if (!range_.lo && !range_.hi && !limit_ && !empty_) return base_.Size();
    STRATA_RETURN_IF_ERROR(ResolveLimit());
    int64_t n = 0;
    STRATA_RETURN_IF_ERROR(ForEachKey([&](ChildEntry&) -> Status {
      ++n;
      return Status::Ok();
    }));
    return n;
  }

  Result<NodePtr> Child(const Value& key) override {
    STRATA_RETURN_IF_ERROR(ResolveLimit());
    if (empty_ || !range_.Contains(key)) {
      return MakeValueNode<OutsideSink>(std::nullopt, *this, key);
    }
    return base_.Child(key);
  }

  Status Scan(const KeyRange& r, bool rev, size_t max, std::vector<ChildEntry>* out) override {
    // The first batch of a walk over the whole view in its own order, when it can hold the
    // whole view (a page of `range(limit n).all`): the first n keys of the base range are
    // the view, read once instead of once to find the limit's bound and again to walk it.
    if (limit_ && !r.lo && !r.hi && rev == reverse_ && *limit_ > 0 &&
        static_cast<size_t>(*limit_) <= max) {
      const size_t n = static_cast<size_t>(*limit_);
      const size_t before = out->size();
      STRATA_RETURN_IF_ERROR(base_.Scan(range_, rev, n, out));
      // The batch resolved the limit (as ResolveLimit would): a later batch of the walk,
      // after a transform removed these keys, must not count the limit again from the rest.
      limit_.reset();
      if (out->size() - before == n) {
        KeyBound edge{out->back().key, true};
        if (reverse_) {
          range_.lo = edge;
        } else {
          range_.hi = edge;
        }
      }
      return Status::Ok();
    }
    STRATA_RETURN_IF_ERROR(ResolveLimit());
    if (empty_) return Status::Ok();
    return base_.Scan(KeyRange::Intersect(range_, r), rev, max, out);
  }

  Status Write(Value v) override {
    const bool fits = kind_ == Kind::kMap ? v.is_map() : v.is_set();
    if (!fits) {
      return Status::InvalidArgument("a range of a " + std::string(KindName(kind_)) + " at " +
                                     Location() + " can only be replaced by a " +
                                     std::string(KindName(kind_)) + ", got " + Describe(v));
    }
    STRATA_RETURN_IF_ERROR(Remove());
    if (kind_ == Kind::kSet) {
      if (v.as_set().empty()) return Status::Ok();
      return base_.AddToSet(v.as_set());
    }
    for (const auto& [key, value] : v.as_map()) {
      STRATA_ASSIGN_OR_RETURN(NodePtr child, base_.Child(key));
      STRATA_RETURN_IF_ERROR(child->Write(value));
      STRATA_RETURN_IF_ERROR(child->Flush());
    }
    return Status::Ok();
  }

  Status Remove() override {
    STRATA_RETURN_IF_ERROR(ResolveLimit());
    return ForEachKey([](ChildEntry& e) -> Status {
      STRATA_RETURN_IF_ERROR(e.node->Remove());
      return e.node->Flush();
    });
  }

  Status Append(const std::vector<Value>&) override {
    return Status::InvalidArgument("append needs a list at " + Location() +
                                   ", found a range of a " + std::string(KindName(kind_)));
  }
  Status AddToSet(const std::vector<Value>& items) override {
    if (kind_ != Kind::kSet) {
      return Status::InvalidArgument("add_to_set needs a set at " + Location() +
                                     ", found a range of a map");
    }
    return base_.AddToSet(items);
  }

  bool reversed() const override { return reverse_; }
  void AppendLocation(std::string* out) const override { base_.AppendLocation(out); }

 private:
  // Moves the near bound of `r` past `last` in the scan direction.
  void Advance(KeyRange* r, const Value& last) const {
    if (reverse_) {
      r->hi = KeyBound{last, false};
    } else {
      r->lo = KeyBound{last, false};
    }
  }

  // Replaces the limit by the bound it implies (the limit-th key in the view's order), so
  // that membership, size and nested scans need no counting.
  Status ResolveLimit() {
    if (!limit_) return Status::Ok();
    const int64_t limit = *limit_;
    limit_.reset();
    if (limit == 0) {
      empty_ = true;
      return Status::Ok();
    }
    int64_t seen = 0;
    KeyRange r = range_;
    while (true) {
      std::vector<ChildEntry> batch;
      const size_t want = static_cast<size_t>(std::min<int64_t>(limit - seen, kScanBatch));
      STRATA_RETURN_IF_ERROR(base_.Scan(r, reverse_, want, &batch));
      seen += static_cast<int64_t>(batch.size());
      if (batch.size() < want) return Status::Ok();  // fewer keys than the limit
      if (seen == limit) {
        KeyBound edge{batch.back().key, true};
        if (reverse_) {
          range_.lo = edge;
        } else {
          range_.hi = edge;
        }
        return Status::Ok();
      }
      Advance(&r, batch.back().key);
    }
  }

  // Calls fn on every child in the (resolved) range, ascending, in batches; fn may remove it.
  template <typename Fn>
  Status ForEachKey(Fn fn) {
    if (empty_) return Status::Ok();
    KeyRange r = range_;
    while (true) {
      std::vector<ChildEntry> batch;
      STRATA_RETURN_IF_ERROR(base_.Scan(r, false, kScanBatch, &batch));
      for (ChildEntry& e : batch) STRATA_RETURN_IF_ERROR(fn(e));
      if (batch.size() < kScanBatch) return Status::Ok();
      r.lo = KeyBound{batch.back().key, false};
    }
  }

  Node& base_;
  Kind kind_;
  KeyRange range_;
  std::optional<int64_t> limit_;
  bool reverse_ = false;
  bool empty_ = false;  // a zero limit
};

// Where a select puts what it finds: every value, or (select_one) the first value and a
// count, so that the common single match needs no vector.
class Output {
 public:
  explicit Output(std::vector<Value>* all) : all_(all) {}
  Output() = default;

  void Add(Value v) {
    ++count_;
    if (all_ != nullptr) {
      all_->push_back(std::move(v));
    } else if (count_ == 1) {
      first_ = std::move(v);
    }
  }
  size_t count() const { return count_; }
  Value& first() { return first_; }

 private:
  std::vector<Value>* all_ = nullptr;
  Value first_;
  size_t count_ = 0;
};

class Walker {
 public:
  Walker(Steps steps, Mode mode, const Terminal* terminal, Output* out)
      : steps_(std::move(steps)), mode_(mode), terminal_(terminal), out_(out) {}

  int64_t applied() const { return applied_; }

  // Navigates from `node` by steps_[i...]. Returns whether `node` itself was removed (a
  // remove terminal reached through steps that stay on the same element), which a walk
  // over a list needs to know to stay on the same index.
  Result<bool> Walk(Node& node, size_t i) {
    if (i == steps_.size()) return Finish(node);
    const Step step = steps_[i];
    switch (step.kind) {
      case NavKind::kKey:
      case NavKind::kMust:
        return WalkKey(node, i);
      case NavKind::kNth:
        return WalkNth(node, i);
      case NavKind::kFirst:
      case NavKind::kLast:
        return WalkEnd(node, i);
      case NavKind::kAll:
      case NavKind::kMapKeys:
      case NavKind::kMapVals:
        return WalkEach(node, i);
      case NavKind::kRange:
        return WalkRange(node, i);
      case NavKind::kSize:
        return WalkSize(node, i);
      case NavKind::kFilter:
        return WalkFilter(node, i);
      case NavKind::kNullTo:
        return WalkNullTo(node, i);
    }
    return Status::Internal("unknown navigator");
  }

 private:
  // Walks a child the walker created, then flushes it.
  Result<bool> Descend(NodePtr child, size_t i) {
    STRATA_ASSIGN_OR_RETURN(bool removed, Walk(*child, i));
    STRATA_RETURN_IF_ERROR(child->Flush());
    return removed;
  }

  Result<bool> WalkKey(Node& node, size_t i) {
    const Step step = steps_[i];
    STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
    if (kind == Kind::kList || kind == Kind::kScalar) {
      return WrongKind(StepName(step), "a map or a set", node);
    }
    STRATA_ASSIGN_OR_RETURN(NodePtr child, node.Child(*step.key));
    if (step.kind == NavKind::kMust) {
      STRATA_ASSIGN_OR_RETURN(bool exists, child->Exists());
      if (!exists) return false;
    }
    STRATA_RETURN_IF_ERROR(Descend(std::move(child), i + 1).status());
    return false;
  }

  Result<bool> WalkNth(Node& node, size_t i) {
    const Step step = steps_[i];
    STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
    if (kind == Kind::kNil) return false;
    if (kind != Kind::kList) return WrongKind(StepName(step), "a list", node);
    STRATA_ASSIGN_OR_RETURN(int64_t size, node.Size());
    if (step.nav->index >= size) return false;
    STRATA_ASSIGN_OR_RETURN(NodePtr child, node.Child(Value(step.nav->index)));
    STRATA_RETURN_IF_ERROR(Descend(std::move(child), i + 1).status());
    return false;
  }

  Result<bool> WalkEnd(Node& node, size_t i) {
    const Step step = steps_[i];
    const bool last = step.kind == NavKind::kLast;
    STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
    NodePtr child;
    switch (kind) {
      case Kind::kNil:
        return false;
      case Kind::kScalar:
        return WrongKind(StepName(step), "a list, map or set", node);
      case Kind::kList: {
        STRATA_ASSIGN_OR_RETURN(int64_t size, node.Size());
        if (size == 0) return false;
        STRATA_ASSIGN_OR_RETURN(child, node.Child(Value(last ? size - 1 : 0)));
        break;
      }
      case Kind::kMap:
      case Kind::kSet: {
        std::vector<ChildEntry> one;
        STRATA_RETURN_IF_ERROR(node.Scan(KeyRange{}, last != node.reversed(), 1, &one));
        if (one.empty()) return false;
        if (kind == Kind::kMap) {
          child = std::make_unique<EntryNode>(node, std::move(one[0].key), std::move(one[0].node));
        } else {
          child = std::move(one[0].node);
        }
        break;
      }
    }
    STRATA_RETURN_IF_ERROR(Descend(std::move(child), i + 1).status());
    return false;
  }

  // all, map_keys, map_vals.
  Result<bool> WalkEach(Node& node, size_t i) {
    const Step step = steps_[i];
    STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
    if (kind == Kind::kNil) return false;
    if (step.kind != NavKind::kAll && kind != Kind::kMap) {
      return WrongKind(StepName(step), "a map", node);
    }
    if (kind == Kind::kScalar) return WrongKind(StepName(step), "a list, map or set", node);
    if (kind == Kind::kList) {
      STRATA_ASSIGN_OR_RETURN(int64_t size, node.Size());
      for (int64_t index = 0; index < size;) {
        STRATA_ASSIGN_OR_RETURN(NodePtr child, node.Child(Value(index)));
        STRATA_ASSIGN_OR_RETURN(bool removed, Descend(std::move(child), i + 1));
        if (removed) {
          --size;  // the next element moved down to `index`
        } else {
          ++index;
        }
      }
      return false;
    }
    const bool reverse = node.reversed();
    KeyRange range;
    while (true) {
      std::vector<ChildEntry> batch;
      STRATA_RETURN_IF_ERROR(node.Scan(range, reverse, kScanBatch, &batch));
      if (batch.empty()) return false;
      Value last = batch.back().key;
      for (ChildEntry& e : batch) {
        NodePtr child;
        if (kind == Kind::kSet || step.kind == NavKind::kMapVals) {
          child = std::move(e.node);
        } else if (step.kind == NavKind::kMapKeys) {
          Value key = e.key;
          child = MakeValueNode<KeySink>(std::move(e.key), node, std::move(key));
        } else {
          child = std::make_unique<EntryNode>(node, std::move(e.key), std::move(e.node));
        }
        STRATA_RETURN_IF_ERROR(Descend(std::move(child), i + 1).status());
      }
      if (batch.size() < kScanBatch) return false;
      if (reverse) {
        range.hi = KeyBound{std::move(last), false};
      } else {
        range.lo = KeyBound{std::move(last), false};
      }
    }
  }

  Result<bool> WalkRange(Node& node, size_t i) {
    STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
    if (kind == Kind::kNil) return false;
    if (kind != Kind::kMap && kind != Kind::kSet) {
      return WrongKind(StepName(steps_[i]), "a map or a set", node);
    }
    RangeView view(node, kind, steps_[i].nav->range);
    STRATA_RETURN_IF_ERROR(Walk(view, i + 1).status());
    STRATA_RETURN_IF_ERROR(view.Flush());
    return false;
  }

  Result<bool> WalkSize(Node& node, size_t i) {
    STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
    if (kind == Kind::kScalar) return WrongKind("size", "a list, map or set", node);
    STRATA_ASSIGN_OR_RETURN(int64_t size, node.Size());
    STRATA_RETURN_IF_ERROR(Descend(MakeConstNode(Value(size), "size", node), i + 1).status());
    return false;
  }

  Result<bool> WalkFilter(Node& node, size_t i) {
    const Navigator& nav = *steps_[i].nav;
    std::vector<Value> values;
    if (nav.subpath) {
      Output out(&values);
      Walker sub(Steps(*nav.subpath), Mode::kSelect, nullptr, &out);
      STRATA_RETURN_IF_ERROR(sub.Walk(node, 0).status());
    } else {
      STRATA_ASSIGN_OR_RETURN(Value v, node.Read());
      values.push_back(std::move(v));
    }
    for (const Value& v : values) {
      if (Holds(nav.op, v, nav.arg)) return Walk(node, i + 1);
    }
    return false;
  }

  Result<bool> WalkNullTo(Node& node, size_t i) {
    STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
    if (kind != Kind::kNil) return Walk(node, i + 1);
    const Value& default_value = steps_[i].nav->arg;
    if (mode_ == Mode::kSelect) {
      return Descend(MakeConstNode(default_value, "null_to", node), i + 1);
    }
    // The default lives in memory until something is written through it; then the result
    // replaces the nil (or a remove removes it).
    class NodeSink final : public Sink {
     public:
      explicit NodeSink(Node& target) : target_(target) {}
      Result<bool> Load(Value*) override { return Status::Internal("null_to is preloaded"); }
      Status Store(const Value& v) override { return target_.Write(v); }
      Status Erase() override { return target_.Remove(); }
      void AppendLocation(std::string* out) const override { target_.AppendLocation(out); }

     private:
      Node& target_;
    };
    return Descend(MakeValueNode<NodeSink>(default_value, node), i + 1);
  }

  Result<bool> Finish(Node& node) {
    if (mode_ == Mode::kSelect) {
      STRATA_ASSIGN_OR_RETURN(Value v, node.Take());
      out_->Add(std::move(v));
      return false;
    }
    ++applied_;
    const Terminal& t = *terminal_;
    switch (t.kind) {
      case Terminal::Kind::kSet:
        STRATA_RETURN_IF_ERROR(node.Write(t.arg));
        return false;
      case Terminal::Kind::kAdd: {
        STRATA_ASSIGN_OR_RETURN(Value cur, node.Read());
        STRATA_ASSIGN_OR_RETURN(Value sum, AddNumbers(cur, t.arg, node));
        STRATA_RETURN_IF_ERROR(node.Write(std::move(sum)));
        return false;
      }
      case Terminal::Kind::kAppend: {
        STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
        if (kind != Kind::kNil && kind != Kind::kList) return WrongKind("append", "a list", node);
        STRATA_RETURN_IF_ERROR(node.Append(t.items));
        return false;
      }
      case Terminal::Kind::kAddToSet: {
        STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
        if (kind != Kind::kNil && kind != Kind::kSet) return WrongKind("add_to_set", "a set", node);
        STRATA_RETURN_IF_ERROR(node.AddToSet(t.items));
        return false;
      }
      case Terminal::Kind::kSetIfAbsent: {
        STRATA_ASSIGN_OR_RETURN(Kind kind, node.GetKind());
        if (kind == Kind::kNil) STRATA_RETURN_IF_ERROR(node.Write(t.arg));
        return false;
      }
      case Terminal::Kind::kRemove:
        STRATA_RETURN_IF_ERROR(node.Remove());
        return true;
    }
    return Status::Internal("unknown terminal");
  }

  Steps steps_;
  Mode mode_;
  const Terminal* terminal_;
  Output* out_;
  int64_t applied_ = 0;
};

}  // namespace

namespace {
Status RunSelect(Node& root, const Path& path, Output* out) {
  STRATA_RETURN_IF_ERROR(path.Validate());
  if (path.terminal()) {
    return Status::InvalidArgument("select takes a path without a terminal, got " +
                                   path.ToString());
  }
  Walker walker(Steps(path), Mode::kSelect, nullptr, out);
  return walker.Walk(root, 0).status();
}

Status CountError(size_t count, const Path& path) {
  if (count == 0) return Status::NotFound("select_one: " + path.ToString() + " matched no value");
  return Status::InvalidArgument("select_one: " + path.ToString() + " matched " +
                                 std::to_string(count) + " values, expected exactly 1");
}
}  // namespace

Result<std::vector<Value>> SelectFrom(Node& root, const Path& path) {
  std::vector<Value> values;
  Output out(&values);
  STRATA_RETURN_IF_ERROR(RunSelect(root, path, &out));
  return values;
}

Result<Value> SelectOneFrom(Node& root, const Path& path) {
  Output out;
  STRATA_RETURN_IF_ERROR(RunSelect(root, path, &out));
  if (out.count() != 1) return CountError(out.count(), path);
  return std::move(out.first());
}

Result<int64_t> TransformFrom(Node& root, const Path& path) {
  STRATA_RETURN_IF_ERROR(path.Validate());
  if (!path.terminal()) {
    return Status::InvalidArgument(
        "a transform path must end in a terminal (set, add, append, add_to_set, "
        "set_if_absent, remove), got " +
        path.ToString());
  }
  for (size_t i = 0; i < path.navigators().size(); ++i) {
    if (path.navigators()[i].kind == NavKind::kSize) {
      return Status::InvalidArgument("path step " + std::to_string(i) +
                                     ": size is a view, a transform cannot navigate through it");
    }
  }
  Walker walker(Steps(path), Mode::kTransform, &*path.terminal(), nullptr);
  STRATA_RETURN_IF_ERROR(walker.Walk(root, 0).status());
  return walker.applied();
}

}  // namespace nav

namespace {
constexpr char kValueRoot[] = "$";
}

Result<std::vector<Value>> Select(const Value& root, const Path& path) {
  // The node is read-only, so the const_cast never leads to a write.
  nav::NodePtr node =
      nav::MakeBorrowedValueNode(const_cast<Value*>(&root), "a selected value", kValueRoot);
  return nav::SelectFrom(*node, path);
}

Result<Value> SelectOne(const Value& root, const Path& path) {
  nav::NodePtr node =
      nav::MakeBorrowedValueNode(const_cast<Value*>(&root), "a selected value", kValueRoot);
  return nav::SelectOneFrom(*node, path);
}

Result<int64_t> Transform(Value* root, const Path& path) {
  nav::NodePtr node = nav::MakeBorrowedValueNode(root, "", kValueRoot);
  return nav::TransformFrom(*node, path);
}

}  // namespace strata
