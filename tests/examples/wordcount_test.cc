// The wordcount example (examples/wordcount): counts after `processed` acks, the record
// schema refusing a malformed record, the oracle, and the query top-words against the
// counts recomputed from *sentences.
#include <map>
#include <random>
#include <string>
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

class WordcountTest : public ExampleTest {
 protected:
  WordcountTest() : ExampleTest("wordcount") {}
  Value Count(const std::string& word) { return SelectOne("$$word_counts", Path().Key(word)); }
  Value TopWords(int64_t n) { return Invoke("top-words", {Value(n)}); }

  // The word counts recomputed from the records of *sentences (read back from the depot).
  std::map<Value, int64_t> CountsFromDepot() {
    auto counts = WordCountsOfLog(*engine_, "wordcount", "*sentences");
    EXPECT_TRUE(counts.ok()) << counts.status().ToString();
    return counts.ok() ? std::move(counts).value() : std::map<Value, int64_t>{};
  }

  // Sentences of words w0..w<vocabulary-1>, drawn with skewed frequencies (many ties too).
  void AppendRandomSentences(std::mt19937_64& rng, int sentences, int vocabulary) {
    std::vector<Value> batch;
    for (int s = 0; s < sentences; ++s) {
      std::string text;
      for (int w = 1 + static_cast<int>(rng() % 10); w > 0; --w) {
        const uint64_t r = rng() % static_cast<uint64_t>(vocabulary);
        text += Cat("w", r * r % static_cast<uint64_t>(vocabulary)) + (rng() % 3 ? " " : ", ");
      }
      batch.push_back(Value(text));
      if (batch.size() == 200) {
        EX_ASSERT_OK(engine_->AppendBatch("wordcount", "*sentences", std::move(batch)));
        batch.clear();
      }
    }
    if (!batch.empty()) EX_ASSERT_OK(engine_->AppendBatch("wordcount", "*sentences", batch));
  }
};

TEST_F(WordcountTest, TopWordsRanksByCountThenWord) {
  EXPECT_EQ(TopWords(3), Value(Value::List{}));  // nothing counted yet
  EX_ASSERT_OK(engine_->AppendBatch(
      "wordcount", "*sentences", {Value("b a c a b a"), Value("d c"), Value("e"), Value("c d b")}));
  // a 3, b 3, c 3, d 2, e 1: ties by word ascending.
  EXPECT_EQ(TopWords(1), Value::ListOf({Value::ListOf({"a", 3})}));
  EXPECT_EQ(TopWords(4), Value::ListOf({Value::ListOf({"a", 3}), Value::ListOf({"b", 3}),
                                        Value::ListOf({"c", 3}), Value::ListOf({"d", 2})}));
  EXPECT_EQ(TopWords(10'000).as_list().size(), 5u);
}

// The answers equal the top n of the counts recomputed from the depot's records, for n
// below, at and above the number of distinct words, and stay equal after the counts are
// recomputed in place.
TEST_F(WordcountTest, TopWordsEqualsTheCountsOfTheDepot) {
  std::mt19937_64 rng(TestSeed(7011));
  constexpr int kVocabulary = 3000;
  ASSERT_NO_FATAL_FAILURE(AppendRandomSentences(rng, 4000, kVocabulary));
  const std::map<Value, int64_t> oracle = CountsFromDepot();
  ASSERT_GT(oracle.size(), 100u);
  const std::vector<int64_t> ns = {1, 2, 10, 37, 100, static_cast<int64_t>(oracle.size()), 10'000};
  std::map<int64_t, Value> answers;
  for (int64_t n : ns) {
    answers[n] = TopWords(n);
    EXPECT_EQ(answers[n], TopCounts(oracle, static_cast<size_t>(n))) << "top-words(" << n << ")";
  }
  PrintInvokeTime(*engine_, "wordcount", "top-words", {Value(10)}, 50);

  ASSERT_TRUE(RecomputedInPlaceEqual(*engine_, "wordcount"));
  for (int64_t n : ns) EXPECT_EQ(TopWords(n), answers[n]) << "after the recompute, n = " << n;
}

TEST_F(WordcountTest, TopWordsRefusesBadArgumentsNamingTheQuery) {
  EX_ASSERT_OK(engine_->Append("wordcount", "*sentences", Value("one two two")));
  ExpectInvokeError("top-words", {}, StatusCode::kInvalidArgument, "takes 1 argument (n), not 0");
  ExpectInvokeError("top-words", {Value(1), Value(2)}, StatusCode::kInvalidArgument,
                    "takes 1 argument (n), not 2");
  ExpectInvokeError("top-words", {Value("3")}, StatusCode::kSchemaViolation,
                    "argument 1 (n, int64): expected int64, got string \"3\"");
  ExpectInvokeError("top-words", {Value(0)}, StatusCode::kUserError, "n must be 1 to 10000, not 0");
  ExpectInvokeError("top-words", {Value(10'001)}, StatusCode::kUserError,
                    "n must be 1 to 10000, not 10001");
  auto unknown = engine_->Invoke("wordcount", "top-word", {Value(1)});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound) << unknown.status().ToString();
  EXPECT_NE(unknown.status().message().find("no query top-word (its queries: top-words)"),
            std::string::npos)
      << unknown.status().ToString();
  // The refusals left the module serving.
  EXPECT_EQ(TopWords(1), Value::ListOf({Value::ListOf({"two", 2})}));
}

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
