// The order-preserving key encoding: exact bytes, order == Value order (property tests
// over random values), round trips, composite keys, PrefixEnd ranges, the hash, and
// decoding of hostile bytes.
#include "strata/key_codec.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "strata/testing/test_seed.h"
#include "testing/edge_values.h"
#include "testing/mutate_bytes.h"
#include "testing/random_value.h"

namespace strata {
namespace {

using namespace std::string_literals;
using ::strata::testing::AscendingEdgeValues;
using ::strata::testing::MutateBytes;
using ::strata::testing::RandomValueGenerator;

// STRATA_TEST_SEED replaces this base seed; each test derives its own from it.
const uint64_t kSeed = strata::testing::TestSeed(20240611);
constexpr int kCases = 10000;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    if (!out.empty()) out.push_back(' ');
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xF]);
  }
  return out;
}

std::string Unhex(std::string_view hex) {
  std::string out;
  int nibbles = 0;
  unsigned value = 0;
  for (char c : hex) {
    if (c == ' ') continue;
    value = value * 16 + static_cast<unsigned>(
                             std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : c - 'a' + 10);
    if (++nibbles == 2) {
      out.push_back(static_cast<char>(value));
      nibbles = 0;
      value = 0;
    }
  }
  return out;
}

int Sign(int c) { return (c > 0) - (c < 0); }
int Sign(std::strong_ordering c) { return c < 0 ? -1 : (c > 0 ? 1 : 0); }

// Describes a value for failure messages: its text form and its key encoding.
std::string Describe(const Value& v) { return v.ToString() + " [" + Hex(EncodeKey(v)) + "]"; }

std::string CaseLabel(int i) {
  return "seed " + std::to_string(kSeed) + ", case " + std::to_string(i);
}

Value Nest(Value inner, int levels) {
  for (int i = 0; i < levels; ++i) inner = Value::ListOf({std::move(inner)});
  return inner;
}

// A value close to `v` in the order: same type, one small change at some depth.
Value Nearby(const Value& v, RandomValueGenerator& gen) {
  auto pick = [&](size_t n) {
    return static_cast<size_t>(gen.Uniform(0, static_cast<int64_t>(n) - 1));
  };
  switch (v.type()) {
    case Type::kNil:
    case Type::kBool:
      return gen.Uniform(0, 2) == 0 ? Value() : Value(gen.Uniform(0, 1) == 1);
    case Type::kInt:
      return Value(static_cast<int64_t>(static_cast<uint64_t>(v.as_int()) +
                                        static_cast<uint64_t>(gen.Uniform(-2, 2))));
    case Type::kDouble: {
      double d = v.as_double();
      switch (gen.Uniform(0, 2)) {
        case 0:
          return Value(std::nextafter(d, kInf));
        case 1:
          return Value(std::nextafter(d, -kInf));
        default:
          return Value(-d);
      }
    }
    case Type::kString:
    case Type::kBytes: {
      std::string s = v.is_string() ? v.as_string() : v.as_bytes();
      const char kAwkward[] = {'\0', '\x01', '\xff', 'a'};
      if (!s.empty() && gen.Uniform(0, 2) == 0) {
        s.resize(pick(s.size()));
      } else if (!s.empty() && gen.Uniform(0, 1) == 0) {
        s[pick(s.size())] = kAwkward[pick(4)];
      } else {
        s.push_back(kAwkward[pick(4)]);
      }
      return v.is_string() ? Value(std::move(s)) : Value::BytesOf(s);
    }
    case Type::kList: {
      Value::List l = v.as_list();
      if (!l.empty() && gen.Uniform(0, 2) == 0) {
        l.pop_back();
      } else if (!l.empty() && gen.Uniform(0, 1) == 0) {
        size_t i = pick(l.size());
        l[i] = Nearby(l[i], gen);
      } else {
        l.push_back(gen.Scalar());
      }
      return Value(std::move(l));
    }
    case Type::kMap: {
      Value m = v;
      if (m.size() > 0 && gen.Uniform(0, 2) == 0) {
        const auto& entry = m.as_map()[pick(m.size())];
        Value key = entry.first;
        Value changed = Nearby(entry.second, gen);
        m.Insert(std::move(key), std::move(changed));
      } else if (m.size() > 0 && gen.Uniform(0, 1) == 0) {
        Value key = m.as_map()[pick(m.size())].first;
        m.Erase(key);
      } else {
        Value key = m.size() > 0 ? Nearby(m.as_map()[pick(m.size())].first, gen) : gen.Scalar();
        m.Insert(std::move(key), gen.Scalar());
      }
      return m;
    }
    case Type::kSet: {
      Value s = v;
      if (s.size() > 0 && gen.Uniform(0, 1) == 0) {
        Value element = s.as_set()[pick(s.size())];
        s.Remove(element);
      } else {
        s.Add(s.size() > 0 ? Nearby(s.as_set()[pick(s.size())], gen) : gen.Scalar());
      }
      return s;
    }
  }
  return v;
}

// --- exact bytes -------------------------------------------------------------------

struct EncodingCase {
  const char* name;
  Value value;
  const char* hex;
};

std::vector<EncodingCase> EncodingCases() {
  return {
      {"nil", Value(), "10"},
      {"false", Value(false), "20"},
      {"true", Value(true), "21"},
      {"int 0", Value(0), "30 80 00 00 00 00 00 00 00"},
      {"int 1", Value(1), "30 80 00 00 00 00 00 00 01"},
      {"int -1", Value(-1), "30 7f ff ff ff ff ff ff ff"},
      {"int min", Value(std::numeric_limits<int64_t>::min()), "30 00 00 00 00 00 00 00 00"},
      {"int max", Value(std::numeric_limits<int64_t>::max()), "30 ff ff ff ff ff ff ff ff"},
      {"double 1.0", Value(1.0), "40 bf f0 00 00 00 00 00 00"},
      {"double -1.0", Value(-1.0), "40 40 0f ff ff ff ff ff ff"},
      {"double 0.0", Value(0.0), "40 80 00 00 00 00 00 00 00"},
      {"double -0.0", Value(-0.0), "40 7f ff ff ff ff ff ff ff"},
      {"double inf", Value(kInf), "40 ff f0 00 00 00 00 00 00"},
      {"double -inf", Value(-kInf), "40 00 0f ff ff ff ff ff ff"},
      {"double NaN", Value(kNaN), "40 ff f8 00 00 00 00 00 00"},
      {"double -NaN", Value(-kNaN), "40 00 07 ff ff ff ff ff ff"},
      {"empty string", Value(""), "50 00"},
      {"string a\\0b", Value("a\0b"s), "50 61 00 ff 62 00"},
      {"string \\xff", Value("\xff"), "50 ff 00"},
      {"string \\0\\0", Value("\0\0"s), "50 00 ff 00 ff 00"},
      {"empty bytes", Value::BytesOf(""), "60 00"},
      {"bytes \\0", Value::BytesOf("\0"s), "60 00 ff 00"},
      {"empty list", Value::ListOf({}), "70 00"},
      {"list [\"a\", 1]", Value::ListOf({"a", 1}), "70 50 61 00 30 80 00 00 00 00 00 00 01 00"},
      {"map {\"a\": 1, nil: true}", Value::MapOf({{"a", 1}, {Value(), true}}),
       "80 10 21 50 61 00 30 80 00 00 00 00 00 00 01 00"},
      {"empty map", Value::EmptyMap(), "80 00"},
      {"set {2, false}", Value::SetOf({2, false}), "90 20 30 80 00 00 00 00 00 00 02 00"},
      {"empty set", Value::EmptySet(), "90 00"},
      {"nested", Value::ListOf({Value::ListOf({}), Value::EmptySet()}), "70 70 00 90 00 00"},
  };
}

TEST(KeyCodecTest, EncodesEachTypeToTheDocumentedBytes) {
  for (const EncodingCase& c : EncodingCases()) {
    EXPECT_EQ(Hex(EncodeKey(c.value)), c.hex) << c.name;
    Result<Value> decoded = DecodeKey(Unhex(c.hex));
    ASSERT_TRUE(decoded.ok()) << c.name << ": " << decoded.status().ToString();
    EXPECT_TRUE(*decoded == c.value) << c.name << ": decoded " << decoded->ToString();
  }
}

TEST(KeyCodecTest, AppendKeyAppendsToExistingBytes) {
  std::string out = "prefix";
  AppendKey(Value(1), &out);
  AppendKey(Value("x"), &out);
  EXPECT_EQ(out, "prefix" + EncodeKey(Value(1)) + EncodeKey(Value("x")));
}

TEST(KeyCodecTest, NoEncodingStartsWith00OrFF) {
  RandomValueGenerator gen(kSeed);
  for (int i = 0; i < 1000; ++i) {
    std::string key = EncodeKey(gen.Any());
    ASSERT_FALSE(key.empty());
    EXPECT_NE(key.front(), '\0') << CaseLabel(i);
    EXPECT_NE(key.front(), '\xff') << CaseLabel(i);
  }
}

// --- order ---------------------------------------------------------------------

void ExpectSameOrder(const Value& a, const Value& b, const std::string& label) {
  std::string ea = EncodeKey(a);
  std::string eb = EncodeKey(b);
  // std::string compares bytes as unsigned char, like memcmp with a shorter prefix first.
  ASSERT_EQ(Sign(ea.compare(eb)), Sign(Value::Compare(a, b)))
      << label << "\n a = " << Describe(a) << "\n b = " << Describe(b);
}

TEST(KeyCodecPropertyTest, ByteOrderEqualsValueOrderForRandomPairs) {
  RandomValueGenerator gen(kSeed);
  for (int i = 0; i < kCases; ++i) {
    Value a = gen.Any();
    Value b = gen.Uniform(0, 3) == 0 ? a : gen.Any();
    ExpectSameOrder(a, b, CaseLabel(i));
  }
}

TEST(KeyCodecPropertyTest, ByteOrderEqualsValueOrderForCloseValues) {
  RandomValueGenerator gen(kSeed + 1);
  for (int i = 0; i < kCases; ++i) {
    Value a = gen.Any();
    Value b = Nearby(a, gen);
    ExpectSameOrder(a, b, "seed " + std::to_string(kSeed + 1) + ", case " + std::to_string(i));
  }
}

TEST(KeyCodecPropertyTest, ByteOrderEqualsValueOrderForCloseScalars) {
  RandomValueGenerator gen(kSeed + 2);
  for (int i = 0; i < kCases; ++i) {
    Value a = gen.Scalar();
    Value b = Nearby(a, gen);
    ExpectSameOrder(a, b, "seed " + std::to_string(kSeed + 2) + ", case " + std::to_string(i));
  }
}

TEST(KeyCodecTest, SortedEncodingsMatchTheValueOrderOfEdgeCases) {
  std::vector<Value> values = AscendingEdgeValues();
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t j = 0; j < values.size(); ++j) {
      ASSERT_EQ(Value::Compare(values[i], values[j]), i <=> j)
          << "table not ascending at " << i << ", " << j;
      ExpectSameOrder(values[i], values[j],
                      "items " + std::to_string(i) + ", " + std::to_string(j));
    }
  }
}

// --- round trips ----------------------------------------------------------------

TEST(KeyCodecPropertyTest, DecodeInvertsEncode) {
  RandomValueGenerator gen(kSeed + 3);
  for (int i = 0; i < kCases; ++i) {
    Value v = gen.Any(5);
    std::string key = EncodeKey(v);
    Result<Value> decoded = DecodeKey(key);
    ASSERT_TRUE(decoded.ok()) << "seed " << kSeed + 3 << ", case " << i << ": "
                              << decoded.status().ToString() << "\n v = " << Describe(v);
    ASSERT_TRUE(*decoded == v) << "seed " << kSeed + 3 << ", case " << i << "\n v = " << Describe(v)
                               << "\n decoded = " << Describe(*decoded);
  }
}

TEST(KeyCodecTest, DecodeKeyPrefixConsumesExactlyOneValue) {
  std::string key = EncodeKey(Value("a\0"s)) + EncodeKey(Value(7));
  std::string_view in = key;
  Result<Value> first = DecodeKeyPrefix(&in);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(*first, Value("a\0"s));
  EXPECT_EQ(in, EncodeKey(Value(7)));
  Result<Value> second = DecodeKeyPrefix(&in);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(*second, Value(7));
  EXPECT_TRUE(in.empty());
}

TEST(KeyCodecTest, DecodeKeyPrefixLeavesInputUntouchedOnError) {
  std::string key = Unhex("30 80 00");
  std::string_view in = key;
  EXPECT_FALSE(DecodeKeyPrefix(&in).ok());
  EXPECT_EQ(in.size(), key.size());
}

// --- composite keys and ranges ----------------------------------------------------

std::vector<Value> RandomTuple(RandomValueGenerator& gen) {
  std::vector<Value> parts;
  for (int n = static_cast<int>(gen.Uniform(1, 3)); n > 0; --n) {
    parts.push_back(gen.Uniform(0, 1) == 0 ? gen.Scalar() : gen.Any(2));
  }
  return parts;
}

std::string EncodeTuple(const std::vector<Value>& parts) {
  std::string key;
  for (const Value& p : parts) AppendKey(p, &key);
  return key;
}

std::string DescribeTuple(const std::vector<Value>& parts) {
  std::string out = "(";
  for (const Value& p : parts) out += Describe(p) + ", ";
  return out + ")";
}

TEST(KeyCodecPropertyTest, ConcatenatedKeysSortLikeTuples) {
  RandomValueGenerator gen(kSeed + 4);
  for (int i = 0; i < kCases; ++i) {
    std::vector<Value> a = RandomTuple(gen);
    std::vector<Value> b = RandomTuple(gen);
    if (gen.Uniform(0, 1) == 0) {  // share a prefix, so later parts decide
      for (size_t j = 0; j + 1 < std::min(a.size(), b.size()); ++j) b[j] = a[j];
    }
    std::strong_ordering expected =
        std::lexicographical_compare_three_way(a.begin(), a.end(), b.begin(), b.end());
    std::string ea = EncodeTuple(a);
    std::string eb = EncodeTuple(b);
    ASSERT_EQ(Sign(ea.compare(eb)), Sign(expected))
        << "seed " << kSeed + 4 << ", case " << i << "\n a = " << DescribeTuple(a)
        << "\n b = " << DescribeTuple(b);
    Result<std::vector<Value>> parts = DecodeKeyTuple(ea);
    ASSERT_TRUE(parts.ok()) << parts.status().ToString();
    ASSERT_TRUE(*parts == a) << "seed " << kSeed + 4 << ", case " << i
                             << "\n a = " << DescribeTuple(a)
                             << "\n decoded = " << DescribeTuple(*parts);
  }
}

TEST(KeyCodecTest, DecodeKeyTupleOfNothingIsEmpty) {
  Result<std::vector<Value>> parts = DecodeKeyTuple("");
  ASSERT_TRUE(parts.ok());
  EXPECT_TRUE(parts->empty());
}

// PrefixEnd is about bytes: [p, PrefixEnd(p)) holds exactly the strings that start with p.
TEST(KeyCodecPropertyTest, PrefixEndRangeHoldsExactlyTheByteStringsStartingWithThePrefix) {
  RandomValueGenerator gen(kSeed + 5);
  for (int i = 0; i < kCases; ++i) {
    std::string prefix = gen.String();
    std::string end = PrefixEnd(prefix);
    std::string key = gen.Uniform(0, 1) == 0 ? prefix + gen.String() : gen.String();
    bool in_range = prefix <= key && (end.empty() || key < end);
    ASSERT_EQ(in_range, key.starts_with(prefix))
        << "seed " << kSeed + 5 << ", case " << i << "\n prefix = " << Hex(prefix)
        << "\n key = " << Hex(key) << "\n end = " << Hex(end);
  }
}

// The keys whose leading parts are the tuple t are exactly [enc(t), enc(t) + 0xFF): every
// part starts with a tag below 0xFF, and 0xFF after a complete string or bytes encoding
// can only continue that string ("d" is 50 64 00, "d\0" is 50 64 00 ff 00).
TEST(KeyCodecPropertyTest, TupleRangeEndingInFFHoldsExactlyTheKeysWithThatLeadingPart) {
  RandomValueGenerator gen(kSeed + 6);
  for (int i = 0; i < kCases; ++i) {
    Value first = gen.Any(2);
    Value other = gen.Uniform(0, 2) == 0 ? first : Nearby(first, gen);
    std::string begin = EncodeKey(first);
    std::string end = begin + "\xff";
    std::string key = EncodeKey(other);
    if (gen.Uniform(0, 3) != 0) AppendKey(gen.Any(2), &key);
    bool in_range = begin <= key && key < end;
    ASSERT_EQ(in_range, other == first)
        << "seed " << kSeed + 6 << ", case " << i << "\n first = " << Describe(first)
        << "\n other = " << Describe(other) << "\n key = " << Hex(key);
    if (!first.is_string() && !first.is_bytes()) {
      // Only an encoding that ends a string can be extended by a longer string, so for
      // every other type the PrefixEnd range is just as exact.
      std::string prefix_end = PrefixEnd(begin);
      ASSERT_EQ(begin <= key && (prefix_end.empty() || key < prefix_end), other == first)
          << "seed " << kSeed + 6 << ", case " << i << "\n first = " << Describe(first)
          << "\n other = " << Describe(other);
    }
  }
}

TEST(KeyCodecTest, PrefixEndOfAStringKeyAlsoCoversLongerStringsStartingWithNul) {
  std::string d = EncodeKey(Value("d"));
  std::string d_nul_child = EncodeKey(Value("d\0"s)) + EncodeKey(Value(1));
  EXPECT_TRUE(d_nul_child.starts_with(d));
  EXPECT_LT(d_nul_child, PrefixEnd(d));  // the byte range includes ("d\0", 1) ...
  EXPECT_GT(d_nul_child, d + "\xff");    // ... the tuple range does not
  EXPECT_LT(d + EncodeKey(Value::SetOf({"\xff"})), d + "\xff");
}

TEST(KeyCodecTest, PrefixEndIncrementsTheLastByteBelowFF) {
  struct Case {
    std::string prefix;
    std::string end;
  } cases[] = {
      {"", ""},           {"\xff", ""},
      {"\xff\xff", ""},   {"a", "b"},
      {"ab", "ac"},       {"a\xff", "b"},
      {"a\xff\xff", "b"}, {"\x01\xff\x00"s, "\x01\xff\x01"},
      {"\xfe", "\xff"},   {"\x50\x61\x00"s, "\x50\x61\x01"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Hex(PrefixEnd(c.prefix)), Hex(c.end)) << "prefix " << Hex(c.prefix);
  }
}

// --- hash -------------------------------------------------------------------------

TEST(KeyCodecTest, HashIsXxh3OfTheKeyEncodingAndNeverChanges) {
  // XXH3-64 with seed 0 of the empty input, from the xxHash reference.
  EXPECT_EQ(HashKeyBytes(""), 0x2D06800538D394C2ULL);
  // Pinned: partitioning depends on these; a change moves every key to another partition.
  EXPECT_EQ(HashKey(Value(1)), 0x407bdf61ef230794ULL);
  EXPECT_EQ(HashKey(Value("user-42")), 0xa822d0477cdfd172ULL);
  EXPECT_EQ(HashKey(Value::ListOf({"a", 1})), 0xf6c808ce83ef34a5ULL);
  RandomValueGenerator gen(kSeed + 9);
  for (int i = 0; i < 100; ++i) {
    Value v = gen.Any();
    EXPECT_EQ(HashKey(v), HashKeyBytes(EncodeKey(v))) << CaseLabel(i);
  }
  // HashKey encodes into a reused per-thread buffer, released after a large key.
  Value large(std::string(1 << 20, 'k'));
  EXPECT_EQ(HashKey(large), HashKeyBytes(EncodeKey(large)));
  EXPECT_EQ(HashKey(Value(1)), 0x407bdf61ef230794ULL);
}

// --- limits and hostile input --------------------------------------------------------

TEST(KeyCodecTest, NestingUpToTheLimitDecodesAndOneMoreIsRejected) {
  for (Value leaf : {Value(1), Value::EmptySet()}) {
    int leaf_depth = leaf.is_set() ? 1 : 0;
    Value at_limit = Nest(leaf, kMaxKeyDepth - leaf_depth);
    Result<Value> ok = DecodeKey(EncodeKey(at_limit));
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
    EXPECT_EQ(*ok, at_limit);

    Result<Value> too_deep = DecodeKey(EncodeKey(Nest(leaf, kMaxKeyDepth - leaf_depth + 1)));
    ASSERT_FALSE(too_deep.ok());
    EXPECT_EQ(too_deep.status().code(), StatusCode::kCorruption);
    EXPECT_NE(too_deep.status().message().find("deeper than 64"), std::string::npos)
        << too_deep.status().message();
  }
  // Depth counts through map keys as well as values.
  Value deep_key = Value(1);
  for (int i = 0; i < kMaxKeyDepth; ++i) deep_key = Value::MapOf({{deep_key, i}});
  EXPECT_TRUE(DecodeKey(EncodeKey(deep_key)).ok());
  EXPECT_FALSE(DecodeKey(EncodeKey(Value::SetOf({deep_key}))).ok());
}

struct CorruptCase {
  const char* name;
  const char* hex;
  const char* message;  // expected in the error message
};

TEST(KeyCodecTest, MalformedKeysAreCorruptionNamingOffsetAndProblem) {
  CorruptCase cases[] = {
      {"empty", "", "offset 0: truncated"},
      {"unknown tag 00", "00", "offset 0: unknown type tag 0x00"},
      {"unknown tag ff", "ff", "offset 0: unknown type tag 0xff"},
      {"unknown tag 22", "22", "unknown type tag 0x22"},
      {"unknown tag in list", "70 10 11 00", "offset 2: unknown type tag 0x11"},
      {"short int", "30 80 00", "offset 0: truncated int"},
      {"short double", "40 80", "truncated double"},
      {"string without terminator", "50 61 62", "truncated string"},
      {"string ends in escape", "50 61 00 ff", "truncated string"},
      {"bytes without terminator", "60", "truncated bytes"},
      {"list without end", "70 10", "offset 0: truncated container"},
      {"map key without value", "80 10 00", "key without a value"},
      {"map keys out of order", "80 21 10 20 10 00", "offset 3: non-canonical map"},
      {"map duplicate key", "80 10 10 10 21 00", "non-canonical map"},
      {"set out of order", "90 21 20 00", "offset 2: non-canonical set"},
      {"set duplicate", "90 50 00 50 00 00", "non-canonical set"},
      {"signalling NaN", "40 ff f0 00 00 00 00 00 01", "non-canonical NaN"},
      {"NaN with payload", "40 ff ff ff ff ff ff ff ff", "non-canonical NaN"},
      {"negative NaN with payload", "40 00 00 00 00 00 00 00 00", "non-canonical NaN"},
      {"trailing bytes", "10 10", "offset 1: 1 trailing bytes"},
  };
  for (const CorruptCase& c : cases) {
    Result<Value> r = DecodeKey(Unhex(c.hex));
    ASSERT_FALSE(r.ok()) << c.name << " decoded to " << r->ToString();
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << c.name;
    EXPECT_NE(r.status().message().find(c.message), std::string::npos)
        << c.name << ": " << r.status().message();
  }
}

TEST(KeyCodecPropertyTest, MutatedEncodingsDecodeToAnErrorOrTheirCanonicalValue) {
  RandomValueGenerator gen(kSeed + 7);
  int decoded = 0;
  for (int i = 0; i < kCases; ++i) {
    std::string key = MutateBytes(EncodeKey(gen.Any()), gen);
    Result<Value> r = DecodeKey(key);
    if (!r.ok()) {
      ASSERT_EQ(r.status().code(), StatusCode::kCorruption)
          << "seed " << kSeed + 7 << ", case " << i;
      continue;
    }
    ++decoded;
    // Every accepted key is canonical: re-encoding gives back the same bytes.
    ASSERT_EQ(Hex(EncodeKey(*r)), Hex(key)) << "seed " << kSeed + 7 << ", case " << i;
  }
  // Some mutations (e.g. a flipped int bit) stay valid; most do not.
  EXPECT_GT(decoded, 0);
  EXPECT_LT(decoded, kCases);
}

TEST(KeyCodecPropertyTest, RandomBytesNeverCrashTheDecoder) {
  RandomValueGenerator gen(kSeed + 8);
  const uint8_t kTags[] = {0x00, 0x10, 0x20, 0x21, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xff};
  for (int i = 0; i < kCases; ++i) {
    std::string bytes(static_cast<size_t>(gen.Uniform(0, 40)), '\0');
    for (char& c : bytes) {
      c = static_cast<char>(gen.Uniform(0, 1) == 0 ? kTags[gen.Uniform(0, 11)]
                                                   : gen.Uniform(0, 255));
    }
    Result<std::vector<Value>> r = DecodeKeyTuple(bytes);
    if (r.ok()) {
      ASSERT_EQ(Hex(EncodeTuple(*r)), Hex(bytes)) << "seed " << kSeed + 8 << ", case " << i;
    } else {
      ASSERT_EQ(r.status().code(), StatusCode::kCorruption);
    }
  }
}

TEST(KeyCodecTest, DeeplyNestedHostileInputIsRejectedWithoutRecursingFurther) {
  std::string hostile(100000, static_cast<char>(0x70));  // 100,000 unterminated lists
  Result<Value> r = DecodeKey(hostile);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("offset 64: nesting deeper than 64"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace strata
