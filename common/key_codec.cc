#include "strata/key_codec.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include <xxhash.h>

namespace strata {

namespace {

// Type tags, in type-rank order so that the first byte alone orders different types.
constexpr uint8_t kTagNil = 0x10;
constexpr uint8_t kTagFalse = 0x20;
constexpr uint8_t kTagTrue = 0x21;
constexpr uint8_t kTagInt = 0x30;
constexpr uint8_t kTagDouble = 0x40;
constexpr uint8_t kTagString = 0x50;
constexpr uint8_t kTagBytes = 0x60;
constexpr uint8_t kTagList = 0x70;
constexpr uint8_t kTagMap = 0x80;
constexpr uint8_t kTagSet = 0x90;

// Ends strings, bytes and containers. Sorts below every tag, so a shorter sequence
// sorts before a longer one that extends it.
constexpr uint8_t kEnd = 0x00;
// Follows an escaped 0x00 inside a string: 0x00 0xFF is a data byte, 0x00 anything
// else (or the end) is the terminator.
constexpr uint8_t kEscapedZero = 0xFF;

constexpr uint64_t kSignBit = uint64_t{1} << 63;

uint64_t DoubleToOrderedBits(double d) {
  uint64_t bits = std::bit_cast<uint64_t>(d);
  return (bits & kSignBit) ? ~bits : bits ^ kSignBit;
}

double OrderedBitsToDouble(uint64_t u) {
  return std::bit_cast<double>((u & kSignBit) ? u ^ kSignBit : ~u);
}

void PutBigEndian64(uint64_t u, std::string* out) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(u & 0xFF);
    u >>= 8;
  }
  out->append(buf, sizeof(buf));
}

uint64_t GetBigEndian64(const uint8_t* p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | p[i];
  return u;
}

// Appends `data` with every 0x00 written as 0x00 0xFF, then the terminator.
void PutEscaped(std::string_view data, std::string* out) {
  while (true) {
    size_t zero = data.find('\0');
    if (zero == std::string_view::npos) break;
    out->append(data.data(), zero + 1);
    out->push_back(static_cast<char>(kEscapedZero));
    data.remove_prefix(zero + 1);
  }
  out->append(data);
  out->push_back(static_cast<char>(kEnd));
}

size_t EscapedSize(std::string_view data) {
  return data.size() + static_cast<size_t>(std::count(data.begin(), data.end(), '\0')) + 1;
}

// Exact size of the encoding, so that AppendKey allocates at most once.
size_t KeySize(const Value& v) {
  switch (v.type()) {
    case Type::kNil:
    case Type::kBool:
      return 1;
    case Type::kInt:
    case Type::kDouble:
      return 9;
    case Type::kString:
      return 1 + EscapedSize(v.as_string());
    case Type::kBytes:
      return 1 + EscapedSize(v.as_bytes());
    case Type::kList: {
      size_t n = 2;
      for (const Value& e : v.as_list()) n += KeySize(e);
      return n;
    }
    case Type::kMap: {
      size_t n = 2;
      for (const auto& [key, value] : v.as_map()) n += KeySize(key) + KeySize(value);
      return n;
    }
    case Type::kSet: {
      size_t n = 2;
      for (const Value& e : v.as_set()) n += KeySize(e);
      return n;
    }
  }
  return 0;
}

void PutKey(const Value& v, std::string* out) {
  switch (v.type()) {
    case Type::kNil:
      out->push_back(static_cast<char>(kTagNil));
      return;
    case Type::kBool:
      out->push_back(static_cast<char>(v.as_bool() ? kTagTrue : kTagFalse));
      return;
    case Type::kInt:
      out->push_back(static_cast<char>(kTagInt));
      PutBigEndian64(static_cast<uint64_t>(v.as_int()) ^ kSignBit, out);
      return;
    case Type::kDouble:
      out->push_back(static_cast<char>(kTagDouble));
      PutBigEndian64(DoubleToOrderedBits(v.as_double()), out);
      return;
    case Type::kString:
      out->push_back(static_cast<char>(kTagString));
      PutEscaped(v.as_string(), out);
      return;
    case Type::kBytes:
      out->push_back(static_cast<char>(kTagBytes));
      PutEscaped(v.as_bytes(), out);
      return;
    case Type::kList:
      out->push_back(static_cast<char>(kTagList));
      for (const Value& e : v.as_list()) PutKey(e, out);
      out->push_back(static_cast<char>(kEnd));
      return;
    case Type::kMap:
      out->push_back(static_cast<char>(kTagMap));
      for (const auto& [key, value] : v.as_map()) {
        PutKey(key, out);
        PutKey(value, out);
      }
      out->push_back(static_cast<char>(kEnd));
      return;
    case Type::kSet:
      out->push_back(static_cast<char>(kTagSet));
      for (const Value& e : v.as_set()) PutKey(e, out);
      out->push_back(static_cast<char>(kEnd));
      return;
  }
}

std::string HexByte(uint8_t b) {
  static constexpr char kDigits[] = "0123456789abcdef";
  return {'0', 'x', kDigits[b >> 4], kDigits[b & 0xF]};
}

// Decodes one value from an untrusted byte string. Offsets in messages count from the
// start of the input the caller handed to the public function.
class KeyDecoder {
 public:
  explicit KeyDecoder(std::string_view in)
      : data_(reinterpret_cast<const uint8_t*>(in.data())), size_(in.size()) {}

  size_t position() const { return pos_; }
  bool AtEnd() const { return pos_ == size_; }

  Result<Value> DecodeOne(int depth) {
    if (pos_ >= size_) return Error(pos_, "truncated: expected a type tag, found the end");
    size_t start = pos_;
    uint8_t tag = data_[pos_++];
    switch (tag) {
      case kTagNil:
        return Value();
      case kTagFalse:
        return Value(false);
      case kTagTrue:
        return Value(true);
      case kTagInt: {
        if (size_ - pos_ < 8) return Error(start, "truncated int: needs 8 bytes after the tag");
        uint64_t u = GetBigEndian64(data_ + pos_) ^ kSignBit;
        pos_ += 8;
        return Value(static_cast<int64_t>(u));
      }
      case kTagDouble: {
        if (size_ - pos_ < 8) {
          return Error(start, "truncated double: needs 8 bytes after the tag");
        }
        double d = OrderedBitsToDouble(GetBigEndian64(data_ + pos_));
        if (std::isnan(d) &&
            std::bit_cast<uint64_t>(CanonicalDouble(d)) != std::bit_cast<uint64_t>(d)) {
          return Error(start, "non-canonical NaN");
        }
        pos_ += 8;
        return Value(d);
      }
      case kTagString: {
        std::string s;
        STRATA_RETURN_IF_ERROR(DecodeEscaped(start, "string", &s));
        return Value(std::move(s));
      }
      case kTagBytes: {
        std::string s;
        STRATA_RETURN_IF_ERROR(DecodeEscaped(start, "bytes", &s));
        return Value::BytesOf(s);
      }
      case kTagList:
      case kTagMap:
      case kTagSet:
        return DecodeContainer(tag, start, depth + 1);
      default:
        return Error(start, "unknown type tag " + HexByte(tag));
    }
  }

 private:
  Status Error(size_t offset, std::string_view problem) const {
    return Status::Corruption("key encoding at offset " + std::to_string(offset) + ": " +
                              std::string(problem));
  }

  Status DecodeEscaped(size_t start, std::string_view what, std::string* out) {
    while (true) {
      const void* found = pos_ < size_ ? std::memchr(data_ + pos_, kEnd, size_ - pos_) : nullptr;
      if (found == nullptr) {
        return Error(start, "truncated " + std::string(what) + ": no 0x00 terminator");
      }
      size_t zero = static_cast<size_t>(static_cast<const uint8_t*>(found) - data_);
      out->append(reinterpret_cast<const char*>(data_ + pos_), zero - pos_);
      pos_ = zero + 1;
      if (pos_ < size_ && data_[pos_] == kEscapedZero) {
        out->push_back('\0');
        ++pos_;
      } else {
        return Status::Ok();
      }
    }
  }

  // Decodes the elements up to the container's 0x00. Maps and sets must be strictly
  // increasing (as Value keeps them), which their element encodings show by memcmp, so
  // MapOf/SetOf below take them over without sorting.
  Result<Value> DecodeContainer(uint8_t tag, size_t start, int depth) {
    if (depth > kMaxKeyDepth) {
      return Error(start, "nesting deeper than " + std::to_string(kMaxKeyDepth));
    }
    Value::List elements;
    Value::Map entries;
    std::string_view previous;  // encoding of the previous set element or map key
    while (true) {
      if (pos_ >= size_) return Error(start, "truncated container: no 0x00 terminator");
      if (data_[pos_] == kEnd) {
        ++pos_;
        break;
      }
      size_t element_start = pos_;
      STRATA_ASSIGN_OR_RETURN(Value element, DecodeOne(depth));
      if (tag != kTagList) {
        std::string_view encoding(reinterpret_cast<const char*>(data_ + element_start),
                                  pos_ - element_start);
        if (!previous.empty() && !(previous < encoding)) {
          return Error(element_start,
                       tag == kTagSet
                           ? "non-canonical set: element not greater than the previous one"
                           : "non-canonical map: key not greater than the previous one");
        }
        previous = encoding;
      }
      if (tag != kTagMap) {
        elements.push_back(std::move(element));
        continue;
      }
      if (pos_ < size_ && data_[pos_] == kEnd) {
        return Error(pos_, "map has a key without a value");
      }
      STRATA_ASSIGN_OR_RETURN(Value value, DecodeOne(depth));
      entries.emplace_back(std::move(element), std::move(value));
    }
    switch (tag) {
      case kTagList:
        return Value(std::move(elements));
      case kTagSet:
        return Value::SetOf(std::move(elements));
      default:
        return Value::MapOf(std::move(entries));
    }
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

void AppendKey(const Value& v, std::string* out) {
  out->reserve(out->size() + KeySize(v));
  PutKey(v, out);
}

std::string EncodeKey(const Value& v) {
  std::string out;
  AppendKey(v, &out);
  return out;
}

Result<Value> DecodeKeyPrefix(std::string_view* in) {
  KeyDecoder decoder(*in);
  STRATA_ASSIGN_OR_RETURN(Value v, decoder.DecodeOne(0));
  in->remove_prefix(decoder.position());
  return v;
}

Result<Value> DecodeKey(std::string_view in) {
  KeyDecoder decoder(in);
  STRATA_ASSIGN_OR_RETURN(Value v, decoder.DecodeOne(0));
  if (!decoder.AtEnd()) {
    return Status::Corruption("key encoding at offset " + std::to_string(decoder.position()) +
                              ": " + std::to_string(in.size() - decoder.position()) +
                              " trailing bytes after the value");
  }
  return v;
}

Result<std::vector<Value>> DecodeKeyTuple(std::string_view in) {
  std::vector<Value> parts;
  KeyDecoder decoder(in);
  while (!decoder.AtEnd()) {
    STRATA_ASSIGN_OR_RETURN(Value part, decoder.DecodeOne(0));
    parts.push_back(std::move(part));
  }
  return parts;
}

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty() && static_cast<uint8_t>(end.back()) == 0xFF) end.pop_back();
  if (!end.empty()) end.back() = static_cast<char>(static_cast<uint8_t>(end.back()) + 1);
  return end;
}

uint64_t HashKeyBytes(std::string_view key_encoding) {
  return XXH3_64bits(key_encoding.data(), key_encoding.size());
}

uint64_t HashKey(const Value& v) {
  // Encodes into the thread's reused buffer instead of a new string per call. A buffer
  // that grew past 64 KiB for one large key is released rather than kept for good.
  constexpr size_t kMaxRetainedBytes = size_t{64} << 10;
  thread_local std::string encoding;
  encoding.clear();
  AppendKey(v, &encoding);
  uint64_t hash = HashKeyBytes(encoding);
  if (encoding.capacity() > kMaxRetainedBytes) std::string().swap(encoding);
  return hash;
}

}  // namespace strata
