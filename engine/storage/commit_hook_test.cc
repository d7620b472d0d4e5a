// The storage's commit hook (storage/storage.h, CommitHook): which writes a transaction
// hands to it, and that what the hook writes commits, or rolls back, with them.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "storage/storage.h"
#include "storage/testing/temp_dir.h"
#include "storage/testing/test_storage.h"

namespace strata {
namespace {

using testing::SmallStorageOptions;
using testing::TempDir;

// Records each BeforeCommit's writes and how its commit ended; writes the number of the
// call into the table "hooklog" in the same transaction; fails when told to.
class RecordingHook final : public CommitHook {
 public:
  struct Call {
    std::vector<CapturedWrite> writes;
    int finished = -1;  // -1: not told; else 0 or 1
  };

  Result<std::unique_ptr<Pending>> BeforeCommit(Storage& storage, Session& session,
                                                std::span<const CapturedWrite> writes) override {
    if (!fail_with.ok()) return fail_with;
    if (misuse) {
      EXPECT_EQ(session.Begin().code(), StatusCode::kInvalidArgument);
      EXPECT_EQ(session.Commit().code(), StatusCode::kInvalidArgument);
      session.Rollback();
      EXPECT_TRUE(session.in_transaction());
    }
    calls.push_back({std::vector<CapturedWrite>(writes.begin(), writes.end()), -1});
    STRATA_ASSIGN_OR_RETURN(TableId log, storage.OpenTable("hooklog", TableKind::kLog));
    STRATA_RETURN_IF_ERROR(session.PutRecord(log, next_record++, "x"));
    return std::unique_ptr<Pending>(new Finish(&calls.back()));
  }

  std::vector<Call> calls;
  Status fail_with;
  bool misuse = false;      // try Begin, Commit and Rollback inside the hook
  int64_t next_record = 0;  // of hooklog: one record per call, also across calls.clear()

 private:
  class Finish final : public Pending {
   public:
    explicit Finish(Call* call) : call_(call) {}
    void Finished(bool committed) override { call_->finished = committed ? 1 : 0; }

   private:
    Call* call_;
  };
};

class CommitHookTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StorageOptions options = SmallStorageOptions(dir_.path());
    hook_ = std::make_shared<RecordingHook>();
    options.commit_hook = hook_;
    storage_ = std::move(Storage::Open(options)).value();
    session_ = std::move(storage_->OpenSession()).value();
    bytes_ = *storage_->OpenTable("pstate.m.s.0", TableKind::kBytes);
    log_ = *storage_->OpenTable("depot.m.d.0", TableKind::kLog);
  }
  void TearDown() override {
    session_.reset();
    storage_.reset();
  }
  int64_t HookLogEnd() {
    TableId t = *storage_->OpenTable("hooklog", TableKind::kLog);
    return *session_->LastRecordKey(t) + 1;
  }
  bool Has(std::string_view key) {
    std::string value;
    return *session_->Get(bytes_, key, &value);
  }

  TempDir dir_;
  std::shared_ptr<RecordingHook> hook_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<Session> session_;
  TableId bytes_ = 0;
  TableId log_ = 0;
};

TEST_F(CommitHookTest, ATransactionHandsItsWritesInOrderOnce) {
  ASSERT_TRUE(session_->Put(bytes_, "a", "1").ok());  // auto-commit: a call of its own
  ASSERT_EQ(hook_->calls.size(), 1u);
  ASSERT_TRUE(session_->Begin().ok());
  ASSERT_TRUE(session_->Put(bytes_, "b", "2").ok());
  EXPECT_TRUE(*session_->Insert(bytes_, "c", "3"));
  EXPECT_FALSE(*session_->Insert(bytes_, "c", "4"));  // wrote nothing: not handed
  EXPECT_TRUE(*session_->Remove(bytes_, "a"));
  EXPECT_FALSE(*session_->Remove(bytes_, "zz"));  // removed nothing: not handed
  ASSERT_TRUE(session_->PutRecord(log_, 0, "r0").ok());
  EXPECT_EQ(hook_->calls.size(), 1u) << "the hook runs at the commit, not before";
  ASSERT_TRUE(session_->Commit().ok());
  ASSERT_EQ(hook_->calls.size(), 2u);
  const std::vector<CapturedWrite>& w = hook_->calls[1].writes;
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(w[0].table, "pstate.m.s.0");
  EXPECT_EQ(w[0].kind, TableKind::kBytes);
  EXPECT_EQ(w[0].op, WriteOp::kPut);
  EXPECT_EQ(w[0].key, "b");
  EXPECT_EQ(w[0].value, "2");
  EXPECT_EQ(w[1].op, WriteOp::kPut);
  EXPECT_EQ(w[1].key, "c");
  EXPECT_EQ(w[1].value, "3");
  EXPECT_EQ(w[2].op, WriteOp::kRemove);
  EXPECT_EQ(w[2].key, "a");
  EXPECT_EQ(w[3].table, "depot.m.d.0");
  EXPECT_EQ(w[3].kind, TableKind::kLog);
  EXPECT_EQ(w[3].op, WriteOp::kPutRecord);
  EXPECT_EQ(w[3].record, 0);
  EXPECT_EQ(w[3].value, "r0");
  EXPECT_EQ(hook_->calls[1].finished, 1);
  // The hook's own writes were not handed to it, and they committed.
  EXPECT_EQ(HookLogEnd(), 2);
}

TEST_F(CommitHookTest, AutoCommittedWritesAreEachATransactionWithTheHooksWrites) {
  ASSERT_TRUE(session_->Put(bytes_, "a", "1").ok());
  EXPECT_TRUE(*session_->Insert(bytes_, "b", "2"));
  EXPECT_FALSE(*session_->Insert(bytes_, "b", "2"));
  EXPECT_TRUE(*session_->Remove(bytes_, "a"));
  EXPECT_FALSE(*session_->Remove(bytes_, "a"));
  ASSERT_TRUE(session_->PutRecord(log_, 0, "r").ok());
  EXPECT_FALSE(session_->in_transaction());
  ASSERT_EQ(hook_->calls.size(), 4u);
  for (const auto& call : hook_->calls) {
    EXPECT_EQ(call.writes.size(), 1u);
    EXPECT_EQ(call.finished, 1);
  }
  EXPECT_EQ(hook_->calls[2].writes[0].op, WriteOp::kRemove);
  EXPECT_EQ(HookLogEnd(), 4);
}

TEST_F(CommitHookTest, ARolledBackTransactionReachesNoHook) {
  ASSERT_TRUE(session_->Begin().ok());
  ASSERT_TRUE(session_->Put(bytes_, "a", "1").ok());
  session_->Rollback();
  EXPECT_TRUE(hook_->calls.empty());
  EXPECT_FALSE(Has("a"));
  // The next transaction starts with nothing collected.
  ASSERT_TRUE(session_->Begin().ok());
  ASSERT_TRUE(session_->Put(bytes_, "b", "1").ok());
  ASSERT_TRUE(session_->Commit().ok());
  ASSERT_EQ(hook_->calls.size(), 1u);
  EXPECT_EQ(hook_->calls[0].writes.size(), 1u);
}

TEST_F(CommitHookTest, AFailingHookRollsTheTransactionBack) {
  hook_->fail_with = Status::Internal("hook says no");
  ASSERT_TRUE(session_->Begin().ok());
  ASSERT_TRUE(session_->Put(bytes_, "a", "1").ok());
  Status committed = session_->Commit();
  EXPECT_EQ(committed.code(), StatusCode::kInternal);
  EXPECT_FALSE(session_->in_transaction());
  Status auto_committed = session_->Put(bytes_, "b", "1");
  EXPECT_EQ(auto_committed.code(), StatusCode::kInternal) << auto_committed.ToString();
  hook_->fail_with = Status::Ok();
  EXPECT_FALSE(Has("a"));
  EXPECT_FALSE(Has("b"));
}

TEST_F(CommitHookTest, AHookCannotEndItsTransaction) {
  hook_->misuse = true;
  ASSERT_TRUE(session_->Put(bytes_, "a", "1").ok());
  ASSERT_EQ(hook_->calls.size(), 1u);
  EXPECT_EQ(hook_->calls[0].finished, 1);
  EXPECT_TRUE(Has("a"));
  EXPECT_EQ(HookLogEnd(), 1);
}

TEST_F(CommitHookTest, SuspendedCaptureAndReadOnlyTransactionsReachNoHook) {
  session_->SuspendCapture(true);
  ASSERT_TRUE(session_->Put(bytes_, "a", "1").ok());
  ASSERT_TRUE(session_->Begin().ok());
  ASSERT_TRUE(session_->Put(bytes_, "b", "1").ok());
  ASSERT_TRUE(session_->Commit().ok());
  session_->SuspendCapture(false);
  ASSERT_TRUE(session_->Begin().ok());
  EXPECT_TRUE(Has("a"));
  ASSERT_TRUE(session_->Commit().ok());
  EXPECT_TRUE(hook_->calls.empty());
}

TEST_F(CommitHookTest, AWriteInAScanCallbackCommitsWithoutStoppingTheScan) {
  for (const char* k : {"k1", "k2", "k3"}) ASSERT_TRUE(session_->Put(bytes_, k, "v").ok());
  hook_->calls.clear();
  int seen = 0;
  ASSERT_TRUE(session_
                  ->Scan(bytes_, "k", "l", false,
                         [&](std::string_view key, std::string_view) {
                           ++seen;
                           Status put = session_->Put(bytes_, "z" + std::string(key), "w");
                           EXPECT_TRUE(put.ok()) << put.ToString();
                           return true;
                         })
                  .ok());
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(hook_->calls.size(), 3u);
  EXPECT_TRUE(Has("zk3"));
}

TEST(CommitHookWithoutHookTest, WritesAutoCommitAsBefore) {
  TempDir dir;
  auto storage = testing::OpenSmallStorage(dir.path());
  ASSERT_NE(storage, nullptr);
  auto session = std::move(storage->OpenSession()).value();
  TableId t = *storage->OpenTable("pstate.m.s.0", TableKind::kBytes);
  ASSERT_TRUE(session->Put(t, "a", "1").ok());
  EXPECT_FALSE(session->in_transaction());
  std::string value;
  EXPECT_TRUE(*session->Get(t, "a", &value));
}

}  // namespace
}  // namespace strata
