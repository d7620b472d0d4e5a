// The bank example updated in place (examples/bank/bank.cc built with BANK_V2 as bank_v2.so):
// version 1 stores balances as int64, version 2 as {amount, currency} with a migration. After
// Engine::Update, reads see every balance migrated at once, the new code moves money on migrated
// values, what version 1 decided (transfer ids) still holds, and the query total-money of
// either version counts the money of either shape.
#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "example_harness.h"

namespace strata::examples_test {
namespace {

Value Eur(int64_t amount) { return Value::MapOf({{"amount", amount}, {"currency", "EUR"}}); }

const Value kOk = Value::MapOf({{"status", "ok"}});

class BankUpdateTest : public ExampleTest {
 protected:
  BankUpdateTest() : ExampleTest("bank") {}  // deploys version 1

  Value Balance(const std::string& account) { return SelectOne("$$balances", Path().Key(account)); }

  void Deposit(const std::string& account, int64_t amount) {
    auto r = engine_->Append("bank", "*deposits", DepositRecord(account, amount));
    EXPECT_TRUE(r.ok()) << account << ": " << r.status().ToString();
  }

  Value Transfer(const std::string& id, const std::string& from, const std::string& to,
                 int64_t amount) {
    auto r = engine_->Append("bank", "*transfers", TransferRecord(id, from, to, amount));
    EXPECT_TRUE(r.ok()) << id << ": " << r.status().ToString();
    return r.ok() ? AckReturn(*r, "transfer") : Value();
  }
};

TEST_F(BankUpdateTest, Version2ReadsVersion1BalancesMigratedAndMovesMoneyOnThem) {
  Deposit("alice", 100);
  Deposit("bob", 30);
  Deposit("carol", 5);
  EXPECT_EQ(Transfer("t1", "alice", "bob", 40), kOk);
  EXPECT_EQ(Balance("alice"), Value(60));
  EXPECT_EQ(Invoke("total-money", {}), Value(135));

  EX_ASSIGN_OR_FAIL(UpdateResult updated, engine_->Update(ModulePath("bank_v2"), UpdateOptions{}));
  EXPECT_EQ(updated.version, 2);
  // The query of version 2 sums the migrated records.
  EXPECT_EQ(Invoke("total-money", {}), Value(135));

  // Every balance version 1 wrote reads migrated, on every partition.
  EXPECT_EQ(Balance("alice"), Eur(60));
  EXPECT_EQ(Balance("bob"), Eur(70));
  EXPECT_EQ(SelectOne("$$balances", Path().Key("carol", "amount")), Value(5));
  // The new code works on migrated values and writes records.
  EXPECT_EQ(Transfer("t2", "bob", "alice", 20), kOk);
  Deposit("dave", 7);
  EXPECT_EQ(Balance("alice"), Eur(80));
  EXPECT_EQ(Balance("bob"), Eur(50));
  EXPECT_EQ(Balance("dave"), Eur(7));
  // A transfer id version 1 applied keeps its answer and moves no money again.
  EXPECT_EQ(Transfer("t1", "alice", "bob", 40), kOk);
  EX_ASSERT_OK(engine_->WaitProcessed("bank"));
  EXPECT_EQ(Balance("alice"), Eur(80));

  EX_ASSIGN_OR_FAIL(PStateDump dump, DumpPState(*engine_, "bank", "$$balances"));
  int64_t total = 0;
  int accounts = 0;
  for (const std::vector<Value>& partition : dump) {
    for (const Value& map : partition) {
      for (const auto& [account, balance] : map.as_map()) {
        EXPECT_EQ(Field(balance, Value("currency")), Value("EUR")) << account.ToString();
        total += Field(balance, Value("amount")).as_int();
        ++accounts;
      }
    }
  }
  EXPECT_EQ(accounts, 4);
  EXPECT_EQ(total, 100 + 30 + 5 + 7);
  EXPECT_EQ(Invoke("total-money", {}), Value(total));
}

// Version 2 on its own (no data to migrate): a plain deploy of the second build.
TEST(BankV2Test, DeployedFreshItKeepsBalancesAsRecords) {
  TempDir dir;
  EX_ASSIGN_OR_FAIL(std::unique_ptr<Engine> engine, OpenEngine(dir.path()));
  EX_ASSERT_OK(DeployExample(*engine, "bank_v2"));
  EX_ASSERT_OK(engine->Append("bank", "*deposits", DepositRecord("alice", 10)));
  EX_ASSIGN_OR_FAIL(AppendResult rejected,
                    engine->Append("bank", "*transfers", TransferRecord("t1", "alice", "bob", 11)));
  ASSERT_EQ(rejected.ack_returns.size(), 1u);
  // The ack return keeps version 1's shape: the amount as "balance".
  EXPECT_EQ(
      rejected.ack_returns[0].second,
      Value::MapOf({{"status", "rejected"}, {"reason", "insufficient funds"}, {"balance", 10}}));
  EX_ASSERT_OK(engine->Append("bank", "*transfers", TransferRecord("t2", "alice", "bob", 4)));
  EX_ASSIGN_OR_FAIL(Value alice, engine->SelectOne("bank", "$$balances", Path().Key("alice")));
  EX_ASSIGN_OR_FAIL(Value bob, engine->SelectOne("bank", "$$balances", Path().Key("bob")));
  EXPECT_EQ(alice, Eur(6));
  EXPECT_EQ(bob, Eur(4));
  EX_ASSIGN_OR_FAIL(Value total, engine->Invoke("bank", "total-money", {}));
  EXPECT_EQ(total, Value(10));
}

// A recompute of $$balances alone: the rebuild's steps read the rebuild's own idempotence
// markers ($$deposit_offsets, $$applied_debits, …), not the live ones that say every deposit
// and debit was applied already, so the rebuilt balances equal the live ones.
TEST_F(BankUpdateTest, RecomputingTheBalancesAloneRebuildsThemFromTheLog) {
  Deposit("alice", 100);
  Deposit("bob", 30);
  EXPECT_EQ(Transfer("t1", "alice", "bob", 40), kOk);
  EXPECT_EQ(Transfer("t2", "bob", "alice", 500).Find("status")->as_string(), "rejected");
  ASSERT_TRUE(engine_->Recompute("bank", {"$$balances"}).ok());
  ASSERT_TRUE(engine_->WaitProcessed("bank").ok());
  EXPECT_EQ(Balance("alice"), Value(60));
  EXPECT_EQ(Balance("bob"), Value(70));
  EXPECT_EQ(Invoke("total-money", {}), Value(130));
  // After the update to version 2, recomputed by the new code (records, no migration).
  EX_ASSIGN_OR_FAIL(UpdateResult updated, engine_->Update(ModulePath("bank_v2"), UpdateOptions{}));
  ASSERT_TRUE(engine_->Recompute("bank", {"$$balances"}).ok());
  ASSERT_TRUE(engine_->WaitProcessed("bank").ok());
  EXPECT_EQ(Balance("alice"), Eur(60));
  EXPECT_EQ(Balance("bob"), Eur(70));
  EXPECT_EQ(Invoke("total-money", {}), Value(130));
}

}  // namespace
}  // namespace strata::examples_test
