// Stored nodes. The layout they implement is pstate/layout.h and docs/storage.md.
#include "pstate/stored_node.h"

#include <algorithm>
#include <new>

#include "path/value_node.h"
#include "pstate/layout.h"
#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata::pstate_internal {

namespace L = pstate_layout;
using nav::ChildEntry;
using nav::KeyRange;
using nav::Kind;
using nav::Node;
using nav::NodePtr;
using nav::Sink;
using SchemaKind = Schema::Kind;

bool StoredByItself(const Schema& schema) {
  if (schema.subindexed()) return true;
  return schema.kind() == SchemaKind::kRecord && schema.has_subindexed();
}

Result<Value> Migrate(const MigrationDef& migration, const Schema& value_schema, const Value& old,
                      const std::function<std::string()>& where) {
  Result<Value> migrated = migration.fn(old);
  if (!migrated.ok()) {
    return Status(migrated.status().code(), "migration \"" + migration.id + "\" of " + where() +
                                                " failed: " + migrated.status().message());
  }
  Status st = ValidateValueAt(value_schema, *migrated, where);
  if (!st.ok()) {
    return Status::SchemaViolation("migration \"" + migration.id + "\" of " + where() +
                                   " returned a value the schema refuses: " + st.message());
  }
  return migrated;
}

namespace {

// Keys removed per scan when deleting a range, bounding memory for large subtrees.
constexpr size_t kRemoveBatch = 1024;

std::string EncodeBlob(const Value& v) {
  std::string out;
  AppendValue(v, &out);
  return out;
}

// `where()` names the value for the error message; it is only called on error.
template <typename Where>
Result<Value> DecodeBlob(std::string_view bytes, Where where) {
  Result<Value> v = DecodeValue(bytes);
  if (!v.ok()) {
    return Status::Corruption("stored value at " + std::string(where()) +
                              " does not decode: " + v.status().message());
  }
  return v;
}

// Reads the blob record `key` and returns whether it exists; when it does, decodes it into
// *out. `*exists` (unless null) is set to whether the record exists as soon as that is read,
// so it holds even when decoding then fails.
template <typename Where>
Result<bool> LoadBlob(StoreContext* ctx, std::string_view key, bool* exists, Value* out,
                      Where where) {
  std::string bytes;
  STRATA_ASSIGN_OR_RETURN(bool found, ctx->session->Get(ctx->table, key, &bytes));
  if (exists != nullptr) *exists = found;
  if (found) {
    STRATA_ASSIGN_OR_RETURN(*out, DecodeBlob(bytes, where));
  }
  return found;
}

// The location of a sink's value, for error messages.
std::string LocationOf(const Sink& sink) {
  std::string out;
  sink.AppendLocation(&out);
  return out;
}

Status RemoveRange(StoreContext* ctx, std::string_view begin, std::string_view end) {
  while (true) {
    std::vector<std::string> keys;
    STRATA_RETURN_IF_ERROR(ctx->session->Scan(ctx->table, begin, end, false,
                                              [&](std::string_view key, std::string_view) {
                                                keys.emplace_back(key);
                                                return keys.size() < kRemoveBatch;
                                              }));
    for (const std::string& key : keys) {
      STRATA_RETURN_IF_ERROR(ctx->session->Remove(ctx->table, key).status());
    }
    if (keys.size() < kRemoveBatch) return Status::Ok();
  }
}

// A stored value that holds other stored values: a subindexed container or a record with
// subindexed fields. Its children call back to create it when they are created, and to
// keep its size.
class StoredParent {
 public:
  virtual ~StoredParent() = default;
  virtual Status EnsureExists() = 0;
  // Containers count their elements; records ignore this.
  virtual Status AdjustSize(int64_t delta) = 0;
  // Checks the key of a child about to be created against the schema.
  virtual Status CheckNewChild(const Value& key) const = 0;
  virtual void AppendChildLocation(const Value& key, std::string* out) const = 0;
};

// Shared by ContainerNode and RecordNode: where the value is and whether it exists.
class StoredNode : public Node, public StoredParent {
 public:
  StoredNode(StoreContext* ctx, std::string prefix, const Schema& schema, StoredParent* parent,
             Value key, std::optional<bool> exists)
      : ctx_(ctx),
        prefix_(std::move(prefix)),
        schema_(schema),
        parent_(parent),
        key_(std::move(key)),
        exists_(exists) {}

  void AppendLocation(std::string* out) const override {
    if (parent_ == nullptr) {
      *out += ctx_->root_location;
    } else {
      parent_->AppendChildLocation(key_, out);
    }
  }

 protected:
  bool is_root() const { return parent_ == nullptr; }
  // The record that says this value exists (and holds a record's blob).
  std::string_view entry_key() const {
    return is_root() ? L::kRootValueKey : std::string_view(prefix_);
  }

  Result<bool> EntryExists() {
    if (!exists_) {
      std::string ignored;
      STRATA_ASSIGN_OR_RETURN(exists_, ctx_->session->Get(ctx_->table, entry_key(), &ignored));
    }
    return *exists_;
  }

  // Creates the entry record (with `bytes`) and, first, the parents.
  Status CreateEntry(std::string_view bytes) {
    if (!is_root()) {
      STRATA_RETURN_IF_ERROR(parent_->CheckNewChild(key_));
      STRATA_RETURN_IF_ERROR(parent_->EnsureExists());
    }
    STRATA_RETURN_IF_ERROR(ctx_->session->Put(ctx_->table, entry_key(), bytes));
    if (!is_root()) STRATA_RETURN_IF_ERROR(parent_->AdjustSize(+1));
    exists_ = true;
    return Status::Ok();
  }

  StoreContext* ctx_;
  std::string prefix_;
  const Schema& schema_;
  StoredParent* parent_;  // nullptr for the root
  Value key_;             // key or field name in the parent
  std::optional<bool> exists_;
};

NodePtr MakeStoredChild(StoreContext* ctx, std::string prefix, const Schema& schema,
                        StoredParent* parent, Value key, std::optional<bool> exists);

// A subindexed map, set or list (or the root map): one record per element.
class ContainerNode final : public StoredNode {
 public:
  using StoredNode::StoredNode;

  Result<Kind> GetKind() override {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return Kind::kNil;
    switch (schema_.kind()) {
      case SchemaKind::kMap:
        return Kind::kMap;
      case SchemaKind::kSet:
        return Kind::kSet;
      default:
        return Kind::kList;
    }
  }

  // A size record exists only while its container does (removing a container deletes its
  // whole subtree), so reading it answers both "does it exist" and "how many elements" in
  // one lookup; the entry record is read only when there is no size record (a container
  // that never counted an element).
  Result<bool> Exists() override {
    if (is_root()) return true;
    if (!exists_) {
      STRATA_ASSIGN_OR_RETURN(bool counted, ReadSizeRecord());
      if (!counted) return EntryExists();
      exists_ = true;
    }
    return *exists_;
  }

  Result<Value> Read() override {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return Value();
    if (schema_.kind() == SchemaKind::kList) {
      Value::List items;
      Status error;
      STRATA_RETURN_IF_ERROR(ctx_->session->Scan(
          ctx_->table, L::ElementsBegin(prefix_), L::SubtreeEnd(prefix_), false,
          [&](std::string_view key, std::string_view value) {
            Result<Value> v = DecodeBlob(
                value, [&] { return Location() + " element " + ToJson(Value::BytesOf(key)); });
            if (!v.ok()) {
              error = v.status();
              return false;
            }
            items.push_back(std::move(v).value());
            return true;
          }));
      STRATA_RETURN_IF_ERROR(error);
      return Value(std::move(items));
    }
    Value::Map entries;
    Value::Set members;
    KeyRange range;
    while (true) {
      std::vector<ChildEntry> batch;
      STRATA_RETURN_IF_ERROR(Scan(range, false, 1024, &batch));
      for (ChildEntry& e : batch) {
        if (schema_.kind() == SchemaKind::kMap) {
          STRATA_ASSIGN_OR_RETURN(Value v, e.node->Read());
          entries.emplace_back(e.key, std::move(v));
        } else {
          members.push_back(e.key);
        }
      }
      if (batch.size() < 1024) break;
      range.lo = nav::KeyBound{batch.back().key, false};
    }
    return schema_.kind() == SchemaKind::kMap ? Value::MapOf(std::move(entries))
                                              : Value::SetOf(std::move(members));
  }

  Result<int64_t> Size() override {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return int64_t{0};
    if (!size_) STRATA_RETURN_IF_ERROR(ReadSizeRecord().status());
    return *size_;
  }

  Result<NodePtr> Child(const Value& key) override {
    switch (schema_.kind()) {
      case SchemaKind::kMap:
        return ElementChild(key, L::ElementKey(prefix_, key), std::nullopt, nullptr);
      case SchemaKind::kSet:
        return MemberChild(key, std::nullopt);
      default:
        if (!key.is_int()) {
          return Status::InvalidArgument("list index must be an int, got " + key.ToString() +
                                         " at " + Location());
        }
        return ListChild(key.as_int());
    }
  }

  Status Scan(const KeyRange& range, bool reverse, size_t max,
              std::vector<ChildEntry>* out) override;

  Status Write(Value v) override {
    STRATA_RETURN_IF_ERROR(ValidateValueAt(schema_, v, [this] { return Location(); }));
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (exists) {
      STRATA_RETURN_IF_ERROR(ClearElements());
    } else {
      STRATA_RETURN_IF_ERROR(EnsureExists());
    }
    // The container is empty now, so elements are written without looking them up.
    switch (schema_.kind()) {
      case SchemaKind::kMap: {
        const bool stored = StoredByItself(schema_.value());
        for (auto& [key, value] : v.as_map()) {
          std::string element = L::ElementKey(prefix_, key);
          if (stored) {
            NodePtr child =
                MakeStoredChild(ctx_, std::move(element), schema_.value(), this, key, false);
            STRATA_RETURN_IF_ERROR(child->Write(value));
            STRATA_RETURN_IF_ERROR(child->Flush());
          } else {
            STRATA_RETURN_IF_ERROR(ctx_->session->Put(ctx_->table, element, EncodeBlob(value)));
            STRATA_RETURN_IF_ERROR(AdjustSize(+1));
          }
        }
        return Status::Ok();
      }
      case SchemaKind::kSet:
        for (const Value& member : v.as_set()) {
          STRATA_RETURN_IF_ERROR(
              ctx_->session->Put(ctx_->table, L::ElementKey(prefix_, member), ""));
        }
        return AdjustSize(static_cast<int64_t>(v.size()));
      default:
        return PutListItems(0, v.as_list());
    }
  }

  Status Remove() override {
    if (is_root()) return ClearElements();
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return Status::Ok();
    STRATA_RETURN_IF_ERROR(RemoveRange(ctx_, prefix_, L::SubtreeEnd(prefix_)));
    exists_ = false;
    size_ = 0;
    size_dirty_ = false;
    return parent_->AdjustSize(-1);
  }

  Status Append(const std::vector<Value>& items) override {
    if (schema_.kind() != SchemaKind::kList) return WrongOp("append");
    STRATA_ASSIGN_OR_RETURN(int64_t size, Size());
    for (size_t i = 0; i < items.size(); ++i) {
      STRATA_RETURN_IF_ERROR(ValidateValueAt(schema_.value(), items[i], [&] {
        return Location() + "[" + std::to_string(size + static_cast<int64_t>(i)) + "]";
      }));
    }
    STRATA_RETURN_IF_ERROR(EnsureExists());
    return PutListItems(size, items);
  }

  Status AddToSet(const std::vector<Value>& items) override {
    if (schema_.kind() != SchemaKind::kSet) return WrongOp("add_to_set");
    for (const Value& item : items) {
      STRATA_RETURN_IF_ERROR(ValidateValueAt(schema_.value(), item, [&] {
        std::string where = Location();
        nav::AppendKeyLocation(item, &where);
        return where;
      }));
    }
    STRATA_RETURN_IF_ERROR(EnsureExists());
    int64_t added = 0;
    std::string ignored;
    for (const Value& item : items) {
      std::string key = L::ElementKey(prefix_, item);
      STRATA_ASSIGN_OR_RETURN(bool present, ctx_->session->Get(ctx_->table, key, &ignored));
      if (present) continue;
      STRATA_RETURN_IF_ERROR(ctx_->session->Put(ctx_->table, key, ""));
      ++added;
    }
    return AdjustSize(added);
  }

  Status Flush() override {
    if (!size_dirty_) return Status::Ok();
    size_dirty_ = false;
    return ctx_->session->Put(ctx_->table, L::SizeKey(prefix_),
                              L::EncodeSize(static_cast<uint64_t>(*size_)));
  }

  Status EnsureExists() override {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (exists) return Status::Ok();
    STRATA_RETURN_IF_ERROR(CreateEntry(""));
    size_ = 0;
    return Status::Ok();
  }

  // The size record is written once, by Flush: every element change of one walk goes
  // through this node object, so its count is the current one.
  Status AdjustSize(int64_t delta) override {
    if (delta == 0) return Status::Ok();
    STRATA_ASSIGN_OR_RETURN(int64_t size, Size());
    size_ = size + delta;
    size_dirty_ = true;
    return Status::Ok();
  }

  Status CheckNewChild(const Value& key) const override {
    if (schema_.kind() != SchemaKind::kMap) return Status::Ok();
    return ValidateValueAt(schema_.key(), key, [&] {
      std::string where;
      AppendChildLocation(key, &where);
      return where;
    });
  }

  void AppendChildLocation(const Value& key, std::string* out) const override {
    AppendLocation(out);
    nav::AppendKeyLocation(key, out);
  }

  // Deletes element `index` of this list and moves the later ones down.
  Status RemoveListElement(int64_t index);
  const std::string& prefix() const { return prefix_; }

 private:
  // Reads the size record into size_ (0 when there is none) and returns whether it exists.
  Result<bool> ReadSizeRecord() {
    std::string bytes;
    STRATA_ASSIGN_OR_RETURN(bool found,
                            ctx_->session->Get(ctx_->table, L::SizeKey(prefix_), &bytes));
    uint64_t n = 0;
    if (found && !L::DecodeSize(bytes, &n)) {
      return Status::Corruption("size record of " + Location() + " has " +
                                std::to_string(bytes.size()) + " bytes, expected 8");
    }
    size_ = static_cast<int64_t>(n);
    return found;
  }

  Status WrongOp(std::string_view op) const {
    return Status::InvalidArgument(std::string(op) + " is not possible on the " +
                                   std::string(SchemaKindName(schema_.kind())) + " at " +
                                   Location());
  }

  Status ClearElements() {
    STRATA_RETURN_IF_ERROR(RemoveRange(ctx_, L::ElementsBegin(prefix_), L::SubtreeEnd(prefix_)));
    STRATA_ASSIGN_OR_RETURN(int64_t size, Size());
    return AdjustSize(-size);
  }

  Status PutListItems(int64_t first_index, const std::vector<Value>& items) {
    for (size_t i = 0; i < items.size(); ++i) {
      STRATA_RETURN_IF_ERROR(ctx_->session->Put(
          ctx_->table, L::ElementKey(prefix_, Value(first_index + static_cast<int64_t>(i))),
          EncodeBlob(items[i])));
    }
    return AdjustSize(static_cast<int64_t>(items.size()));
  }

  Result<NodePtr> ElementChild(const Value& key, std::string record_key, std::optional<bool> exists,
                               const std::string_view* value_bytes);
  Result<NodePtr> MemberChild(const Value& member, std::optional<bool> exists);
  Result<NodePtr> ListChild(int64_t index);

  std::optional<int64_t> size_;
  bool size_dirty_ = false;
};

// A blob element of a subindexed or root map: the record P ‖ EncodeKey(k).
class ElementSink final : public Sink {
 public:
  // `migrate`: the map is the root and ctx->migration applies to its values.
  ElementSink(StoreContext* ctx, ContainerNode* map, const Schema& map_schema,
              std::string record_key, Value key, std::optional<bool> exists, bool migrate)
      : ctx_(ctx),
        map_(map),
        schema_(map_schema),
        record_key_(std::move(record_key)),
        key_(std::move(key)),
        exists_(exists),
        migrate_(migrate) {}

  Result<bool> Load(Value* out) override {
    bool found = false;
    STRATA_RETURN_IF_ERROR(
        LoadBlob(ctx_, record_key_, &found, out, [this] { return LocationOf(*this); }).status());
    exists_ = found;
    if (found && migrate_) {
      STRATA_ASSIGN_OR_RETURN(*out, Migrate(*ctx_->migration, schema_.value(), *out,
                                            [this] { return LocationOf(*this); }));
    }
    return found;
  }

  // Not for a root map under migration, whose old values Load migrates.
  bool StoresWithoutLoad() const override { return !migrate_; }

  Status Store(const Value& v) override {
    const bool maybe_new = !exists_.value_or(false);
    if (maybe_new) STRATA_RETURN_IF_ERROR(map_->CheckNewChild(key_));
    STRATA_RETURN_IF_ERROR(
        ValidateValueAt(schema_.value(), v, [this] { return LocationOf(*this); }));
    const std::string bytes = EncodeBlob(v);
    if (maybe_new) STRATA_RETURN_IF_ERROR(map_->EnsureExists());
    bool added = maybe_new;
    if (exists_) {
      STRATA_RETURN_IF_ERROR(ctx_->session->Put(ctx_->table, record_key_, bytes));
    } else {
      // Never loaded: one insert tells whether the element is new (the usual case for a
      // write of a whole element); an element that was there is overwritten.
      STRATA_ASSIGN_OR_RETURN(added, ctx_->session->Insert(ctx_->table, record_key_, bytes));
      if (!added) STRATA_RETURN_IF_ERROR(ctx_->session->Put(ctx_->table, record_key_, bytes));
    }
    if (added) STRATA_RETURN_IF_ERROR(map_->AdjustSize(+1));
    exists_ = true;
    return Status::Ok();
  }

  Status Erase() override {
    if (exists_.has_value() && !*exists_) return Status::Ok();
    STRATA_ASSIGN_OR_RETURN(bool removed, ctx_->session->Remove(ctx_->table, record_key_));
    exists_ = false;
    return removed ? map_->AdjustSize(-1) : Status::Ok();
  }

  void AppendLocation(std::string* out) const override { map_->AppendChildLocation(key_, out); }

 private:
  StoreContext* ctx_;
  ContainerNode* map_;
  const Schema& schema_;
  std::string record_key_;
  Value key_;
  std::optional<bool> exists_;  // unknown until Load or a write
  bool migrate_;
};

// A member of a subindexed set: the record P ‖ EncodeKey(member), with an empty value.
class MemberSink final : public Sink {
 public:
  MemberSink(StoreContext* ctx, ContainerNode* set, const Schema& set_schema,
             std::string record_key, Value member, std::optional<bool> exists)
      : ctx_(ctx),
        set_(set),
        schema_(set_schema),
        record_key_(std::move(record_key)),
        member_(std::move(member)),
        exists_(exists) {}

  Result<bool> Load(Value* out) override {
    std::string ignored;
    STRATA_ASSIGN_OR_RETURN(bool found, ctx_->session->Get(ctx_->table, record_key_, &ignored));
    exists_ = found;
    if (found) *out = member_;
    return found;
  }

  Status Store(const Value& v) override {
    if (v != member_) {
      return Status::InvalidArgument("set members cannot be changed in place at " +
                                     LocationOf(*this) + ": " + member_.ToString() +
                                     " would become " + v.ToString() +
                                     " (remove it and add the new member)");
    }
    if (exists_.value_or(false)) return Status::Ok();
    STRATA_RETURN_IF_ERROR(
        ValidateValueAt(schema_.value(), member_, [this] { return LocationOf(*this); }));
    STRATA_RETURN_IF_ERROR(set_->EnsureExists());
    STRATA_RETURN_IF_ERROR(ctx_->session->Put(ctx_->table, record_key_, ""));
    exists_ = true;
    return set_->AdjustSize(+1);
  }

  Status Erase() override {
    if (!exists_.value_or(false)) return Status::Ok();
    STRATA_RETURN_IF_ERROR(ctx_->session->Remove(ctx_->table, record_key_).status());
    exists_ = false;
    return set_->AdjustSize(-1);
  }

  void AppendLocation(std::string* out) const override { set_->AppendChildLocation(member_, out); }

 private:
  StoreContext* ctx_;
  ContainerNode* set_;
  const Schema& schema_;
  std::string record_key_;
  Value member_;
  std::optional<bool> exists_;
};

// An element of a subindexed list: the record P ‖ EncodeKey(index). Elements exist for
// indexes 0..size-1 only; removing one moves the later ones down.
class ListElementSink final : public Sink {
 public:
  ListElementSink(StoreContext* ctx, ContainerNode* list, const Schema& list_schema, int64_t index)
      : ctx_(ctx),
        list_(list),
        schema_(list_schema),
        index_(index),
        record_key_(L::ElementKey(list->prefix(), Value(index))) {}

  Result<bool> Load(Value* out) override {
    return LoadBlob(ctx_, record_key_, &exists_, out, [this] { return LocationOf(*this); });
  }

  Status Store(const Value& v) override {
    if (!exists_) {
      STRATA_ASSIGN_OR_RETURN(int64_t size, list_->Size());
      return Status::InvalidArgument("list index " + std::to_string(index_) +
                                     " is out of range at " + list_->Location() + " (size " +
                                     std::to_string(size) + ")");
    }
    STRATA_RETURN_IF_ERROR(
        ValidateValueAt(schema_.value(), v, [this] { return LocationOf(*this); }));
    return ctx_->session->Put(ctx_->table, record_key_, EncodeBlob(v));
  }

  Status Erase() override {
    if (!exists_) return Status::Ok();
    exists_ = false;
    return list_->RemoveListElement(index_);
  }

  void AppendLocation(std::string* out) const override {
    list_->AppendChildLocation(Value(index_), out);
  }

 private:
  StoreContext* ctx_;
  ContainerNode* list_;
  const Schema& schema_;
  int64_t index_;
  std::string record_key_;
  bool exists_ = false;
};

Result<NodePtr> ContainerNode::ElementChild(const Value& key, std::string record_key,
                                            std::optional<bool> exists,
                                            const std::string_view* value_bytes) {
  const Schema& vs = schema_.value();
  if (StoredByItself(vs))
    return MakeStoredChild(ctx_, std::move(record_key), vs, this, key, exists);
  const bool migrate = is_root() && ctx_->migration != nullptr;
  std::optional<Value> preloaded;
  if (value_bytes != nullptr) {
    auto where = [&] {
      std::string out = Location();
      nav::AppendKeyLocation(key, &out);
      return out;
    };
    STRATA_ASSIGN_OR_RETURN(preloaded, DecodeBlob(*value_bytes, where));
    if (migrate) {
      STRATA_ASSIGN_OR_RETURN(preloaded, Migrate(*ctx_->migration, vs, *preloaded, where));
    }
  }
  return nav::MakeValueNode<ElementSink>(std::move(preloaded), ctx_, this, schema_,
                                         std::move(record_key), key, exists, migrate);
}

Result<NodePtr> ContainerNode::MemberChild(const Value& member, std::optional<bool> exists) {
  std::optional<Value> preloaded;
  if (exists.value_or(false)) preloaded = member;
  return nav::MakeValueNode<MemberSink>(std::move(preloaded), ctx_, this, schema_,
                                        L::ElementKey(prefix_, member), member, exists);
}

Result<NodePtr> ContainerNode::ListChild(int64_t index) {
  return nav::MakeValueNode<ListElementSink>(std::nullopt, ctx_, this, schema_, index);
}

Status ContainerNode::Scan(const KeyRange& range, bool reverse, size_t max,
                           std::vector<ChildEntry>* out) {
  STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
  if (!exists || max == 0) return Status::Ok();
  if (schema_.kind() == SchemaKind::kList) {
    return Status::Internal("Scan on the list at " + Location() + ": lists are walked by index");
  }
  std::string begin;
  if (range.lo) {
    begin = L::ElementKey(prefix_, range.lo->key);
    if (!range.lo->inclusive) begin = PrefixEnd(begin);
  } else {
    begin = L::ElementsBegin(prefix_);
  }
  std::string end;
  if (range.hi) {
    end = L::ElementKey(prefix_, range.hi->key);
    if (range.hi->inclusive) end = PrefixEnd(end);
  } else {
    end = L::SubtreeEnd(prefix_);
  }
  // With values stored by themselves, each element is followed by its own subtree of
  // records: the scan jumps over it (a new search) instead of reading it.
  const bool nested = schema_.kind() == SchemaKind::kMap && StoredByItself(schema_.value());
  size_t taken = 0;
  bool again = true;
  while (again && taken < max) {
    again = false;
    std::string next_begin = begin;
    std::string next_end = end;
    Status error;
    STRATA_RETURN_IF_ERROR(ctx_->session->Scan(
        ctx_->table, begin, end, reverse, [&](std::string_view key, std::string_view value) {
          std::string_view rest = key.substr(prefix_.size());
          Result<Value> k = DecodeKeyPrefix(&rest);
          if (!k.ok()) {
            error = Status::Corruption("element key under " + Location() +
                                       " does not decode: " + k.status().message());
            return false;
          }
          const std::string_view element = key.substr(0, key.size() - rest.size());
          if (!rest.empty()) {  // inside the subtree of element k
            if (reverse) {
              next_end = std::string(element) + '\0';
            } else {
              next_begin = PrefixEnd(element);
            }
            again = true;
            return false;
          }
          Result<NodePtr> child = schema_.kind() == SchemaKind::kSet
                                      ? MemberChild(*k, true)
                                      : ElementChild(*k, std::string(element), true, &value);
          if (!child.ok()) {
            error = child.status();
            return false;
          }
          out->push_back(ChildEntry{std::move(k).value(), std::move(child).value()});
          if (++taken >= max) return false;
          if (nested && !reverse) {
            next_begin = PrefixEnd(element);
            again = true;
            return false;
          }
          return true;
        }));
    STRATA_RETURN_IF_ERROR(error);
    begin = std::move(next_begin);
    end = std::move(next_end);
  }
  return Status::Ok();
}

Status ContainerNode::RemoveListElement(int64_t index) {
  STRATA_ASSIGN_OR_RETURN(int64_t size, Size());
  // Move elements index+1.. down by one, a batch at a time.
  int64_t next = index + 1;
  while (next < size) {
    std::vector<std::string> values;
    STRATA_RETURN_IF_ERROR(ctx_->session->Scan(ctx_->table, L::ElementKey(prefix_, Value(next)),
                                               L::SubtreeEnd(prefix_), false,
                                               [&](std::string_view, std::string_view value) {
                                                 values.emplace_back(value);
                                                 return values.size() < kRemoveBatch;
                                               }));
    if (values.empty()) break;
    for (const std::string& v : values) {
      STRATA_RETURN_IF_ERROR(
          ctx_->session->Put(ctx_->table, L::ElementKey(prefix_, Value(next - 1)), v));
      ++next;
    }
  }
  STRATA_RETURN_IF_ERROR(
      ctx_->session->Remove(ctx_->table, L::ElementKey(prefix_, Value(size - 1))).status());
  return AdjustSize(-1);
}

// A record with subindexed fields. Its plain fields are one blob in its entry record (a
// ValueNode over RecordBlobSink); each subindexed field is a stored child under
// P ‖ EncodeKey(field name).
class RecordNode final : public StoredNode {
 public:
  RecordNode(StoreContext* ctx, std::string prefix, const Schema& schema, StoredParent* parent,
             Value key, std::optional<bool> exists);

  Result<Kind> GetKind() override {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    return exists ? Kind::kMap : Kind::kNil;
  }

  Result<bool> Exists() override { return EntryExists(); }

  Result<Value> Read() override {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return Value();
    STRATA_ASSIGN_OR_RETURN(Value record, blob_->Read());
    if (!record.is_map()) record = Value::EmptyMap();
    for (const Schema::Field& f : schema_.fields()) {
      if (!StoredByItself(f.schema)) continue;
      NodePtr field = FieldNode(f);
      STRATA_ASSIGN_OR_RETURN(bool present, field->Exists());
      if (!present) continue;
      STRATA_ASSIGN_OR_RETURN(Value v, field->Read());
      record.Insert(f.name, std::move(v));
    }
    return record;
  }

  Result<int64_t> Size() override {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> names, PresentFields());
    return static_cast<int64_t>(names.size());
  }

  Result<NodePtr> Child(const Value& key) override {
    const Schema::Field* f = FindField(key);
    if (f == nullptr) return nav::MakeValueNode<UnknownFieldSink>(std::nullopt, this, key);
    if (StoredByItself(f->schema)) return FieldNode(*f);
    return blob_->Child(key);
  }

  Status Scan(const KeyRange& range, bool reverse, size_t max,
              std::vector<ChildEntry>* out) override {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> names, PresentFields());
    if (reverse) std::reverse(names.begin(), names.end());
    for (const std::string& name : names) {
      if (out->size() >= max) break;
      Value key(name);
      if (!range.Contains(key)) continue;
      STRATA_ASSIGN_OR_RETURN(NodePtr child, Child(key));
      out->push_back(ChildEntry{std::move(key), std::move(child)});
    }
    return Status::Ok();
  }

  Status Write(Value v) override {
    STRATA_RETURN_IF_ERROR(ValidateValueAt(schema_, v, [this] { return Location(); }));
    Value blob = Value::EmptyMap();
    for (const auto& [name, value] : v.as_map()) {
      if (!StoredByItself(*schema_.field(name.as_string()))) blob.Insert(name, value);
    }
    STRATA_RETURN_IF_ERROR(blob_->Write(std::move(blob)));
    for (const Schema::Field& f : schema_.fields()) {
      if (!StoredByItself(f.schema)) continue;
      NodePtr field = FieldNode(f);
      const Value* value = v.Find(f.name);
      STRATA_RETURN_IF_ERROR(value != nullptr ? field->Write(*value) : field->Remove());
      STRATA_RETURN_IF_ERROR(field->Flush());
    }
    return Status::Ok();
  }

  Status Remove() override {
    STRATA_RETURN_IF_ERROR(blob_->Remove());
    return blob_->Flush();
  }

  Status Append(const std::vector<Value>&) override {
    return Status::InvalidArgument("append needs a list at " + Location() + ", found a record");
  }
  Status AddToSet(const std::vector<Value>&) override {
    return Status::InvalidArgument("add_to_set needs a set at " + Location() + ", found a record");
  }

  Status Flush() override { return blob_->Flush(); }

  Status EnsureExists() override {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (exists) return Status::Ok();
    return CreateEntry(EncodeBlob(Value::EmptyMap()));
  }

  Status AdjustSize(int64_t) override { return Status::Ok(); }
  // Fields are created through Child, which only routes known names here.
  Status CheckNewChild(const Value&) const override { return Status::Ok(); }

  void AppendChildLocation(const Value& key, std::string* out) const override {
    AppendLocation(out);
    if (key.is_string()) {
      *out += '.';
      *out += key.as_string();
    } else {
      nav::AppendKeyLocation(key, out);
    }
  }

  // For RecordBlobSink.
  Result<bool> BlobExists() { return EntryExists(); }
  std::string_view blob_key() const { return entry_key(); }
  Status CreateWithBlob(std::string_view bytes) { return CreateEntry(bytes); }
  Status RemoveAll() {
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return Status::Ok();
    if (is_root()) {
      STRATA_RETURN_IF_ERROR(ctx_->session->Remove(ctx_->table, entry_key()).status());
      for (const Schema::Field& f : schema_.fields()) {
        if (!StoredByItself(f.schema)) continue;
        std::string field_prefix = L::ElementKey(prefix_, Value(f.name));
        STRATA_RETURN_IF_ERROR(RemoveRange(ctx_, field_prefix, L::SubtreeEnd(field_prefix)));
      }
    } else {
      STRATA_RETURN_IF_ERROR(RemoveRange(ctx_, prefix_, L::SubtreeEnd(prefix_)));
    }
    exists_ = false;
    return is_root() ? Status::Ok() : parent_->AdjustSize(-1);
  }
  StoreContext* context() const { return ctx_; }
  const Schema& schema() const { return schema_; }

 private:
  // Writing a field the record does not have; reading it gives nil, like a blob record.
  class UnknownFieldSink final : public Sink {
   public:
    UnknownFieldSink(RecordNode* record, Value key) : record_(record), key_(std::move(key)) {}
    Result<bool> Load(Value*) override { return false; }
    Status Store(const Value&) override {
      std::string names;
      for (const Schema::Field& f : record_->schema().fields()) {
        names += (names.empty() ? "" : ", ") + f.name;
      }
      return Status::SchemaViolation(record_->Location() + ": unknown field " + key_.ToString() +
                                     " (fields: " + names + ")");
    }
    Status Erase() override { return Status::Ok(); }
    void AppendLocation(std::string* out) const override {
      record_->AppendChildLocation(key_, out);
    }

   private:
    RecordNode* record_;
    Value key_;
  };

  const Schema::Field* FindField(const Value& key) const {
    if (!key.is_string()) return nullptr;
    for (const Schema::Field& f : schema_.fields()) {
      if (f.name == key.as_string()) return &f;
    }
    return nullptr;
  }

  NodePtr FieldNode(const Schema::Field& f) {
    return MakeStoredChild(ctx_, L::ElementKey(prefix_, Value(f.name)), f.schema, this,
                           Value(f.name), std::nullopt);
  }

  // Names of the fields present, sorted.
  Result<std::vector<std::string>> PresentFields() {
    std::vector<std::string> names;
    STRATA_ASSIGN_OR_RETURN(bool exists, Exists());
    if (!exists) return names;
    STRATA_ASSIGN_OR_RETURN(Value blob, blob_->Read());
    for (const Schema::Field& f : schema_.fields()) {
      bool present;
      if (StoredByItself(f.schema)) {
        STRATA_ASSIGN_OR_RETURN(present, FieldNode(f)->Exists());
      } else {
        present = blob.is_map() && blob.Find(f.name) != nullptr;
      }
      if (present) names.push_back(f.name);
    }
    return names;
  }

  NodePtr blob_;
};

// The plain fields of a RecordNode, in its entry record.
class RecordBlobSink final : public Sink {
 public:
  explicit RecordBlobSink(RecordNode* record) : record_(record) {}

  Result<bool> Load(Value* out) override {
    return LoadBlob(record_->context(), record_->blob_key(), nullptr, out,
                    [this] { return record_->Location(); });
  }

  Status Store(const Value& v) override {
    STRATA_RETURN_IF_ERROR(
        ValidateValueAt(record_->schema(), v, [this] { return record_->Location(); }));
    std::string bytes = EncodeBlob(v);
    STRATA_ASSIGN_OR_RETURN(bool exists, record_->BlobExists());
    if (!exists) return record_->CreateWithBlob(bytes);
    StoreContext* ctx = record_->context();
    return ctx->session->Put(ctx->table, record_->blob_key(), bytes);
  }

  Status Erase() override { return record_->RemoveAll(); }

  void AppendLocation(std::string* out) const override { record_->AppendLocation(out); }

 private:
  RecordNode* record_;
};

RecordNode::RecordNode(StoreContext* ctx, std::string prefix, const Schema& schema,
                       StoredParent* parent, Value key, std::optional<bool> exists)
    : StoredNode(ctx, std::move(prefix), schema, parent, std::move(key), exists),
      blob_(nav::MakeValueNode<RecordBlobSink>(std::nullopt, this)) {}

NodePtr MakeStoredChild(StoreContext* ctx, std::string prefix, const Schema& schema,
                        StoredParent* parent, Value key, std::optional<bool> exists) {
  if (schema.kind() == SchemaKind::kRecord) {
    return std::make_unique<RecordNode>(ctx, std::move(prefix), schema, parent, std::move(key),
                                        exists);
  }
  return std::make_unique<ContainerNode>(ctx, std::move(prefix), schema, parent, std::move(key),
                                         exists);
}

// A root value that is one blob (a counter, a record without subindexed fields, a list
// that is not subindexed ...): the record 0x02.
class RootBlobSink final : public Sink {
 public:
  RootBlobSink(StoreContext* ctx, const Schema& schema) : ctx_(ctx), schema_(schema) {}

  Result<bool> Load(Value* out) override {
    return LoadBlob(ctx_, L::kRootValueKey, nullptr, out, [this] { return ctx_->root_location; });
  }
  Status Store(const Value& v) override {
    STRATA_RETURN_IF_ERROR(ValidateValue(schema_, v, ctx_->root_location));
    return ctx_->session->Put(ctx_->table, L::kRootValueKey, EncodeBlob(v));
  }
  Status Erase() override { return ctx_->session->Remove(ctx_->table, L::kRootValueKey).status(); }
  void AppendLocation(std::string* out) const override { *out += ctx_->root_location; }

 private:
  StoreContext* ctx_;
  const Schema& schema_;
};

}  // namespace

RootNode::RootNode(StoreContext* ctx, const Schema& root) {
  static_assert(sizeof(ContainerNode) <= kInPlaceBytes && sizeof(RecordNode) <= kInPlaceBytes);
  const bool container =
      root.kind() == SchemaKind::kMap ||
      (root.subindexed() && (root.kind() == SchemaKind::kSet || root.kind() == SchemaKind::kList));
  if (container) {
    node_ = new (in_place_) ContainerNode(ctx, "", root, nullptr, Value(), true);
  } else if (StoredByItself(root)) {
    node_ = new (in_place_) RecordNode(ctx, "", root, nullptr, Value(), std::nullopt);
  } else {
    heap_ = nav::MakeValueNode<RootBlobSink>(std::nullopt, ctx, root);
    node_ = heap_.get();
  }
}

RootNode::~RootNode() {
  if (heap_ == nullptr) node_->~Node();
}

}  // namespace strata::pstate_internal
