// Schema evolution of PStates on a real WiredTiger: table generations (names with '@'),
// widened schemas, and migrations (applied on read and transform, rewritten by MigrateSome,
// stopped by FinishMigration).
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

#include "pstate/pstate.h"
#include "pstate/testing/pstate_fixture.h"
#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata {
namespace {

using testing::TestStore;

#define ASSERT_OK(expr)                      \
  do {                                       \
    const Status _st = (expr);               \
    ASSERT_TRUE(_st.ok()) << _st.ToString(); \
  } while (0)

Value J(std::string_view json) {
  Result<Value> v = ParseJson(json);
  EXPECT_TRUE(v.ok()) << json;
  return v.ok() ? *v : Value();
}

Value ReadAll(const PState& ps, Session& s, int partition = 0) {
  Result<Value> v = ps.SelectOne(s, partition, Path());
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return v.ok() ? *v : Value();
}

PStateSchema Balances() { return PStateSchema{Schema::Map(Schema::String(), Schema::Int64())}; }

PStateSchema Accounts() {
  return PStateSchema{
      Schema::Map(Schema::String(),
                  Schema::Record({{"amount", Schema::Int64()}, {"currency", Schema::String()}}))};
}

// int64 balance -> {amount, currency: "EUR"}; a record is already migrated. Counts calls.
struct ToAccounts {
  MigrationDef def;
  int calls = 0;
  ToAccounts() {
    def.id = "balances-to-accounts";
    def.fn = [this](const Value& old) -> Result<Value> {
      ++calls;
      if (old.is_map()) return old;
      if (!old.is_int()) return Status(StatusCode::kUserError, "not a balance: " + old.ToString());
      return Value::MapOf({{"amount", old.as_int()}, {"currency", "EUR"}});
    };
  }
};

class PStateEvolutionTest : public ::testing::Test {
 protected:
  Session& s() { return store_.session(); }

  // Fills $$balances (Balances()) in partition 0 with `n` keys k00.. holding their index.
  void WriteBalances(int n, int partitions = 1) {
    auto ps = store_.Open("balances", Balances(), partitions);
    ASSERT_NE(ps, nullptr);
    for (int i = 0; i < n; ++i) {
      char key[8];
      std::snprintf(key, sizeof key, "k%02d", i);
      ASSERT_TRUE(ps->Transform(s(), 0, Path().Key(key).Set(Value(int64_t{i}))).ok());
    }
  }

  // The value stored under `key` as the bytes say, without any migration.
  Value Raw(const PState& ps, std::string_view key) {
    auto table =
        store_.storage().OpenTable(PState::TableName("test", ps.name(), 0), TableKind::kBytes);
    EXPECT_TRUE(table.ok());
    std::string bytes;
    Result<bool> found = s().Get(*table, EncodeKey(Value(key)), &bytes);
    EXPECT_TRUE(found.ok() && *found) << key;
    Result<Value> v = DecodeValue(bytes);
    EXPECT_TRUE(v.ok());
    return v.ok() ? *v : Value();
  }

  TestStore store_;
};

// ---- Table generations ------------------------------------------------------------------

TEST_F(PStateEvolutionTest, TableNamesCarryTheGeneration) {
  EXPECT_EQ(PState::TableName("bank", "balances", 3), "pstate.bank.balances.3");
  EXPECT_EQ(PState::TableName("bank", "balances", 3, 0), "pstate.bank.balances.3");
  EXPECT_EQ(PState::TableName("bank", "balances", 3, 2), "pstate.bank.balances@2.3");
}

// '@' in a WiredTiger table name ("table:pstate.test.balances@1.0"): created, written,
// and there again after the database is closed and reopened.
TEST_F(PStateEvolutionTest, GenerationsAreSeparateTablesThatSurviveReopen) {
  WriteBalances(2, /*partitions=*/2);
  {
    auto next = store_.Open("balances", Balances(), 2, PStateOpenOptions{.generation = 1});
    ASSERT_NE(next, nullptr);
    EXPECT_EQ(next->generation(), 1);
    EXPECT_EQ(ReadAll(*next, s()), Value::EmptyMap());  // a new, empty generation
    ASSERT_TRUE(next->Transform(s(), 1, Path().Key("z").Set(Value(int64_t{9}))).ok());
  }
  store_.Reopen();
  Result<std::vector<std::string>> tables = store_.storage().ListTables("pstate.test.balances");
  ASSERT_TRUE(tables.ok()) << tables.status().ToString();
  EXPECT_EQ(*tables,
            (std::vector<std::string>{"pstate.test.balances.0", "pstate.test.balances.1",
                                      "pstate.test.balances@1.0", "pstate.test.balances@1.1"}));
  // Listing one generation's partitions by prefix does not take the other's.
  tables = store_.storage().ListTables("pstate.test.balances.");
  ASSERT_TRUE(tables.ok());
  EXPECT_EQ(tables->size(), 2u);
  auto live = store_.Open("balances", Balances(), 2);
  auto next = store_.Open("balances", Balances(), 2, PStateOpenOptions{.generation = 1});
  ASSERT_NE(live, nullptr);
  ASSERT_NE(next, nullptr);
  EXPECT_EQ(ReadAll(*live, s()), J(R"({"k00": 0, "k01": 1})"));
  EXPECT_EQ(ReadAll(*next, s(), 1), J(R"({"z": 9})"));
  EXPECT_EQ(ReadAll(*live, s(), 1), Value::EmptyMap());
  EXPECT_EQ(PState::Open(&store_.storage(), "test", "balances", Balances(), 2,
                         PStateOpenOptions{.generation = -1})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
}

// ---- Changed schemas ---------------------------------------------------------------------

TEST_F(PStateEvolutionTest, AWideningSchemaOpensAndIsRecorded) {
  WriteBalances(2);
  const PStateSchema wide{Schema::Map(Schema::String(), Schema::Any())};
  {
    auto ps = store_.Open("balances", wide);
    ASSERT_NE(ps, nullptr);
    EXPECT_EQ(ReadAll(*ps, s()), J(R"({"k00": 0, "k01": 1})"));
    ASSERT_TRUE(ps->Transform(s(), 0, Path().Key("k02").Set("text")).ok());
  }
  store_.Reopen();
  // The schema record now says `wide`: the narrower schema would not fit "text".
  auto narrow = PState::Open(&store_.storage(), "test", "balances", Balances(), 1);
  ASSERT_FALSE(narrow.ok());
  EXPECT_EQ(narrow.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(narrow.status().message(),
            "table pstate.test.balances.0 holds a PState with schema map<string, any>, not "
            "map<string, int64> (map<string, any> cannot become map<string, int64> without a "
            "migration: value of the map: any became int64)");
  EXPECT_NE(store_.Open("balances", wide), nullptr);
}

TEST_F(PStateEvolutionTest, AnIncompatibleSchemaIsRefusedWithBothSchemas) {
  WriteBalances(1);
  auto ps = PState::Open(&store_.storage(), "test", "balances", Accounts(), 1);
  ASSERT_FALSE(ps.ok());
  EXPECT_EQ(ps.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ps.status().message(),
            "table pstate.test.balances.0 holds a PState with schema map<string, int64>, not "
            "map<string, record{amount: int64, currency: string}> (map<string, int64> cannot "
            "become map<string, record{amount: int64, currency: string}> without a migration: "
            "value of the map: int64 became record{amount: int64, currency: string})");
  // Refused, it changed nothing: the old schema still opens.
  EXPECT_NE(store_.Open("balances", Balances()), nullptr);
}

// ---- Migrations ---------------------------------------------------------------------------

TEST_F(PStateEvolutionTest, ReadsAndTransformsSeeMigratedValuesAtOnce) {
  WriteBalances(3);
  ToAccounts migration;
  auto ps = store_.Open("balances", Accounts(), 1, PStateOpenOptions{.migration = &migration.def});
  ASSERT_NE(ps, nullptr);
  EXPECT_TRUE(ps->migrating());
  // The whole map, one value, a path into a value, a scan of values.
  EXPECT_EQ(ReadAll(*ps, s()), J(R"({"k00": {"amount": 0, "currency": "EUR"},
                                     "k01": {"amount": 1, "currency": "EUR"},
                                     "k02": {"amount": 2, "currency": "EUR"}})"));
  Result<Value> one = ps->SelectOne(s(), 0, Path().Key("k01", "amount"));
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  EXPECT_EQ(*one, Value(int64_t{1}));
  Result<std::vector<Value>> currencies = ps->Select(s(), 0, Path().MapVals().Key("currency"));
  ASSERT_TRUE(currencies.ok());
  EXPECT_EQ(*currencies, (std::vector<Value>{Value("EUR"), Value("EUR"), Value("EUR")}));
  // Nothing was written by reading.
  EXPECT_EQ(Raw(*ps, "k01"), Value(int64_t{1}));
  // A transform works on the migrated value and stores it.
  ASSERT_TRUE(ps->Transform(s(), 0, Path().Key("k01", "amount").Inc()).ok());
  EXPECT_EQ(Raw(*ps, "k01"), J(R"({"amount": 2, "currency": "EUR"})"));
  // A new value is written as the new schema says.
  ASSERT_TRUE(
      ps->Transform(s(), 0, Path().Key("k09").Set(J(R"({"amount": 5, "currency": "USD"})"))).ok());
  EXPECT_EQ(ps->Transform(s(), 0, Path().Key("k10").Set(Value(int64_t{5}))).status().code(),
            StatusCode::kSchemaViolation);
  EXPECT_GT(migration.calls, 0);
}

TEST_F(PStateEvolutionTest, FinishMigrationStopsApplyingIt) {
  WriteBalances(2);
  ToAccounts migration;
  auto ps = store_.Open("balances", Accounts(), 1, PStateOpenOptions{.migration = &migration.def});
  ASSERT_NE(ps, nullptr);
  ASSERT_TRUE(ps->Transform(s(), 0, Path().Key("k00", "amount").Inc()).ok());
  ps->FinishMigration();
  EXPECT_FALSE(ps->migrating());
  EXPECT_EQ(ps->migration(), &migration.def);
  const int calls = migration.calls;
  // k01 was never rewritten: without the migration it reads as stored.
  EXPECT_EQ(ReadAll(*ps, s()), J(R"({"k00": {"amount": 1, "currency": "EUR"}, "k01": 1})"));
  EXPECT_EQ(migration.calls, calls);
}

TEST_F(PStateEvolutionTest, MigrateSomeRewritesInBatchesAndResumesAfterReopen) {
  constexpr int kValues = 10;
  WriteBalances(kValues);
  std::string after;
  int batches = 0;
  {
    ToAccounts migration;
    auto ps =
        store_.Open("balances", Accounts(), 1, PStateOpenOptions{.migration = &migration.def});
    ASSERT_NE(ps, nullptr);
    // One batch of 4, committed in the caller's transaction.
    ASSERT_OK(s().Begin());
    Result<std::optional<std::string>> last = ps->MigrateSome(s(), 0, after, 4);
    ASSERT_TRUE(last.ok()) << last.status().ToString();
    ASSERT_OK(s().Commit());
    ASSERT_TRUE(last->has_value());
    EXPECT_EQ(DecodeKey(**last).value(), Value("k03"));
    after = **last;
    ++batches;
    EXPECT_EQ(Raw(*ps, "k03"), J(R"({"amount": 3, "currency": "EUR"})"));
    EXPECT_EQ(Raw(*ps, "k04"), Value(int64_t{4}));
  }
  // A restart: the caller kept `after` and carries on.
  store_.Reopen();
  ToAccounts migration;
  auto ps = store_.Open("balances", Accounts(), 1, PStateOpenOptions{.migration = &migration.def});
  ASSERT_NE(ps, nullptr);
  while (true) {
    Result<std::optional<std::string>> last = ps->MigrateSome(s(), 0, after, 4);
    ASSERT_TRUE(last.ok()) << last.status().ToString();
    if (!last->has_value()) break;
    after = **last;
    ++batches;
  }
  EXPECT_EQ(batches, 3);                    // 4 + 4 + 2
  EXPECT_EQ(migration.calls, kValues - 4);  // each remaining value once, no re-reads
  EXPECT_EQ(DecodeKey(after).value(), Value("k09"));
  ps->FinishMigration();
  Value all = ReadAll(*ps, s());
  ASSERT_EQ(all.size(), static_cast<size_t>(kValues));
  for (const auto& [key, value] : all.as_map()) {
    EXPECT_TRUE(value.is_map()) << key.ToString() << " = " << value.ToString();
  }
  // A second pass finds everything migrated and writes nothing (the function is idempotent).
  Result<std::optional<std::string>> again = ps->MigrateSome(s(), 0, "", 100);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(DecodeKey(**again).value(), Value("k09"));
}

TEST_F(PStateEvolutionTest, AFailingMigrationIsAClearErrorAndWritesNothing) {
  WriteBalances(2);
  {
    auto ps = store_.Open("balances", PStateSchema{Schema::Map(Schema::String(), Schema::Any())});
    ASSERT_TRUE(ps->Transform(s(), 0, Path().Key("k01").Set("oops")).ok());
  }
  ToAccounts migration;
  auto ps = store_.Open("balances", Accounts(), 1, PStateOpenOptions{.migration = &migration.def});
  ASSERT_NE(ps, nullptr);
  const std::string message =
      R"(migration "balances-to-accounts" of $$balances["k01"] failed: not a balance: "oops")";
  Result<Value> read = ps->SelectOne(s(), 0, Path().Key("k01"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kUserError);
  EXPECT_EQ(read.status().message(), message);
  Result<Value> all = ps->SelectOne(s(), 0, Path());
  EXPECT_EQ(all.status().code(), StatusCode::kUserError);
  Result<int64_t> transform = ps->Transform(s(), 0, Path().Key("k01", "amount").Inc());
  EXPECT_EQ(transform.status().code(), StatusCode::kUserError);
  Result<std::optional<std::string>> pass = ps->MigrateSome(s(), 0, "", 10);
  ASSERT_FALSE(pass.ok());
  EXPECT_EQ(pass.status().code(), StatusCode::kUserError);
  EXPECT_EQ(pass.status().message(), message);
  // The batch was rolled back whole: k00, before the failing value, is not rewritten.
  EXPECT_EQ(Raw(*ps, "k00"), Value(int64_t{0}));
  EXPECT_FALSE(s().in_transaction());
}

TEST_F(PStateEvolutionTest, AMigratedValueTheSchemaRefusesIsNamed) {
  WriteBalances(1);
  MigrationDef bad{"bad", [](const Value& old) -> Result<Value> {
                     return Value::MapOf({{"amount", old}, {"colour", "red"}});
                   }};
  auto ps = store_.Open("balances", Accounts(), 1, PStateOpenOptions{.migration = &bad});
  ASSERT_NE(ps, nullptr);
  Result<Value> read = ps->SelectOne(s(), 0, Path().Key("k00"));
  ASSERT_FALSE(read.ok());
  EXPECT_EQ(read.status().code(), StatusCode::kSchemaViolation);
  EXPECT_EQ(read.status().message(),
            R"(migration "bad" of $$balances["k00"] returned a value the schema refuses: )"
            R"($$balances["k00"]: unknown field "colour" (fields: amount, currency))");
  Result<std::optional<std::string>> pass = ps->MigrateSome(s(), 0, "", 10);
  EXPECT_EQ(pass.status().code(), StatusCode::kSchemaViolation);
}

TEST_F(PStateEvolutionTest, OpenRefusesMigrationsThatCannotApply) {
  ToAccounts migration;
  const PStateOpenOptions with{.migration = &migration.def};
  struct Case {
    std::string what;
    PStateSchema schema;
    std::string message;
  };
  const Case cases[] = {
      {"root not a map", PStateSchema{Schema::List(Schema::Int64())},
       "PState $$p: migration \"balances-to-accounts\" needs a map at the root whose values "
       "are each one blob (no subindexed part), not list<int64>"},
      {"subindexed values",
       PStateSchema{Schema::Map(Schema::String(), Schema::Set(Schema::Int64()).Subindexed())},
       "not map<string, subindexed set<int64>>"},
      {"values with a subindexed part",
       PStateSchema{Schema::Map(
           Schema::String(), Schema::Record({{"s", Schema::Set(Schema::Int64()).Subindexed()}}))},
       "not map<string, record{s: subindexed set<int64>}>"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    auto ps = PState::Open(&store_.storage(), "test", "p", c.schema, 1, with);
    ASSERT_FALSE(ps.ok());
    EXPECT_EQ(ps.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(ps.status().message().find(c.message), std::string::npos) << ps.status().message();
  }
  MigrationDef unnamed{"", migration.def.fn};
  EXPECT_EQ(PState::Open(&store_.storage(), "test", "p", Accounts(), 1,
                         PStateOpenOptions{.migration = &unnamed})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  // A migration rewrites values, not keys: stored string keys cannot become int64 keys.
  WriteBalances(1);
  auto keys =
      PState::Open(&store_.storage(), "test", "balances",
                   PStateSchema{Schema::Map(Schema::Int64(), Accounts().root.value())}, 1, with);
  ASSERT_FALSE(keys.ok());
  EXPECT_NE(keys.status().message().find(
                "rewrites the values of the map, not its keys, and string cannot become int64"),
            std::string::npos)
      << keys.status().message();
}

}  // namespace
}  // namespace strata
