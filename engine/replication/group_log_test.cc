// The replication log on real WiredTiger storages in temp directories: what a leader's
// LogWriter writes, what followers do with it (Apply, ApplyUpTo), leader epochs and
// truncation in the failure scenarios of Kafka's KIP-101 and KIP-279, and kill -9 of a
// leader that writes.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "replication/group_log.h"
#include "replication/log_entry.h"
#include "replication/log_writer.h"
#include "replication/testing/replicated_rows.h"
#include "storage/storage.h"
#include "storage/testing/kill9_child.h"
#include "storage/testing/temp_dir.h"
#include "storage/testing/test_storage.h"
#include "strata/key_codec.h"
#include "strata/testing/test_seed.h"
#include "strata/value.h"

namespace strata::replication {
namespace {

using strata::replication::testing::ReplicatedRows;
using strata::testing::Kill9Child;
using strata::testing::SmallStorageOptions;
using strata::testing::TempDir;

const GroupId kGroup{"m", 0};
constexpr const char* kTable = "pstate.m.s.0";

// A node: a Storage in its own directory with a LogWriter installed, as every node of a
// cluster has.
class Node {
 public:
  explicit Node(std::string name) : name_(std::move(name)) { Open(); }
  ~Node() { Close(); }

  void Open() {
    writer_ = std::make_shared<LogWriter>(GroupLayout(1), 0);
    StorageOptions options = SmallStorageOptions(dir_.path());
    options.commit_hook = writer_;
    Result<std::unique_ptr<Storage>> storage = Storage::Open(options);
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    storage_ = std::move(storage).value();
    session_ = std::move(storage_->OpenSession()).value();
    Result<GroupLog*> log = writer_->Open(*storage_, kGroup);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = *log;
  }
  void Close() {
    log_ = nullptr;
    session_.reset();
    storage_.reset();
    writer_.reset();
  }
  void Restart() {
    Close();
    Open();
  }

  // A transaction of the leader: writes key = value in the group's table.
  Status Write(const std::string& key, const std::string& value) {
    TableId table = *storage_->OpenTable(kTable, TableKind::kBytes);
    return session_->Put(table, key, value);
  }
  void Lead(int64_t epoch) { ASSERT_TRUE(log_->BecomeLeader(*session_, epoch).ok()); }
  void Follow() { ASSERT_TRUE(log_->BecomeFollower(*session_).ok()); }

  std::vector<ShippedEntry> Entries(int64_t from = 0) {
    Result<std::vector<ShippedEntry>> entries = log_->Read(*session_, from, 1 << 20);
    EXPECT_TRUE(entries.ok()) << entries.status().ToString();
    return entries.ok() ? *entries : std::vector<ShippedEntry>();
  }
  std::vector<std::string> LogBytes() {
    std::vector<std::string> out;
    for (ShippedEntry& e : Entries()) out.push_back(std::move(e.bytes));
    return out;
  }
  std::map<std::string, std::string> Table() {
    std::map<std::string, std::string> rows;
    Result<bool> exists = storage_->TableExists(kTable);
    if (!*exists) return rows;
    TableId table = *storage_->OpenTable(kTable, TableKind::kBytes);
    EXPECT_TRUE(session_
                    ->Scan(table, "", "", false,
                           [&](std::string_view k, std::string_view v) {
                             rows.emplace(k, v);
                             return true;
                           })
                    .ok());
    return rows;
  }

  // Ships the leader's entries this node lacks and applies up to `high_watermark`.
  void FetchFrom(Node& leader, int64_t high_watermark) {
    std::vector<ShippedEntry> entries = leader.Entries(log_->EndOffset());
    Status applied = log_->Apply(*session_, entries);
    ASSERT_TRUE(applied.ok()) << name_ << ": " << applied.ToString();
    ASSERT_TRUE(log_->ApplyUpTo(*session_, high_watermark).ok());
  }
  // As a follower of `leader` after a leader change: the truncation point and its outcome.
  Truncation TruncateAgainst(Node& leader, int64_t expected_point) {
    Result<int64_t> point = TruncationPoint(*log_, [&](int64_t epoch) -> Result<EpochEndOffset> {
      return leader.log().EndOffsetFor(epoch);
    });
    EXPECT_TRUE(point.ok()) << point.status().ToString();
    EXPECT_EQ(*point, expected_point) << name_;
    Result<Truncation> truncated = log_->TruncateTo(*session_, *point);
    EXPECT_TRUE(truncated.ok()) << truncated.status().ToString();
    return *truncated;
  }

  GroupLog& log() { return *log_; }
  Session& session() { return *session_; }
  Storage& storage() { return *storage_; }
  LogWriter& writer() { return *writer_; }

 private:
  std::string name_;
  TempDir dir_;
  std::shared_ptr<LogWriter> writer_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<Session> session_;
  GroupLog* log_ = nullptr;
};

TEST(GroupLogTest, ALeaderLogsEachTransactionAtDenseOffsetsWithItsEpoch) {
  Node a("A");
  EXPECT_FALSE(a.log().leading());
  a.Lead(3);
  ASSERT_TRUE(a.Write("k1", "v1").ok());
  ASSERT_TRUE(a.session().Begin().ok());
  TableId table = *a.storage().OpenTable(kTable, TableKind::kBytes);
  ASSERT_TRUE(a.session().Put(table, "k2", "v2").ok());
  ASSERT_TRUE(a.session().Remove(table, "k1").ok());
  TableId node_local = *a.storage().OpenTable("scratch", TableKind::kBytes);
  ASSERT_TRUE(a.session().Put(node_local, "x", "y").ok());
  ASSERT_TRUE(a.session().Commit().ok());
  ASSERT_TRUE(a.session().Put(node_local, "x", "z").ok());  // node-local only: no entry
  std::vector<ShippedEntry> entries = a.Entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(a.log().EndOffset(), 2);
  Result<LogEntry> second = DecodeEntry(entries[1].bytes);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->epoch, 3);
  ASSERT_EQ(second->ops.size(), 2u);
  EXPECT_EQ(second->ops[0].key, "k2");
  EXPECT_EQ(second->ops[1].op, WriteOp::kRemove);
  EXPECT_EQ(a.log().Epochs(), (std::vector<EpochStart>{{3, 0}}));
  a.Restart();
  EXPECT_TRUE(a.log().leading());
  EXPECT_EQ(a.log().EndOffset(), 2);
  ASSERT_TRUE(a.Write("k3", "v3").ok());
  EXPECT_EQ(a.log().EndOffset(), 3);
}

TEST(GroupLogTest, AGroupForgottenByTheWriterStaysValidForThoseWhoHoldIt) {
  // A replicated engine drops a module's copy (Forget) while other threads may hold its
  // group's pointer: the durability tracking of another module's commit, a status read.
  Node a("A");
  a.Lead(1);
  ASSERT_TRUE(a.Write("k1", "v1").ok());
  GroupLog* held = &a.log();
  ASSERT_EQ(a.writer().Groups(), (std::vector<GroupLog*>{held}));
  a.writer().Forget(kGroup.module);
  EXPECT_TRUE(a.writer().Groups().empty());
  // Freed memory here before (caught by ASan): the object lives as long as the writer.
  EXPECT_EQ(held->EndOffset(), 1);
  EXPECT_TRUE(held->leading());
}

TEST(GroupLogTest, AFollowerRefusesWritesOfItsGroupAndAppliesOnlyUpToTheHighWatermark) {
  Node a("A");
  Node b("B");
  a.Lead(0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.Write("k" + std::to_string(i), "v").ok());
  Status refused = b.Write("k", "v");
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument) << refused.ToString();
  EXPECT_TRUE(b.Table().empty());
  b.FetchFrom(a, 3);
  EXPECT_EQ(b.log().EndOffset(), 5);
  EXPECT_EQ(b.log().AppliedEnd(), 3);
  EXPECT_EQ(b.Table().size(), 3u);
  b.FetchFrom(a, 5);
  EXPECT_EQ(b.Table(), a.Table());
  EXPECT_EQ(b.LogBytes(), a.LogBytes());
  EXPECT_EQ(b.log().Epochs(), a.log().Epochs());
}

TEST(GroupLogTest, ReapplyingIsIdempotentAndSurvivesARestart) {
  Node a("A");
  Node b("B");
  a.Lead(0);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(a.Write("k" + std::to_string(i), std::to_string(i)).ok());
  std::vector<ShippedEntry> entries = a.Entries();
  ASSERT_TRUE(b.log().Apply(b.session(), entries).ok());
  ASSERT_TRUE(b.log().ApplyUpTo(b.session(), 2).ok());
  b.Restart();
  EXPECT_EQ(b.log().AppliedEnd(), 2);
  ASSERT_TRUE(b.log().Apply(b.session(), entries).ok());  // all present with the same bytes
  ASSERT_TRUE(b.log().ApplyUpTo(b.session(), 4).ok());
  ASSERT_TRUE(b.log().ApplyUpTo(b.session(), 4).ok());
  EXPECT_EQ(b.log().EndOffset(), 4);
  EXPECT_EQ(b.LogBytes(), a.LogBytes());
  EXPECT_EQ(b.Table(), a.Table());
}

TEST(GroupLogTest, DivergentOrDamagedEntriesAreRefusedAndChangeNothing) {
  Node a("A");
  Node b("B");
  a.Lead(1);
  ASSERT_TRUE(a.Write("k1", "v1").ok());
  ASSERT_TRUE(a.Write("k2", "v2").ok());
  b.FetchFrom(a, 2);
  std::vector<ShippedEntry> entries = a.Entries();
  // Other bytes at an offset the follower holds: the logs diverge.
  std::vector<ShippedEntry> other = {{1, EncodeEntry(LogEntry{1, {}})}};
  EXPECT_EQ(b.log().Apply(b.session(), other).code(), StatusCode::kCorruption);
  // Bytes that do not decode, at the end.
  std::vector<ShippedEntry> garbage = {{2, "\x01\x02garbage"}};
  EXPECT_EQ(b.log().Apply(b.session(), garbage).code(), StatusCode::kCorruption);
  // An entry whose epoch is below the latest.
  std::vector<ShippedEntry> older = {{2, EncodeEntry(LogEntry{0, {}})}};
  EXPECT_EQ(b.log().Apply(b.session(), older).code(), StatusCode::kCorruption);
  // A gap.
  std::vector<ShippedEntry> gap = {{5, EncodeEntry(LogEntry{1, {}})}};
  EXPECT_EQ(b.log().Apply(b.session(), gap).code(), StatusCode::kInvalidArgument);
  // A batch is all or nothing: a good entry before a bad one is not kept.
  std::vector<ShippedEntry> mixed = {{2, EncodeEntry(LogEntry{1, {}})}, {3, "bad"}};
  EXPECT_EQ(b.log().Apply(b.session(), mixed).code(), StatusCode::kCorruption);
  EXPECT_EQ(b.log().EndOffset(), 2);
  EXPECT_EQ(b.LogBytes(), a.LogBytes());
  // A leader does not apply.
  EXPECT_EQ(a.log().Apply(a.session(), entries).code(), StatusCode::kInvalidArgument);
}

// KIP-101, scenario 1 ("high watermark truncation followed by immediate leader election"):
// B has m2 but has not learned that it is committed when it restarts. Truncating to its high
// watermark would lose m2 once B is elected; B keeps its log, and the logs end equal.
TEST(GroupLogTest, Kip101LeaderElectedRightAfterARestartLosesNothing) {
  Node a("A");
  Node b("B");
  a.Lead(0);
  ASSERT_TRUE(a.Write("m1", "1").ok());
  ASSERT_TRUE(a.Write("m2", "2").ok());
  b.FetchFrom(a, 1);  // B has m1 and m2; it knows only m1 is committed
  b.Restart();
  EXPECT_EQ(b.log().EndOffset(), 2) << "a restart does not cut the log to the high watermark";
  a.Close();  // A fails
  b.Lead(1);  // B is elected: it applies its whole log
  EXPECT_EQ(b.Table().count("m2"), 1u);
  ASSERT_TRUE(b.Write("m3", "3").ok());
  a.Open();  // A returns as a follower
  a.Follow();
  EXPECT_EQ(a.TruncateAgainst(b, 2), Truncation::kTruncated);
  a.FetchFrom(b, 3);
  EXPECT_EQ(a.LogBytes(), b.LogBytes());
  EXPECT_EQ(a.log().Epochs(), b.log().Epochs());
  EXPECT_EQ(a.Table(), b.Table());
  EXPECT_EQ(a.Table().size(), 3u);
}

// KIP-101, scenario 2 ("replica divergence on restart after multiple hardware failures"):
// A led at epoch 0 and wrote m2, which only C fetched; everything fails; B is elected at
// epoch 1 and writes m3 at the same offset. C cuts m2 by the epochs and ends equal to B.
// A applied m2 itself (it was the leader): truncation cannot undo that, and it says so.
TEST(GroupLogTest, Kip101DivergenceAfterMultipleFailuresIsTruncated) {
  Node a("A");
  Node b("B");
  Node c("C");
  a.Lead(0);
  ASSERT_TRUE(a.Write("m1", "1").ok());
  b.FetchFrom(a, 1);
  c.FetchFrom(a, 1);
  ASSERT_TRUE(a.Write("m2", "2").ok());
  c.FetchFrom(a, 1);  // C has m2, uncommitted
  a.Close();
  b.Restart();
  c.Restart();
  b.Lead(1);
  ASSERT_TRUE(b.Write("m3", "3").ok());
  // Without truncation, C's log diverges from B's at offset 1: Apply refuses it.
  EXPECT_EQ(c.log().Apply(c.session(), b.Entries(1)).code(), StatusCode::kCorruption);
  EXPECT_EQ(c.TruncateAgainst(b, 1), Truncation::kTruncated);
  c.FetchFrom(b, 2);
  EXPECT_EQ(c.LogBytes(), b.LogBytes());
  EXPECT_EQ(c.log().Epochs(), b.log().Epochs());
  EXPECT_EQ(c.Table(), b.Table());
  EXPECT_EQ(c.Table().count("m2"), 0u);
  a.Open();
  a.Follow();
  const std::vector<std::string> before = a.LogBytes();
  EXPECT_EQ(a.TruncateAgainst(b, 1), Truncation::kNeedsRebuild);
  EXPECT_EQ(a.LogBytes(), before) << "a refused truncation changes nothing";
}

// KIP-279 ("fast leader fail-over"): B leads epoch 1 briefly and C fetches its m3; then A,
// which never saw epoch 1, leads epoch 2. Asked for epoch 1, A answers with epoch 0 and the
// offset where its epoch 0 ends (2); C ends its epoch 0 at 1 and cuts there. With KIP-101's
// rule (the end offset of the requested epoch, 2 here) C would keep m3 and diverge.
TEST(GroupLogTest, Kip279FastLeaderFailoverDoesNotDiverge) {
  Node a("A");
  Node b("B");
  Node c("C");
  a.Lead(0);
  ASSERT_TRUE(a.Write("m1", "1").ok());
  b.FetchFrom(a, 1);
  c.FetchFrom(a, 1);
  ASSERT_TRUE(a.Write("m2", "2").ok());  // only A has it
  a.Close();
  b.Lead(1);
  ASSERT_TRUE(b.Write("m3", "3").ok());
  c.FetchFrom(b, 1);  // C has m3, uncommitted
  b.Close();
  a.Open();
  a.Lead(2);
  EXPECT_EQ(a.log().EndOffsetFor(1), (EpochEndOffset{0, 2}));
  EXPECT_EQ(c.TruncateAgainst(a, 1), Truncation::kTruncated);
  c.FetchFrom(a, 2);
  ASSERT_TRUE(a.Write("m4", "4").ok());
  c.FetchFrom(a, 3);
  EXPECT_EQ(c.LogBytes(), a.LogBytes());
  EXPECT_EQ(c.log().Epochs(), a.log().Epochs());
  EXPECT_EQ(c.Table(), a.Table());
  EXPECT_EQ(c.Table().count("m3"), 0u);
  // B led epoch 1 and applied m3: it needs a rebuild from a copy of the leader.
  b.Open();
  b.Follow();
  EXPECT_EQ(b.TruncateAgainst(a, 1), Truncation::kNeedsRebuild);
}

TEST(GroupLogTest, EndOffsetForFollowsTheEpochCache) {
  Node a("A");
  EXPECT_EQ(a.log().EndOffsetFor(0), (EpochEndOffset{kNoEpoch, 0}));
  a.Lead(2);
  ASSERT_TRUE(a.Write("x", "1").ok());
  ASSERT_TRUE(a.Write("y", "1").ok());
  a.Lead(5);
  ASSERT_TRUE(a.Write("z", "1").ok());
  EXPECT_EQ(a.log().EndOffsetFor(1), (EpochEndOffset{kNoEpoch, 0}));
  EXPECT_EQ(a.log().EndOffsetFor(2), (EpochEndOffset{2, 2}));
  EXPECT_EQ(a.log().EndOffsetFor(4), (EpochEndOffset{2, 2}));
  EXPECT_EQ(a.log().EndOffsetFor(5), (EpochEndOffset{5, 3}));
  EXPECT_EQ(a.log().EndOffsetFor(9), (EpochEndOffset{5, 3}));
  EXPECT_EQ(a.log().BecomeLeader(a.session(), 4).code(), StatusCode::kInvalidArgument);
}

// replstate is read from disk, so GroupLog::Open checks it: a leader row whose epoch has
// lost its row would have LogWriter stamp entries from an empty cache, and an applied
// offset past the log end would have ApplyUpTo skip entries it never applied.
TEST(GroupLogTest, OpenRefusesAStateNoTransactionOfItsOwnLeaves) {
  TempDir dir;
  StorageOptions options = SmallStorageOptions(dir.path());
  options.commit_hook = std::make_shared<LogWriter>(GroupLayout(1), 0);
  std::unique_ptr<Storage> storage = std::move(Storage::Open(options)).value();
  std::unique_ptr<Session> session = std::move(storage->OpenSession()).value();
  auto writer = static_cast<LogWriter*>(options.commit_hook.get());
  GroupLog* log = *writer->Open(*storage, kGroup);
  ASSERT_TRUE(log->BecomeLeader(*session, 3).ok());
  TableId table = *storage->OpenTable(kTable, TableKind::kBytes);
  ASSERT_TRUE(session->Put(table, "k", "v").ok());
  // Each LogWriter below reads the state afresh, as after a restart.
  ASSERT_TRUE(LogWriter(GroupLayout(1)).Open(*storage, kGroup).ok());

  TableId state = *storage->OpenTable(StateTableName(kGroup), TableKind::kBytes);
  const std::string epoch3 = std::string("epoch") + std::string(7, '\0') + '\x03';
  std::string epoch3_start;
  ASSERT_TRUE(*session->Get(state, epoch3, &epoch3_start));
  ASSERT_TRUE(*session->Remove(state, epoch3));
  Result<GroupLog*> leaderless = LogWriter(GroupLayout(1)).Open(*storage, kGroup);
  EXPECT_EQ(leaderless.status().code(), StatusCode::kCorruption);
  EXPECT_NE(leaderless.status().message().find("led at epoch 3"), std::string::npos)
      << leaderless.status().ToString();
  ASSERT_TRUE(session->Put(state, epoch3, epoch3_start).ok());

  ASSERT_TRUE(session->Put(state, "applied", std::string("\x64") + std::string(7, '\0')).ok());
  Result<GroupLog*> applied = LogWriter(GroupLayout(1)).Open(*storage, kGroup);
  EXPECT_EQ(applied.status().code(), StatusCode::kCorruption);
  EXPECT_NE(applied.status().message().find("applied offset 100"), std::string::npos)
      << applied.status().ToString();
}

// The rows of the node's group table with keys in [from, to) as a snapshot chunk: an
// encoded entry whose ops put them (what ReplicationImpl::ReadSnapshot ships).
std::string Chunk(Node& node, const std::string& from, const std::string& to,
                  const std::vector<std::pair<std::string, int64_t>>& records = {}) {
  LogEntry chunk;
  for (const auto& [key, value] : node.Table()) {
    if (key < from || key >= to) continue;
    chunk.ops.push_back({kTable, TableKind::kBytes, WriteOp::kPut, key, 0, value});
  }
  for (const auto& [table, record] : records) {
    std::string value;
    TableId id = *node.storage().OpenTable(table, TableKind::kLog);
    EXPECT_TRUE(*node.session().GetRecord(id, record, &value));
    chunk.ops.push_back({table, TableKind::kLog, WriteOp::kPutRecord, "", record, value});
  }
  return EncodeEntry(chunk);
}

TEST(GroupLogTest, CompactionDeletesAppliedEntriesOnlyAndReadsBelowTheStartAreRefused) {
  Node a("A");
  Node b("B");
  a.Lead(1);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a.Write("k" + std::to_string(i), "v").ok());
  b.FetchFrom(a, 4);
  Result<int64_t> start = a.log().CompactTo(a.session(), 6);
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  EXPECT_EQ(*start, 6);
  EXPECT_EQ(a.log().StartOffset(), 6);
  Result<std::vector<ShippedEntry>> below = a.log().Read(a.session(), 3, 10);
  EXPECT_EQ(below.status().code(), StatusCode::kNotFound) << below.status().ToString();
  EXPECT_NE(below.status().message().find("compacted"), std::string::npos);
  EXPECT_EQ(a.Entries(6).size(), 4u);
  EXPECT_EQ(a.log().EndOffset(), 10);
  a.Restart();
  EXPECT_EQ(a.log().StartOffset(), 6);
  EXPECT_EQ(a.log().EndOffset(), 10);
  // Compacting backwards changes nothing.
  EXPECT_EQ(*a.log().CompactTo(a.session(), 2), 6);
  // A follower compacts only what it applied: 4 of its 10 entries.
  EXPECT_EQ(*b.log().CompactTo(b.session(), 8), 4);
  // Its tables hold effects of entries at and beyond any cut below 4, and it cannot
  // rebuild them from a compacted log.
  EXPECT_EQ(*b.log().TruncateTo(b.session(), 3), Truncation::kNeedsRebuild);
  Status rebuild = b.log().CutAndReapply(b.session(), 3);
  EXPECT_EQ(rebuild.code(), StatusCode::kInvalidArgument) << rebuild.ToString();
  // Cutting a tail above the start is fine.
  EXPECT_EQ(*b.log().TruncateTo(b.session(), 7), Truncation::kTruncated);
  EXPECT_EQ(b.log().EndOffset(), 7);
  b.FetchFrom(a, 10);
  EXPECT_EQ(b.Table(), a.Table());
}

// The fuzzy snapshot: chunks read at different log ends, then the log from the first
// chunk's end applied over them, give the leader's rows — overwritten, deleted and new rows,
// and a record a later chunk already holds when its entry is replayed.
TEST(GroupLogTest, AFuzzySnapshotThenTheLogFromItsStartEqualsTheLeader) {
  const std::string kDepot = "depot.m.d.0";
  Node a("A");
  Node b("B");
  a.Lead(1);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a.Write("k" + std::to_string(i), "v0").ok());
  ASSERT_TRUE(a.Write("k1", "v1").ok());  // an entry B never sees: below the snapshot
  ASSERT_EQ(*a.log().CompactTo(a.session(), 11), 11);
  // Chunk 1 at log end 11: k0..k4.
  const std::string chunk1 = Chunk(a, "k0", "k5");
  const int64_t first_end = a.log().EndOffset();
  // Writes between the chunks: one in chunk 1's range, one deletion and one overwrite in
  // chunk 2's, a new row, and a depot record.
  ASSERT_TRUE(a.Write("k2", "v2").ok());
  TableId table = *a.storage().OpenTable(kTable, TableKind::kBytes);
  ASSERT_TRUE(a.session().Remove(table, "k7").ok());
  ASSERT_TRUE(a.Write("k8", "v2").ok());
  ASSERT_TRUE(a.Write("k99", "v2").ok());
  TableId depot = *a.storage().OpenTable(kDepot, TableKind::kLog);
  ASSERT_TRUE(a.session().PutRecord(depot, 0, "record").ok());
  // Chunk 2 at log end 16: k5.. and the record.
  const std::string chunk2 = Chunk(a, "k5", "l", {{kDepot, 0}});
  const int64_t last_end = a.log().EndOffset();
  ASSERT_EQ(last_end, 16);
  ASSERT_TRUE(a.Write("k3", "v3").ok());  // after the snapshot: fetched as usual

  ASSERT_TRUE(b.log().BeginSnapshot(b.session(), first_end, a.log().Epochs()).ok());
  EXPECT_TRUE(b.log().rebuilding());
  EXPECT_EQ(b.log().StartOffset(), first_end);
  EXPECT_EQ(b.log().EndOffset(), first_end);
  EXPECT_EQ(b.log().Epochs(), a.log().Epochs());
  ASSERT_TRUE(b.log().LoadSnapshotRows(b.session(), chunk1).ok());
  // A crash in the middle: the node knows its copy is incomplete.
  b.Restart();
  EXPECT_TRUE(b.log().rebuilding());
  Status lead = b.log().BecomeLeader(b.session(), 2);
  EXPECT_EQ(lead.code(), StatusCode::kAborted) << lead.ToString();
  ASSERT_TRUE(b.log().LoadSnapshotRows(b.session(), chunk2).ok());
  ASSERT_TRUE(b.log().FinishSnapshot(b.session(), last_end).ok());
  EXPECT_FALSE(b.log().rebuilding());
  EXPECT_EQ(b.log().FuzzyEnd(), last_end);
  // The rows are not a state of the group until the log reaches the fuzzy end: no lead, and
  // a cut below it needs a rebuild.
  lead = b.log().BecomeLeader(b.session(), 2);
  EXPECT_EQ(lead.code(), StatusCode::kAborted) << lead.ToString();
  // Against a new leader inside the window, any truncation needs a rebuild: the rows may
  // hold effects of entries the new leader lacks, which the log cannot show yet.
  EXPECT_EQ(*b.log().TruncateTo(b.session(), last_end + 5), Truncation::kNeedsRebuild);
  EXPECT_EQ(*b.log().TruncateTo(b.session(), first_end), Truncation::kNeedsRebuild);
  b.FetchFrom(a, 14);
  EXPECT_EQ(*b.log().TruncateTo(b.session(), last_end - 1), Truncation::kNeedsRebuild);
  b.FetchFrom(a, a.log().EndOffset());
  EXPECT_EQ(b.Table(), a.Table());
  EXPECT_EQ(b.Entries(first_end).size(), a.Entries(first_end).size());
  std::string record;
  TableId b_depot = *b.storage().OpenTable(kDepot, TableKind::kLog);
  ASSERT_TRUE(*b.session().GetRecord(b_depot, 0, &record));
  EXPECT_EQ(record, "record");
  b.Restart();
  EXPECT_EQ(b.log().StartOffset(), first_end);
  EXPECT_EQ(b.log().FuzzyEnd(), last_end);
  // Now it may lead, and its own log serves a follower from its start.
  a.Follow();
  b.Lead(2);
  ASSERT_TRUE(b.Write("k4", "v4").ok());
  EXPECT_EQ(b.Entries(first_end).size(), static_cast<size_t>(b.log().EndOffset() - first_end));
}

// A change of the module's row (an update, recompute or rescale switched its tables; the
// leader drops the old ones, which no entry says) is noted durably with its apply
// (SwitchedAt), until the copy is reloaded (BeginSnapshot) or led (BecomeLeader: the
// module's start drops those tables); the entries after it are applied as usual, so the
// copy can be promoted. The row written first, or again with the same bytes, is no change;
// inside a snapshot's fuzzy window any write of it is (the copy may hold the new row with
// tables read before the change).
TEST(GroupLogTest, AChangedModuleRowIsNotedUntilTheCopyIsReloadedOrLed) {
  Node a("A");
  Node b("B");
  a.Lead(1);
  const std::string key = EncodeKey(Value("m"));
  TableId modules = *a.storage().OpenTable(std::string(kModulesTable), TableKind::kBytes);
  ASSERT_TRUE(a.session().Put(modules, key, "version 1").ok());
  ASSERT_TRUE(a.Write("k1", "v1").ok());
  ASSERT_TRUE(a.session().Put(modules, key, "version 1").ok());
  b.FetchFrom(a, a.log().EndOffset());
  EXPECT_EQ(b.log().SwitchedAt(), -1);
  EXPECT_EQ(b.log().AppliedEnd(), 3);
  ASSERT_TRUE(a.session().Put(modules, key, "version 2").ok());  // offset 3
  ASSERT_TRUE(a.Write("k2", "v2").ok());
  b.FetchFrom(a, a.log().EndOffset());
  EXPECT_EQ(b.log().SwitchedAt(), 3);
  EXPECT_FALSE(b.log().rebuilding());
  EXPECT_EQ(b.log().AppliedEnd(), 5);
  EXPECT_EQ(b.Table(), a.Table());
  b.Restart();
  EXPECT_EQ(b.log().SwitchedAt(), 3);
  // Promoted (the leader lost): it leads, and the mark is gone.
  Node d("D");
  d.FetchFrom(a, 3);  // the switch in its log, not applied
  ASSERT_TRUE(a.Write("k3", "v3").ok());
  std::vector<ShippedEntry> rest = a.Entries(d.log().EndOffset());
  ASSERT_TRUE(d.log().Apply(d.session(), rest).ok());
  a.Follow();
  d.Lead(2);  // applies everything below its end, through the switch
  EXPECT_EQ(d.log().AppliedEnd(), 6);
  EXPECT_EQ(d.log().SwitchedAt(), -1);
  EXPECT_EQ(d.Table(), a.Table());
  d.Restart();
  EXPECT_TRUE(d.log().leading());
  // Reloaded: BeginSnapshot clears the mark.
  ASSERT_TRUE(b.log().BeginSnapshot(b.session(), 5, a.log().Epochs()).ok());
  EXPECT_EQ(b.log().SwitchedAt(), -1);
  b.Restart();
  EXPECT_EQ(b.log().SwitchedAt(), -1);

  // A snapshot whose chunk was read after the change: the log from its start writes the
  // row again with the bytes the copy holds.
  Node c("C");
  ASSERT_TRUE(c.log().BeginSnapshot(c.session(), 3, a.log().Epochs()).ok());
  LogEntry chunk;
  chunk.ops.push_back(
      {std::string(kModulesTable), TableKind::kBytes, WriteOp::kPut, key, 0, "version 2"});
  chunk.ops.push_back({kTable, TableKind::kBytes, WriteOp::kPut, "k1", 0, "v1"});
  ASSERT_TRUE(c.log().LoadSnapshotRows(c.session(), EncodeEntry(chunk)).ok());
  ASSERT_TRUE(c.log().FinishSnapshot(c.session(), 5).ok());
  c.FetchFrom(a, a.log().EndOffset());
  EXPECT_EQ(c.log().SwitchedAt(), 3);
}

// A crash inside BeginSnapshot, after some of its deletions: the node opens (rebuilding)
// and loads a snapshot again.
TEST(GroupLogTest, ACrashInsideBeginSnapshotLeavesANodeThatOpensAndLoadsAgain) {
  Node a("A");
  Node b("B");
  a.Lead(1);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(a.Write("k" + std::to_string(i), "v").ok());
  b.FetchFrom(a, 10);
  // What BeginSnapshot's first transaction and its deletions leave, before its last one.
  TableId state = *b.storage().OpenTable(StateTableName(kGroup), TableKind::kBytes);
  TableId log = *b.storage().OpenTable(LogTableName(kGroup), TableKind::kLog);
  b.session().SuspendCapture(true);
  ASSERT_TRUE(
      b.session().Put(state, "rebuilding", std::string("\x01") + std::string(7, '\0')).ok());
  for (int64_t o = 0; o < 10; ++o) ASSERT_TRUE(*b.session().RemoveRecord(log, o));
  b.session().SuspendCapture(false);
  b.Restart();
  EXPECT_TRUE(b.log().rebuilding());
  EXPECT_EQ(*b.log().TruncateTo(b.session(), 10), Truncation::kNeedsRebuild);
  ASSERT_TRUE(b.log().BeginSnapshot(b.session(), 10, a.log().Epochs()).ok());
  ASSERT_TRUE(b.log().LoadSnapshotRows(b.session(), Chunk(a, "", "z")).ok());
  ASSERT_TRUE(b.log().FinishSnapshot(b.session(), 10).ok());
  ASSERT_TRUE(a.Write("k10", "v").ok());
  b.FetchFrom(a, 11);
  EXPECT_EQ(b.Table(), a.Table());
}

TEST(GroupLogTest, ASnapshotIsRefusedWhileLeadingAndRowsOnlyWhileOneIsLoaded) {
  Node a("A");
  a.Lead(1);
  ASSERT_TRUE(a.Write("k", "v").ok());
  EXPECT_EQ(a.log().BeginSnapshot(a.session(), 1, {}).code(), StatusCode::kInvalidArgument);
  Node b("B");
  EXPECT_EQ(b.log().LoadSnapshotRows(b.session(), Chunk(a, "", "z")).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(b.log().FinishSnapshot(b.session(), 1).code(), StatusCode::kInvalidArgument);
  // An epoch cache out of order is refused.
  std::vector<EpochStart> bad = {{3, 0}, {2, 1}};
  EXPECT_EQ(b.log().BeginSnapshot(b.session(), 1, bad).code(), StatusCode::kCorruption);
}

// Concurrent committers of one group: snapshot transactions of four threads race on the
// same keys (the losers of a conflict roll back and retry) and auto-committed depot records
// go in between. Meanwhile a shipper reads the log up to its end again and again: every
// offset below the end must hold a committed entry (an offset assigned to a transaction
// that has not committed yet would be a hole, which Read reports as kCorruption). At the
// end a follower replaying the log equals the leader.
TEST(GroupLogTest, ConcurrentCommittersOfOneGroupLogInCommitOrder) {
  const uint64_t seed = strata::testing::TestSeed(11);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  Node a("A");
  Node b("B");
  a.Lead(0);
  TableId shared = *a.storage().OpenTable(kTable, TableKind::kBytes);
  TableId depot = *a.storage().OpenTable("depot.m.d.0", TableKind::kLog);
  constexpr int kThreads = 4;
  constexpr int kTxns = 150;
  std::atomic<int64_t> next_record{0};
  std::atomic<int> retries{0};
  std::atomic<bool> writing{true};
  std::atomic<int> reads{0};
  std::atomic<bool> started{false};
  std::thread shipper([&] {
    std::unique_ptr<Session> session = std::move(a.storage().OpenSession()).value();
    while (writing.load()) {
      started = true;
      Result<std::vector<ShippedEntry>> entries = a.log().Read(*session, 0, 1 << 20);
      ASSERT_TRUE(entries.ok()) << entries.status().ToString();
      ++reads;
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!started.load()) std::this_thread::yield();
      std::mt19937_64 rng(seed + t);
      std::unique_ptr<Session> session = std::move(a.storage().OpenSession()).value();
      for (int i = 0; i < kTxns; ++i) {
        while (true) {
          ASSERT_TRUE(session->Begin(/*snapshot=*/true).ok());
          const std::string value = std::to_string(t) + "/" + std::to_string(i);
          Status put = session->Put(shared, "k" + std::to_string(rng() % 4), value);
          if (put.ok()) put = session->Put(shared, "t" + std::to_string(t), value);
          if (put.ok()) put = session->Commit();
          if (put.ok()) break;
          ASSERT_EQ(put.code(), StatusCode::kAborted) << put.ToString();
          if (session->in_transaction()) session->Rollback();
          ++retries;
        }
        // A depot record at a shared, strictly increasing offset, auto-committed.
        ASSERT_TRUE(session->PutRecord(depot, next_record++, "r").ok());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  writing = false;
  shipper.join();
  std::printf("[ info     ] %d conflicts retried, %d reads of the whole log\n", retries.load(),
              reads.load());
  EXPECT_GE(a.log().EndOffset(), kThreads * kTxns);
  b.FetchFrom(a, a.log().EndOffset());
  EXPECT_EQ(b.LogBytes(), a.LogBytes());
  EXPECT_EQ(b.Table(), a.Table());
}

// ---------------------------------------------------------------------------------------
// kill -9 of a leader that writes: the log never holds an entry without its effects, nor
// the tables an effect without its entry. Oracle: a follower built from the log alone
// (Apply + ApplyUpTo of every entry) equals the leader's replicated tables byte for byte.

constexpr int kPartitions = 4;
constexpr int kRounds = 6;
constexpr uint64_t kDefaultSeed = 20261207;

std::string DepotTable(int p) { return "depot.m.d." + std::to_string(p); }
std::string PStateTable(int p) { return "pstate.m.s." + std::to_string(p); }

[[noreturn]] void WriteForever(const std::string& path, int ready_fd, uint64_t seed) {
  auto writer = std::make_shared<LogWriter>(GroupLayout(2), 0);
  StorageOptions options = SmallStorageOptions(path);
  options.commit_hook = writer;
  auto storage = Storage::Open(options);
  if (!storage.ok()) _exit(10);
  auto session = (*storage)->OpenSession();
  if (!session.ok()) _exit(11);
  std::vector<TableId> depots, pstates;
  std::vector<int64_t> next(kPartitions);
  for (int p = 0; p < kPartitions; ++p) {
    depots.push_back(*(*storage)->OpenTable(DepotTable(p), TableKind::kLog));
    pstates.push_back(*(*storage)->OpenTable(PStateTable(p), TableKind::kBytes));
    next[p] = *(*session)->LastRecordKey(depots[p]) + 1;
  }
  std::mt19937_64 rng(seed);
  for (int64_t n = 0;; ++n) {
    const bool explicit_txn = rng() % 4 != 0;
    if (explicit_txn && !(*session)->Begin().ok()) _exit(12);
    const int writes = explicit_txn ? 1 + static_cast<int>(rng() % 6) : 1;
    for (int i = 0; i < writes; ++i) {
      const int p = static_cast<int>(rng() % kPartitions);
      const std::string key = "k" + std::to_string(rng() % 50);
      Status status;
      switch (rng() % 3) {
        case 0:
          status = (*session)->PutRecord(depots[p], next[p], "r" + std::to_string(n));
          if (status.ok()) ++next[p];
          break;
        case 1:
          status = (*session)->Put(pstates[p], key, std::string(rng() % 300, 'v'));
          break;
        default:
          status = (*session)->Remove(pstates[p], key).status();
          break;
      }
      if (!status.ok()) _exit(13);
    }
    if (explicit_txn && !(*session)->Commit().ok()) _exit(14);
    if (n == 20) {
      // Durable first: a commit is not (group commit flushes it a little later), and the
      // parent's "each round logged something" must not depend on the flusher's pace.
      if (!(*storage)->WaitDurable().ok()) _exit(16);
      const char ready = 'r';
      if (write(ready_fd, &ready, 1) != 1) _exit(15);
    }
  }
}

TEST(GroupLogCrashTest, Kill9NeverSeparatesAnEntryFromItsEffects) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  TempDir dir;
  int64_t entries_seen = 0;
  for (int round = 0; round < kRounds; ++round) {
    const uint64_t child_seed = rng();
    Kill9Child child([&](int fd) { WriteForever(dir.path(), fd, child_seed); });
    ASSERT_TRUE(child.WaitReady()) << "round " << round << ": the child did not start writing";
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 80));
    ASSERT_TRUE(child.Kill()) << "round " << round;

    auto leader = std::move(Storage::Open(SmallStorageOptions(dir.path()))).value();
    auto leader_session = std::move(leader->OpenSession()).value();
    TempDir follower_dir;
    auto follower_writer = std::make_shared<LogWriter>(GroupLayout(2), 0);
    StorageOptions follower_options = SmallStorageOptions(follower_dir.path());
    follower_options.commit_hook = follower_writer;
    auto follower = std::move(Storage::Open(follower_options)).value();
    auto follower_session = std::move(follower->OpenSession()).value();
    int64_t entries = 0;
    for (int g = 0; g < 2; ++g) {
      const GroupId id{"m", g};
      auto source = std::move(GroupLog::Open(*leader, *leader_session, id)).value();
      EXPECT_TRUE(source->leading());
      GroupLog* target = *follower_writer->Open(*follower, id);
      std::vector<ShippedEntry> shipped =
          std::move(source->Read(*leader_session, 0, INT64_MAX / 2)).value();
      entries += static_cast<int64_t>(shipped.size());
      ASSERT_TRUE(target->Apply(*follower_session, shipped).ok());
      ASSERT_TRUE(target->ApplyUpTo(*follower_session, target->EndOffset()).ok());
    }
    EXPECT_GT(entries, entries_seen) << "round " << round << " logged nothing";
    entries_seen = entries;
    EXPECT_EQ(ReplicatedRows(*follower, *follower_session),
              ReplicatedRows(*leader, *leader_session))
        << "round " << round;
    if (HasFailure()) return;
  }
}

}  // namespace
}  // namespace strata::replication
