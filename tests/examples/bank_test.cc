// The bank example (examples/bank): deposits, transfers and rejections with their ack
// returns, transfer ids taking effect once, malformed records, concurrent transfers
// conserving money, the oracle, and the query total-money: the sum of the deposits in
// every answer, while thousands of transfers run.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
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

const Value kOk = Value::MapOf({{"status", "ok"}});

class BankTest : public ExampleTest {
 protected:
  BankTest() : ExampleTest("bank") {}

  Value Balance(const std::string& account) { return SelectOne("$$balances", Path().Key(account)); }

  // The ack return of a processed transfer (nil after a test failure).
  Value Transfer(const std::string& id, const std::string& from, const std::string& to,
                 int64_t amount) {
    auto r = engine_->Append("bank", "*transfers", TransferRecord(id, from, to, amount));
    EXPECT_TRUE(r.ok()) << id << ": " << r.status().ToString();
    return r.ok() ? AckReturn(*r, "transfer") : Value();
  }

  // The sum of the amounts of every *deposits record (all valid in these tests).
  int64_t DepositedInDepot() {
    auto depot = ReadWholeDepot(*engine_, "bank", "*deposits");
    EXPECT_TRUE(depot.ok()) << depot.status().ToString();
    return depot.ok() ? DepositedSum(*depot) : 0;
  }

  int64_t TotalMoney() {
    auto balances = CollectIntMap(*engine_, "bank", "$$balances");
    EXPECT_TRUE(balances.ok()) << balances.status().ToString();
    int64_t total = 0;
    if (balances.ok()) {
      for (const auto& [account, balance] : *balances) total += balance;
    }
    return total;
  }
};

TEST_F(BankTest, DepositsAndTransfersMoveMoneyWithOkAcks) {
  EX_ASSIGN_OR_FAIL(AppendResult deposit,
                    engine_->Append("bank", "*deposits", DepositRecord("alice", 100)));
  EXPECT_EQ(AckReturn(deposit, "deposit"), Value::MapOf({{"status", "ok"}, {"balance", 100}}));
  EX_ASSERT_OK(engine_->Append("bank", "*deposits", DepositRecord("alice", 20)));
  EXPECT_EQ(Balance("alice"), Value(120));

  EXPECT_EQ(Transfer("t1", "alice", "bob", 70), kOk);
  EXPECT_EQ(Balance("alice"), Value(50));
  EXPECT_EQ(Balance("bob"), Value(70));
  EXPECT_EQ(SelectOne("$$applied_debits", Path().Key("alice").Size()), Value(1));
  EXPECT_EQ(Select("$$applied_credits", Path().Key("bob").All()),
            (std::vector<Value>{Value::ListOf({"alice", "t1"})}));
}

TEST_F(BankTest, InsufficientFundsRejectsAndRecordsTheTransfer) {
  EX_ASSERT_OK(engine_->Append("bank", "*deposits", DepositRecord("alice", 30)));
  EXPECT_EQ(
      Transfer("t1", "alice", "bob", 31),
      Value::MapOf({{"status", "rejected"}, {"reason", "insufficient funds"}, {"balance", 30}}));
  EXPECT_EQ(
      Transfer("t2", "nobody", "bob", 1),
      Value::MapOf({{"status", "rejected"}, {"reason", "insufficient funds"}, {"balance", 0}}));
  EXPECT_EQ(Balance("alice"), Value(30));
  EXPECT_EQ(Balance("bob"), Value());
  EXPECT_EQ(SelectOne("$$rejected", Path().Key("alice", "t1")), Value("insufficient funds"));
  EXPECT_EQ(SelectOne("$$rejected", Path().Key("nobody", "t2")), Value("insufficient funds"));
}

TEST_F(BankTest, ATransferIdTakesEffectOnceAndKeepsItsFirstAnswer) {
  EX_ASSERT_OK(engine_->Append("bank", "*deposits", DepositRecord("alice", 100)));
  EXPECT_EQ(Transfer("t1", "alice", "bob", 60), kOk);
  EXPECT_EQ(Transfer("t1", "alice", "bob", 60), kOk);  // the same transfer again
  EXPECT_EQ(Balance("alice"), Value(40));
  EXPECT_EQ(Balance("bob"), Value(60));

  EXPECT_EQ(Field(Transfer("t2", "alice", "bob", 50), "status"), Value("rejected"));
  EX_ASSERT_OK(engine_->Append("bank", "*deposits", DepositRecord("alice", 100)));
  // Now covered, but t2 was decided: it stays rejected.
  EXPECT_EQ(Field(Transfer("t2", "alice", "bob", 50), "status"), Value("rejected"));
  EXPECT_EQ(Balance("alice"), Value(140));

  // Ids are per source account: carol's t1 is another transfer.
  EX_ASSERT_OK(engine_->Append("bank", "*deposits", DepositRecord("carol", 5)));
  EXPECT_EQ(Transfer("t1", "carol", "bob", 5), kOk);
  EXPECT_EQ(Balance("bob"), Value(65));
}

TEST_F(BankTest, MalformedRecordsAreFailuresAndMoveNoMoney) {
  EX_ASSERT_OK(engine_->Append("bank", "*deposits", DepositRecord("alice", 100)));
  const std::vector<Value> bad_transfers = {
      TransferRecord("t1", "alice", "bob", 0),
      TransferRecord("t2", "alice", "bob", -5),
      Value::MapOf({{"id", "t4"}, {"from", "alice"}, {"amount", 1}}),
  };
  for (const Value& record : bad_transfers) {
    auto r = engine_->Append("bank", "*transfers", record);
    ASSERT_FALSE(r.ok()) << record.ToString();
    EXPECT_EQ(r.status().code(), StatusCode::kUserError) << r.status().ToString();
  }
  // Mistyped and unknown fields are refused by the record schema: they never reach the log.
  const std::vector<std::pair<Value, std::string>> mistyped = {
      {Value::MapOf({{"id", "t3"}, {"from", "alice"}, {"to", "bob"}, {"amount", 1.5}}),
       "*transfers.amount: expected int64, got double 1.5"},
      {Value::MapOf({{"id", 5}, {"from", "alice"}, {"to", "bob"}, {"amount", 1}}),
       "*transfers.id: expected string, got int 5"},
      {Value::MapOf({{"id", "t6"}, {"from", "alice"}, {"to", "bob"}, {"amount", 1}, {"memo", "x"}}),
       "unknown field \"memo\""},
  };
  for (const auto& [record, expected] : mistyped) {
    auto r = engine_->Append("bank", "*transfers", record);
    ASSERT_FALSE(r.ok()) << record.ToString();
    EXPECT_EQ(r.status().code(), StatusCode::kSchemaViolation) << r.status().ToString();
    EXPECT_NE(r.status().message().find(expected), std::string::npos) << r.status().ToString();
  }
  EX_ASSIGN_OR_FAIL(ModuleStats logged, engine_->Stats("bank"));
  int64_t transfers_logged = 0;
  for (const DepotPartitionStats& d : logged.depots) {
    if (d.depot == "*transfers") transfers_logged += d.end_offset - d.start_offset;
  }
  EXPECT_EQ(transfers_logged, static_cast<int64_t>(bad_transfers.size()));
  auto bad_deposit = engine_->Append("bank", "*deposits", DepositRecord("alice", -100));
  ASSERT_FALSE(bad_deposit.ok());
  EXPECT_NE(bad_deposit.status().message().find("amount"), std::string::npos)
      << bad_deposit.status().ToString();
  EXPECT_EQ(Balance("alice"), Value(100));
  EXPECT_EQ(Balance("bob"), Value());
  EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("bank"));
  EXPECT_EQ(stats.failures, static_cast<int64_t>(bad_transfers.size() + 1));
}

TEST_F(BankTest, ConcurrentTransfersConserveMoney) {
  constexpr int kAccounts = 12;
  constexpr int kThreads = 8;
  constexpr int kTransfersPerThread = 60;
  std::vector<Value> deposits;
  for (int a = 0; a < kAccounts; ++a) deposits.push_back(DepositRecord(Cat("a", a), 50));
  EX_ASSERT_OK(engine_->AppendBatch("bank", "*deposits", std::move(deposits)));
  const int64_t total = 50 * kAccounts;

  const uint64_t seed = TestSeed(7003);
  std::atomic<int> ok{0}, rejected{0}, errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      for (int i = 0; i < kTransfersPerThread; ++i) {
        std::string from = Cat("a", rng() % kAccounts);
        std::string to = Cat("a", rng() % kAccounts);
        auto r = engine_->Append(
            "bank", "*transfers",
            TransferRecord(Cat("t", t, "-", i), from, to, 1 + static_cast<int64_t>(rng() % 40)));
        if (!r.ok()) {
          ++errors;
          continue;
        }
        Value status = Field(AckReturn(*r, "transfer"), "status");
        if (status == Value("ok")) ++ok;
        if (status == Value("rejected")) ++rejected;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(ok + rejected, kThreads * kTransfersPerThread);
  EXPECT_GT(ok.load(), 0);
  EXPECT_EQ(TotalMoney(), total);
  EXPECT_EQ(Invoke("total-money", {}), Value(total));
  auto balances = CollectIntMap(*engine_, "bank", "$$balances");
  ASSERT_TRUE(balances.ok()) << balances.status().ToString();
  for (const auto& [account, balance] : *balances) EXPECT_GE(balance, 0) << account.ToString();
}

// Rejections must not depend on timing, or the recomputation (all deposits first, then
// all transfers, each depot partition by partition) could reject other transfers than
// the live run. So: deposits are processed before any transfer; every account sends at
// most its deposit in total, in valid transfers, so no valid transfer can be refused in
// any order; and some transfers ask for more than all the money in the system, so they
// are refused in every order. Repeated ids exercise the once-only path.
TEST_F(BankTest, OracleRecomputedViewsEqualLiveViews) {
  std::mt19937_64 rng(TestSeed(7004));
  constexpr int kAccounts = 16;
  constexpr int64_t kDeposit = 1000;
  std::vector<Value> deposits;
  for (int a = 0; a < kAccounts; ++a) {
    deposits.push_back(DepositRecord(Cat("acct", a), kDeposit / 2));
    deposits.push_back(DepositRecord(Cat("acct", a), kDeposit / 2));
  }
  EX_ASSERT_OK(engine_->AppendBatch("bank", "*deposits", std::move(deposits)));

  std::vector<int64_t> budget(kAccounts, kDeposit);
  std::vector<Value> transfers;
  for (int i = 0; i < 400; ++i) {
    int from = static_cast<int>(rng() % kAccounts);
    int to = static_cast<int>(rng() % kAccounts);
    int64_t amount = 1 + static_cast<int64_t>(rng() % 30);
    bool impossible = rng() % 10 == 0;
    if (impossible) amount = kDeposit * kAccounts + 1;
    if (!impossible && budget[from] < amount) continue;
    if (!impossible) budget[from] -= amount;
    Value record = TransferRecord(Cat("x", i), Cat("acct", from), Cat("acct", to), amount);
    transfers.push_back(record);
    if (rng() % 8 == 0) transfers.push_back(record);  // a client retry
  }
  int64_t rejected = 0;
  for (size_t begin = 0; begin < transfers.size(); begin += 100) {
    std::vector<Value> chunk(transfers.begin() + begin,
                             transfers.begin() + std::min(transfers.size(), begin + 100));
    EX_ASSIGN_OR_FAIL(std::vector<AppendResult> results,
                      engine_->AppendBatch("bank", "*transfers", std::move(chunk)));
    for (const AppendResult& r : results) {
      if (Field(AckReturn(r, "transfer"), "status") == Value("rejected")) ++rejected;
    }
  }
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(TotalMoney(), kDeposit * kAccounts);
  ExpectRecomputationEqual({"*deposits", "*transfers"});
  EXPECT_EQ(Invoke("total-money", {}), Value(DepositedInDepot()));
  EXPECT_EQ(Invoke("total-money", {}), Value(kDeposit * kAccounts));
  EXPECT_TRUE(RecomputedInPlaceEqual(*engine_, "bank"));
  EXPECT_EQ(Invoke("total-money", {}), Value(kDeposit * kAccounts));
}

TEST_F(BankTest, TotalMoneyOfAnEmptyBankIsZeroAndTakesNoArguments) {
  EXPECT_EQ(Invoke("total-money", {}), Value(0));
  ExpectInvokeError("total-money", {Value(1)}, StatusCode::kInvalidArgument,
                    "takes 0 arguments (), not 1");
  EX_ASSERT_OK(engine_->Append("bank", "*deposits", DepositRecord("alice", 7)));
  EXPECT_EQ(Invoke("total-money", {}), Value(7));
}

// Transfers commit their debit and their credit in two transactions on two partitions;
// total-money reads every partition in one snapshot and counts the money in flight, so
// every answer is the deposits' sum — while writer threads append thousands of transfers
// (some acknowledged when appended only, so that many are in flight at once) and other
// threads invoke the query in a loop.
TEST_F(BankTest, TotalMoneyIsTheDepositsSumWhileTransfersRun) {
  constexpr int kAccounts = 40;
  constexpr int kWriters = 4;
  constexpr int kBatchesPerWriter = 50;
  constexpr int kTransfersPerBatch = 20;
  constexpr int kReaders = 2;
  std::vector<Value> deposits;
  for (int a = 0; a < kAccounts; ++a) deposits.push_back(DepositRecord(Cat("a", a), 100 + a));
  EX_ASSERT_OK(engine_->AppendBatch("bank", "*deposits", std::move(deposits)));
  const int64_t deposited = DepositedInDepot();
  ASSERT_EQ(deposited, 100 * kAccounts + kAccounts * (kAccounts - 1) / 2);

  const uint64_t seed = TestSeed(7013);
  std::atomic<int> writers_left{kWriters};
  std::atomic<int64_t> answers{0}, wrong{0}, failed{0}, answers_during_writes{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(seed + w);
      for (int b = 0; b < kBatchesPerWriter; ++b) {
        std::vector<Value> batch;
        for (int i = 0; i < kTransfersPerBatch; ++i) {
          batch.push_back(TransferRecord(Cat("t", w, "-", b, "-", i), Cat("a", rng() % kAccounts),
                                         Cat("a", rng() % kAccounts),
                                         1 + static_cast<int64_t>(rng() % 60)));
        }
        const AckLevel level = rng() % 2 == 0 ? AckLevel::kAppended : AckLevel::kProcessed;
        if (!engine_->AppendBatch("bank", "*transfers", std::move(batch), level).ok()) ++failed;
      }
      --writers_left;
    });
  }
  std::mutex mu;
  std::vector<Value> wrong_answers;  // GUARDED_BY(mu): the first few
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&] {
      // Until the writers are done, and a few more once they are (queries racing the last
      // transfers' processing).
      for (int after = 0; after < 20;) {
        const bool writing = writers_left.load() > 0;
        Result<Value> total = engine_->Invoke("bank", "total-money", {});
        ++answers;
        if (writing) ++answers_during_writes;
        if (!writing) ++after;
        if (!total.ok()) {
          ++failed;
        } else if (*total != Value(deposited)) {
          ++wrong;
          std::lock_guard<std::mutex> lock(mu);
          if (wrong_answers.size() < 5) wrong_answers.push_back(*total);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::cout << "[ queries  ] " << answers.load() << " answers, " << answers_during_writes.load()
            << " while transfers were appended" << std::endl;
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0) << "deposited " << deposited
                             << ", first wrong answers: " << Value(wrong_answers).ToString();
  EXPECT_GT(answers_during_writes.load(), 0);
  EX_ASSERT_OK(engine_->WaitProcessed("bank"));
  EXPECT_EQ(TotalMoney(), deposited);  // the balances alone, once nothing is in flight
  EXPECT_EQ(Invoke("total-money", {}), Value(deposited));
  PrintInvokeTime(*engine_, "bank", "total-money", {}, 50);
}

}  // namespace
}  // namespace strata::examples_test
