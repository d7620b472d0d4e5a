// Fairness and the step timeout against a real stratad with one task thread (issue 13,
// point 7): a 250,000-word sentence of the wordcount example no longer holds back a bank
// deposit until its whole fan-out is processed, and --step-timeout-ms turns a step that
// runs too long into a recorded failure. Both check work counts, not times.
#include <memory>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "strata/client.h"
#include "strata/path.h"
#include "stratad_test.h"

namespace strata {
namespace {

using server_test::StratadTest;

constexpr int kWords = 250'000;

#define ASSERT_CALL_OK(lhs, expr)                                                     \
  auto lhs##_result = (expr);                                                         \
  ASSERT_TRUE(lhs##_result.ok()) << #expr << ": " << lhs##_result.error().ToString(); \
  auto lhs = std::move(lhs##_result).value()

std::string HugeSentence() {
  std::string sentence;
  for (int i = 0; i < kWords; ++i) {
    sentence += 'w';  // appended: g++ 12 warns falsely (-Wrestrict) on "w" + ...
    sentence += std::to_string(i);
    sentence += ' ';
  }
  return sentence;
}

class FairnessTest : public StratadTest {
 protected:
  FairnessTest()
      : StratadTest("strata_fairness_test_", {"--cache-size", "128MB", "--task-threads", "1"}) {}

  void Connect() {
    ClientOptions options;
    options.port = server_->port();
    options.request_timeout = std::chrono::minutes(2);
    auto client = Client::Connect(options);
    ASSERT_TRUE(client.ok()) << client.error().ToString();
    client_ = std::move(client).value();
  }

  // The wordcount records not yet fully processed (Stats lag over all partitions).
  int64_t WordcountLag() {
    auto stats = client_->Stats("wordcount");
    EXPECT_TRUE(stats.ok()) << stats.error().ToString();
    int64_t lag = 0;
    if (!stats.ok()) return -1;
    for (const auto& m : stats->modules) {
      for (const auto& t : m.topologies) lag += t.lag;
    }
    return lag;
  }

  std::unique_ptr<Client> client_;
};

TEST_F(FairnessTest, AHugeSentenceDoesNotHoldBackAnotherModulesDeposit) {
  ASSERT_NO_FATAL_FAILURE(StartServer());
  ASSERT_NO_FATAL_FAILURE(Connect());
  ASSERT_TRUE(client_->Deploy(WORDCOUNT_MODULE, 4).ok());
  ASSERT_TRUE(client_->Deploy(BANK_MODULE, 4).ok());
  ASSERT_CALL_OK(appended, client_->Append("wordcount", "*sentences", Value(HugeSentence()),
                                           protocol::AckLevel::kAppended));
  // Once the first word is counted, the split has run and its 250,000 hops are queued.
  for (;;) {
    ASSERT_CALL_OK(count, client_->Select("wordcount", "$$word_counts", Path().Key("w0")));
    if (!count.empty() && !count[0].is_nil()) break;
    std::this_thread::yield();
  }
  ASSERT_CALL_OK(deposit, client_->Append("bank", "*deposits",
                                          Value::MapOf({{"account", "a"}, {"amount", 5}})));
  // With one FIFO queue per task thread the deposit waited for the whole backlog (lag 0).
  EXPECT_EQ(WordcountLag(), 1) << "the sentence was fully processed before the deposit was";
  while (WordcountLag() != 0) std::this_thread::yield();
  ASSERT_CALL_OK(last, client_->Select("wordcount", "$$word_counts",
                                       Path().Key(std::string("w") += std::to_string(kWords - 1))));
  EXPECT_EQ(last, std::vector<Value>{Value(1)});
}

TEST_F(FairnessTest, AStepOverTheStepTimeoutIsARecordedFailure) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--step-timeout-ms", "1"}));
  ASSERT_NO_FATAL_FAILURE(Connect());
  ASSERT_TRUE(client_->Deploy(WORDCOUNT_MODULE, 4).ok());
  // Splitting 250,000 words takes far longer than 1 ms.
  auto appended = client_->Append("wordcount", "*sentences", Value(HugeSentence()));
  ASSERT_FALSE(appended.ok());
  EXPECT_EQ(appended.error().code, protocol::ErrorCode::kTopologyFailed)
      << appended.error().ToString();
  EXPECT_NE(appended.error().message.find("longer than the step timeout of 1 ms"),
            std::string::npos)
      << appended.error().ToString();
  ASSERT_CALL_OK(stats, client_->Stats("wordcount"));
  ASSERT_EQ(stats.modules.size(), 1u);
  EXPECT_EQ(stats.modules[0].failures, 1);
  ASSERT_CALL_OK(count, client_->Select("wordcount", "$$word_counts", Path().Key("w0")));
  EXPECT_EQ(count, std::vector<Value>{Value()});  // rolled back: no word was counted
}

}  // namespace
}  // namespace strata
