// The microbatch bank (examples/mbbank): deposits, transfers and rejections, a transfer id
// decided once, a failing record dropped from its batch while the rest commits, and a
// random workload poured in without waiting (so that batches hold many records) checked
// against a fold of what was appended — money conserved, no negative balance, every
// transfer id applied or rejected exactly once, each balance equal to its deposits and
// applied transfers — and against its recomputation (Engine::Recompute).
#include <iostream>
#include <map>
#include <ostream>
#include <random>
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

const Value kInsufficient("insufficient funds");

class MbbankTest : public ExampleTest {
 protected:
  MbbankTest() : ExampleTest("mbbank") {}

  Value Balance(const std::string& account) { return SelectOne("$$balances", Path().Key(account)); }
  void Deposit(const std::string& account, int64_t amount) {
    EX_ASSERT_OK(engine_->Append("mbbank", "*deposits", DepositRecord(account, amount)));
  }
  void Transfer(const std::string& id, const std::string& from, const std::string& to,
                int64_t amount) {
    EX_ASSERT_OK(engine_->Append("mbbank", "*transfers", TransferRecord(id, from, to, amount)));
  }
  Value Applied(const std::string& from, const std::string& id) {
    return SelectOne("$$applied", Path().Key(from, id));
  }
  Value Rejected(const std::string& from, const std::string& id) {
    return SelectOne("$$rejected", Path().Key(from, id));
  }
};

TEST_F(MbbankTest, DepositsAndTransfersMoveMoneyAndARejectionSaysWhy) {
  Deposit("alice", 100);
  Deposit("alice", 20);
  EXPECT_EQ(Balance("alice"), Value(120));
  EXPECT_EQ(SelectOne("$$deposited", Path().Key("alice")), Value(120));

  Transfer("t1", "alice", "bob", 70);
  EXPECT_EQ(Balance("alice"), Value(50));
  EXPECT_EQ(Balance("bob"), Value(70));
  EXPECT_EQ(Applied("alice", "t1"), Value::MapOf({{"to", "bob"}, {"amount", 70}}));
  EXPECT_EQ(Rejected("alice", "t1"), Value());

  Transfer("t2", "alice", "bob", 51);
  Transfer("t3", "nobody", "bob", 1);
  EXPECT_EQ(Rejected("alice", "t2"), kInsufficient);
  EXPECT_EQ(Rejected("nobody", "t3"), kInsufficient);
  EXPECT_EQ(Applied("alice", "t2"), Value());
  EXPECT_EQ(Balance("alice"), Value(50));
  EXPECT_EQ(Balance("bob"), Value(70));
  EXPECT_EQ(SelectOne("$$deposited", Path().Key("bob")), Value());
}

TEST_F(MbbankTest, ATransferIdIsDecidedOnce) {
  Deposit("alice", 100);
  Transfer("t1", "alice", "bob", 60);
  Transfer("t1", "alice", "bob", 60);  // the same transfer sent again
  Transfer("t1", "alice", "carol", 5);
  EXPECT_EQ(Balance("alice"), Value(40));
  EXPECT_EQ(Balance("bob"), Value(60));
  EXPECT_EQ(Balance("carol"), Value());

  Transfer("t2", "alice", "bob", 50);
  EXPECT_EQ(Rejected("alice", "t2"), kInsufficient);
  Deposit("alice", 100);
  Transfer("t2", "alice", "bob", 50);  // now covered, but t2 was decided
  EXPECT_EQ(Rejected("alice", "t2"), kInsufficient);
  EXPECT_EQ(Balance("alice"), Value(140));

  // Ids are per source account: carol's t1 is another transfer.
  Deposit("carol", 5);
  Transfer("t1", "carol", "bob", 5);
  EXPECT_EQ(Balance("bob"), Value(65));
}

// A `processed` append returns once the batch holding the record committed, so money
// credited by one append's batch is spendable by the next append.
TEST_F(MbbankTest, CreditedMoneyIsSpendableByALaterBatch) {
  Deposit("alice", 50);
  Transfer("t1", "alice", "bob", 50);
  Transfer("t2", "bob", "carol", 50);
  EXPECT_EQ(Balance("alice"), Value(0));
  EXPECT_EQ(Balance("bob"), Value(0));
  EXPECT_EQ(Balance("carol"), Value(50));
  EXPECT_EQ(Applied("bob", "t2"), Value::MapOf({{"to", "carol"}, {"amount", 50}}));
}

TEST_F(MbbankTest, AFailingRecordIsDroppedAndTheRestOfItsBatchCommits) {
  Deposit("alice", 100);
  // One source account: one depot partition, in this order, in as few batches as the
  // runtime makes of them.
  EX_ASSIGN_OR_FAIL(std::vector<AppendResult> results,
                    engine_->AppendBatch("mbbank", "*transfers",
                                         {TransferRecord("t1", "alice", "bob", 10),
                                          TransferRecord("t2", "alice", "bob", 0),
                                          Value::MapOf({{"id", "t3"}, {"from", "alice"}}),
                                          TransferRecord("t4", "alice", "carol", 20)}));
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results[0].failure.ok()) << results[0].failure.ToString();
  EXPECT_EQ(results[1].failure.code(), StatusCode::kUserError) << results[1].failure.ToString();
  EXPECT_NE(results[1].failure.message().find("ledger"), std::string::npos)
      << results[1].failure.ToString();
  EXPECT_EQ(results[2].failure.code(), StatusCode::kUserError) << results[2].failure.ToString();
  EXPECT_TRUE(results[3].failure.ok()) << results[3].failure.ToString();

  EXPECT_EQ(Balance("alice"), Value(70));
  EXPECT_EQ(Balance("bob"), Value(10));
  EXPECT_EQ(Balance("carol"), Value(20));
  EXPECT_EQ(Applied("alice", "t2"), Value());
  EXPECT_EQ(Rejected("alice", "t2"), Value());

  EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("mbbank"));
  EXPECT_EQ(stats.failures, 2);
  ASSERT_EQ(stats.failure_page.size(), 2u);
  for (const TopologyFailure& f : stats.failure_page) {
    EXPECT_EQ(f.topology, "ledger");
    EXPECT_EQ(f.depot, "*transfers");
  }
  EXPECT_EQ(stats.failure_page[0].offset, results[1].offset);
  EXPECT_EQ(stats.failure_page[1].offset, results[2].offset);

  // The failures block nothing later.
  Transfer("t5", "alice", "bob", 70);
  EXPECT_EQ(Balance("alice"), Value(0));
  EXPECT_TRUE(RecomputedInPlaceEqual(*engine_, "mbbank"));
}

// Deposits and transfers appended without waiting for processing, in rounds, so that
// batches hold many records of both depots and credits race debits across batches. Which
// transfers are covered depends on the batch boundaries; everything below does not.
TEST_F(MbbankTest, RandomWorkloadConservesMoneyAndEqualsItsRecomputation) {
  std::mt19937_64 rng(TestSeed(7101));
  constexpr int kAccounts = 24;
  constexpr int kRounds = 8;
  auto account = [&] { return Cat("acct", rng() % kAccounts); };

  std::map<std::string, int64_t> deposited;
  int64_t total = 0;
  // (from, id) -> the first transfer record sent with it.
  std::map<std::pair<std::string, std::string>, Value> sent;
  std::vector<std::pair<std::string, std::string>> impossible;
  std::vector<Value> all_transfers;
  for (int round = 0; round < kRounds; ++round) {
    std::vector<Value> deposits;
    for (int i = 0; i < 30; ++i) {
      std::string a = account();
      int64_t amount = 1 + static_cast<int64_t>(rng() % 100);
      deposited[a] += amount;
      total += amount;
      deposits.push_back(DepositRecord(a, amount));
    }
    std::vector<Value> transfers;
    for (int i = 0; i < 150; ++i) {
      if (!all_transfers.empty() && rng() % 20 == 0) {  // a client sending a transfer again
        transfers.push_back(all_transfers[rng() % all_transfers.size()]);
        continue;
      }
      std::string id = Cat("r", round, "-", i);
      std::string from = account();
      int64_t amount = 1 + static_cast<int64_t>(rng() % 40);
      if (rng() % 50 == 0) {
        amount = 1'000'000;  // more than all the money there will ever be
        impossible.emplace_back(from, id);
      }
      Value record = TransferRecord(id, from, account(), amount);
      sent.emplace(std::make_pair(from, id), record);
      all_transfers.push_back(record);
      transfers.push_back(std::move(record));
    }
    EX_ASSERT_OK(
        engine_->AppendBatch("mbbank", "*deposits", std::move(deposits), AckLevel::kAppended));
    EX_ASSERT_OK(
        engine_->AppendBatch("mbbank", "*transfers", std::move(transfers), AckLevel::kAppended));
  }
  EX_ASSERT_OK(engine_->WaitProcessed("mbbank"));

  EX_ASSIGN_OR_FAIL(auto dumps, DumpPStates(*engine_, "mbbank"));
  EX_ASSIGN_OR_FAIL(auto deposited_view, IntMapOf(dumps.at("$$deposited"), "$$deposited"));
  std::map<Value, int64_t> expected_deposited;
  for (const auto& [a, sum] : deposited) expected_deposited[Value(a)] = sum;
  EXPECT_EQ(IntMapText(deposited_view), IntMapText(expected_deposited));

  EX_ASSIGN_OR_FAIL(auto balances, IntMapOf(dumps.at("$$balances"), "$$balances"));
  int64_t money = 0;
  for (const auto& [a, balance] : balances) {
    EXPECT_GE(balance, 0) << a.ToString();
    money += balance;
  }
  EXPECT_EQ(money, total);

  EX_ASSIGN_OR_FAIL(auto applied, TwoLevelMapOf(dumps.at("$$applied"), "$$applied"));
  EX_ASSIGN_OR_FAIL(auto rejected, TwoLevelMapOf(dumps.at("$$rejected"), "$$rejected"));
  EXPECT_EQ(applied.size() + rejected.size(), sent.size());
  std::map<std::string, int64_t> expected_balances(deposited.begin(), deposited.end());
  for (const auto& [key, record] : sent) {
    const std::pair<Value, Value> k(Value(key.first), Value(key.second));
    auto a = applied.find(k);
    auto r = rejected.find(k);
    ASSERT_NE(a == applied.end(), r == rejected.end())
        << key.first << "/" << key.second << " must be applied or rejected, exactly once";
    if (r != rejected.end()) {
      EXPECT_EQ(r->second, kInsufficient);
      continue;
    }
    const Value& to = *record.Find(Value("to"));
    const int64_t amount = record.Find(Value("amount"))->as_int();
    EXPECT_EQ(a->second, Value::MapOf({{"to", to}, {"amount", amount}})) << key.second;
    expected_balances[key.first] -= amount;
    expected_balances[to.as_string()] += amount;
  }
  for (const auto& [from, id] : impossible) {
    EXPECT_EQ(rejected[std::make_pair(Value(from), Value(id))], kInsufficient) << id;
  }
  EXPECT_GT(applied.size(), sent.size() / 5);
  EXPECT_GT(rejected.size(), impossible.size());
  for (const auto& [a, balance] : expected_balances) {
    auto it = balances.find(Value(a));
    EXPECT_EQ(it == balances.end() ? 0 : it->second, balance) << a;
  }

  EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("mbbank"));
  EXPECT_EQ(stats.failures, 0);
  for (const ModuleStats::Microbatch& mb : stats.microbatches) {
    std::cout << "[ batches  ] " << mb.topology << ": " << mb.batch << std::endl;
  }
  EXPECT_TRUE(RecomputedInPlaceEqual(*engine_, "mbbank"));
}

}  // namespace
}  // namespace strata::examples_test
