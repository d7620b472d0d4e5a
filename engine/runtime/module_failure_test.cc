// A deployed module that cannot load at Open fails alone: the engine opens, the other
// modules serve, the failed one is reported with its reason, answers every request with
// that reason, keeps its data untouched, and can be destroyed and deployed again. Its
// stored file is checked against the checksum recorded at deploy before it is loaded.
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "module/loader.h"
#include "runtime/testing/engine_fixture.h"
#include "storage/storage.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::EngineFixture;
using testing::kPartitions;
using testing::Must;

Value Entry(const std::string& account, int64_t amount) {
  return Value::MapOf({{"account", account}, {"amount", amount}});
}

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

class ModuleFailureTest : public EngineFixture {
 protected:
  std::string stored_file() const { return data_dir() + "/modules/ledger.so"; }

  // Opens the engine with rt_test and ledger deployed and one ledger entry processed.
  void DeployBoth() {
    ASSERT_NO_FATAL_FAILURE(Open());
    Result<ModuleInfo> info = engine_->Deploy(STRATA_LEDGER_MODULE, {.partitions = kPartitions});
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    ASSERT_TRUE(engine_->Append("ledger", "*entries", Entry("alice", 5)).ok());
    ASSERT_TRUE(engine_->Append("rt_test", "*sentences", Value("one two")).ok());
  }

  // Flips 8 bytes in the middle of the stored copy of ledger (the engine must be closed).
  void CorruptStoredFile() {
    std::fstream file(stored_file(), std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(file.is_open()) << stored_file();
    const auto middle = static_cast<std::streamoff>(fs::file_size(stored_file()) / 2);
    char bytes[8];
    file.seekg(middle);
    ASSERT_TRUE(file.read(bytes, sizeof bytes));
    for (char& b : bytes) b = static_cast<char>(~b);
    file.seekp(middle);
    ASSERT_TRUE(file.write(bytes, sizeof bytes));
  }

  void ReplaceStoredFile(const std::string& with) {
    fs::copy_file(with, stored_file(), fs::copy_options::overwrite_existing);
  }

  // Rewrites ledger's row of meta.modules with `change` (the engine must be closed), as a
  // server of an older version, or an operator restoring a file, would have left it.
  void RewriteLedgerRow(const std::function<void(Value& row)>& change) {
    StorageOptions options;
    options.path = data_dir();
    options.cache_size_bytes = 16ull << 20;
    options.log_file_max_bytes = 4ull << 20;
    options.checkpoint_interval_s = 60;
    options.max_sessions = 10;
    std::unique_ptr<Storage> storage = Must(Storage::Open(options));
    ASSERT_NE(storage, nullptr);
    const TableId table = Must(storage->OpenTable("meta.modules", TableKind::kBytes));
    std::unique_ptr<Session> session = Must(storage->OpenSession());
    ASSERT_NE(session, nullptr);
    const std::string key = EncodeKey(Value("ledger"));
    std::string bytes;
    ASSERT_TRUE(Must(session->Get(table, key, &bytes))) << "ledger has no row";
    Value row = Must(DecodeValue(bytes));
    change(row);
    bytes.clear();
    AppendValue(row, &bytes);
    ASSERT_TRUE(session->Put(table, key, bytes).ok());
    session.reset();
    ASSERT_TRUE(storage->WaitDurable().ok());
  }

  // Sets the recorded checksum to that of the stored file as it is now.
  void RecordStoredChecksum() {
    const std::string checksum = Must(ModuleFileChecksum(stored_file()));
    RewriteLedgerRow([&](Value& row) { row.Insert("checksum", checksum); });
  }

  std::vector<std::string> TablesWithPrefix(const std::string& prefix) {
    StorageOptions options;
    options.path = data_dir();
    options.cache_size_bytes = 16ull << 20;
    options.log_file_max_bytes = 4ull << 20;
    options.checkpoint_interval_s = 60;
    options.max_sessions = 10;
    std::unique_ptr<Storage> storage = Must(Storage::Open(options));
    if (storage == nullptr) return {};
    return Must(storage->ListTables(prefix));
  }

  std::string LedgerLoadError() {
    Result<ModuleInfo> info = engine_->Describe("ledger");
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    return info.ok() ? info->load_error : "";
  }

  // Every request to ledger fails with kNotFound naming the module and `reason`; rt_test
  // serves; Modules, Describe and Stats report ledger as failed with `reason`.
  void ExpectLedgerFailedAlone(const std::string& reason) {
    std::vector<ModuleInfo> modules = Must(engine_->Modules());
    ASSERT_EQ(modules.size(), 2u);
    EXPECT_EQ(modules[0].name, "ledger");
    EXPECT_TRUE(Contains(modules[0].load_error, reason));
    EXPECT_EQ(modules[0].partitions, kPartitions);
    EXPECT_TRUE(modules[0].depots.empty());
    EXPECT_EQ(modules[1].name, "rt_test");
    EXPECT_EQ(modules[1].load_error, "");
    EXPECT_FALSE(modules[1].depots.empty());
    EXPECT_TRUE(Contains(LedgerLoadError(), reason));
    ModuleStats stats = Must(engine_->Stats("ledger"));
    EXPECT_EQ(stats.module, "ledger");
    EXPECT_TRUE(Contains(stats.load_error, reason));
    EXPECT_EQ(Must(engine_->Stats("rt_test")).load_error, "");

    auto expect_refused = [&](const Status& st, const char* what) {
      SCOPED_TRACE(what);
      EXPECT_EQ(st.code(), StatusCode::kNotFound) << st.ToString();
      EXPECT_TRUE(Contains(st.message(), "module ledger is deployed but failed to load"));
      EXPECT_TRUE(Contains(st.message(), reason));
    };
    expect_refused(engine_->Append("ledger", "*entries", Entry("bob", 1)).status(), "append");
    expect_refused(engine_->Select("ledger", "$$balances", Path().Key("alice")).status(), "select");
    expect_refused(engine_->ReadDepot("ledger", "*entries", 0, 0, 100, 10).status(), "read depot");
    expect_refused(engine_->WaitProcessed("ledger"), "wait processed");
    Result<ModuleInfo> again = engine_->Deploy(STRATA_LEDGER_MODULE, {.partitions = kPartitions});
    EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists) << again.status().ToString();

    ASSERT_TRUE(engine_->Append("rt_test", "*sentences", Value("two three")).ok());
    EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$word_counts", Path().Key("two"))), Value(2));
  }

  // Restores ledger's file (loaded unchecked, as a row without a checksum) and reopens:
  // ledger serves its data as it was before it failed.
  void ExpectLedgerDataKept() {
    engine_.reset();
    ReplaceStoredFile(STRATA_LEDGER_MODULE);
    RewriteLedgerRow([](Value& row) { row.Erase("checksum"); });
    ASSERT_NO_FATAL_FAILURE(Open());
    EXPECT_EQ(LedgerLoadError(), "");
    EXPECT_EQ(Must(engine_->SelectOne("ledger", "$$balances", Path().Key("alice"))), Value(5));
    ASSERT_TRUE(engine_->Append("ledger", "*entries", Entry("alice", 2)).ok());
    EXPECT_EQ(Must(engine_->SelectOne("ledger", "$$balances", Path().Key("alice"))), Value(7));
  }
};

TEST_F(ModuleFailureTest, CorruptStoredFileFailsAloneWithChecksumMismatch) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  CorruptStoredFile();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(ExpectLedgerFailedAlone("checksum"));
  const std::string error = LedgerLoadError();
  EXPECT_TRUE(Contains(error, stored_file()));
  EXPECT_TRUE(Contains(error, "recorded when it was deployed"));
  EXPECT_TRUE(Contains(error, "xxh3-128:"));
  ExpectLedgerDataKept();
}

TEST_F(ModuleFailureTest, DestroyOfFailedModuleDeletesItAndRedeployStartsEmpty) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  CorruptStoredFile();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_TRUE(Contains(LedgerLoadError(), "checksum"));
  ASSERT_TRUE(engine_->Destroy("ledger").ok());
  EXPECT_EQ(engine_->Describe("ledger").status().code(), StatusCode::kNotFound);
  ASSERT_EQ(Must(engine_->Modules()).size(), 1u);
  EXPECT_FALSE(fs::exists(stored_file()));
  EXPECT_EQ(engine_->Destroy("ledger").code(), StatusCode::kNotFound);

  ASSERT_TRUE(engine_->Deploy(STRATA_LEDGER_MODULE, {.partitions = kPartitions}).ok());
  ASSERT_TRUE(engine_->Append("ledger", "*entries", Entry("alice", 2)).ok());
  EXPECT_EQ(Must(engine_->SelectOne("ledger", "$$balances", Path().Key("alice"))), Value(2));
  const int partition = static_cast<int>(HashKey(Value("alice")) % kPartitions);
  EXPECT_EQ(Must(engine_->ReadDepot("ledger", "*entries", partition, 0,
                                    std::numeric_limits<int64_t>::max(), 100))
                .size(),
            1u);
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(LedgerLoadError(), "");
  EXPECT_EQ(Must(engine_->SelectOne("ledger", "$$balances", Path().Key("alice"))), Value(2));
}

TEST_F(ModuleFailureTest, SchemaMismatchFailsAloneAndCreatesNothing) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  // A build that declares a new depot *audit, then $$balances with another schema; its
  // checksum is recorded, so only the schema is wrong.
  ReplaceStoredFile(STRATA_LEDGER_OTHER_SCHEMA_MODULE);
  RecordStoredChecksum();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(ExpectLedgerFailedAlone("holds a PState with schema"));
  engine_.reset();
  EXPECT_TRUE(TablesWithPrefix("depot.ledger.audit.").empty());
  EXPECT_EQ(TablesWithPrefix("depot.ledger.entries.").size(), static_cast<size_t>(kPartitions));
  ExpectLedgerDataKept();
}

// The refused load opened ledger's existing tables before it found the mismatch: Destroy
// still drops every one of them.
TEST_F(ModuleFailureTest, DestroyAfterSchemaMismatchDropsEverything) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  ReplaceStoredFile(STRATA_LEDGER_OTHER_SCHEMA_MODULE);
  RecordStoredChecksum();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_TRUE(Contains(LedgerLoadError(), "holds a PState with schema"));
  Status destroyed = engine_->Destroy("ledger");
  ASSERT_TRUE(destroyed.ok()) << destroyed.ToString();
  EXPECT_FALSE(fs::exists(stored_file()));
  engine_.reset();
  EXPECT_TRUE(TablesWithPrefix("depot.ledger.").empty());
  EXPECT_TRUE(TablesWithPrefix("pstate.ledger.").empty());
  EXPECT_EQ(TablesWithPrefix("depot.rt_test.sentences.").size(), static_cast<size_t>(kPartitions));
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(engine_->Describe("ledger").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$word_counts", Path().Key("one"))), Value(1));
}

TEST_F(ModuleFailureTest, ThrowingDefineFailsAlone) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  ReplaceStoredFile(STRATA_LEDGER_THROWING_DEFINE_MODULE);
  RecordStoredChecksum();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(ExpectLedgerFailedAlone("ledger cannot define itself"));
  ExpectLedgerDataKept();
}

TEST_F(ModuleFailureTest, AbiMismatchFailsAlone) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  ReplaceStoredFile(STRATA_MISMATCHED_ABI_MODULE);
  RecordStoredChecksum();
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(ExpectLedgerFailedAlone("rebuild the module against this server's SDK"));
  ExpectLedgerDataKept();
}

TEST_F(ModuleFailureTest, MissingFileFailsAlone) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  fs::remove(stored_file());
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(ExpectLedgerFailedAlone("no module file at " + stored_file()));
  ExpectLedgerDataKept();
}

TEST_F(ModuleFailureTest, RowWithoutChecksumLoadsUncheckedOnceAndGetsOne) {
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  engine_.reset();
  std::string recorded;
  RewriteLedgerRow([&](Value& row) {
    const Value* checksum = row.Find("checksum");
    ASSERT_NE(checksum, nullptr) << "Deploy recorded no checksum: " << row.ToString();
    recorded = checksum->as_string();
    row.Erase("checksum");
  });
  EXPECT_EQ(recorded, Must(ModuleFileChecksum(STRATA_LEDGER_MODULE)));
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_EQ(LedgerLoadError(), "");
  EXPECT_EQ(Must(engine_->SelectOne("ledger", "$$balances", Path().Key("alice"))), Value(5));
  engine_.reset();
  RewriteLedgerRow([&](Value& row) {
    const Value* checksum = row.Find("checksum");
    ASSERT_NE(checksum, nullptr) << "Open recorded no checksum: " << row.ToString();
    EXPECT_EQ(checksum->as_string(), recorded);
  });
  CorruptStoredFile();
  ASSERT_NO_FATAL_FAILURE(Open());
  EXPECT_TRUE(Contains(LedgerLoadError(), "checksum"));
}

}  // namespace
}  // namespace strata
