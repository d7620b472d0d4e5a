// Navigator semantics on plain Values: the shared table (testing/navigator_cases.h) and
// behaviour specific to in-memory values.
#include <gtest/gtest.h>

#include "path/testing/navigator_cases.h"
#include "strata/json.h"
#include "strata/navigate.h"
#include "strata/path.h"

namespace strata {
namespace {

using testing::NavigatorCase;
using testing::NavigatorCaseData;
using testing::NavigatorCases;
using testing::ParseOrDie;

class ValueNavigatorTest : public ::testing::TestWithParam<NavigatorCase> {};

TEST_P(ValueNavigatorTest, MatchesTheTable) {
  const NavigatorCase& nc = GetParam();
  SCOPED_TRACE(nc.path.ToString());
  Value data = NavigatorCaseData();
  if (!nc.path.terminal()) {
    Result<std::vector<Value>> got = Select(data, nc.path);
    if (nc.error != StatusCode::kOk) {
      ASSERT_FALSE(got.ok());
      EXPECT_EQ(got.status().code(), nc.error) << got.status().ToString();
      return;
    }
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(Value(*got), ParseOrDie(nc.expected)) << Value(*got).ToString();
    EXPECT_EQ(data, NavigatorCaseData()) << "select changed the data";
    return;
  }
  Result<int64_t> applied = Transform(&data, nc.path);
  if (nc.error != StatusCode::kOk) {
    ASSERT_FALSE(applied.ok());
    EXPECT_EQ(applied.status().code(), nc.error) << applied.status().ToString();
    return;
  }
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  if (nc.applied >= 0) {
    EXPECT_EQ(*applied, nc.applied);
  }
  Value expected = ParseOrDie(nc.expected);
  if (nc.key.empty()) {
    EXPECT_EQ(data, expected) << data.ToString();
    return;
  }
  Value want = NavigatorCaseData();
  if (expected.is_nil()) {
    want.Erase(nc.key);
  } else {
    want.Insert(nc.key, expected);
  }
  EXPECT_EQ(data, want) << data.ToString();
}

INSTANTIATE_TEST_SUITE_P(Table, ValueNavigatorTest, ::testing::ValuesIn(NavigatorCases()),
                         [](const auto& info) { return info.param.name; });

TEST(ValueNavigatorTest, KeyWritesCreateMapsFromNil) {
  Value v;
  ASSERT_TRUE(Transform(&v, Path().Key("a", "b").Set(1)).ok());
  EXPECT_EQ(v, ParseOrDie(R"({"a": {"b": 1}})"));
}

TEST(ValueNavigatorTest, RemovingTheRootLeavesNil) {
  Value v = Value::ListOf({1});
  Result<int64_t> n = Transform(&v, Path().Remove());
  ASSERT_TRUE(n.ok());
  EXPECT_TRUE(v.is_nil());
}

TEST(ValueNavigatorTest, SelectOneCountsMatches) {
  Value v = ParseOrDie("[1, 2, 3]");
  Result<Value> one = SelectOne(v, Path().Nth(1));
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, Value(2));
  Result<Value> none = SelectOne(v, Path().Nth(5));
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(none.status().message(), "select_one: nth(5) matched no value");
  Result<Value> many = SelectOne(v, Path().All());
  EXPECT_EQ(many.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(many.status().message(), "select_one: all matched 3 values, expected exactly 1");
}

TEST(ValueNavigatorTest, ErrorsNameTheLocation) {
  Value v = ParseOrDie(R"({"a": {"b": "x"}, "l": [1]})");
  Result<int64_t> r = Transform(&v, Path().Key("a", "b").Inc());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), R"(add(1) needs a number at $["a"]["b"], found string "x")");
  Result<std::vector<Value>> s = Select(v, Path().Key("l").Key(0));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().message(), R"(key(0) needs a map or a set at $["l"], found list [1])");
}

TEST(ValueNavigatorTest, TransformRefusesPathsWithoutTerminalAndSelectWithOne) {
  Value v;
  EXPECT_EQ(Transform(&v, Path().Key("a")).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Select(v, Path().Key("a").Set(1)).status().code(), StatusCode::kInvalidArgument);
}

TEST(ValueNavigatorTest, RefusesAnInvalidPath) {
  Value v = Value::ListOf({1});
  EXPECT_EQ(Select(v, Path().Nth(-1)).status().code(), StatusCode::kInvalidArgument);
}

TEST(ValueNavigatorTest, WalksLargeMapsInBatches) {
  Value::Map entries;
  for (int i = 0; i < 1000; ++i) entries.emplace_back(Value(i), Value(i));
  Value v = Value::MapOf(std::move(entries));
  Result<int64_t> n =
      Transform(&v, Path().All().FilterOn(Path().Nth(1), PredicateOp::kGe, 500).Remove());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 500);
  EXPECT_EQ(v.size(), 500u);
  Result<std::vector<Value>> keys =
      Select(v, Path().Range({.limit = 300, .reverse = true}).MapKeys());
  ASSERT_TRUE(keys.ok());
  ASSERT_EQ(keys->size(), 300u);
  EXPECT_EQ(keys->front(), Value(499));
  EXPECT_EQ(keys->back(), Value(200));
}

TEST(ValueNavigatorTest, TransformThroughALimitOfOneBatchTouchesOnlyTheLimit) {
  // A limit of exactly one scan batch (256 keys): removing what the first batch found must
  // not let the next batch count the limit again from the keys that are left.
  Value::Map entries;
  for (int i = 0; i < 1000; ++i) entries.emplace_back(Value(i), Value(i));
  Value v = Value::MapOf(std::move(entries));
  Result<int64_t> n = Transform(&v, Path().Range({.limit = 256}).All().Remove());
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 256);
  EXPECT_EQ(v.size(), 744u);
  Result<int64_t> back =
      Transform(&v, Path().Range({.limit = 256, .reverse = true}).All().Remove());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, 256);
  EXPECT_EQ(v.size(), 488u);
}

}  // namespace
}  // namespace strata
