// The Value model: total order, canonical maps and sets, map/set operations, NaNs.
#include "strata/value.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "testing/edge_values.h"

namespace strata {
namespace {

using namespace std::string_literals;
using ::strata::testing::AscendingEdgeValues;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

uint64_t Bits(double d) { return std::bit_cast<uint64_t>(d); }

TEST(ValueOrderTest, TableIsStrictlyAscendingAndCompareIsConsistent) {
  std::vector<Value> values = AscendingEdgeValues();
  for (size_t i = 0; i < values.size(); ++i) {
    for (size_t j = 0; j < values.size(); ++j) {
      std::strong_ordering expected = i <=> j;
      EXPECT_EQ(Value::Compare(values[i], values[j]), expected) << "items " << i << " and " << j;
      EXPECT_EQ(values[i] == values[j], i == j) << "items " << i << " and " << j;
    }
  }
}

TEST(ValueOrderTest, TypeRankDecidesBeforeContent) {
  EXPECT_LT(Value(true), Value(std::numeric_limits<int64_t>::min()));
  EXPECT_LT(Value(std::numeric_limits<int64_t>::max()), Value(-kInf));
  EXPECT_LT(Value(kNaN), Value(""));
  EXPECT_LT(Value("\xff\xff"), Value::BytesOf(""));
  EXPECT_LT(Value::ListOf({Value::EmptySet()}), Value::EmptyMap());
  EXPECT_LT(Value::MapOf({{Value::EmptySet(), 1}}), Value::EmptySet());
}

TEST(ValueOrderTest, NegativeZeroIsBelowPositiveZeroAndNotEqual) {
  EXPECT_LT(Value(-0.0), Value(0.0));
  EXPECT_NE(Value(-0.0), Value(0.0));
  EXPECT_TRUE(std::signbit(Value(-0.0).as_double()));
}

TEST(ValueOrderTest, IntsAndDoublesNeverCompareEqual) {
  EXPECT_NE(Value(1), Value(1.0));
  EXPECT_LT(Value(2), Value(1.0));
}

TEST(ValueNaNTest, EveryNaNIsStoredAsOneOfTwoCanonicalNaNs) {
  const uint64_t kPositive = 0x7ff8000000000000ULL;
  const uint64_t kNegative = 0xfff8000000000000ULL;
  struct Case {
    uint64_t bits;
    uint64_t canonical;
  } cases[] = {
      {0x7ff8000000000000ULL, kPositive},  // quiet
      {0x7ff0000000000001ULL, kPositive},  // signalling
      {0x7fffffffffffffffULL, kPositive},  // all payload bits
      {0xfff8000000000000ULL, kNegative}, {0xfff0000000000001ULL, kNegative},
      {0xffffffffffffffffULL, kNegative},
  };
  for (const Case& c : cases) {
    Value v(std::bit_cast<double>(c.bits));
    EXPECT_EQ(Bits(v.as_double()), c.canonical) << std::hex << "input bits 0x" << c.bits;
    EXPECT_EQ(Bits(CanonicalDouble(std::bit_cast<double>(c.bits))), c.canonical);
  }
}

TEST(ValueNaNTest, NaNsAreEqualToThemselvesAndOrderedBySign) {
  Value nan(kNaN);
  Value other_nan(std::bit_cast<double>(0x7ff0000000000123ULL));
  EXPECT_EQ(nan, other_nan);
  EXPECT_LT(Value(-kNaN), Value(-kInf));
  EXPECT_GT(nan, Value(kInf));
}

TEST(ValueNaNTest, NonNaNDoublesAreStoredUnchanged) {
  for (double d : {0.0, -0.0, 1.5, -kInf, kInf, std::numeric_limits<double>::denorm_min()}) {
    EXPECT_EQ(Bits(Value(d).as_double()), Bits(d)) << d;
  }
}

TEST(ValueMapTest, MapOfSortsKeysAndLastDuplicateWins) {
  Value m = Value::MapOf({{"b", 1}, {2, "x"}, {"a", 2}, {"b", 3}, {Value(), 4}});
  const Value::Map& entries = m.as_map();
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].first, Value());
  EXPECT_EQ(entries[1].first, Value(2));
  EXPECT_EQ(entries[2].first, Value("a"));
  EXPECT_EQ(entries[3].first, Value("b"));
  EXPECT_EQ(entries[3].second, Value(3));
}

TEST(ValueMapTest, MapsBuiltInAnyOrderAreEqual) {
  Value a = Value::MapOf({{1, "one"}, {2, "two"}, {3, "three"}});
  Value b = Value::MapOf({{3, "three"}, {1, "one"}, {2, "two"}});
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 3u);
}

TEST(ValueMapTest, FindInsertErase) {
  Value m = Value::EmptyMap();
  EXPECT_EQ(m.Find("k"), nullptr);
  EXPECT_EQ(m.Insert("k", 1), Value(1));
  EXPECT_EQ(m.Insert(Value(0), "zero"), Value("zero"));
  EXPECT_EQ(m.Insert("a", 2), Value(2));
  ASSERT_NE(m.Find("k"), nullptr);
  EXPECT_EQ(*m.Find("k"), Value(1));
  m.Insert("k", 5);  // replaces
  EXPECT_EQ(*m.Find("k"), Value(5));
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m, Value::MapOf({{"a", 2}, {"k", 5}, {0, "zero"}}));

  *m.Find("a") = Value("changed");
  EXPECT_EQ(*m.Find("a"), Value("changed"));

  EXPECT_TRUE(m.Erase("k"));
  EXPECT_FALSE(m.Erase("k"));
  EXPECT_FALSE(m.Erase(Value(1.0)));
  EXPECT_EQ(m.Find("k"), nullptr);
  EXPECT_EQ(m, Value::MapOf({{"a", "changed"}, {0, "zero"}}));
}

TEST(ValueMapTest, InsertKeepsKeysSortedForAnyKeyType) {
  Value m = Value::EmptyMap();
  std::vector<Value> keys = AscendingEdgeValues();
  for (auto it = keys.rbegin(); it != keys.rend(); ++it) m.Insert(*it, Value(true));
  ASSERT_EQ(m.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(m.as_map()[i].first, keys[i]) << i;
}

TEST(ValueSetTest, SetOfSortsAndDropsDuplicates) {
  Value s = Value::SetOf({3, "a", 1, 3, Value(), 1.0, "a"});
  EXPECT_EQ(s.as_set(), (Value::Set{Value(), 1, 3, 1.0, "a"}));
  EXPECT_EQ(s, Value::SetOf({"a", 1.0, 3, 1, Value()}));
}

TEST(ValueSetTest, ContainsAddRemove) {
  Value s = Value::EmptySet();
  EXPECT_FALSE(s.Contains(1));
  EXPECT_TRUE(s.Add(2));
  EXPECT_TRUE(s.Add(1));
  EXPECT_FALSE(s.Add(2));
  EXPECT_TRUE(s.Add(Value::ListOf({1})));
  EXPECT_TRUE(s.Contains(1));
  EXPECT_FALSE(s.Contains(1.0));
  EXPECT_EQ(s.as_set(), (Value::Set{1, 2, Value::ListOf({1})}));
  EXPECT_TRUE(s.Remove(1));
  EXPECT_FALSE(s.Remove(1));
  EXPECT_FALSE(s.Contains(1));
  EXPECT_EQ(s.size(), 2u);
}

TEST(ValueTest, TypeAndSize) {
  EXPECT_EQ(Value().type(), Type::kNil);
  EXPECT_EQ(Value(int64_t{5}).type(), Type::kInt);
  EXPECT_EQ(Value(5).type(), Type::kInt);
  EXPECT_EQ(Value(5.0).type(), Type::kDouble);
  EXPECT_EQ(Value("s").type(), Type::kString);
  EXPECT_EQ(Value(std::string_view("s")).type(), Type::kString);
  EXPECT_EQ(Value::BytesOf("s").type(), Type::kBytes);
  EXPECT_EQ(Value::ListOf({1, 2}).size(), 2u);
  EXPECT_EQ(Value("abc").size(), 0u);
  EXPECT_EQ(TypeName(Type::kSet), "set");
  EXPECT_EQ(TypeName(Type::kNil), "nil");
}

// A pointer other than const char* must not turn into a bool, and integer types other
// than int and int64_t convert exactly or do not compile.
static_assert(!std::is_constructible_v<Value, const std::string*>);
static_assert(!std::is_constructible_v<Value, int*>);
static_assert(!std::is_constructible_v<Value, const void*>);
static_assert(std::is_constructible_v<Value, const char*>);
static_assert(std::is_constructible_v<Value, char*>);
static_assert(std::is_constructible_v<Value, std::nullptr_t>);
static_assert(std::is_constructible_v<Value, unsigned>);
static_assert(std::is_constructible_v<Value, long long>);
static_assert(std::is_constructible_v<Value, uint16_t>);
static_assert(!std::is_constructible_v<Value, size_t>);
static_assert(!std::is_constructible_v<Value, uint64_t>);
static_assert(!std::is_constructible_v<Value, unsigned long long>);

TEST(ValueTest, ConstructorsPickTheIntendedType) {
  char text[] = "abc";
  EXPECT_EQ(Value(static_cast<char*>(text)), Value("abc"));
  EXPECT_EQ(Value(static_cast<const char*>(text)).type(), Type::kString);
  EXPECT_TRUE(Value(nullptr).is_nil());
  EXPECT_EQ(Value(std::numeric_limits<unsigned>::max()), Value(int64_t{4294967295}));
  EXPECT_EQ(Value(std::numeric_limits<long long>::min()),
            Value(std::numeric_limits<int64_t>::min()));
  EXPECT_EQ(Value(uint16_t{65535}), Value(65535));
  EXPECT_EQ(Value(int8_t{-128}), Value(-128));
  EXPECT_EQ(Value('a'), Value(97));
  EXPECT_TRUE(Value(true).is_bool());
  EXPECT_TRUE(Value(2.5f).is_double());
}

TEST(ValueTest, StringsAndBytesWithSameContentDiffer) {
  EXPECT_NE(Value("ab"), Value::BytesOf("ab"));
  EXPECT_LT(Value("ab"), Value::BytesOf("ab"));
  EXPECT_EQ(Value("a\0b"s).as_string().size(), 3u);
}

}  // namespace
}  // namespace strata
