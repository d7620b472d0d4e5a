#include "strata/value_codec.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <optional>

#include <flatbuffers/flexbuffers.h>

namespace strata {

namespace {

constexpr std::string_view kSetTag = "$set";
constexpr std::string_view kMapTag = "$map";

// A thread's reused Builder is dropped after a call that left more than this many bytes
// in it, so that one huge value does not pin its memory in the thread for good.
constexpr size_t kMaxRetainedBuilderBytes = size_t{1} << 20;

static_assert(std::endian::native == std::endian::little,
              "the FlexBuffers reader below reads little-endian scalars with memcpy");

bool IsPlainMap(const Value::Map& entries) {
  for (const auto& [key, value] : entries) {
    if (!key.is_string() || key.as_string().find('\0') != std::string::npos) return false;
  }
  if (entries.size() == 1) {
    const std::string& key = entries.front().first.as_string();
    if (key == kSetTag || key == kMapTag) return false;
  }
  return true;
}

// The calling thread's Builder, cleared, for the lifetime of this object. Not reentrant:
// nothing inside an encode call encodes again.
class ThreadBuilder {
 public:
  ThreadBuilder() {
    if (!Slot().has_value()) Slot().emplace();
    Slot()->Clear();
  }
  ~ThreadBuilder() {
    if (Slot()->GetSize() > kMaxRetainedBuilderBytes) Slot().reset();
  }
  ThreadBuilder(const ThreadBuilder&) = delete;
  ThreadBuilder& operator=(const ThreadBuilder&) = delete;

  flexbuffers::Builder& get() { return *Slot(); }

 private:
  // std::optional rather than a plain object: a Builder cannot be moved or reassigned
  // (its string pools point at its own buffer), so a fresh one is emplaced instead.
  static std::optional<flexbuffers::Builder>& Slot() {
    thread_local std::optional<flexbuffers::Builder> builder;
    return builder;
  }
};

// Builds the FlexBuffer of one value into `builder`. With a depth limit, fails (returns
// false) on the first container nested deeper than the limit.
class Encoder {
 public:
  Encoder(flexbuffers::Builder& builder, int max_depth)
      : max_depth_(max_depth), builder_(builder) {}

  bool Put(const Value& v, int depth) {
    switch (v.type()) {
      case Type::kNil:
        builder_.Null();
        return true;
      case Type::kBool:
        builder_.Bool(v.as_bool());
        return true;
      case Type::kInt:
        builder_.Int(v.as_int());
        return true;
      case Type::kDouble:
        builder_.Double(v.as_double());
        return true;
      case Type::kString:
        builder_.String(v.as_string().data(), v.as_string().size());
        return true;
      case Type::kBytes:
        builder_.Blob(v.as_bytes().data(), v.as_bytes().size());
        return true;
      case Type::kList:
        return depth < max_depth_ && PutVector(v.as_list(), depth + 1);
      case Type::kSet: {
        if (depth >= max_depth_) return false;
        size_t map = builder_.StartMap();
        builder_.Key(kSetTag.data(), kSetTag.size());
        if (!PutVector(v.as_set(), depth + 1)) return false;
        builder_.EndMap(map);
        return true;
      }
      case Type::kMap:
        return depth < max_depth_ && PutMap(v.as_map(), depth + 1);
    }
    return false;
  }

  const std::vector<uint8_t>& Finish() {
    builder_.Finish();
    return builder_.GetBuffer();
  }

 private:
  // `depth` is the depth of the container whose elements these are.
  bool PutVector(const std::vector<Value>& elements, int depth) {
    size_t vector = builder_.StartVector();
    for (const Value& e : elements) {
      if (!Put(e, depth)) return false;
    }
    builder_.EndVector(vector, /*typed=*/false, /*fixed=*/false);
    return true;
  }

  bool PutMap(const Value::Map& entries, int depth) {
    size_t map = builder_.StartMap();
    if (IsPlainMap(entries)) {
      for (const auto& [key, value] : entries) {
        builder_.Key(key.as_string().data(), key.as_string().size());
        if (!Put(value, depth)) return false;
      }
    } else {
      builder_.Key(kMapTag.data(), kMapTag.size());
      size_t vector = builder_.StartVector();
      for (const auto& [key, value] : entries) {
        if (!Put(key, depth) || !Put(value, depth)) return false;
      }
      builder_.EndVector(vector, /*typed=*/false, /*fixed=*/false);
    }
    builder_.EndMap(map);
    return true;
  }

  const int max_depth_;
  flexbuffers::Builder& builder_;
};

std::string_view FlexTypeName(uint8_t type) {
  switch (type) {
    case flexbuffers::FBT_NULL:
      return "null";
    case flexbuffers::FBT_INT:
      return "int";
    case flexbuffers::FBT_UINT:
      return "uint";
    case flexbuffers::FBT_FLOAT:
      return "float";
    case flexbuffers::FBT_KEY:
      return "key";
    case flexbuffers::FBT_STRING:
      return "string";
    case flexbuffers::FBT_INDIRECT_INT:
      return "indirect int";
    case flexbuffers::FBT_INDIRECT_UINT:
      return "indirect uint";
    case flexbuffers::FBT_INDIRECT_FLOAT:
      return "indirect float";
    case flexbuffers::FBT_MAP:
      return "map";
    case flexbuffers::FBT_VECTOR:
      return "vector";
    case flexbuffers::FBT_BLOB:
      return "blob";
    case flexbuffers::FBT_BOOL:
      return "bool";
    default:
      break;
  }
  auto t = static_cast<flexbuffers::Type>(type);
  if (flexbuffers::IsTypedVector(t)) return "typed vector";
  if (flexbuffers::IsFixedTypedVector(t)) return "fixed typed vector";
  return "unknown type";
}

Status Corrupt(std::string_view problem) {
  return Status::Corruption("value encoding: " + std::string(problem));
}

// Little-endian scalars of 1, 2, 4 or 8 bytes; the caller has checked the range. memcpy
// because nothing in an untrusted buffer is aligned.
template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

uint64_t ReadUInt(const uint8_t* p, uint8_t width) {
  switch (width) {
    case 1:
      return p[0];
    case 2:
      return Load<uint16_t>(p);
    case 4:
      return Load<uint32_t>(p);
    default:
      return Load<uint64_t>(p);
  }
}

int64_t ReadInt(const uint8_t* p, uint8_t width) {
  switch (width) {
    case 1:
      return Load<int8_t>(p);
    case 2:
      return Load<int16_t>(p);
    case 4:
      return Load<int32_t>(p);
    default:
      return Load<int64_t>(p);
  }
}

bool IsByteWidth(uint64_t width) { return width == 1 || width == 2 || width == 4 || width == 8; }

// One FlexBuffers item as its parent describes it: the slot holding it (an inline
// scalar or an offset back to the data), the slot's width, the type, and the width the
// packed type gives the data behind an offset (for typed vector elements: the vector's).
struct Item {
  const uint8_t* slot;
  uint8_t slot_width;
  uint8_t type;
  uint8_t width;
};

// The elements of any kind of FlexBuffers vector (and the values of a map), checked to lie
// inside the buffer. `types` points at the per-element packed type bytes of an untyped
// vector or map, and is null for typed vectors, whose elements all have `element_type`.
struct Elements {
  const uint8_t* data;
  size_t size;
  uint8_t width;
  const uint8_t* types;
  uint8_t element_type;

  Item operator[](size_t i) const {
    const uint8_t* slot = data + i * width;
    if (types == nullptr) return Item{slot, width, element_type, width};
    return Item{slot, width, static_cast<uint8_t>(types[i] >> 2),
                static_cast<uint8_t>(1u << (types[i] & 3))};
  }
};

bool IsVectorKind(uint8_t type) {
  auto t = static_cast<flexbuffers::Type>(type);
  return t == flexbuffers::FBT_VECTOR || flexbuffers::IsTypedVector(t) ||
         flexbuffers::IsFixedTypedVector(t);
}

// Converts an untrusted FlexBuffer into a Value. Nothing is read before its bytes are
// checked to lie inside the buffer: every offset, size prefix, width and type byte. It
// also enforces what FlexBuffers itself does not: the nesting limit of Values, the
// $set/$map conventions, key terminators (searched for a bounded distance), matching map
// key/value counts, 32/64-bit floats only, and the work and decoded-size budgets of
// value_codec.h, which bound the total time by the input size even when sub-vectors are
// referenced many times or refer to themselves.
class Decoder {
 public:
  Decoder(const uint8_t* data, size_t size)
      : begin_(data),
        end_(data + size),
        work_left_(size * kDecodeWorkPerInputByte + kDecodeWorkFloor),
        decoded_limit_(std::max(kMaxDecodedSize, size * kDecodedSizePerInputByte)),
        decoded_left_(decoded_limit_) {}

  const DecodeWork& work() const { return work_; }

  Result<Value> DecodeRoot() {
    size_t size = static_cast<size_t>(end_ - begin_);
    uint8_t root_width = end_[-1];
    uint8_t packed_type = end_[-2];
    if (!IsByteWidth(root_width)) {
      return Corrupt("root byte width " + std::to_string(root_width) + " is not 1, 2, 4 or 8");
    }
    if (size < size_t{2} + root_width) {
      return Corrupt("buffer of " + std::to_string(size) + " bytes is too short for a " +
                     std::to_string(root_width) + "-byte root");
    }
    STRATA_RETURN_IF_ERROR(ChargeWork(1));
    STRATA_RETURN_IF_ERROR(ChargeDecoded(kDecodedValueCost));
    Item root{end_ - 2 - root_width, root_width, static_cast<uint8_t>(packed_type >> 2),
              static_cast<uint8_t>(1u << (packed_type & 3))};
    return Convert(root, 0);
  }

 private:
  size_t At(const uint8_t* p) const { return static_cast<size_t>(p - begin_); }
  std::string ByteAt(const uint8_t* p) const { return " at byte " + std::to_string(At(p)); }

  Status CheckDepth(int depth) const {
    if (depth > kMaxValueDepth) {
      return Corrupt("nesting deeper than " + std::to_string(kMaxValueDepth));
    }
    return Status::Ok();
  }

  Status ChargeWork(size_t elements) {
    if (elements > work_left_) {
      size_t size = static_cast<size_t>(end_ - begin_);
      return Corrupt("more than " +
                     std::to_string(size * kDecodeWorkPerInputByte + kDecodeWorkFloor) +
                     " elements visited for a " + std::to_string(size) +
                     "-byte buffer (a vector or map is referenced too often)");
    }
    work_left_ -= elements;
    work_.elements_visited += elements;
    return Status::Ok();
  }

  Status ChargeDecoded(size_t cost) {
    if (cost > decoded_left_) {
      return Corrupt("decoded value would be larger than " + std::to_string(decoded_limit_) +
                     " (counting " + std::to_string(kDecodedValueCost) +
                     " per value and 1 per byte of strings, bytes and keys)");
    }
    decoded_left_ -= cost;
    return Status::Ok();
  }

  // The data an offset slot points back to.
  Result<const uint8_t*> Target(const uint8_t* slot, uint8_t slot_width) const {
    uint64_t offset = ReadUInt(slot, slot_width);
    if (offset > At(slot)) {
      return Corrupt("offset " + std::to_string(offset) + ByteAt(slot) +
                     " points before the start of the buffer");
    }
    return slot - offset;
  }

  // The `width`-byte unsigned field `fields_before` fields in front of `data`.
  Result<uint64_t> FieldBefore(const uint8_t* data, uint8_t width, size_t fields_before,
                               std::string_view what) const {
    if (At(data) < fields_before * width) {
      return Corrupt(std::string(what) + ByteAt(data) + " would start before the buffer");
    }
    return ReadUInt(data - fields_before * width, width);
  }

  // Checks that `count` items of `item_bytes` each fit between `data` and the end.
  Status CheckFits(const uint8_t* data, uint64_t count, size_t item_bytes,
                   std::string_view what) const {
    size_t available = static_cast<size_t>(end_ - data);
    if (count > available / item_bytes) {
      return Corrupt(std::string(what) + ByteAt(data) + " of " + std::to_string(count) +
                     " elements runs past the end of the buffer");
    }
    return Status::Ok();
  }

  Status CheckFloatWidth(uint8_t width, const uint8_t* at) const {
    if (width < 4) {
      return Corrupt(std::to_string(width * 8) + "-bit float" + ByteAt(at) +
                     ": the format has only 32- and 64-bit floats");
    }
    return Status::Ok();
  }

  static double ReadFloat(const uint8_t* p, uint8_t width) {
    return width == 4 ? static_cast<double>(Load<float>(p)) : Load<double>(p);
  }

  static Result<Value> FromUInt(uint64_t u) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Corrupt("uint " + std::to_string(u) + " is out of the int64 range");
    }
    return Value(static_cast<int64_t>(u));
  }

  // A 0x00-terminated key. The terminator is searched for no further than the end of the
  // buffer and the remaining decoded-size budget, and the key's bytes are charged to it,
  // so all key scans together stay within the decoded-size limit.
  Result<std::string_view> KeyAt(const uint8_t* slot, uint8_t slot_width) {
    STRATA_ASSIGN_OR_RETURN(const uint8_t* key, Target(slot, slot_width));
    size_t available = static_cast<size_t>(end_ - key);
    size_t search = std::min(available, decoded_left_ + 1);
    const void* nul = std::memchr(key, 0, search);
    work_.key_bytes_scanned +=
        nul == nullptr ? search : static_cast<size_t>(static_cast<const uint8_t*>(nul) - key) + 1;
    if (nul == nullptr) {
      if (search == available) {
        return Corrupt("key" + ByteAt(key) + " has no 0x00 terminator inside the buffer");
      }
      return ChargeDecoded(search);  // fails: the key alone exceeds the budget
    }
    size_t length = static_cast<size_t>(static_cast<const uint8_t*>(nul) - key);
    STRATA_RETURN_IF_ERROR(ChargeDecoded(length));
    return std::string_view(reinterpret_cast<const char*>(key), length);
  }

  // A length-prefixed string or blob; strings must also have room for their terminator.
  Result<std::string_view> SizedBytes(const Item& item, bool is_string) {
    STRATA_ASSIGN_OR_RETURN(const uint8_t* data, Target(item.slot, item.slot_width));
    const char* what = is_string ? "string" : "blob";
    STRATA_ASSIGN_OR_RETURN(uint64_t length, FieldBefore(data, item.width, 1, what));
    uint64_t available = static_cast<uint64_t>(end_ - data);
    if (length > available || (is_string && length == available)) {
      return Corrupt(std::string(what) + ByteAt(data) + " of " + std::to_string(length) +
                     " bytes runs past the end of the buffer");
    }
    STRATA_RETURN_IF_ERROR(ChargeDecoded(static_cast<size_t>(length)));
    return std::string_view(reinterpret_cast<const char*>(data), static_cast<size_t>(length));
  }

  Result<Value> Convert(const Item& item, int depth) {
    switch (item.type) {
      case flexbuffers::FBT_NULL:
        return Value();
      case flexbuffers::FBT_BOOL:
        return Value(ReadUInt(item.slot, item.slot_width) != 0);
      case flexbuffers::FBT_INT:
        return Value(ReadInt(item.slot, item.slot_width));
      case flexbuffers::FBT_UINT:
        return FromUInt(ReadUInt(item.slot, item.slot_width));
      case flexbuffers::FBT_FLOAT:
        // The slot is read at its own width; a packed type declaring a narrower float
        // is rejected too, as no writer produces one.
        STRATA_RETURN_IF_ERROR(CheckFloatWidth(std::min(item.slot_width, item.width), item.slot));
        return Value(ReadFloat(item.slot, item.slot_width));
      case flexbuffers::FBT_INDIRECT_INT:
      case flexbuffers::FBT_INDIRECT_UINT:
      case flexbuffers::FBT_INDIRECT_FLOAT:
        return ConvertIndirect(item);
      case flexbuffers::FBT_KEY: {
        STRATA_ASSIGN_OR_RETURN(std::string_view key, KeyAt(item.slot, item.slot_width));
        return Value(key);
      }
      case flexbuffers::FBT_STRING: {
        STRATA_ASSIGN_OR_RETURN(std::string_view s, SizedBytes(item, /*is_string=*/true));
        return Value(s);
      }
      case flexbuffers::FBT_BLOB: {
        STRATA_ASSIGN_OR_RETURN(std::string_view b, SizedBytes(item, /*is_string=*/false));
        return Value::BytesOf(b);
      }
      case flexbuffers::FBT_MAP:
        return ConvertMap(item, depth + 1);
      default:
        break;
    }
    if (IsVectorKind(item.type)) {
      STRATA_RETURN_IF_ERROR(CheckDepth(depth + 1));
      STRATA_ASSIGN_OR_RETURN(Elements elements, VectorElements(item));
      Value::List list;
      STRATA_RETURN_IF_ERROR(ConvertElements(elements, depth + 1, &list));
      return Value(std::move(list));
    }
    return Corrupt("unsupported FlexBuffers type " + std::to_string(item.type) + ByteAt(item.slot));
  }

  Result<Value> ConvertIndirect(const Item& item) {
    STRATA_ASSIGN_OR_RETURN(const uint8_t* data, Target(item.slot, item.slot_width));
    if (static_cast<size_t>(end_ - data) < item.width) {
      return Corrupt(std::string(FlexTypeName(item.type)) + ByteAt(data) +
                     " runs past the end of the buffer");
    }
    if (item.type == flexbuffers::FBT_INDIRECT_INT) return Value(ReadInt(data, item.width));
    if (item.type == flexbuffers::FBT_INDIRECT_UINT) return FromUInt(ReadUInt(data, item.width));
    STRATA_RETURN_IF_ERROR(CheckFloatWidth(item.width, data));
    return Value(ReadFloat(data, item.width));
  }

  // Locates and bounds-checks the elements of a vector of any kind. Element types of
  // typed vectors are as flexbuffers::Reference reads them; the deprecated string typed
  // vector is read as keys (its strings end at their first 0x00).
  Result<Elements> VectorElements(const Item& item) const {
    STRATA_ASSIGN_OR_RETURN(const uint8_t* data, Target(item.slot, item.slot_width));
    auto type = static_cast<flexbuffers::Type>(item.type);
    uint8_t width = item.width;
    if (flexbuffers::IsFixedTypedVector(type)) {
      uint8_t length = 0;
      auto element_type = flexbuffers::ToFixedTypedVectorElementType(type, &length);
      STRATA_RETURN_IF_ERROR(CheckFits(data, length, width, "fixed typed vector"));
      if (element_type == flexbuffers::FBT_FLOAT) {
        STRATA_RETURN_IF_ERROR(CheckFloatWidth(width, data));
      }
      return Elements{data, length, width, nullptr, static_cast<uint8_t>(element_type)};
    }
    STRATA_ASSIGN_OR_RETURN(uint64_t size, FieldBefore(data, width, 1, "vector size"));
    if (type == flexbuffers::FBT_VECTOR) {
      STRATA_RETURN_IF_ERROR(CheckFits(data, size, size_t{width} + 1, "vector"));
      return Elements{data, static_cast<size_t>(size), width, data + size * width, 0};
    }
    STRATA_RETURN_IF_ERROR(CheckFits(data, size, width, "typed vector"));
    auto element_type = flexbuffers::ToTypedVectorElementType(type);
    if (element_type == flexbuffers::FBT_STRING) element_type = flexbuffers::FBT_KEY;
    if (element_type == flexbuffers::FBT_FLOAT) {
      STRATA_RETURN_IF_ERROR(CheckFloatWidth(width, data));
    }
    return Elements{data, static_cast<size_t>(size), width, nullptr,
                    static_cast<uint8_t>(element_type)};
  }

  // `depth` is the depth of the Value container the elements belong to.
  Status ConvertElements(const Elements& elements, int depth, Value::List* out) {
    STRATA_RETURN_IF_ERROR(ChargeWork(elements.size));
    STRATA_RETURN_IF_ERROR(ChargeDecoded(elements.size * kDecodedValueCost));
    out->reserve(elements.size);
    for (size_t i = 0; i < elements.size; ++i) {
      STRATA_ASSIGN_OR_RETURN(Value element, Convert(elements[i], depth));
      out->push_back(std::move(element));
    }
    return Status::Ok();
  }

  Result<Value> ConvertMap(const Item& item, int depth) {
    STRATA_RETURN_IF_ERROR(CheckDepth(depth));
    // Layout before the values: keys offset, keys byte width, size (each `width` bytes);
    // after them one packed type byte per value.
    STRATA_ASSIGN_OR_RETURN(const uint8_t* values, Target(item.slot, item.slot_width));
    uint8_t width = item.width;
    if (At(values) < size_t{3} * width) {
      return Corrupt("map header" + ByteAt(values) + " would start before the buffer");
    }
    uint64_t size = ReadUInt(values - width, width);
    STRATA_RETURN_IF_ERROR(CheckFits(values, size, size_t{width} + 1, "map values"));
    const uint8_t* keys_slot = values - 3 * width;
    uint64_t keys_width = ReadUInt(values - 2 * width, width);
    if (!IsByteWidth(keys_width)) {
      return Corrupt("map keys byte width " + std::to_string(keys_width) + ByteAt(keys_slot) +
                     " is not 1, 2, 4 or 8");
    }
    auto key_width = static_cast<uint8_t>(keys_width);
    STRATA_ASSIGN_OR_RETURN(const uint8_t* keys, Target(keys_slot, width));
    STRATA_ASSIGN_OR_RETURN(uint64_t key_count, FieldBefore(keys, key_width, 1, "map keys size"));
    if (key_count != size) {
      return Corrupt("map" + ByteAt(values) + " has " + std::to_string(key_count) + " keys but " +
                     std::to_string(size) + " values");
    }
    STRATA_RETURN_IF_ERROR(CheckFits(keys, key_count, key_width, "map keys"));
    Elements entries_values{values, static_cast<size_t>(size), width, values + size * width, 0};
    STRATA_RETURN_IF_ERROR(ChargeWork(2 * entries_values.size));
    STRATA_RETURN_IF_ERROR(ChargeDecoded(2 * entries_values.size * kDecodedValueCost));

    Value::Map entries;
    entries.reserve(entries_values.size);
    bool ascending = true;
    for (size_t i = 0; i < entries_values.size; ++i) {
      STRATA_ASSIGN_OR_RETURN(std::string_view key, KeyAt(keys + i * key_width, key_width));
      if (entries_values.size == 1) {
        if (key == kSetTag) return ConvertTaggedSet(entries_values[0], depth);
        if (key == kMapTag) return ConvertTaggedMap(entries_values[0], depth);
      }
      if (i > 0 && !(std::string_view(entries.back().first.as_string()) < key)) ascending = false;
      STRATA_ASSIGN_OR_RETURN(Value value, Convert(entries_values[i], depth));
      entries.emplace_back(Value(key), std::move(value));
    }
    // FlexBuffers maps are sorted by key, so one pass suffices; other orders are sorted.
    if (!ascending) STRATA_RETURN_IF_ERROR(SortUnique(&entries, "map key"));
    return Value::MapOfSorted(std::move(entries));
  }

  // Sorts entries by key and rejects duplicate keys.
  static Status SortUnique(Value::Map* entries, std::string_view what) {
    std::sort(entries->begin(), entries->end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    auto duplicate =
        std::adjacent_find(entries->begin(), entries->end(),
                           [](const auto& a, const auto& b) { return a.first == b.first; });
    if (duplicate != entries->end()) {
      return Corrupt("duplicate " + std::string(what) + " " + duplicate->first.ToString());
    }
    return Status::Ok();
  }

  Result<Elements> TaggedVector(const Item& item, std::string_view tag) const {
    if (!IsVectorKind(item.type)) {
      return Corrupt("\"" + std::string(tag) + "\" must hold a vector, found " +
                     std::string(FlexTypeName(item.type)));
    }
    return VectorElements(item);
  }

  Result<Value> ConvertTaggedSet(const Item& item, int depth) {
    STRATA_ASSIGN_OR_RETURN(Elements vector, TaggedVector(item, kSetTag));
    Value::List elements;
    STRATA_RETURN_IF_ERROR(ConvertElements(vector, depth, &elements));
    if (std::adjacent_find(elements.begin(), elements.end(), std::greater_equal<>()) !=
        elements.end()) {
      std::sort(elements.begin(), elements.end());
      auto duplicate = std::adjacent_find(elements.begin(), elements.end());
      if (duplicate != elements.end()) {
        return Corrupt("duplicate \"$set\" element " + duplicate->ToString());
      }
    }
    return Value::SetOfSorted(std::move(elements));
  }

  Result<Value> ConvertTaggedMap(const Item& item, int depth) {
    STRATA_ASSIGN_OR_RETURN(Elements vector, TaggedVector(item, kMapTag));
    Value::List flat;
    STRATA_RETURN_IF_ERROR(ConvertElements(vector, depth, &flat));
    if (flat.size() % 2 != 0) {
      return Corrupt("\"$map\" vector has odd length " + std::to_string(flat.size()));
    }
    Value::Map entries;
    entries.reserve(flat.size() / 2);
    bool ascending = true;
    for (size_t i = 0; i < flat.size(); i += 2) {
      if (i > 0 && !(entries.back().first < flat[i])) ascending = false;
      entries.emplace_back(std::move(flat[i]), std::move(flat[i + 1]));
    }
    if (!ascending) STRATA_RETURN_IF_ERROR(SortUnique(&entries, "\"$map\" key"));
    return Value::MapOfSorted(std::move(entries));
  }

  const uint8_t* const begin_;
  const uint8_t* const end_;
  size_t work_left_;
  const size_t decoded_limit_;
  size_t decoded_left_;
  DecodeWork work_;
};

}  // namespace

std::vector<uint8_t> EncodeValue(const Value& v) {
  ThreadBuilder builder;
  Encoder encoder(builder.get(), std::numeric_limits<int>::max());
  encoder.Put(v, 0);
  return encoder.Finish();
}

Result<std::vector<uint8_t>> EncodeValueChecked(const Value& v) {
  ThreadBuilder builder;
  Encoder encoder(builder.get(), kMaxValueDepth);
  if (!encoder.Put(v, 0)) {
    return Status::InvalidArgument("value nests deeper than " + std::to_string(kMaxValueDepth) +
                                   " levels and cannot be encoded");
  }
  return encoder.Finish();
}

void AppendValue(const Value& v, std::string* out) {
  ThreadBuilder builder;
  Encoder encoder(builder.get(), std::numeric_limits<int>::max());
  encoder.Put(v, 0);
  const std::vector<uint8_t>& bytes = encoder.Finish();
  out->append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<Value> DecodeValue(const uint8_t* data, size_t size) {
  DecodeWork ignored;
  return DecodeValue(data, size, &ignored);
}

Result<Value> DecodeValue(const uint8_t* data, size_t size, DecodeWork* work) {
  *work = DecodeWork();
  if (size < 3) {
    return Corrupt("buffer of " + std::to_string(size) +
                   " bytes is shorter than the 3-byte minimum");
  }
  if (size >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return Corrupt("buffer of " + std::to_string(size) + " bytes exceeds the FlexBuffers limit");
  }
  Decoder decoder(data, size);
  Result<Value> value = decoder.DecodeRoot();
  *work = decoder.work();
  return value;
}

Result<Value> DecodeValue(std::string_view bytes) {
  return DecodeValue(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace strata
