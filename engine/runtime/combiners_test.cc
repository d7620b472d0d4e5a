// The built-in combiners (combiners.h): each kind's fold, the nil start, type errors, and
// associativity of merges on random inputs (what pre-aggregation relies on).
#include "runtime/combiners.h"

#include <random>
#include <stdexcept>

#include <gtest/gtest.h>

#include "strata/testing/test_seed.h"

namespace strata::runtime {
namespace {

Value Fold(const Combiner& c, Value stored, const std::vector<Value>& inputs) {
  for (const Value& in : inputs) {
    Result<Value> partial = CombinerPartial(c, in);
    EXPECT_TRUE(partial.ok()) << partial.status().ToString();
    Result<Value> merged = CombinerMerge(c, stored, *partial);
    EXPECT_TRUE(merged.ok()) << merged.status().ToString();
    stored = std::move(merged).value();
  }
  return stored;
}

Value Id(const Value& v) { return v; }

TEST(CombinersTest, EachKindFoldsFromNil) {
  const std::vector<Value> ints = {Value(5), Value(-2), Value(9), Value(9)};
  EXPECT_EQ(Fold(agg::Count(), Value(), ints), Value(4));
  EXPECT_EQ(Fold(agg::Count(), Value(10), ints), Value(14));
  EXPECT_EQ(Fold(agg::Sum(), Value(), ints), Value(21));
  EXPECT_EQ(Fold(agg::Sum(), Value(), {Value(1), Value(0.5)}), Value(1.5));
  EXPECT_EQ(Fold(agg::Min(), Value(), ints), Value(-2));
  EXPECT_EQ(Fold(agg::Min(), Value(-7), ints), Value(-7));
  EXPECT_EQ(Fold(agg::Max(), Value(), ints), Value(9));
  EXPECT_EQ(Fold(agg::First(), Value(), ints), Value(5));
  EXPECT_EQ(Fold(agg::First(), Value("kept"), ints), Value("kept"));
  EXPECT_EQ(Fold(agg::Last(), Value("old"), ints), Value(9));
  EXPECT_EQ(Fold(agg::SetUnion(), Value(), ints), Value::SetOf({Value(-2), Value(5), Value(9)}));
  EXPECT_EQ(Fold(agg::SetUnion(), Value::SetOf({Value(1)}), {Value(2)}),
            Value::SetOf({Value(1), Value(2)}));
  // value_of picks what is folded.
  const Combiner amount = agg::Sum([](const Value& r) { return *r.Find(Value("amount")); });
  EXPECT_EQ(Fold(amount, Value(), {Value::MapOf({{"amount", 3}}), Value::MapOf({{"amount", 4}})}),
            Value(7));
}

TEST(CombinersTest, TopNKeepsTheLargestOncePerIdTiesByIdAndALaterItemReplaces) {
  // Items [word, count]: by count descending, ties by word ascending.
  const Combiner top = agg::TopN(
      3, [](const Value& wc) { return wc.as_list()[1]; },
      [](const Value& wc) { return wc.as_list()[0]; });
  auto wc = [](const char* w, int64_t n) { return Value::ListOf({w, n}); };
  Value v = Fold(top, Value(), {wc("a", 1), wc("b", 5), wc("c", 5), wc("d", 2), wc("a", 7)});
  EXPECT_EQ(v, Value(Value::List{wc("a", 7), wc("b", 5), wc("c", 5)}));
  v = Fold(top, v, {wc("d", 6)});
  EXPECT_EQ(v, Value(Value::List{wc("a", 7), wc("d", 6), wc("b", 5)}));
}

TEST(CombinersTest, MisfitsAreErrorsNamingTheCombiner) {
  Result<Value> partial = CombinerPartial(agg::Sum(), Value("x"));
  ASSERT_FALSE(partial.ok());
  EXPECT_NE(partial.status().message().find("combiner Sum: cannot sum \"x\""), std::string::npos)
      << partial.status().ToString();
  Result<Value> merged = CombinerMerge(agg::Sum(), Value("stored"), Value(1));
  EXPECT_FALSE(merged.ok());
  merged = CombinerMerge(agg::Count(), Value(INT64_MAX), Value(1));
  ASSERT_FALSE(merged.ok());
  EXPECT_NE(merged.status().message().find("overflows int64"), std::string::npos);
  merged = CombinerMerge(agg::SetUnion(), Value(3), Value::SetOf({Value(1)}));
  EXPECT_FALSE(merged.ok());
  const Combiner throwing = agg::Max([](const Value&) -> Value { throw std::runtime_error("no"); });
  partial = CombinerPartial(throwing, Value(1));
  ASSERT_FALSE(partial.ok());
  EXPECT_EQ(partial.status().code(), StatusCode::kUserError);
}

// Pre-aggregation merges partials of consecutive runs of values: every grouping must give
// the fold of the whole sequence.
TEST(CombinersTest, MergingPartialsOfAnySplitEqualsTheSequentialFold) {
  const uint64_t seed = strata::testing::TestSeed(20261207);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const std::vector<Combiner> combiners = {
      agg::Count(),
      agg::Sum(),
      agg::Min(),
      agg::Max(),
      agg::First(),
      agg::Last(),
      agg::SetUnion(),
      agg::TopN(
          4, [](const Value& v) { return Value(v.as_int() % 7); }, Id)};
  for (int round = 0; round < 200; ++round) {
    std::vector<Value> values;
    const int n = 1 + static_cast<int>(rng() % 20);
    for (int i = 0; i < n; ++i) values.emplace_back(static_cast<int64_t>(rng() % 50));
    const size_t cut = rng() % values.size();
    for (const Combiner& c : combiners) {
      const Value whole = Fold(c, Value(), values);
      const Value left = Fold(c, Value(), {values.begin(), values.begin() + cut});
      const Value right = Fold(c, Value(), {values.begin() + cut, values.end()});
      Result<Value> merged = CombinerMerge(c, left, right);
      ASSERT_TRUE(merged.ok());
      EXPECT_EQ(*merged, whole) << "combiner " << static_cast<int>(c.kind) << " cut " << cut;
    }
  }
}

}  // namespace
}  // namespace strata::runtime
