#include "depot/depot.h"

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "storage/testing/temp_dir.h"
#include "storage/testing/test_storage.h"

namespace strata {
namespace {

using testing::TempDir;

std::string RecordFor(int writer, int i) {
  return std::string("w") + std::to_string(writer) + "-" + std::to_string(i);
}

class DepotTest : public ::testing::Test {
 protected:
  void SetUp() override { OpenAll(); }

  void OpenAll() {
    storage_ = testing::OpenSmallStorage(dir_.path());
    ASSERT_NE(storage_, nullptr);
    auto session = storage_->OpenSession();
    ASSERT_TRUE(session.ok());
    session_ = std::move(session).value();
    auto depot = Depot::Open(storage_.get(), "mod", "events", 3);
    ASSERT_TRUE(depot.ok()) << depot.status().ToString();
    depot_ = std::move(depot).value();
  }

  void Reopen() {
    depot_.reset();
    session_.reset();
    storage_.reset();
    OpenAll();
  }

  std::vector<DepotRecord> MustRead(int partition, int64_t from, int64_t to, size_t limit = 1000) {
    auto records = depot_->Read(*session_, partition, from, to, limit);
    EXPECT_TRUE(records.ok()) << records.status().ToString();
    return records.ok() ? *records : std::vector<DepotRecord>{};
  }

  TempDir dir_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<Session> session_;
  std::unique_ptr<Depot> depot_;
};

TEST_F(DepotTest, AppendAssignsDenseOffsetsPerPartition) {
  EXPECT_EQ(*depot_->EndOffset(0), 0);
  EXPECT_EQ(*depot_->StartOffset(0), 0);
  EXPECT_EQ(*depot_->Append(*session_, 0, "a"), 0);
  EXPECT_EQ(*depot_->Append(*session_, 0, "b"), 1);
  EXPECT_EQ(*depot_->Append(*session_, 2, "x"), 0);
  EXPECT_EQ(*depot_->EndOffset(0), 2);
  EXPECT_EQ(*depot_->EndOffset(1), 0);
  EXPECT_EQ(*depot_->EndOffset(2), 1);
  EXPECT_EQ(MustRead(0, 0, 10), (std::vector<DepotRecord>{{0, "a"}, {1, "b"}}));
  EXPECT_EQ(MustRead(2, 0, INT64_MAX), (std::vector<DepotRecord>{{0, "x"}}));
  EXPECT_TRUE(MustRead(1, 0, 10).empty());
  EXPECT_EQ(depot_->module(), "mod");
  EXPECT_EQ(depot_->name(), "events");
  EXPECT_EQ(depot_->partitions(), 3);
  EXPECT_TRUE(*storage_->TableExists("depot.mod.events.2"));
}

TEST_F(DepotTest, BatchAppendsAreConsecutiveAndReadsRespectRangeAndLimit) {
  std::vector<std::string> owned;
  for (int i = 0; i < 10; ++i) owned.push_back(std::string("r") + std::to_string(i));
  std::vector<std::string_view> batch(owned.begin(), owned.end());
  EXPECT_EQ(*depot_->Append(*session_, 1, "first"), 0);
  EXPECT_EQ(*depot_->AppendBatch(*session_, 1, batch), 1);
  EXPECT_EQ(*depot_->EndOffset(1), 11);
  auto middle = MustRead(1, 3, 6);
  ASSERT_EQ(middle.size(), 3u);
  EXPECT_EQ(middle[0], (DepotRecord{3, "r2"}));
  EXPECT_EQ(middle[2], (DepotRecord{5, "r4"}));
  EXPECT_EQ(MustRead(1, 0, 100, 2), (std::vector<DepotRecord>{{0, "first"}, {1, "r0"}}));
  // Ranges at or past the end are empty, not errors.
  EXPECT_TRUE(MustRead(1, 11, 20).empty());
  EXPECT_TRUE(MustRead(1, 50, 60).empty());
  EXPECT_TRUE(MustRead(1, 4, 4).empty());
  EXPECT_EQ(MustRead(1, 9, INT64_MAX).size(), 2u);
}

TEST_F(DepotTest, OffsetsAndRecordsSurviveReopen) {
  ASSERT_TRUE(depot_->Append(*session_, 0, "a").ok());
  ASSERT_TRUE(depot_->Append(*session_, 0, "b").ok());
  ASSERT_TRUE(depot_->Append(*session_, 2, "c").ok());
  Reopen();
  EXPECT_EQ(*depot_->EndOffset(0), 2);
  EXPECT_EQ(*depot_->EndOffset(1), 0);
  EXPECT_EQ(*depot_->EndOffset(2), 1);
  EXPECT_EQ(*depot_->Append(*session_, 0, "d"), 2);
  EXPECT_EQ(MustRead(0, 0, 10), (std::vector<DepotRecord>{{0, "a"}, {1, "b"}, {2, "d"}}));
}

TEST_F(DepotTest, BadArgumentsGetClearErrors) {
  auto bad_partition = depot_->Append(*session_, 3, "x");
  EXPECT_EQ(bad_partition.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_partition.status().message().find("partition 3"), std::string::npos)
      << bad_partition.status().message();
  EXPECT_EQ(depot_->Append(*session_, -1, "x").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(depot_->EndOffset(7).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(depot_->StartOffset(-1).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(depot_->Read(*session_, 5, 0, 1, 1).status().code(), StatusCode::kInvalidArgument);

  auto backwards = depot_->Read(*session_, 0, 5, 2, 10);
  EXPECT_EQ(backwards.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(backwards.status().message().find("from > to"), std::string::npos);
  auto negative = depot_->Read(*session_, 0, -1, 2, 10);
  EXPECT_EQ(negative.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(negative.status().message().find("negative"), std::string::npos);
  EXPECT_EQ(depot_->Read(*session_, 0, 0, -2, 10).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(depot_->Read(*session_, 0, 0, 2, 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(depot_->AppendBatch(*session_, 0, {}).status().code(), StatusCode::kInvalidArgument);

  ASSERT_TRUE(session_->Begin().ok());
  auto in_txn = depot_->Append(*session_, 0, "x");
  EXPECT_EQ(in_txn.status().code(), StatusCode::kInvalidArgument);
  session_->Rollback();
  EXPECT_EQ(*depot_->EndOffset(0), 0);
}

// An acknowledged record is never overwritten: if something else already wrote the offset
// an append would take, the append fails and leaves the record and the end offset alone.
TEST_F(DepotTest, AppendOntoAnExistingOffsetFailsAndKeepsTheRecord) {
  ASSERT_TRUE(depot_->Append(*session_, 0, "a").ok());
  auto table = storage_->OpenTable(Depot::TableName("mod", "events", 0), TableKind::kLog);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  ASSERT_TRUE(session_->PutRecord(*table, 1, "foreign").ok());

  auto single = depot_->Append(*session_, 0, "mine");
  EXPECT_EQ(single.status().code(), StatusCode::kAlreadyExists) << single.status().ToString();
  std::vector<std::string_view> batch = {"x", "y"};
  auto many = depot_->AppendBatch(*session_, 0, batch);
  EXPECT_EQ(many.status().code(), StatusCode::kAlreadyExists) << many.status().ToString();
  EXPECT_FALSE(session_->in_transaction());
  EXPECT_EQ(*depot_->EndOffset(0), 1);
  std::string value;
  ASSERT_TRUE(*session_->GetRecord(*table, 1, &value));
  EXPECT_EQ(value, "foreign");
  EXPECT_EQ(*session_->LastRecordKey(*table), 1);
}

TEST_F(DepotTest, BadNamesAndPartitionCounts) {
  for (auto [module, name] : std::vector<std::pair<std::string, std::string>>{
           {"", "d"}, {"m", ""}, {"a.b", "d"}, {"m", "d e"}, {"m", std::string(65, 'x')}}) {
    auto depot = Depot::Open(storage_.get(), module, name, 1);
    EXPECT_EQ(depot.status().code(), StatusCode::kInvalidArgument) << module << "." << name;
  }
  EXPECT_EQ(Depot::Open(storage_.get(), "m", "d", 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Depot::Open(storage_.get(), "m", "d", Depot::kMaxPartitions + 1).status().code(),
            StatusCode::kInvalidArgument);
  // The depot exists with 3 partitions: fewer is refused, more creates the missing ones.
  auto fewer = Depot::Open(storage_.get(), "mod", "events", 2);
  EXPECT_EQ(fewer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(fewer.status().message().find("mod.events"), std::string::npos)
      << fewer.status().message();
  ASSERT_TRUE(depot_->Append(*session_, 2, "kept").ok());
  depot_.reset();
  auto more = Depot::Open(storage_.get(), "mod", "events", 4);
  ASSERT_TRUE(more.ok()) << more.status().ToString();
  EXPECT_TRUE(*storage_->TableExists("depot.mod.events.3"));
  EXPECT_EQ(*(*more)->EndOffset(2), 1);
  EXPECT_EQ(*(*more)->EndOffset(3), 0);
  // A depot whose name extends another's is a different depot.
  auto longer = Depot::Open(storage_.get(), "mod", "events2", 2);
  ASSERT_TRUE(longer.ok()) << longer.status().ToString();
  EXPECT_EQ((*longer)->partitions(), 2);
}

TEST_F(DepotTest, ReadInASnapshotTransactionReturnsWhatTheSnapshotSees) {
  auto writer = storage_->OpenSession();
  ASSERT_TRUE(writer.ok());
  ASSERT_TRUE(depot_->Append(**writer, 0, "a").ok());
  ASSERT_TRUE(session_->Begin(/*snapshot=*/true).ok());
  EXPECT_EQ(MustRead(0, 0, 10), (std::vector<DepotRecord>{{0, "a"}}));  // takes the snapshot
  ASSERT_TRUE(depot_->Append(**writer, 0, "b").ok());
  // The watermark is 2, but the snapshot predates offset 1: that is not a hole.
  EXPECT_EQ(MustRead(0, 0, 10), (std::vector<DepotRecord>{{0, "a"}}));
  session_->Rollback();
  EXPECT_EQ(MustRead(0, 0, 10), (std::vector<DepotRecord>{{0, "a"}, {1, "b"}}));
}

TEST_F(DepotTest, ADepotOpenTwiceOnOneStorageIsBusy) {
  // Two Depot objects would assign the same offsets and overwrite each other's records.
  auto twin = Depot::Open(storage_.get(), "mod", "events", 3);
  EXPECT_EQ(twin.status().code(), StatusCode::kBusy);
  EXPECT_NE(twin.status().message().find("mod.events"), std::string::npos)
      << twin.status().message();
  ASSERT_TRUE(depot_->Append(*session_, 0, "kept").ok());
  depot_.reset();
  auto reopened = Depot::Open(storage_.get(), "mod", "events", 3);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ(*(*reopened)->EndOffset(0), 1);
}

TEST_F(DepotTest, ConcurrentAppendersGetDenseOffsetsAndReadersSeeNoGaps) {
  constexpr int kWriters = 4;
  constexpr int kPerWriter = 600;
  constexpr int kPartition = 1;
  std::atomic<bool> writing{true};
  std::atomic<int64_t> reader_checks{0};
  std::vector<std::vector<int64_t>> offsets(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      auto session = storage_->OpenSession();
      ASSERT_TRUE(session.ok());
      for (int i = 0; i < kPerWriter; ++i) {
        std::string record = RecordFor(w, i);
        Result<int64_t> offset =
            (i % 3 == 0)
                ? depot_->AppendBatch(**session, kPartition, std::vector<std::string_view>{record})
                : depot_->Append(**session, kPartition, record);
        ASSERT_TRUE(offset.ok()) << offset.status().ToString();
        offsets[w].push_back(*offset);
      }
    });
  }
  // Readers tail the partition: every read is gap-free and matches the watermark.
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      auto session = storage_->OpenSession();
      ASSERT_TRUE(session.ok());
      int64_t next = 0;
      while (writing.load() || next < *depot_->EndOffset(kPartition)) {
        const int64_t end = *depot_->EndOffset(kPartition);
        auto records = depot_->Read(**session, kPartition, next, INT64_MAX, 10000);
        ASSERT_TRUE(records.ok()) << records.status().ToString();
        ASSERT_GE(next + static_cast<int64_t>(records->size()), end);
        for (const DepotRecord& record : *records) {
          ASSERT_EQ(record.offset, next);
          ++next;
        }
        ++reader_checks;
      }
    });
  }
  for (auto& thread : writers) thread.join();
  writing = false;
  for (auto& thread : readers) thread.join();

  constexpr int64_t kTotal = kWriters * kPerWriter;
  EXPECT_EQ(*depot_->EndOffset(kPartition), kTotal);
  std::vector<int> owner(kTotal, -1);
  for (int w = 0; w < kWriters; ++w) {
    // Each writer's own appends got increasing offsets.
    for (size_t i = 1; i < offsets[w].size(); ++i) EXPECT_LT(offsets[w][i - 1], offsets[w][i]);
    for (int64_t offset : offsets[w]) {
      ASSERT_GE(offset, 0);
      ASSERT_LT(offset, kTotal);
      EXPECT_EQ(owner[offset], -1) << "offset " << offset << " assigned twice";
      owner[offset] = w;
    }
  }
  auto all = MustRead(kPartition, 0, INT64_MAX, kTotal);
  ASSERT_EQ(all.size(), static_cast<size_t>(kTotal));
  std::vector<int> seen(kWriters, 0);
  for (const DepotRecord& record : all) {
    int w = owner[record.offset];
    EXPECT_EQ(record.data, RecordFor(w, seen[w]++));
  }
  EXPECT_GT(reader_checks.load(), 0);
}

}  // namespace
}  // namespace strata
