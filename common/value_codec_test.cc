// The FlexBuffers value encoding: the documented layout ($set/$map conventions), round
// trips of random values, buffers from other writers, depth limits and hostile buffers.
#include "strata/value_codec.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <flatbuffers/flexbuffers.h>

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
const uint64_t kSeed = strata::testing::TestSeed(977);
constexpr int kCases = 10000;

std::string Label(uint64_t seed, int i) {
  return "seed " + std::to_string(seed) + ", case " + std::to_string(i);
}

std::string AsString(const std::vector<uint8_t>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

Value Nest(Value inner, int levels) {
  for (int i = 0; i < levels; ++i) inner = Value::ListOf({std::move(inner)});
  return inner;
}

// Builds a buffer the way another language's FlexBuffers writer would.
template <typename F>
std::vector<uint8_t> Build(F f) {
  flexbuffers::Builder b;
  f(b);
  b.Finish();
  return b.GetBuffer();
}

Result<Value> DecodeBytes(const std::vector<uint8_t>& bytes) {
  return DecodeValue(bytes.data(), bytes.size());
}

void ExpectDecodesTo(const std::vector<uint8_t>& bytes, const Value& expected, const char* what) {
  Result<Value> r = DecodeBytes(bytes);
  ASSERT_TRUE(r.ok()) << what << ": " << r.status().ToString();
  EXPECT_TRUE(*r == expected) << what << ": decoded " << r->ToString() << ", expected "
                              << expected.ToString();
}

void ExpectCorrupt(const std::vector<uint8_t>& bytes, const std::string& message,
                   const char* what) {
  Result<Value> r = DecodeBytes(bytes);
  ASSERT_FALSE(r.ok()) << what << " decoded to " << r->ToString();
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption) << what;
  EXPECT_NE(r.status().message().find(message), std::string::npos)
      << what << ": " << r.status().message();
}

// --- layout ---------------------------------------------------------------------------

TEST(ValueCodecTest, ScalarsUseTheNaturalFlexBuffersTypes) {
  struct Case {
    Value value;
    flexbuffers::Type type;
  } cases[] = {
      {Value(), flexbuffers::FBT_NULL},
      {Value(true), flexbuffers::FBT_BOOL},
      {Value(-5), flexbuffers::FBT_INT},
      {Value(std::numeric_limits<int64_t>::min()), flexbuffers::FBT_INT},
      {Value(0.1), flexbuffers::FBT_FLOAT},
      {Value("text"), flexbuffers::FBT_STRING},
      {Value::BytesOf("\0\xff"s), flexbuffers::FBT_BLOB},
      {Value::ListOf({1, "a"}), flexbuffers::FBT_VECTOR},
      {Value::EmptyMap(), flexbuffers::FBT_MAP},
  };
  for (const Case& c : cases) {
    std::vector<uint8_t> bytes = EncodeValue(c.value);
    EXPECT_EQ(flexbuffers::GetRoot(bytes).GetType(), c.type) << c.value.ToString();
  }
  std::vector<uint8_t> bytes = EncodeValue(Value(0.1));
  EXPECT_EQ(flexbuffers::GetRoot(bytes).AsDouble(), 0.1);
  bytes = EncodeValue(Value("a\0b"s));
  EXPECT_EQ(flexbuffers::GetRoot(bytes).AsString().str(), "a\0b"s);
}

TEST(ValueCodecTest, MapWithStringKeysIsAPlainFlexBuffersMap) {
  Value v = Value::MapOf({{"name", "ada"}, {"age", 36}, {"", Value()}});
  std::vector<uint8_t> bytes = EncodeValue(v);
  flexbuffers::Map m = flexbuffers::GetRoot(bytes).AsMap();
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m["name"].AsString().str(), "ada");
  EXPECT_EQ(m["age"].AsInt64(), 36);
  EXPECT_TRUE(m[""].IsNull());
}

// A map that is not plain, and a set, become a one-key map holding a vector.
void ExpectTagged(const Value& v, const char* tag, const std::vector<Value>& flat) {
  std::vector<uint8_t> bytes = EncodeValue(v);
  flexbuffers::Reference root = flexbuffers::GetRoot(bytes);
  ASSERT_TRUE(root.IsMap()) << v.ToString();
  flexbuffers::Map m = root.AsMap();
  ASSERT_EQ(m.size(), 1u) << v.ToString();
  EXPECT_STREQ(m.Keys()[0].AsKey(), tag) << v.ToString();
  ASSERT_EQ(m.Values()[0].GetType(), flexbuffers::FBT_VECTOR) << v.ToString();
  flexbuffers::Vector elements = m.Values()[0].AsVector();
  ASSERT_EQ(elements.size(), flat.size()) << v.ToString();
  // Check the elements the way another language's reader sees them.
  for (size_t i = 0; i < flat.size(); ++i) {
    flexbuffers::Reference e = elements[i];
    switch (flat[i].type()) {
      case Type::kInt:
        EXPECT_EQ(e.AsInt64(), flat[i].as_int()) << v.ToString() << " #" << i;
        break;
      case Type::kString:
        EXPECT_EQ(e.AsString().str(), flat[i].as_string()) << v.ToString() << " #" << i;
        break;
      case Type::kBytes:
        EXPECT_TRUE(e.IsBlob()) << v.ToString() << " #" << i;
        break;
      case Type::kList:
        EXPECT_TRUE(e.IsUntypedVector()) << v.ToString() << " #" << i;
        break;
      case Type::kSet:
        EXPECT_TRUE(e.IsMap()) << v.ToString() << " #" << i;
        break;
      default:
        ADD_FAILURE() << "unexpected element type in the test table";
        break;
    }
  }
}

TEST(ValueCodecTest, SetsAndMapsWithOtherKeysUseTheTaggedForms) {
  ExpectTagged(Value::SetOf({3, 1, 2}), "$set", {1, 2, 3});
  ExpectTagged(Value::EmptySet(), "$set", {});
  ExpectTagged(Value::MapOf({{2, "b"}, {1, "a"}}), "$map", {1, "a", 2, "b"});
  ExpectTagged(Value::MapOf({{"x", 1}, {2, 2}}), "$map", {2, 2, "x", 1});
  ExpectTagged(Value::MapOf({{"a\0b"s, 1}}), "$map", {"a\0b"s, 1});  // NUL in a key
  ExpectTagged(Value::MapOf({{Value::BytesOf("k"), 1}}), "$map", {Value::BytesOf("k"), 1});
}

TEST(ValueCodecTest, UserMapsThatLookLikeTaggedFormsAreEscaped) {
  // Exactly one key "$set" or "$map" would read back as a set or map: use $map instead.
  ExpectTagged(Value::MapOf({{"$set", Value::ListOf({1})}}), "$map", {"$set", Value::ListOf({1})});
  ExpectTagged(Value::MapOf({{"$map", 1}}), "$map", {"$map", 1});
  // With another key they are ordinary maps.
  Value two_keys = Value::MapOf({{"$set", 1}, {"x", 2}});
  EXPECT_EQ(flexbuffers::GetRoot(EncodeValue(two_keys)).AsMap().size(), 2u);
  // Other $-names are not reserved in the value encoding.
  EXPECT_EQ(flexbuffers::GetRoot(EncodeValue(Value::MapOf({{"$bytes", 1}}))).AsMap().size(), 1u);
  for (const Value& v : {Value::MapOf({{"$set", Value::ListOf({1})}}), Value::MapOf({{"$map", 1}}),
                         two_keys, Value::MapOf({{"$set", Value::EmptySet()}})}) {
    ExpectDecodesTo(EncodeValue(v), v, "escaped user map");
  }
}

TEST(ValueCodecTest, EncodingIsDeterministic) {
  RandomValueGenerator gen(kSeed);
  for (int i = 0; i < 200; ++i) {
    Value v = gen.Any();
    Value copy = v;
    EXPECT_EQ(EncodeValue(v), EncodeValue(copy)) << Label(kSeed, i);
    std::string appended = "xy";
    AppendValue(v, &appended);
    EXPECT_EQ(appended, "xy" + AsString(EncodeValue(v))) << Label(kSeed, i);
  }
}

// Encoding reuses one Builder per thread: a failed checked encode (which stops half-way)
// or a huge value (after which the builder is dropped) must not leak into the next call.
TEST(ValueCodecTest, EncodingIsUnaffectedByWhatTheThreadEncodedBefore) {
  Value small = Value::MapOf({{"a", 1}, {"b", Value::ListOf({"x", 2.5})}});
  const std::vector<uint8_t> expected = EncodeValue(small);
  EXPECT_FALSE(EncodeValueChecked(Nest(Value::MapOf({{"a", 1}}), kMaxValueDepth + 1)).ok());
  EXPECT_EQ(EncodeValue(small), expected);
  Value huge(std::string(3 << 20, 'h'));
  ExpectDecodesTo(EncodeValue(huge), huge, "3 MB string");
  EXPECT_EQ(EncodeValue(small), expected);
  std::string appended;
  AppendValue(small, &appended);
  EXPECT_EQ(appended, AsString(expected));
}

// --- round trips -------------------------------------------------------------------------

TEST(ValueCodecPropertyTest, DecodeInvertsEncode) {
  RandomValueGenerator gen(kSeed + 1);
  for (int i = 0; i < kCases; ++i) {
    Value v = gen.Any(5);
    std::vector<uint8_t> bytes = EncodeValue(v);
    Result<Value> decoded = DecodeBytes(bytes);
    ASSERT_TRUE(decoded.ok()) << Label(kSeed + 1, i) << ": " << decoded.status().ToString()
                              << "\n v = " << v.ToString();
    ASSERT_TRUE(*decoded == v) << Label(kSeed + 1, i) << "\n v = " << v.ToString()
                               << "\n decoded = " << decoded->ToString();
  }
}

TEST(ValueCodecTest, EdgeCasesRoundTrip) {
  Value cases[] = {
      Value(-0.0),
      Value(0.0),
      Value(std::numeric_limits<double>::quiet_NaN()),
      Value(-std::numeric_limits<double>::quiet_NaN()),
      Value(std::numeric_limits<double>::infinity()),
      Value(std::numeric_limits<double>::denorm_min()),
      Value(std::numeric_limits<int64_t>::min()),
      Value(std::numeric_limits<int64_t>::max()),
      Value(""),
      Value("\0"s),
      Value("\xff\0\xff"s),
      Value::BytesOf(""),
      Value::BytesOf("\0\0"s),
      Value::ListOf({}),
      Value::EmptyMap(),
      Value::EmptySet(),
      Value::MapOf({{"", ""}}),
      Value::MapOf({{"\xff", 1}, {"\x01", 2}}),
      Value::MapOf({{Value::EmptySet(), Value::EmptyMap()}}),
      Value::SetOf({Value::EmptySet(), Value::SetOf({Value()})}),
  };
  std::vector<Value> all(std::begin(cases), std::end(cases));
  for (Value& v : AscendingEdgeValues()) all.push_back(std::move(v));
  for (const Value& v : all) {
    ExpectDecodesTo(EncodeValue(v), v, v.ToString().c_str());
    Result<Value> d = DecodeBytes(EncodeValue(v));
    if (d.ok() && v.is_double()) {
      EXPECT_EQ(std::bit_cast<uint64_t>(d->as_double()), std::bit_cast<uint64_t>(v.as_double()))
          << "sign and NaN bits survive: " << v.ToString();
    }
  }
}

TEST(ValueCodecTest, DecodesFromAnUnalignedAddress) {
  Value v = Value::MapOf(
      {{"n", std::numeric_limits<int64_t>::max()}, {"d", 0.1}, {"l", Value::ListOf({1, 2.5})}});
  std::vector<uint8_t> bytes = EncodeValue(v);
  std::vector<uint8_t> shifted(bytes.size() + 1);
  std::memcpy(shifted.data() + 1, bytes.data(), bytes.size());
  Result<Value> r = DecodeValue(shifted.data() + 1, bytes.size());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(*r == v) << r->ToString();
}

// --- other writers ------------------------------------------------------------------------

TEST(ValueCodecTest, DecodesWhatOtherWritersProduce) {
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) { b.UInt(42); }), Value(42), "uint");
  ExpectDecodesTo(
      Build([](flexbuffers::Builder& b) { b.UInt(std::numeric_limits<int64_t>::max()); }),
      Value(std::numeric_limits<int64_t>::max()), "uint at INT64_MAX");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) { b.Float(1.5f); }), Value(1.5), "float32");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) { b.Float(0.1f); }),
                  Value(static_cast<double>(0.1f)), "float32 0.1");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) { b.IndirectInt(-7); }), Value(-7),
                  "indirect int");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) { b.IndirectUInt(7); }), Value(7),
                  "indirect uint");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) { b.IndirectFloat(2.5f); }), Value(2.5),
                  "indirect float");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) { b.IndirectDouble(0.1); }), Value(0.1),
                  "indirect double");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) {
                    b.Vector([&] {
                      b.Int(int64_t{1} << 40);  // forces 8-byte elements
                      b.Int(-1);
                      b.Key("key");  // a key used as a value reads as a string
                    });
                  }),
                  Value::ListOf({int64_t{1} << 40, -1, "key"}), "wide untyped vector with a key");

  const int64_t ints[] = {1, -2, 300};
  ExpectDecodesTo(Build([&](flexbuffers::Builder& b) { b.Vector(ints, 3); }),
                  Value::ListOf({1, -2, 300}), "typed int vector");
  const uint16_t uints[] = {1, 65535};
  ExpectDecodesTo(Build([&](flexbuffers::Builder& b) { b.Vector(uints, 2); }),
                  Value::ListOf({1, 65535}), "typed uint vector");
  const float floats[] = {0.5f, -2.0f};
  ExpectDecodesTo(Build([&](flexbuffers::Builder& b) { b.Vector(floats, 2); }),
                  Value::ListOf({0.5, -2.0}), "typed float32 vector");
  const bool bools[] = {true, false};
  ExpectDecodesTo(Build([&](flexbuffers::Builder& b) { b.Vector(bools, 2); }),
                  Value::ListOf({true, false}), "typed bool vector");
  const int32_t triple[] = {1, 2, 3};
  ExpectDecodesTo(Build([&](flexbuffers::Builder& b) { b.FixedTypedVector(triple, 3); }),
                  Value::ListOf({1, 2, 3}), "fixed typed vector");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) {
                    b.TypedVector([&] {
                      b.Key("x");
                      b.Key("y");
                    });
                  }),
                  Value::ListOf({"x", "y"}), "typed key vector");
  ExpectDecodesTo(Build([&](flexbuffers::Builder& b) {
                    b.Map([&] {
                      b.Vector("$set", ints, 3);  // a set as a typed vector
                    });
                  }),
                  Value::SetOf({1, -2, 300}), "$set holding a typed vector");
  ExpectDecodesTo(Build([&](flexbuffers::Builder& b) {
                    b.Map([&] {
                      b.Vector("$map", [&] {  // keys out of order: accepted and sorted
                        b.UInt(2);
                        b.String("two");
                        b.Float(1.0f);
                        b.String("one");
                      });
                    });
                  }),
                  Value::MapOf({{2, "two"}, {1.0, "one"}}), "$map with uint and float32 keys");
  ExpectDecodesTo(Build([](flexbuffers::Builder& b) {
                    b.Map([&] {
                      b.String("b", "B");
                      b.Int("a", 1);
                      b.Map("nested", [&] {});
                    });
                  }),
                  Value::MapOf({{"a", 1}, {"b", "B"}, {"nested", Value::EmptyMap()}}), "plain map");
}

TEST(ValueCodecTest, RejectsWhatNoValueCanRepresent) {
  ExpectCorrupt(Build([](flexbuffers::Builder& b) {
                  b.UInt(uint64_t{std::numeric_limits<int64_t>::max()} + 1);
                }),
                "uint 9223372036854775808 is out of the int64 range", "uint above INT64_MAX");
  ExpectCorrupt(Build([](flexbuffers::Builder& b) {
                  b.Map([&] {
                    b.Vector("$set", [&] {
                      b.Int(1);
                      b.Int(1);
                    });
                  });
                }),
                "duplicate \"$set\" element", "$set with a duplicate");
  ExpectCorrupt(Build([](flexbuffers::Builder& b) {
                  b.Map([&] {
                    b.Vector("$map", [&] {
                      b.Int(1);
                      b.Int(2);
                      b.Int(1);
                      b.Int(3);
                    });
                  });
                }),
                "duplicate \"$map\" key", "$map with a duplicate key");
  ExpectCorrupt(
      Build([](flexbuffers::Builder& b) { b.Map([&] { b.Vector("$map", [&] { b.Int(1); }); }); }),
      "\"$map\" vector has odd length 1", "$map of odd length");
  ExpectCorrupt(Build([](flexbuffers::Builder& b) { b.Map([&] { b.Int("$map", 1); }); }),
                "\"$map\" must hold a vector, found int", "$map holding an int");
  ExpectCorrupt(Build([](flexbuffers::Builder& b) { b.Map([&] { b.String("$set", "x"); }); }),
                "\"$set\" must hold a vector, found string", "$set holding a string");
  ExpectCorrupt(Build([](flexbuffers::Builder& b) { b.Map([&] { b.Map("$set", [&] {}); }); }),
                "\"$set\" must hold a vector, found map", "$set holding a map");
  ExpectCorrupt(Build([](flexbuffers::Builder& b) {
                  b.Map([&] {
                    b.Int("k", 1);
                    b.Int("k", 2);
                  });
                }),
                "duplicate map key", "plain map with a duplicate key");
}

// --- limits ----------------------------------------------------------------------------------

TEST(ValueCodecTest, NestingUpToTheLimitRoundTripsAndOneMoreIsRejected) {
  // Lists, and the tagged forms, which take two FlexBuffers levels per value level.
  std::vector<std::pair<const char*, Value (*)(Value)>> wrappers = {
      {"list", [](Value v) { return Value::ListOf({std::move(v)}); }},
      {"set", [](Value v) { return Value::SetOf({std::move(v)}); }},
      {"$map value",
       [](Value v) {
         return Value::MapOf({{1, std::move(v)}});
       }},
      {"$map key",
       [](Value v) {
         return Value::MapOf({{std::move(v), 1}});
       }},
      {"plain map",
       [](Value v) {
         return Value::MapOf({{"k", std::move(v)}});
       }},
  };
  for (const auto& [name, wrap] : wrappers) {
    Value v("leaf string");
    for (int i = 0; i < kMaxValueDepth; ++i) v = wrap(std::move(v));
    Result<std::vector<uint8_t>> checked = EncodeValueChecked(v);
    ASSERT_TRUE(checked.ok()) << name << ": " << checked.status().ToString();
    EXPECT_EQ(*checked, EncodeValue(v)) << name;
    ExpectDecodesTo(EncodeValue(v), v, name);

    Value too_deep = wrap(v);
    ExpectCorrupt(EncodeValue(too_deep), "nesting deeper than 64", name);
    Result<std::vector<uint8_t>> refused = EncodeValueChecked(too_deep);
    ASSERT_FALSE(refused.ok()) << name;
    EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(refused.status().message().find("deeper than 64"), std::string::npos)
        << refused.status().message();
  }
}

TEST(ValueCodecTest, BuffersNestedFarBeyondTheLimitAreRejected) {
  std::vector<uint8_t> bytes = EncodeValue(Nest(Value(1), 200));
  ExpectCorrupt(bytes, "nesting deeper than 64", "200 nested vectors");
}

// --- hostile buffers ----------------------------------------------------------------------------

TEST(ValueCodecTest, TruncatedAndTinyBuffersAreRejected) {
  ExpectCorrupt({}, "shorter than the 3-byte minimum", "empty");
  ExpectCorrupt({0x01, 0x01}, "shorter than the 3-byte minimum", "two bytes");
  EXPECT_FALSE(DecodeValue(std::string_view()).ok());
  Value original = Value::ListOf({"abc", 1, 2.5});
  std::vector<uint8_t> bytes = EncodeValue(original);
  int rejected = 0;
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n));
    Result<Value> r = DecodeBytes(prefix);
    // A prefix may by chance end in bytes that form a valid root (e.g. 00 01 is null).
    if (r.ok()) {
      EXPECT_TRUE(*r != original) << "prefix of " << n << " bytes";
    } else {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, static_cast<int>(bytes.size()) / 2);
}

TEST(ValueCodecTest, HandMadeHostileBuffersAreRejected) {
  // Root byte width that is not 1, 2, 4 or 8.
  ExpectCorrupt({0x00, 0x00, 0x03}, "root byte width 3 is not 1, 2, 4 or 8", "root width 3");
  // Root wider than the buffer.
  ExpectCorrupt({0x00, 0x00, 0x08}, "too short for a 8-byte root", "root width 8");
  // Root type beyond the last FlexBuffers type.
  ExpectCorrupt({0x00, 0xfc, 0x01}, "unsupported FlexBuffers type 63", "root type 63");
  // Root string whose offset points before the buffer.
  ExpectCorrupt({0x01, 0x61, 0x00, 0x09, 0x14, 0x01},
                "offset 9 at byte 3 points before the start of the buffer", "offset before start");
  // Root string whose length runs past the end ("huge length").
  ExpectCorrupt({0xff, 0x61, 0x00, 0x02, 0x14, 0x01}, "string at byte 1 of 255 bytes runs past",
                "string too long");
  // A string whose length leaves no room for its 0x00 terminator.
  ExpectCorrupt({0x05, 0x61, 0x62, 0x02, 0x14, 0x01}, "string at byte 1 of 5 bytes runs past",
                "string without room for its terminator");
  // Blob length past the end, and a blob size prefix before the start of the buffer.
  ExpectCorrupt({0x09, 0x61, 0x01, 0x64, 0x01}, "blob at byte 1 of 9 bytes runs past",
                "blob too long");
  ExpectCorrupt({0x61, 0x01, 0x64, 0x01}, "blob at byte 0 would start before the buffer",
                "blob size before the start");
  // Indirect int whose 8 bytes run past the end.
  ExpectCorrupt({0x01, 0x00, 0x01, 0x1b, 0x01}, "indirect int at byte 1 runs past the end",
                "indirect int too long");
  // Vector claiming 2^32-1 elements of 4 bytes.
  ExpectCorrupt({0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x2a, 0x04},
                "vector at byte 4 of 4294967295 elements runs past the end", "vector too long");
  // Vector that contains itself (offset 0).
  ExpectCorrupt({0x01, 0x00, 0x28, 0x02, 0x28, 0x01}, "nesting deeper than 64",
                "self-referencing vector");
  // Empty map whose keys byte width is 3: keys offset 0, keys width 3, size 0, root.
  ExpectCorrupt({0x00, 0x03, 0x00, 0x00, 0x24, 0x01}, "map keys byte width 3", "map keys width 3");

  // A key with no 0x00 before the end of the buffer (the 2.0.8 verifier accepts it):
  // "abc", root offset 3 back, type key (4 << 2), width 1. The decoder must not read on.
  ExpectCorrupt({0x61, 0x62, 0x63, 0x03, 0x10, 0x01},
                "key at byte 0 has no 0x00 terminator inside the buffer", "unterminated key");

  // A map whose keys vector claims 2 keys for 1 value: patch the keys vector's size.
  std::vector<uint8_t> map = Build([](flexbuffers::Builder& b) { b.Map([&] { b.Int("k", 1); }); });
  flexbuffers::Map m = flexbuffers::GetRoot(map).AsMap();
  size_t keys_size_at = static_cast<size_t>(reinterpret_cast<const uint8_t*>(m.Keys()[0].AsKey()) -
                                            map.data());  // key "k" bytes
  // Layout: "k\0" | keys size | key offset | ...; find the keys vector size byte (== 1).
  size_t size_byte = keys_size_at + 2;
  ASSERT_EQ(map[size_byte], 1);
  map[size_byte] = 2;
  ExpectCorrupt(map, "has 2 keys but 1 values", "map with more keys than values");
}

TEST(ValueCodecTest, SharedSubVectorsCannotExplodeTheDecodedSize) {
  // 2,000 references to one vector of 2,000 ints: 12 KB of FlexBuffers that would decode
  // into 4 million values. The format allows it; the decoder must refuse it.
  std::vector<uint8_t> bomb = Build([](flexbuffers::Builder& b) {
    size_t outer = b.StartVector();
    size_t inner = b.StartVector();
    for (int i = 0; i < 2000; ++i) b.Int(i);
    b.EndVector(inner, false, false);
    flexbuffers::Builder::Value shared = b.LastValue();
    for (int i = 1; i < 2000; ++i) b.ReuseValue(shared);
    b.EndVector(outer, false, false);
  });
  ASSERT_LT(bomb.size(), 64u * 1024);
  ExpectCorrupt(bomb, "elements visited for a 12008-byte buffer", "shared-vector bomb");

  // A few references to a shared vector are fine.
  std::vector<uint8_t> shared = Build([](flexbuffers::Builder& b) {
    size_t outer = b.StartVector();
    size_t inner = b.StartVector();
    b.Int(1);
    b.EndVector(inner, false, false);
    flexbuffers::Builder::Value v = b.LastValue();
    b.ReuseValue(v);
    b.EndVector(outer, false, false);
  });
  ExpectDecodesTo(shared, Value::ListOf({Value::ListOf({1}), Value::ListOf({1})}), "shared twice");
}

// The reviewer's quadratic cases. The old decoder (FlatBuffers 2.0.8's verifier without a
// reuse tracker) took 4.7 s and 5.7 s on buffers like these, thousands of times as long as
// an ordinary buffer of the same size. The decoder's work is counted, not timed
// (DecodeWork): the elements it visits stay within the work budget of value_codec.h
// (linear in the input size), and each key costs one scan of its own bytes, so the
// scans add up to at most the input size here (none of these buffers shares key bytes).
DecodeWork ExpectLinearWork(const std::vector<uint8_t>& bytes, const char* what) {
  DecodeWork work;
  Result<Value> r = DecodeValue(bytes.data(), bytes.size(), &work);
  const size_t budget = bytes.size() * kDecodeWorkPerInputByte + kDecodeWorkFloor;
  EXPECT_LE(work.elements_visited, budget) << what << " (" << bytes.size() << " bytes)";
  EXPECT_LE(work.key_bytes_scanned, bytes.size()) << what << " (" << bytes.size() << " bytes)";
  return work;
}

TEST(ValueCodecTest, AVectorReferencedThousandsOfTimesIsRejectedInLinearTime) {
  // 30,000 references to one vector of 30,000 ints: 240 KB that would decode into 900
  // million values.
  std::vector<uint8_t> bomb = Build([](flexbuffers::Builder& b) {
    size_t outer = b.StartVector();
    size_t inner = b.StartVector();
    for (int i = 0; i < 30000; ++i) b.Int(i);
    b.EndVector(inner, false, false);
    flexbuffers::Builder::Value shared = b.LastValue();
    for (int i = 1; i < 30000; ++i) b.ReuseValue(shared);
    b.EndVector(outer, false, false);
  });
  ASSERT_LT(bomb.size(), 300u * 1024);
  ExpectCorrupt(bomb, "elements visited", "30,000 x 30,000 bomb");
  ExpectLinearWork(bomb, "30,000 x 30,000 bomb");
}

constexpr uint8_t kVectorOf8Bit = 0x28;  // packed type: FBT_VECTOR, 8-bit elements

TEST(ValueCodecTest, SelfReferencingVectorsAreRejectedBeforeTheirTreeExplodes) {
  // A vector of 200 elements that all point back at the vector itself: as a tree it has
  // 200^64 values down to the depth limit. Layout: size, element i = offset i back to the
  // vector's first element, 200 Vector type bytes, then a 2-byte root offset, type, width.
  std::vector<uint8_t> cycle = {200};
  for (int i = 0; i < 200; ++i) cycle.push_back(static_cast<uint8_t>(i));
  for (int i = 0; i < 200; ++i) cycle.push_back(kVectorOf8Bit);
  size_t root_offset = cycle.size() - 1;
  cycle.push_back(static_cast<uint8_t>(root_offset & 0xff));
  cycle.push_back(static_cast<uint8_t>(root_offset >> 8));
  cycle.push_back(kVectorOf8Bit);
  cycle.push_back(2);
  ExpectCorrupt(cycle, "elements visited", "self-referencing vectors");
  ExpectLinearWork(cycle, "self-referencing vectors");
}

// A zero byte is an empty key. `keys` typed-vector elements (4 bytes wide) point into a
// run of `zeros` zero bytes; the 2.0.8 verifier scans every key up to the first non-zero
// byte, so each costs up to the length of the run.
std::vector<uint8_t> KeysIntoZeros(size_t zeros, size_t keys) {
  std::vector<uint8_t> buffer(zeros, 0x00);
  auto put32 = [&](size_t v) {
    for (int i = 0; i < 4; ++i) buffer.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put32(keys);  // size prefix of the typed key vector
  size_t data = buffer.size();
  for (size_t i = 0; i < keys; ++i) put32(buffer.size() - (i * 4) % zeros);
  put32(buffer.size() - data);  // root: offset back to the vector
  buffer.push_back(flexbuffers::PackedType(flexbuffers::BIT_WIDTH_32, flexbuffers::FBT_VECTOR_KEY));
  buffer.push_back(4);
  return buffer;
}

TEST(ValueCodecTest, ManyKeysIntoARunOfZerosDecodeInLinearTime) {
  std::vector<uint8_t> buffer = KeysIntoZeros(400000, 100000);
  ASSERT_EQ(buffer.size(), 800010u);
  Result<Value> r = DecodeBytes(buffer);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->is_list());
  ASSERT_EQ(r->as_list().size(), 100000u);
  EXPECT_EQ(r->as_list().front(), Value(""));
  EXPECT_EQ(r->as_list().back(), Value(""));
  // Each empty key is found by scanning its one terminator byte, not the run of zeros.
  DecodeWork work = ExpectLinearWork(buffer, "100,000 keys into 400,000 zeros");
  EXPECT_EQ(work.key_bytes_scanned, 100000u);
}

TEST(ValueCodecTest, SharedStringsFromOtherWritersDecode) {
  // 1,000 copies of one 1 KB string, stored once (shared strings, the npm writer's default):
  // a 4 KB buffer that decodes into 1 MB. Honest, and accepted.
  std::string kilobyte(1024, 'x');
  std::vector<uint8_t> bytes = [&] {
    flexbuffers::Builder b(256, flexbuffers::BUILDER_FLAG_SHARE_KEYS_AND_STRINGS);
    b.Vector([&] {
      for (int i = 0; i < 1000; ++i) b.String(kilobyte);
    });
    b.Finish();
    return b.GetBuffer();
  }();
  ASSERT_LT(bytes.size(), 5000u);
  ExpectDecodesTo(bytes, Value(Value::List(1000, Value(kilobyte))), "1,000 shared strings");
}

TEST(ValueCodecTest, DecodedSizeAboveTheAbsoluteCapIsRejected) {
  // 1,100 references to one 64 KB string: 70 KB of input, 70 MB decoded (> 64 MiB).
  std::string big(64 * 1024, 'y');
  std::vector<uint8_t> bytes = [&] {
    flexbuffers::Builder b(256, flexbuffers::BUILDER_FLAG_SHARE_KEYS_AND_STRINGS);
    b.Vector([&] {
      for (int i = 0; i < 1100; ++i) b.String(big);
    });
    b.Finish();
    return b.GetBuffer();
  }();
  ASSERT_LT(bytes.size(), 80u * 1024);
  ExpectCorrupt(bytes, "decoded value would be larger than 67108864", "70 MB of shared strings");
  // The same string 1,000 times (64 MB of strings plus 16 per value) is just under the cap.
  std::vector<uint8_t> under = [&] {
    flexbuffers::Builder b(256, flexbuffers::BUILDER_FLAG_SHARE_KEYS_AND_STRINGS);
    b.Vector([&] {
      for (int i = 0; i < 1000; ++i) b.String(big);
    });
    b.Finish();
    return b.GetBuffer();
  }();
  Result<Value> r = DecodeBytes(under);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->size(), 1000u);
}

TEST(ValueCodecTest, FloatsNarrowerThan32BitsAreRejected) {
  // The format has no 8- or 16-bit floats; 2.0.8's reader would read them as integers.
  ExpectCorrupt({0x05, 0x0c, 0x01}, "8-bit float", "inline 8-bit float (would read as 5.0)");
  ExpectCorrupt({0x00, 0x3c, 0x0d, 0x02}, "16-bit float",
                "inline 16-bit float (half 1.0, would read as 15360.0)");
  // Indirect float, 2 bytes wide: the bytes 00 3c, then root offset 2, type, width 1.
  ExpectCorrupt({0x00, 0x3c, 0x02, 0x21, 0x01}, "16-bit float", "indirect 16-bit float");
  // Typed float vector with 2-byte elements: size 1, element 00 3c, root.
  ExpectCorrupt({0x01, 0x00, 0x00, 0x3c, 0x02, 0x35, 0x01}, "16-bit float",
                "typed vector of 16-bit floats");
  // Fixed typed vector of two 1-byte floats.
  ExpectCorrupt({0x01, 0x02, 0x02, 0x48, 0x01}, "8-bit float", "fixed vector of 8-bit floats");
  // A float declared 16 bits wide in an 8-byte slot (the packed type says half).
  ExpectCorrupt({0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf0, 0x3f, 0x0d, 0x08}, "16-bit float",
                "float declared 16-bit in a 64-bit slot");
  // 32- and 64-bit floats are fine.
  ExpectDecodesTo({0x00, 0x00, 0xc0, 0x3f, 0x0e, 0x04}, Value(1.5), "inline 32-bit float");
}

TEST(ValueCodecPropertyTest, MutatedBuffersDecodeToAnErrorOrAValueNeverACrash) {
  RandomValueGenerator gen(kSeed + 2);
  int decoded = 0;
  for (int i = 0; i < kCases; ++i) {
    std::string bytes = MutateBytes(AsString(EncodeValue(gen.Any())), gen);
    Result<Value> r = DecodeValue(bytes);
    if (!r.ok()) {
      ASSERT_EQ(r.status().code(), StatusCode::kCorruption) << Label(kSeed + 2, i);
      continue;
    }
    ++decoded;
    // Whatever was accepted is a proper Value that survives its own round trip.
    Result<Value> again = DecodeValue(AsString(EncodeValue(*r)));
    ASSERT_TRUE(again.ok()) << Label(kSeed + 2, i) << ": " << again.status().ToString();
    ASSERT_TRUE(*again == *r) << Label(kSeed + 2, i) << "\n decoded = " << r->ToString()
                              << "\n after a round trip = " << again->ToString();
  }
  EXPECT_GT(decoded, 0);
  EXPECT_LT(decoded, kCases);
}

}  // namespace
}  // namespace strata
