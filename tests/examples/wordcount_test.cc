// The wordcount example (examples/wordcount): counts after `processed` acks, the record
// schema refusing a malformed record, and the oracle.
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"

namespace strata::examples_test {
namespace {

class WordcountTest : public ExampleTest {
 protected:
  WordcountTest() : ExampleTest("wordcount") {}
  Value Count(const std::string& word) { return SelectOne("$$word_counts", Path().Key(word)); }
};

TEST_F(WordcountTest, CountsLowerCasedWordsSplitOnNonAlphanumerics) {
  EX_ASSERT_OK(engine_->Append("wordcount", "*sentences", Value("Hello, hello WORLD! x2 a-b")));
  EX_ASSERT_OK(engine_->AppendBatch("wordcount", "*sentences",
                                    {Value("the world"), Value("  "), Value("THE end.")}));
  EXPECT_EQ(Count("hello"), Value(2));
  EXPECT_EQ(Count("world"), Value(2));
  EXPECT_EQ(Count("the"), Value(2));
  EXPECT_EQ(Count("x2"), Value(1));
  EXPECT_EQ(Count("a"), Value(1));
  EXPECT_EQ(Count("b"), Value(1));
  EXPECT_EQ(Count("end"), Value(1));
  EXPECT_EQ(Count("Hello"), Value());  // stored lower-cased only
}

TEST_F(WordcountTest, NonStringSentenceIsRefusedBeforeTheLogAndAppendsGoOn) {
  auto bad = engine_->Append("wordcount", "*sentences", Value(42));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kSchemaViolation) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("*sentences: expected string, got int 42"),
            std::string::npos)
      << bad.status().ToString();

  EX_ASSERT_OK(engine_->Append("wordcount", "*sentences", Value("after the refusal")));
  EXPECT_EQ(Count("refusal"), Value(1));
  EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("wordcount"));
  EXPECT_EQ(stats.failures, 0);
  int64_t logged = 0;
  for (const DepotPartitionStats& d : stats.depots) logged += d.end_offset - d.start_offset;
  EXPECT_EQ(logged, 1);
}

TEST_F(WordcountTest, OracleRecomputedCountsEqualLiveCounts) {
  std::mt19937_64 rng(TestSeed(7001));
  std::vector<std::string> vocabulary;
  for (int i = 0; i < 60; ++i) vocabulary.push_back(Cat("w", i * i % 97));
  const std::vector<std::string> separators = {" ", ", ", "! ", "\t", " -- "};
  int64_t total_words = 0;
  for (int batch = 0; batch < 8; ++batch) {
    std::vector<Value> sentences;
    for (int s = 0; s < 50; ++s) {
      std::string text;
      int n = static_cast<int>(rng() % 12);
      for (int w = 0; w < n; ++w) {
        std::string word = vocabulary[rng() % vocabulary.size()];
        if (rng() % 4 == 0) word[0] = 'W';
        text += word + separators[rng() % separators.size()];
      }
      total_words += n;
      sentences.push_back(Value(text));
    }
    EX_ASSERT_OK(engine_->AppendBatch("wordcount", "*sentences", std::move(sentences)));
  }
  EX_ASSIGN_OR_FAIL(auto counts, CollectIntMap(*engine_, "wordcount", "$$word_counts"));
  int64_t counted = 0;
  for (const auto& [word, n] : counts) counted += n;
  EXPECT_EQ(counted, total_words);

  ExpectRecomputationEqual({"*sentences"});
}

// The oracle can fail: a view that differs from its log is caught.
TEST_F(WordcountTest, OracleDetectsAViewThatDiffersFromItsLog) {
  EX_ASSERT_OK(engine_->AppendBatch("wordcount", "*sentences", {Value("one two"), Value("two")}));
  TempDir fresh_dir;
  EX_ASSIGN_OR_FAIL(std::unique_ptr<Engine> fresh, OpenEngine(fresh_dir.path()));
  EX_ASSERT_OK(Recompute(*engine_, *fresh, "wordcount", {"*sentences"}));
  EXPECT_TRUE(PStatesEqual(*engine_, *fresh, "wordcount"));
  EX_ASSERT_OK(fresh->Append("wordcount", "*sentences", Value("two")));
  ::testing::AssertionResult equal = PStatesEqual(*engine_, *fresh, "wordcount");
  ASSERT_FALSE(equal);
  EXPECT_NE(std::string(equal.message()).find("\"two\""), std::string::npos) << equal.message();
}

}  // namespace
}  // namespace strata::examples_test
