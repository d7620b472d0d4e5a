// The topwords example (examples/topwords): word counts (agg::Count), the global top 100
// (agg::TopN over the counts) and sentences per word (GroupBy / EachGroup), checked against
// a brute-force fold of the sentences appended — after `processed` appends and after a
// random workload poured in without waiting — and against their recomputation.
#include <algorithm>
#include <cmath>
#include <map>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"
#include "recompute_in_place.h"

namespace strata {
// gtest prints a Value in a failed expectation as its text.
void PrintTo(const Value& v, std::ostream* os) { *os << v.ToString(); }
}  // namespace strata

namespace strata::examples_test {
namespace {

// What the views must hold after `sentences`, computed directly.
struct Fold {
  std::map<Value, int64_t> counts;
  std::map<Value, int64_t> sentence_counts;
  Value top;  // the 100 most frequent [word, count], count descending, word ascending

  explicit Fold(const std::vector<std::string>& sentences) {
    for (const std::string& s : sentences) {
      std::vector<std::string> words = SplitWords(s);
      for (const std::string& w : words) ++counts[Value(w)];
      for (const std::string& w : std::set<std::string>(words.begin(), words.end())) {
        ++sentence_counts[Value(w)];
      }
    }
    top = TopCounts(counts, 100);
  }
};

class TopwordsTest : public ExampleTest {
 protected:
  TopwordsTest() : ExampleTest("topwords") {}

  Value Top() { return SelectOne("$$top_words", Path().Key("all")); }

  // Requires the views to equal the fold of `sentences`.
  void ExpectViewsOf(const std::vector<std::string>& sentences) {
    const Fold fold(sentences);
    EX_ASSIGN_OR_FAIL(auto counts, CollectIntMap(*engine_, "topwords", "$$word_counts"));
    EXPECT_EQ(IntMapText(counts), IntMapText(fold.counts));
    EX_ASSIGN_OR_FAIL(auto sentence_counts,
                      CollectIntMap(*engine_, "topwords", "$$sentence_counts"));
    EXPECT_EQ(IntMapText(sentence_counts), IntMapText(fold.sentence_counts));
    EXPECT_EQ(Top(), fold.top);
  }
};

TEST_F(TopwordsTest, CountsTopListAndSentencesPerWord) {
  const std::vector<std::string> sentences = {"The cat, the hat.", "A cat! a CAT?", "hat"};
  for (const std::string& s : sentences) {
    EX_ASSERT_OK(engine_->Append("topwords", "*sentences", Value(s)));
  }
  EXPECT_EQ(SelectOne("$$word_counts", Path().Key("cat")), Value(3));
  EXPECT_EQ(SelectOne("$$sentence_counts", Path().Key("cat")), Value(2));
  EXPECT_EQ(SelectOne("$$word_counts", Path().Key("The")), Value());  // stored lower-cased
  // Ties ("a", "hat", "the": 2 each) by ascending word.
  EXPECT_EQ(Top(), Value(Value::List{Value::ListOf({"cat", 3}), Value::ListOf({"a", 2}),
                                     Value::ListOf({"hat", 2}), Value::ListOf({"the", 2})}));
  ExpectViewsOf(sentences);
}

TEST_F(TopwordsTest, NonStringSentenceIsRefusedBeforeTheLog) {
  auto bad = engine_->Append("topwords", "*sentences", Value(42));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kSchemaViolation) << bad.status().ToString();
  EX_ASSERT_OK(engine_->Append("topwords", "*sentences", Value("after")));
  EXPECT_EQ(SelectOne("$$word_counts", Path().Key("after")), Value(1));
}

// Over 100 distinct words, Zipf-like frequencies (many ties near the cut), sentences poured
// in without waiting so that batches hold many of them. Counts only grow, so the top 100
// kept batch by batch equals the top 100 of the final counts.
TEST_F(TopwordsTest, RandomSentencesGiveTheBruteForceViewsAndEqualTheirRecomputation) {
  std::mt19937_64 rng(TestSeed(7201));
  std::vector<std::string> vocabulary;
  for (int i = 0; i < 400; ++i) vocabulary.push_back(Cat("w", i));
  const std::vector<std::string> separators = {" ", ", ", "! ", "\t", " -- "};
  std::vector<std::string> all;
  for (int round = 0; round < 10; ++round) {
    std::vector<Value> batch;
    for (int s = 0; s < 150; ++s) {
      std::string text;
      int n = static_cast<int>(rng() % 14);
      for (int w = 0; w < n; ++w) {
        // Rank r drawn with weight about 1/r.
        double u = std::uniform_real_distribution<double>(0, 1)(rng);
        size_t r = static_cast<size_t>(std::pow(static_cast<double>(vocabulary.size()), u)) - 1;
        std::string word = vocabulary[std::min(r, vocabulary.size() - 1)];
        if (rng() % 5 == 0) word[0] = 'W';
        text += word + separators[rng() % separators.size()];
      }
      all.push_back(text);
      batch.push_back(Value(text));
    }
    EX_ASSERT_OK(
        engine_->AppendBatch("topwords", "*sentences", std::move(batch), AckLevel::kAppended));
  }
  EX_ASSERT_OK(engine_->WaitProcessed("topwords"));
  const Fold fold(all);
  ASSERT_GT(fold.counts.size(), 100u);
  ExpectViewsOf(all);
  EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("topwords"));
  EXPECT_EQ(stats.failures, 0);
  EXPECT_TRUE(RecomputedInPlaceEqual(*engine_, "topwords"));
}

}  // namespace
}  // namespace strata::examples_test
