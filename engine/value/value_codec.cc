#include "strata/value_codec.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include <flatbuffers/flexbuffers.h>

namespace strata {

namespace {

constexpr std::string_view kSetTag = "$set";
constexpr std::string_view kMapTag = "$map";

// FlexBuffers nesting per Value level: a set or a tagged map is a Map holding a Vector,
// and a string or blob is one more level for the verifier. The slack lets values just
// past kMaxValueDepth reach the decoder's own check, whose message names the limit.
constexpr size_t kMaxFlexDepth = 2 * kMaxValueDepth + 8;

// Decoding refuses to build more than this many "cost units" per input byte (plus a
// floor): each value costs kValueCost, each byte of a string/bytes/key costs 1. An honest
// buffer stays far below it; only a buffer whose vectors or strings are referenced many
// times over (a "zip bomb" the verifier lets through) reaches it.
constexpr size_t kValueCost = 16;
constexpr size_t kMaxCostPerInputByte = 64;
constexpr size_t kCostFloor = 64 * 1024;

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

// Builds the FlexBuffer of one value. With a depth limit, fails (returns false) on the
// first container nested deeper than the limit.
class Encoder {
 public:
  explicit Encoder(int max_depth) : max_depth_(max_depth) {}

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
  flexbuffers::Builder builder_;
};

std::string_view FlexTypeName(flexbuffers::Type type) {
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
  if (flexbuffers::IsTypedVector(type)) return "typed vector";
  if (flexbuffers::IsFixedTypedVector(type)) return "fixed typed vector";
  return "unknown type";
}

Status Corrupt(std::string_view problem) {
  return Status::Corruption("value encoding: " + std::string(problem));
}

// Converts a verified FlexBuffer into a Value. The verifier guarantees that every
// offset, size and vector stays inside the buffer; this class adds what it does not
// check: the nesting limit of Values, the $set/$map conventions, key terminators (the
// 2.0.8 verifier accepts a key without a 0x00 before the end of the buffer), matching
// map key/value counts and the decoded-size budget.
class Decoder {
 public:
  Decoder(const uint8_t* data, size_t size)
      : begin_(data),
        end_(data + size),
        budget_(size > (std::numeric_limits<size_t>::max() - kCostFloor) / kMaxCostPerInputByte
                    ? std::numeric_limits<size_t>::max()
                    : size * kMaxCostPerInputByte + kCostFloor) {}

  Result<Value> Convert(flexbuffers::Reference r, int depth) {
    switch (r.GetType()) {
      case flexbuffers::FBT_NULL:
        return Value();
      case flexbuffers::FBT_BOOL:
        return Value(r.AsBool());
      case flexbuffers::FBT_INT:
      case flexbuffers::FBT_INDIRECT_INT:
        return Value(r.AsInt64());
      case flexbuffers::FBT_UINT:
      case flexbuffers::FBT_INDIRECT_UINT: {
        uint64_t u = r.AsUInt64();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return Corrupt("uint " + std::to_string(u) + " is out of the int64 range");
        }
        return Value(static_cast<int64_t>(u));
      }
      case flexbuffers::FBT_FLOAT:
      case flexbuffers::FBT_INDIRECT_FLOAT:
        return Value(r.AsDouble());
      case flexbuffers::FBT_KEY: {
        STRATA_ASSIGN_OR_RETURN(std::string_view key, KeyOf(r));
        return Value(key);
      }
      case flexbuffers::FBT_STRING: {
        flexbuffers::String s = r.AsString();
        STRATA_RETURN_IF_ERROR(Charge(s.length()));
        return Value(std::string_view(s.c_str(), s.length()));
      }
      case flexbuffers::FBT_BLOB: {
        flexbuffers::Blob b = r.AsBlob();
        STRATA_RETURN_IF_ERROR(Charge(b.size()));
        return Value::BytesOf(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
      }
      case flexbuffers::FBT_MAP:
        return ConvertMap(r, depth + 1);
      default:
        break;
    }
    if (IsVectorKind(r.GetType())) {
      Value::List elements;
      STRATA_RETURN_IF_ERROR(ConvertElements(r, depth + 1, &elements));
      return Value(std::move(elements));
    }
    return Corrupt("unsupported FlexBuffers type " + std::to_string(r.GetType()));
  }

 private:
  static bool IsVectorKind(flexbuffers::Type type) {
    return type == flexbuffers::FBT_VECTOR || flexbuffers::IsTypedVector(type) ||
           flexbuffers::IsFixedTypedVector(type);
  }

  Status CheckDepth(int depth) const {
    if (depth > kMaxValueDepth) {
      return Corrupt("nesting deeper than " + std::to_string(kMaxValueDepth));
    }
    return Status::Ok();
  }

  Status Charge(size_t cost) {
    if (cost > budget_) {
      return Corrupt("decoded value would be too large for a " + std::to_string(end_ - begin_) +
                     "-byte buffer (shared sub-objects referenced too often)");
    }
    budget_ -= cost;
    return Status::Ok();
  }

  // A key is a 0x00-terminated string; the terminator must lie inside the buffer.
  Result<std::string_view> KeyOf(flexbuffers::Reference r) {
    const char* key = r.AsKey();
    const uint8_t* p = reinterpret_cast<const uint8_t*>(key);
    if (p < begin_ || p >= end_) return Corrupt("key points outside the buffer");
    const void* nul = std::memchr(p, 0, static_cast<size_t>(end_ - p));
    if (nul == nullptr) return Corrupt("key has no 0x00 terminator inside the buffer");
    size_t length = static_cast<size_t>(static_cast<const uint8_t*>(nul) - p);
    STRATA_RETURN_IF_ERROR(Charge(length));
    return std::string_view(key, length);
  }

  template <typename V>
  Status ConvertEach(const V& vector, size_t size, int depth, Value::List* out) {
    STRATA_RETURN_IF_ERROR(Charge(size * kValueCost));
    out->reserve(size);
    for (size_t i = 0; i < size; ++i) {
      STRATA_ASSIGN_OR_RETURN(Value element, Convert(vector[i], depth));
      out->push_back(std::move(element));
    }
    return Status::Ok();
  }

  // Elements of any kind of FlexBuffers vector; `depth` is the depth of the Value
  // container they belong to.
  Status ConvertElements(flexbuffers::Reference r, int depth, Value::List* out) {
    STRATA_RETURN_IF_ERROR(CheckDepth(depth));
    if (r.GetType() == flexbuffers::FBT_VECTOR) {
      flexbuffers::Vector v = r.AsVector();
      return ConvertEach(v, v.size(), depth, out);
    }
    if (r.IsTypedVector()) {
      flexbuffers::TypedVector v = r.AsTypedVector();
      return ConvertEach(v, v.size(), depth, out);
    }
    if (r.IsFixedTypedVector()) {
      flexbuffers::FixedTypedVector v = r.AsFixedTypedVector();
      return ConvertEach(v, v.size(), depth, out);
    }
    return Corrupt("expected a vector, found " + std::string(FlexTypeName(r.GetType())));
  }

  // Sorts entries by key unless they already are, and rejects duplicate keys.
  static Status SortUnique(Value::Map* entries, std::string_view what) {
    auto key_less = [](const auto& a, const auto& b) { return a.first < b.first; };
    if (!std::is_sorted(entries->begin(), entries->end(), key_less)) {
      std::sort(entries->begin(), entries->end(), key_less);
    }
    auto duplicate =
        std::adjacent_find(entries->begin(), entries->end(),
                           [](const auto& a, const auto& b) { return a.first == b.first; });
    if (duplicate != entries->end()) {
      return Corrupt("duplicate " + std::string(what));
    }
    return Status::Ok();
  }

  Result<Value> ConvertMap(flexbuffers::Reference r, int depth) {
    STRATA_RETURN_IF_ERROR(CheckDepth(depth));
    flexbuffers::Map m = r.AsMap();
    flexbuffers::TypedVector keys = m.Keys();
    flexbuffers::Vector values = m.Values();
    if (keys.size() != values.size()) {
      return Corrupt("map has " + std::to_string(keys.size()) + " keys but " +
                     std::to_string(values.size()) + " values");
    }
    if (keys.size() == 1) {
      STRATA_ASSIGN_OR_RETURN(std::string_view key, KeyOf(keys[0]));
      if (key == kSetTag) return ConvertTaggedSet(values[0], depth);
      if (key == kMapTag) return ConvertTaggedMap(values[0], depth);
    }
    STRATA_RETURN_IF_ERROR(Charge(keys.size() * 2 * kValueCost));
    Value::Map entries;
    entries.reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      STRATA_ASSIGN_OR_RETURN(std::string_view key, KeyOf(keys[i]));
      STRATA_ASSIGN_OR_RETURN(Value value, Convert(values[i], depth));
      entries.emplace_back(Value(key), std::move(value));
    }
    STRATA_RETURN_IF_ERROR(SortUnique(&entries, "map key"));
    return Value::MapOf(std::move(entries));
  }

  Result<Value> ConvertTaggedSet(flexbuffers::Reference r, int depth) {
    if (!IsVectorKind(r.GetType())) {
      return Corrupt("\"$set\" must hold a vector, found " +
                     std::string(FlexTypeName(r.GetType())));
    }
    Value::List elements;
    STRATA_RETURN_IF_ERROR(ConvertElements(r, depth, &elements));
    std::sort(elements.begin(), elements.end());
    if (std::adjacent_find(elements.begin(), elements.end()) != elements.end()) {
      return Corrupt("duplicate \"$set\" element");
    }
    return Value::SetOf(std::move(elements));
  }

  Result<Value> ConvertTaggedMap(flexbuffers::Reference r, int depth) {
    if (!IsVectorKind(r.GetType())) {
      return Corrupt("\"$map\" must hold a vector, found " +
                     std::string(FlexTypeName(r.GetType())));
    }
    Value::List flat;
    STRATA_RETURN_IF_ERROR(ConvertElements(r, depth, &flat));
    if (flat.size() % 2 != 0) {
      return Corrupt("\"$map\" vector has odd length " + std::to_string(flat.size()));
    }
    Value::Map entries;
    entries.reserve(flat.size() / 2);
    for (size_t i = 0; i < flat.size(); i += 2) {
      entries.emplace_back(std::move(flat[i]), std::move(flat[i + 1]));
    }
    STRATA_RETURN_IF_ERROR(SortUnique(&entries, "\"$map\" key"));
    return Value::MapOf(std::move(entries));
  }

  const uint8_t* const begin_;
  const uint8_t* const end_;
  size_t budget_;
};

}  // namespace

std::vector<uint8_t> EncodeValue(const Value& v) {
  Encoder encoder(std::numeric_limits<int>::max());
  encoder.Put(v, 0);
  return encoder.Finish();
}

Result<std::vector<uint8_t>> EncodeValueChecked(const Value& v) {
  Encoder encoder(kMaxValueDepth);
  if (!encoder.Put(v, 0)) {
    return Status::InvalidArgument("value nests deeper than " + std::to_string(kMaxValueDepth) +
                                   " levels and cannot be encoded");
  }
  return encoder.Finish();
}

void AppendValue(const Value& v, std::string* out) {
  Encoder encoder(std::numeric_limits<int>::max());
  encoder.Put(v, 0);
  const std::vector<uint8_t>& bytes = encoder.Finish();
  out->append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Result<Value> DecodeValue(const uint8_t* data, size_t size) {
  if (size < 3) {
    return Corrupt("buffer of " + std::to_string(size) +
                   " bytes is shorter than the 3-byte minimum");
  }
  if (size >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return Corrupt("buffer of " + std::to_string(size) + " bytes exceeds the FlexBuffers limit");
  }
  flexbuffers::Verifier verifier(data, size, /*reuse_tracker=*/nullptr,
                                 /*_check_alignment=*/true, kMaxFlexDepth);
  if (!verifier.VerifyBuffer()) {
    return Corrupt("FlexBuffers verification failed for a " + std::to_string(size) +
                   "-byte buffer (bad offset, size, type or alignment, or nesting deeper than " +
                   std::to_string(kMaxFlexDepth) + " FlexBuffers levels)");
  }
  Decoder decoder(data, size);
  return decoder.Convert(flexbuffers::GetRoot(data, size), 0);
}

Result<Value> DecodeValue(std::string_view bytes) {
  return DecodeValue(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

}  // namespace strata
