// The leaderboard example (examples/leaderboard), which depends on wordcount: its view of
// words by first letter and its query leaders(letter, n) against an oracle folded from
// wordcount's *sentences, read back; sentences logged before leaderboard was deployed
// count too; and wordcount cannot be destroyed while leaderboard uses it.
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"

namespace strata::examples_test {
namespace {

class LeaderboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EX_ASSIGN_OR_FAIL(engine_, OpenEngine(dir_.path()));
    EX_ASSERT_OK(DeployExample(*engine_, "wordcount"));
  }

  // Appends `n` random sentences to wordcount (processed acks).
  void AppendSentences(std::mt19937_64& rng, int n) {
    static const std::vector<std::string> vocabulary = {
        "apple", "avocado", "Apricot", "banana", "blueberry", "cherry", "cranberry", "date",
        "fig",   "grape",   "guava",   "kiwi",   "lemon",     "lime",   "mango",     "melon"};
    std::vector<Value> batch;
    for (int s = 0; s < n; ++s) {
      std::string text;
      const int words = static_cast<int>(rng() % 9);
      for (int w = 0; w < words; ++w) text += vocabulary[rng() % vocabulary.size()] + ", ";
      batch.push_back(Value(text));
    }
    EX_ASSERT_OK(engine_->AppendBatch("wordcount", "*sentences", std::move(batch)));
  }

  // The oracle: word -> occurrences over every sentence wordcount logged.
  std::map<Value, int64_t> LoggedWordCounts() {
    auto counts = WordCountsOfLog(*engine_, "wordcount", "*sentences");
    EXPECT_TRUE(counts.ok()) << counts.status().ToString();
    return counts.ok() ? std::move(counts).value() : std::map<Value, int64_t>{};
  }

  void ExpectViewsEqualOracle() {
    EX_ASSERT_OK(engine_->WaitProcessed("wordcount"));
    EX_ASSERT_OK(engine_->WaitProcessed("leaderboard"));
    const std::map<Value, int64_t> counts = LoggedWordCounts();
    ASSERT_FALSE(counts.empty());
    std::map<std::pair<Value, Value>, Value> expected;
    std::map<std::string, std::map<Value, int64_t>> by_letter;
    for (const auto& [word, n] : counts) {
      const std::string letter = word.as_string().substr(0, 1);
      expected[{Value(letter), word}] = Value(n);
      by_letter[letter][word] = n;
    }
    EX_ASSIGN_OR_FAIL(PStateDump dump, DumpPState(*engine_, "leaderboard", "$$words_by_letter"));
    EX_ASSIGN_OR_FAIL(auto view, TwoLevelMapOf(dump, "$$words_by_letter"));
    EXPECT_EQ(view, expected);
    for (const auto& [letter, words] : by_letter) {
      for (int64_t n : {1, 3, 100}) {
        EX_ASSIGN_OR_FAIL(Value leaders,
                          engine_->Invoke("leaderboard", "leaders", {Value(letter), Value(n)}));
        EXPECT_EQ(leaders, TopCounts(words, static_cast<size_t>(n))) << letter << " " << n;
      }
    }
    EX_ASSIGN_OR_FAIL(Value none,
                      engine_->Invoke("leaderboard", "leaders", {Value("z"), Value(5)}));
    EXPECT_EQ(none, Value(Value::List{}));
    // podium invokes wordcount's top-words (a mirror query) and its own leaders.
    const Value overall = TopCounts(counts, 1).as_list()[0];
    for (const auto& [letter, words] : by_letter) {
      EX_ASSIGN_OR_FAIL(Value podium, engine_->Invoke("leaderboard", "podium", {Value(letter)}));
      EXPECT_EQ(podium,
                Value::MapOf({{"overall", overall}, {"letter", TopCounts(words, 1).as_list()[0]}}))
          << letter;
    }
    EX_ASSIGN_OR_FAIL(Value nobody, engine_->Invoke("leaderboard", "podium", {Value("z")}));
    EXPECT_EQ(nobody, Value::MapOf({{"overall", overall}, {"letter", Value()}}));
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(LeaderboardTest, ViewAndLeadersEqualTheFoldOfWordcountsSentences) {
  std::mt19937_64 rng(TestSeed(9101));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(rng, 200));  // before leaderboard exists
  EX_ASSERT_OK(DeployExample(*engine_, "leaderboard"));
  for (int i = 0; i < 5; ++i) ASSERT_NO_FATAL_FAILURE(AppendSentences(rng, 100));
  ASSERT_NO_FATAL_FAILURE(ExpectViewsEqualOracle());

  // After a restart leaderboard resumes from its own progress (loading after wordcount).
  engine_.reset();
  EX_ASSIGN_OR_FAIL(engine_, OpenEngine(dir_.path()));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(rng, 100));
  ASSERT_NO_FATAL_FAILURE(ExpectViewsEqualOracle());
}

TEST_F(LeaderboardTest, WordcountStaysWhileLeaderboardDependsOnIt) {
  EX_ASSERT_OK(DeployExample(*engine_, "leaderboard"));
  EX_ASSIGN_OR_FAIL(ModuleInfo wordcount, engine_->Describe("wordcount"));
  EXPECT_EQ(wordcount.dependents, std::vector<std::string>{"leaderboard"});
  Status destroy = engine_->Destroy("wordcount");
  EXPECT_EQ(destroy.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(destroy.message().find("module leaderboard uses its depot *sentences, PState "
                                   "$$word_counts"),
            std::string::npos)
      << destroy.ToString();
  EX_ASSERT_OK(engine_->Destroy("leaderboard"));
  EX_ASSERT_OK(engine_->Destroy("wordcount"));
}

}  // namespace
}  // namespace strata::examples_test
