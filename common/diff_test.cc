#include "strata/diff.h"

#include <gtest/gtest.h>

#include "testing/random_value.h"

namespace strata {
namespace {

using Op = Diff::Op;

}  // namespace

// Readable gtest output.
void PrintTo(const Diff& diff, std::ostream* os) { *os << DiffToString(diff); }

namespace {

Value Applied(Value before, const std::vector<Diff>& diffs) {
  for (const Diff& d : diffs) {
    Status st = ApplyDiff(&before, d);
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  return before;
}

std::vector<Diff> DiffsOf(const Value& a, const Value& b) {
  std::optional<std::vector<Diff>> diffs = DiffValues(a, b, 1000);
  EXPECT_TRUE(diffs.has_value());
  return diffs.value_or(std::vector<Diff>{});
}

TEST(DiffTest, EqualValuesHaveNoDiffs) {
  Value v = Value::MapOf({{"a", Value::ListOf({1, 2})}});
  EXPECT_TRUE(DiffsOf(v, v).empty());
}

TEST(DiffTest, ScalarsAreReplaced) {
  EXPECT_EQ(DiffsOf(Value(1), Value(2)), (std::vector<Diff>{{Op::kReplace, {}, {}, Value(2), 0}}));
  EXPECT_EQ(DiffsOf(Value(), Value("x")),
            (std::vector<Diff>{{Op::kReplace, {}, {}, Value("x"), 0}}));
}

TEST(DiffTest, MapsGiveKeySetAndKeyRemovedAndRecurse) {
  Value a = Value::MapOf({{"alice", Value::MapOf({{"balance", 10}})}, {"bob", 1}, {"carol", 2}});
  Value b = Value::MapOf({{"alice", Value::MapOf({{"balance", 12}})}, {"carol", 3}, {"dan", 4}});
  EXPECT_EQ(DiffsOf(a, b), (std::vector<Diff>{
                               {Op::kKeySet, {"alice"}, "balance", Value(12), 0},
                               {Op::kKeyRemoved, {}, "bob", {}, 0},
                               {Op::kKeySet, {}, "carol", Value(3), 0},
                               {Op::kKeySet, {}, "dan", Value(4), 0},
                           }));
  EXPECT_EQ(Applied(a, DiffsOf(a, b)), b);
}

TEST(DiffTest, SetsGiveElementsAddedAndRemoved) {
  Value a = Value::MapOf({{"follows", Value::SetOf({"a", "b"})}});
  Value b = Value::MapOf({{"follows", Value::SetOf({"b", "c"})}});
  EXPECT_EQ(DiffsOf(a, b), (std::vector<Diff>{
                               {Op::kSetRemoved, {"follows"}, {}, Value("a"), 0},
                               {Op::kSetAdded, {"follows"}, {}, Value("c"), 0},
                           }));
}

TEST(DiffTest, ListsGiveInsertsAndRemovesOfAShortestScript) {
  // A timeline window: a new post at the front pushes the oldest out at the end.
  Value a = Value::ListOf({"p3", "p2", "p1"});
  Value b = Value::ListOf({"p4", "p3", "p2"});
  EXPECT_EQ(DiffsOf(a, b), (std::vector<Diff>{
                               {Op::kSeqInsert, {}, {}, Value("p4"), 0},
                               {Op::kSeqRemove, {}, {}, {}, 3},
                           }));
  EXPECT_EQ(Applied(a, DiffsOf(a, b)), b);
}

TEST(DiffTest, AListElementChangedInPlaceIsRecursedInto) {
  Value a = Value::ListOf({Value::MapOf({{"n", 1}}), "x"});
  Value b = Value::ListOf({Value::MapOf({{"n", 2}}), "x"});
  EXPECT_EQ(DiffsOf(a, b), (std::vector<Diff>{{Op::kKeySet, {Value(0)}, "n", Value(2), 0}}));
}

TEST(DiffTest, AListElementReplacedInPlaceIsOneReplace) {
  // A subscription without `one` to an absent key: [nil], then [1].
  EXPECT_EQ(DiffsOf(Value::ListOf({Value()}), Value::ListOf({1})),
            (std::vector<Diff>{{Op::kReplace, {Value(0)}, {}, Value(1), 0}}));
  Value a = Value::ListOf({"a", "b", "c"});
  Value b = Value::ListOf({"a", "x", "c"});
  EXPECT_EQ(DiffsOf(a, b), (std::vector<Diff>{{Op::kReplace, {Value(1)}, {}, Value("x"), 0}}));
}

TEST(DiffTest, TooManyOpsGiveNullopt) {
  Value a = Value::SetOf({1, 2, 3});
  Value b = Value::SetOf({4, 5, 6});
  EXPECT_FALSE(DiffValues(a, b, 5).has_value());
  EXPECT_TRUE(DiffValues(a, b, 6).has_value());
}

TEST(DiffTest, OpNamesRoundTrip) {
  for (int i = 0; i <= static_cast<int>(Op::kResync); ++i) {
    const Op op = static_cast<Op>(i);
    EXPECT_EQ(DiffOpFromName(DiffOpName(op)), op);
  }
  EXPECT_FALSE(DiffOpFromName("upsert").has_value());
}

TEST(DiffTest, DiffsThatDoNotFitAreRefusedAndChangeNothing) {
  const Value v = Value::MapOf({{"a", Value::ListOf({1})}});
  const std::vector<Diff> bad = {
      {Op::kKeySet, {"missing"}, "k", Value(1), 0},
      {Op::kKeySet, {"a"}, "k", Value(1), 0},
      {Op::kSeqInsert, {"a"}, {}, Value(1), 2},
      {Op::kSeqRemove, {"a"}, {}, {}, 1},
      {Op::kSeqRemove, {"a"}, {}, {}, -1},
      {Op::kSetAdded, {}, {}, Value(1), 0},
      {Op::kReplace, {"a", Value(5)}, {}, Value(1), 0},
      {Op::kReplace, {"a", Value(0), Value(0)}, {}, Value(1), 0},
  };
  for (const Diff& d : bad) {
    Value copy = v;
    Status st = ApplyDiff(&copy, d);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << DiffToString(d);
    EXPECT_EQ(copy, v) << DiffToString(d);
  }
}

// A small random edit of `v` somewhere inside it: what a commit does to a view.
Value Mutate(testing::RandomValueGenerator& gen, Value v, int depth = 0) {
  const int64_t choice = gen.Uniform(0, 9);
  if (v.is_map() && !v.as_map().empty() && choice < 6) {
    const auto& entries = v.as_map();
    const Value key = entries[gen.Uniform(0, entries.size() - 1)].first;
    if (choice < 3) {
      Value inner = Mutate(gen, *v.Find(key), depth + 1);
      v.Insert(key, std::move(inner));
    } else if (choice < 4) {
      v.Erase(key);
    } else {
      v.Insert(gen.Scalar(), gen.Any(2));
    }
    return v;
  }
  if (v.is_set() && choice < 6) {
    if (choice < 3 && !v.as_set().empty()) {
      v.Remove(v.as_set()[gen.Uniform(0, v.as_set().size() - 1)]);
    } else {
      v.Add(gen.Any(1));
    }
    return v;
  }
  if (v.is_list() && choice < 7) {
    Value::List& list = v.as_list();
    if (choice < 2 && !list.empty()) {
      list.erase(list.begin() + gen.Uniform(0, list.size() - 1));
    } else if (choice < 4 && !list.empty()) {
      const size_t i = gen.Uniform(0, list.size() - 1);
      list[i] = Mutate(gen, list[i], depth + 1);
    } else {
      list.insert(list.begin() + gen.Uniform(0, list.size()), gen.Any(2));
    }
    return v;
  }
  return depth < 3 && choice < 8 ? gen.Any(3) : gen.Scalar();
}

TEST(DiffTest, RandomEditsRoundTrip) {
  for (uint64_t seed = 1; seed <= 2000; ++seed) {
    testing::RandomValueGenerator gen(seed);
    Value a = gen.Any(4);
    Value b = a;
    const int64_t edits = gen.Uniform(1, 5);
    for (int64_t i = 0; i < edits; ++i) b = Mutate(gen, std::move(b));
    std::optional<std::vector<Diff>> diffs = DiffValues(a, b, 1 << 20);
    ASSERT_TRUE(diffs.has_value()) << "seed " << seed;
    ASSERT_EQ(Applied(a, *diffs), b)
        << "seed " << seed << "\nbefore " << a.ToString() << "\nafter " << b.ToString();
  }
}

}  // namespace
}  // namespace strata
