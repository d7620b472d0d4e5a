// Replicated engines (EngineOptions::replicated, strata/replication.h) in one process, each
// with its own data directory, running the example module wordcount: a leader ships its
// group's log to a follower with Read / Append / ApplyUpTo, then the leadership moves (Follow
// on the old leader, Lead at a new epoch on the other), the module starts there from the
// replicated tables and its shipped file, and the old leader follows the new one (truncation
// by epochs) until both digests are equal. Also: the ack gate, refused writes of a group not
// led, Follow then Lead on one node, DropReplica and a refetch, a restart.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/engine_impl.h"
#include "runtime/outbox.h"
#include "storage/testing/temp_dir.h"
#include "storage/testing/test_storage.h"
#include "strata/engine.h"
#include "strata/replication.h"

namespace strata {
namespace {

using strata::testing::TempDir;

constexpr const char* kModule = "wordcount";
constexpr int kPartitions = 4;

EngineOptions SmallOptions(const std::string& dir) {
  EngineOptions options;
  options.data_dir = dir;
  options.task_threads = 2;
  options.cache_size_bytes = 64ull << 20;
  options.log_file_max_bytes = 4ull << 20;
  return options;
}

// One node: a replicated engine in its own directory.
class Node {
 public:
  explicit Node(std::string dir) : dir_(std::move(dir)) { Open(); }
  void Open() {
    EngineOptions options = SmallOptions(dir_);
    options.replicated = true;
    Result<std::unique_ptr<Engine>> opened = Engine::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    engine_ = std::move(opened).value();
    ASSERT_NE(engine_->replication(), nullptr);
  }
  void Close() {
    ASSERT_TRUE(engine_->Close().ok());
    engine_.reset();
  }
  Engine& engine() { return *engine_; }
  Replication& rep() { return *engine_->replication(); }

  // Waits until the group's durable end reaches its log end (a running module may commit
  // between the flush and the check).
  void WaitDurable(const std::string& module = kModule) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (;;) {
      ASSERT_LT(std::chrono::steady_clock::now(), give_up)
          << "the durable end never reached the log end";
      std::promise<Status> flushed;
      rep().WhenDurable([&](Status st) { flushed.set_value(st); });
      ASSERT_TRUE(flushed.get_future().get().ok());
      Result<ReplicaGroupStatus> status = rep().GroupStatus(module, 0);
      ASSERT_TRUE(status.ok()) << status.status().ToString();
      if (status->durable_end == status->log_end) return;
    }
  }
  std::string Digest(const std::string& module = kModule) {
    Result<std::string> digest = rep().Digest(module, 0);
    EXPECT_TRUE(digest.ok()) << digest.status().ToString();
    return digest.ok() ? *digest : "";
  }
  int64_t Count(const std::string& word) {
    Result<Value> count = engine_->SelectOne(kModule, "$$word_counts", Path().Key(word));
    EXPECT_TRUE(count.ok()) << count.status().ToString();
    if (!count.ok()) return -1;
    return count->is_nil() ? 0 : count->as_int();
  }

 private:
  std::string dir_;
  std::unique_ptr<Engine> engine_;
};

// Ships the leader's durable entries that the follower lacks, a bounded read at a time, and
// applies them all (the leader's durable end is this pair's high watermark).
// `up_to` bounds what is shipped (a prefix of the leader's log).
void Ship(Node& leader, Node& follower, const std::string& module = kModule,
          int64_t up_to = INT64_MAX) {
  ASSERT_NO_FATAL_FAILURE(leader.WaitDurable(module));
  Result<ReplicaGroupStatus> led = leader.rep().GroupStatus(module, 0);
  ASSERT_TRUE(led.ok()) << led.status().ToString();
  led->durable_end = std::min(led->durable_end, up_to);
  Result<ReplicaGroupStatus> mine = follower.rep().GroupStatus(module, 0);
  int64_t from = mine.ok() ? mine->log_end : 0;
  for (;;) {
    Result<std::vector<ReplicaEntry>> entries =
        leader.rep().Read(module, 0, from, led->durable_end, 64 << 10);
    ASSERT_TRUE(entries.ok()) << entries.status().ToString();
    if (entries->empty()) break;
    ASSERT_EQ(entries->front().offset, from);
    Status appended = follower.rep().Append(module, 0, *entries);
    ASSERT_TRUE(appended.ok()) << appended.ToString();
    from = entries->back().offset + 1;
  }
  EXPECT_EQ(from, led->durable_end);
  ASSERT_TRUE(follower.rep().ApplyUpTo(module, 0, led->durable_end).ok());
  Result<ReplicaGroupStatus> applied = follower.rep().GroupStatus(module, 0);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->applied_end, led->durable_end);
  EXPECT_FALSE(applied->leading);
}

// A running module writes on its own (progress markers, after its records completed): a
// leader's digest is compared once it stopped (Follow writes its last markers), and the
// follower has everything.
void StopAndShip(Node& leader, Node& follower, const std::string& module = kModule) {
  ASSERT_TRUE(leader.rep().Follow(module, 0).ok());
  ASSERT_NO_FATAL_FAILURE(Ship(leader, follower, module));
}

void AppendSentences(Node& node, int n, const std::string& word) {
  std::vector<Value> batch;
  for (int i = 0; i < n; ++i) batch.push_back(Value(word + " w" + std::to_string(i % 7)));
  Result<std::vector<AppendResult>> appended =
      node.engine().AppendBatch(kModule, "*sentences", std::move(batch), AckLevel::kProcessed);
  ASSERT_TRUE(appended.ok()) << appended.status().ToString();
}

void LeadAndDeploy(Node& node, int64_t epoch) {
  Status led = node.rep().Lead(kModule, 0, epoch);
  ASSERT_TRUE(led.ok()) << led.ToString();
  Result<ModuleInfo> deployed = node.engine().Deploy(WORDCOUNT_MODULE, {.partitions = kPartitions});
  ASSERT_TRUE(deployed.ok()) << deployed.status().ToString();
}

// a leads at epoch 1 and appends "kept" (shipped to b) then "lost" (never shipped); b leads
// at epoch 2 and appends more "kept": a is an ex-leader with entries b lacks.
void LeadThenLoseTheLeadership(Node& a, Node& b) {
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 30, "kept"));
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  ASSERT_TRUE(b.rep().InstallModuleFile(kModule, *a.rep().ModuleFile(kModule)).ok());
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 30, "lost"));  // never shipped
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  ASSERT_TRUE(b.rep().Lead(kModule, 0, 2).ok());
  ASSERT_NO_FATAL_FAILURE(AppendSentences(b, 10, "kept"));
}

TEST(ReplicatedEngineTest, LeadershipMovesAndTheOldLeaderFollowsTheNewOne) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 50, "alpha"));
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  // The follower has the module's row, not its file, and runs nothing.
  EXPECT_TRUE(b.rep().NeedsModuleFile(kModule));
  EXPECT_FALSE(b.engine().Describe(kModule).ok());
  Result<std::string> file = a.rep().ModuleFile(kModule);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(b.rep().InstallModuleFile(kModule, *file + "x").code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(b.rep().InstallModuleFile(kModule, *file).ok());
  EXPECT_FALSE(b.rep().NeedsModuleFile(kModule));

  // The leadership moves: a's module stops (its last progress markers are logged), b gets
  // the rest and leads at epoch 2.
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  EXPECT_EQ(a.engine().Append(kModule, "*sentences", Value("late")).status().code(),
            StatusCode::kNotFound);
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  EXPECT_EQ(a.Digest(), b.Digest());
  Status led = b.rep().Lead(kModule, 0, 2);
  ASSERT_TRUE(led.ok()) << led.ToString();
  EXPECT_EQ(b.Count("alpha"), 50);  // the module runs on b, from the replicated tables
  ASSERT_NO_FATAL_FAILURE(AppendSentences(b, 30, "alpha"));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(b, 20, "beta"));
  EXPECT_EQ(b.Count("alpha"), 80);
  EXPECT_EQ(b.Count("beta"), 20);

  // a follows b: its log is cut where the epochs say (nothing to cut here), then fetched.
  Result<int64_t> point = a.rep().TruncationPoint(
      kModule, 0, [&](int64_t epoch) { return b.rep().EndOffsetFor(kModule, 0, epoch); });
  ASSERT_TRUE(point.ok()) << point.status().ToString();
  Result<ReplicaGroupStatus> a_status = a.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(a_status.ok());
  EXPECT_EQ(*point, a_status->log_end);
  Result<bool> truncated = a.rep().TruncateTo(kModule, 0, *point);
  ASSERT_TRUE(truncated.ok() && *truncated);
  ASSERT_NO_FATAL_FAILURE(Ship(b, a));
  Result<ReplicaGroupStatus> b_status = b.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(b_status.ok());
  EXPECT_TRUE(b_status->leading);
  EXPECT_EQ(b_status->epoch, 2);
  EXPECT_EQ(b.rep().Append(kModule, 0, {}).code(), StatusCode::kInvalidArgument);
  ASSERT_NO_FATAL_FAILURE(StopAndShip(b, a));
  EXPECT_EQ(a.Digest(), b.Digest());
}

// A follower creates a depot partition's table at its first replicated write: a module
// with partitions never appended to still starts there.
TEST(ReplicatedEngineTest, AModuleWithUnwrittenDepotPartitionsStartsOnAPromotedFollower) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_TRUE(a.rep().Lead(kModule, 0, 1).ok());
  ASSERT_TRUE(a.engine().Deploy(WORDCOUNT_MODULE, {.partitions = 8}).ok());
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 1, "one"));  // one partition of *sentences
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  ASSERT_TRUE(b.rep().InstallModuleFile(kModule, *a.rep().ModuleFile(kModule)).ok());
  Status led = b.rep().Lead(kModule, 0, 2);
  ASSERT_TRUE(led.ok()) << led.ToString();
  EXPECT_EQ(b.Count("one"), 1);
  ASSERT_NO_FATAL_FAILURE(AppendSentences(b, 20, "two"));
  EXPECT_EQ(b.Count("two"), 20);
}

// Snapshot catch-up across real tables: a follower that starts after the leader compacted
// its log loads the leader's rows in many small chunks while the leader keeps appending
// (every chunk read at a later log end: depot records, PState rows and the module's meta
// rows change between them), fetches the log from the first chunk's end, and ends with the
// leader's digest; it cannot lead before its log reaches the last chunk's end, and leads
// with every count once it does.
TEST(ReplicatedEngineTest, ASnapshotReadInSmallChunksWhileTheLeaderWritesThenTheLogEqualsIt) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 60, "early"));
  Result<ReplicaGroupStatus> led = a.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(led.ok());
  Result<int64_t> start = a.rep().Compact(kModule, 0, led->log_end - 1);
  ASSERT_TRUE(start.ok()) << start.status().ToString();
  EXPECT_EQ(*start, led->log_end - 1);
  Result<std::vector<ReplicaEntry>> compacted = a.rep().Read(kModule, 0, 0, INT64_MAX, 1 << 20);
  EXPECT_EQ(compacted.status().code(), StatusCode::kNotFound) << compacted.status().ToString();

  SnapshotCursor cursor;
  int64_t first_end = -1, fuzzy_end = 0, chunks = 0;
  std::set<std::string> tables;
  for (;;) {
    Result<SnapshotChunk> chunk = a.rep().ReadSnapshot(kModule, 0, cursor, 128);
    ASSERT_TRUE(chunk.ok()) << chunk.status().ToString();
    if (first_end < 0) {
      first_end = chunk->log_end;
      std::vector<LogEpoch> epochs = chunk->epochs;
      ASSERT_EQ(epochs.size(), 1u);
      ASSERT_TRUE(b.rep().BeginSnapshot(kModule, 0, first_end, epochs).ok());
    }
    ASSERT_TRUE(b.rep().LoadSnapshot(kModule, 0, chunk->rows).ok());
    fuzzy_end = std::max(fuzzy_end, chunk->log_end);
    tables.insert(chunk->next.table);
    ++chunks;
    if (chunk->done) break;
    cursor = chunk->next;
    if (chunks % 4 == 0) {
      ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 3, "during" + std::to_string(chunks)));
    }
  }
  EXPECT_GT(chunks, 20);
  EXPECT_GT(tables.size(), 3u);  // chunks ended in depot, PState and meta tables
  EXPECT_GT(fuzzy_end, first_end);
  Result<ReplicaGroupStatus> loading = b.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(loading.ok());
  EXPECT_TRUE(loading->rebuilding);
  ASSERT_TRUE(b.rep().FinishSnapshot(kModule, 0, fuzzy_end).ok());
  ASSERT_TRUE(b.rep().InstallModuleFile(kModule, *a.rep().ModuleFile(kModule)).ok());
  Status early = b.rep().Lead(kModule, 0, 2);
  EXPECT_EQ(early.code(), StatusCode::kAborted) << early.ToString();
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 10, "after"));
  ASSERT_NO_FATAL_FAILURE(StopAndShip(a, b));
  EXPECT_EQ(a.Digest(), b.Digest());
  Result<ReplicaGroupStatus> caught_up = b.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(caught_up.ok());
  EXPECT_EQ(caught_up->log_start, first_end);
  EXPECT_FALSE(caught_up->rebuilding);
  Status led2 = b.rep().Lead(kModule, 0, 2);
  ASSERT_TRUE(led2.ok()) << led2.ToString();
  EXPECT_EQ(b.Count("early"), 60);
  EXPECT_EQ(b.Count("after"), 10);
  EXPECT_EQ(b.Count("during4"), 3);
  ASSERT_NO_FATAL_FAILURE(AppendSentences(b, 5, "later"));
  EXPECT_EQ(b.Count("later"), 5);
}

TEST(ReplicatedEngineTest, DigestsAreEqualOnEqualReplicasAndDifferAfterOneMoreWrite) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 40, "x"));
  ASSERT_NO_FATAL_FAILURE(StopAndShip(a, b));
  const std::string equal = a.Digest();
  EXPECT_EQ(equal, b.Digest());
  EXPECT_NE(equal.find("\"digest\":\""), std::string::npos) << equal;
  ASSERT_TRUE(a.rep().Lead(kModule, 0, 2).ok());
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 1, "y"));
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  EXPECT_NE(a.Digest(), b.Digest());
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  EXPECT_EQ(a.Digest(), b.Digest());
  EXPECT_NE(a.Digest(), equal);

  // One stored value changed behind the log's back on b (same keys): the digests differ.
  Storage& storage = static_cast<runtime::EngineImpl&>(b.engine()).storage();
  Result<std::vector<std::string>> tables = storage.ListTables("pstate.wordcount.word_counts.");
  ASSERT_TRUE(tables.ok() && !tables->empty());
  std::unique_ptr<Session> session = std::move(storage.OpenSession()).value();
  session->SuspendCapture(true);  // not logged: b follows the group
  bool changed = false;
  for (const std::string& name : *tables) {
    const TableId table = *storage.OpenTable(name, TableKind::kBytes);
    std::string key;
    std::string value;
    ASSERT_TRUE(session
                    ->Scan(table, "", "", false,
                           [&](std::string_view k, std::string_view v) {
                             key = k;
                             value = v;
                             return false;
                           })
                    .ok());
    if (key.empty()) continue;
    value.back() ^= 1;
    ASSERT_TRUE(session->Put(table, key, value).ok());
    changed = true;
    break;
  }
  ASSERT_TRUE(changed);
  EXPECT_NE(a.Digest(), b.Digest());
}

TEST(ReplicatedEngineTest, AWriteToAGroupThisNodeDoesNotLeadIsRefused) {
  TempDir dir;
  Node a(dir.Sub("a"));
  // Deploy writes the module's row, in group 0 of the module, which nobody led here.
  Result<ModuleInfo> deployed = a.engine().Deploy(WORDCOUNT_MODULE, {.partitions = kPartitions});
  ASSERT_FALSE(deployed.ok());
  EXPECT_EQ(deployed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(deployed.status().message().find("which this node follows"), std::string::npos)
      << deployed.status().ToString();
  // Once led, the deploy goes through; after Follow the module's appends are refused.
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 5, "z"));
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  EXPECT_FALSE(a.engine().Append(kModule, "*sentences", Value("z")).ok());
  EXPECT_EQ(a.rep().DropReplica("nothing-here").code(), StatusCode::kOk);
}

TEST(ReplicatedEngineTest, AModuleThatUsesAnotherModuleIsRefused) {
  TempDir dir;
  Node a(dir.Sub("a"));
  ASSERT_TRUE(a.rep().Lead("downstream", 0, 1).ok());
  Result<ModuleInfo> deployed = a.engine().Deploy(DOWNSTREAM_MODULE, {.partitions = kPartitions});
  ASSERT_FALSE(deployed.ok());
  EXPECT_EQ(deployed.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(deployed.status().message().find("not supported in cluster mode yet"),
            std::string::npos)
      << deployed.status().ToString();
}

TEST(ReplicatedEngineTest, FollowThenLeadAgainRestartsTheModule) {
  TempDir dir;
  Node a(dir.Sub("a"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 25, "again"));
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  Result<ReplicaGroupStatus> followed = a.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(followed.ok());
  EXPECT_FALSE(followed->leading);
  EXPECT_EQ(followed->applied_end, followed->log_end);
  EXPECT_EQ(a.rep().Lead(kModule, 0, 1).code(), StatusCode::kInvalidArgument);  // not above 1
  ASSERT_TRUE(a.rep().Lead(kModule, 0, 2).ok());
  EXPECT_EQ(a.Count("again"), 25);
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 25, "again"));
  EXPECT_EQ(a.Count("again"), 50);
  // Exactly: Follow writes the progress markers of everything processed, so the restarted
  // module replays nothing (stream topologies are exactly once without a crash). Cycles
  // right after the appends' acknowledgements, when markers are still being written.
  for (int64_t epoch = 3; epoch < 11; ++epoch) {
    ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
    ASSERT_TRUE(a.rep().Lead(kModule, 0, epoch).ok());
    ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 25, "again"));
    ASSERT_EQ(a.Count("again"), 50 + 25 * (epoch - 2)) << "epoch " << epoch;
  }
  ASSERT_TRUE(a.engine().WaitProcessed(kModule).ok());
}

TEST(ReplicatedEngineTest, ADroppedReplicaRefetchedFromZeroHasTheSameDigest) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 60, "drop"));
  EXPECT_EQ(a.rep().DropReplica(kModule).code(), StatusCode::kInvalidArgument);  // a leads it
  ASSERT_NO_FATAL_FAILURE(StopAndShip(a, b));
  ASSERT_TRUE(b.rep().InstallModuleFile(kModule, *a.rep().ModuleFile(kModule)).ok());
  const std::string digest = a.Digest();
  EXPECT_EQ(b.Digest(), digest);
  ASSERT_TRUE(b.rep().DropReplica(kModule).ok());
  EXPECT_EQ(b.rep().GroupStatus(kModule, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b.rep().ModuleFile(kModule).status().code(), StatusCode::kNotFound);
  // Nothing of the module is left, its file included: a follower fetches it again.
  EXPECT_TRUE(b.rep().NeedsModuleFile(kModule));
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  EXPECT_EQ(b.Digest(), digest);
  EXPECT_TRUE(b.rep().NeedsModuleFile(kModule));
  // Before the row is replicated the file installs unchecked (the module's start checks it);
  // once the row is here, bytes that differ from its checksum are refused.
  ASSERT_TRUE(b.rep().DropReplica(kModule).ok());
  ASSERT_TRUE(b.rep().InstallModuleFile(kModule, *a.rep().ModuleFile(kModule)).ok());
  EXPECT_FALSE(b.rep().NeedsModuleFile(kModule));
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  EXPECT_FALSE(b.rep().NeedsModuleFile(kModule));
  EXPECT_EQ(b.rep().InstallModuleFile(kModule, "not a module").code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(b.rep().NeedsModuleFile(kModule));
}

TEST(ReplicatedEngineTest, ARestartedNodeStartsNoModuleUntilItLeads) {
  TempDir dir;
  Node a(dir.Sub("a"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 10, "restart"));
  ASSERT_NO_FATAL_FAILURE(a.Close());
  ASSERT_NO_FATAL_FAILURE(a.Open());
  Result<std::vector<ModuleInfo>> modules = a.engine().Modules();
  ASSERT_TRUE(modules.ok());
  EXPECT_TRUE(modules->empty());
  EXPECT_EQ(a.engine().Append(kModule, "*sentences", Value("x")).status().code(),
            StatusCode::kNotFound);
  Result<ReplicaGroupStatus> status = a.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(status.ok());
  EXPECT_FALSE(status->leading);
  EXPECT_EQ(status->durable_end, status->log_end);
  ASSERT_TRUE(a.rep().Lead(kModule, 0, 2).ok());
  EXPECT_EQ(a.Count("restart"), 10);
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 10, "restart"));
  EXPECT_EQ(a.Count("restart"), 20);
}

// The leader is lost after shipping a prefix of its log that ends while its topologies
// were still placing orders: some shipments appended, one only in the outbox (the prefix
// ends with the step that put it), some orders not placed. The follower leads at epoch 2
// and recovers from that prefix alone: every order it holds is placed and shipped exactly
// once. The lost leader rejoins by a rebuild.
TEST(ReplicatedEngineTest, APromotedFollowerRecoversFromAPrefixShippedMidProcessing) {
  const std::string orders = "orders";
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_TRUE(a.rep().Lead(orders, 0, 1).ok());
  ASSERT_TRUE(a.engine().Deploy(ORDERS_MODULE, {.partitions = kPartitions}).ok());
  const std::vector<std::string> customers = {"ann", "bob", "cy", "dee", "eve"};
  std::vector<Value> batch;
  for (int id = 0; id < 200; ++id) {
    batch.push_back(Value::MapOf({{"order_id", "o" + std::to_string(id)},
                                  {"customer", customers[id % customers.size()]},
                                  {"amount", int64_t{id}}}));
  }
  ASSERT_TRUE(a.engine().AppendBatch(orders, "*orders", batch, AckLevel::kAppended).ok());
  ASSERT_TRUE(a.engine().WaitProcessed(orders).ok());
  ASSERT_NO_FATAL_FAILURE(a.WaitDurable(orders));
  // The cut: just after the second transaction of `place` steps (an event group: each step
  // writes $$orders and an outbox row, which the shipment's append removes later).
  Result<std::vector<ReplicaEntry>> log = a.rep().Read(orders, 0, 0, INT64_MAX, INT64_MAX);
  ASSERT_TRUE(log.ok()) << log.status().ToString();
  int64_t cut = -1;
  int places = 0;
  for (const ReplicaEntry& entry : *log) {
    if (entry.bytes.find("meta.outbox") != std::string::npos &&
        entry.bytes.find("pstate.orders.orders.") != std::string::npos && ++places == 2) {
      cut = entry.offset + 1;
      break;
    }
  }
  ASSERT_GT(cut, 0) << "no step of place in " << log->size() << " entries";
  ASSERT_NO_FATAL_FAILURE(Ship(a, b, orders, cut));
  ASSERT_TRUE(a.rep().Follow(orders, 0).ok());  // a is lost: b keeps its prefix
  ASSERT_TRUE(b.rep().InstallModuleFile(orders, *a.rep().ModuleFile(orders)).ok());
  Status led = b.rep().Lead(orders, 0, 2);
  ASSERT_TRUE(led.ok()) << led.ToString();
  ASSERT_TRUE(b.engine().WaitProcessed(orders).ok());

  std::set<std::string> placed;
  std::vector<std::string> shipments;
  for (int p = 0; p < kPartitions; ++p) {
    Result<std::vector<DepotEntry>> in =
        b.engine().ReadDepot(orders, "*orders", p, 0, INT64_MAX, 100000);
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    for (const DepotEntry& e : *in) placed.insert(e.record.Find(Value("order_id"))->as_string());
    Result<std::vector<DepotEntry>> out =
        b.engine().ReadDepot(orders, "*shipments", p, 0, INT64_MAX, 100000);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    for (const DepotEntry& e : *out) {
      shipments.push_back(e.record.Find(Value("order_id"))->as_string());
    }
  }
  EXPECT_GT(placed.size(), 0u);
  std::sort(shipments.begin(), shipments.end());
  EXPECT_EQ(shipments, std::vector<std::string>(placed.begin(), placed.end()));
  std::set<std::string> shipped;
  for (const std::string& customer : customers) {
    Result<Value> ids = b.engine().SelectOne(orders, "$$shipped", Path().Key(customer));
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    if (ids->is_nil()) continue;
    for (const Value& v : ids->as_set()) shipped.insert(v.as_string());
  }
  EXPECT_EQ(shipped, placed);

  // a rejoins as a follower of b: what it wrote beyond b's prefix forces a rebuild.
  Result<int64_t> point = a.rep().TruncationPoint(
      orders, 0, [&](int64_t epoch) { return b.rep().EndOffsetFor(orders, 0, epoch); });
  ASSERT_TRUE(point.ok()) << point.status().ToString();
  Result<bool> truncated = a.rep().TruncateTo(orders, 0, *point);
  ASSERT_TRUE(truncated.ok());
  if (!*truncated) ASSERT_TRUE(a.rep().DropReplica(orders).ok());
  ASSERT_NO_FATAL_FAILURE(Ship(b, a, orders));
  ASSERT_NO_FATAL_FAILURE(StopAndShip(b, a, orders));
  EXPECT_EQ(a.Digest(orders), b.Digest(orders));
}

// The same with microbatches (mbbank): the follower gets the first half of the leader's log
// (batches committed, others not started), leads, and its ledger conserves money: the
// balances add up to the deposits in its depot, and each account's $$deposited sums its
// deposits.
TEST(ReplicatedEngineTest, APromotedFollowerRecoversMicrobatchesFromAPrefix) {
  const std::string bank = "mbbank";
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_TRUE(a.rep().Lead(bank, 0, 1).ok());
  ASSERT_TRUE(a.engine().Deploy(MBBANK_MODULE, {.partitions = kPartitions}).ok());
  const std::vector<std::string> accounts = {"ann", "bob", "cy", "dee", "eve"};
  for (int round = 0; round < 6; ++round) {
    std::vector<Value> deposits;
    std::vector<Value> transfers;
    for (int i = 0; i < 20; ++i) {
      deposits.push_back(Value::MapOf(
          {{"account", accounts[(round + i) % accounts.size()]}, {"amount", int64_t{1 + i}}}));
      transfers.push_back(Value::MapOf({{"id", "t" + std::to_string(round * 100 + i)},
                                        {"from", accounts[i % accounts.size()]},
                                        {"to", accounts[(i + 2) % accounts.size()]},
                                        {"amount", int64_t{1 + (i % 9)}}}));
    }
    ASSERT_TRUE(a.engine().AppendBatch(bank, "*deposits", deposits, AckLevel::kAppended).ok());
    ASSERT_TRUE(a.engine().AppendBatch(bank, "*transfers", transfers, AckLevel::kAppended).ok());
  }
  ASSERT_TRUE(a.engine().WaitProcessed(bank).ok());
  ASSERT_NO_FATAL_FAILURE(a.WaitDurable(bank));
  const int64_t half = a.rep().GroupStatus(bank, 0)->log_end / 2;
  ASSERT_NO_FATAL_FAILURE(Ship(a, b, bank, half));
  ASSERT_TRUE(a.rep().Follow(bank, 0).ok());
  ASSERT_TRUE(b.rep().InstallModuleFile(bank, *a.rep().ModuleFile(bank)).ok());
  Status led = b.rep().Lead(bank, 0, 2);
  ASSERT_TRUE(led.ok()) << led.ToString();
  ASSERT_TRUE(b.engine().WaitProcessed(bank).ok());

  std::map<std::string, int64_t> deposited;
  int64_t total_deposits = 0;
  for (int p = 0; p < kPartitions; ++p) {
    Result<std::vector<DepotEntry>> in =
        b.engine().ReadDepot(bank, "*deposits", p, 0, INT64_MAX, 100000);
    ASSERT_TRUE(in.ok()) << in.status().ToString();
    for (const DepotEntry& e : *in) {
      const int64_t amount = e.record.Find(Value("amount"))->as_int();
      deposited[e.record.Find(Value("account"))->as_string()] += amount;
      total_deposits += amount;
    }
  }
  EXPECT_GT(total_deposits, 0);
  int64_t total_balances = 0;
  for (const std::string& account : accounts) {
    Result<Value> balance = b.engine().SelectOne(bank, "$$balances", Path().Key(account));
    ASSERT_TRUE(balance.ok()) << balance.status().ToString();
    total_balances += balance->is_nil() ? 0 : balance->as_int();
    Result<Value> sum = b.engine().SelectOne(bank, "$$deposited", Path().Key(account));
    ASSERT_TRUE(sum.ok()) << sum.status().ToString();
    EXPECT_EQ(sum->is_nil() ? 0 : sum->as_int(), deposited[account]) << account;
  }
  EXPECT_EQ(total_balances, total_deposits);
}

// The ex-leader wrote entries the new leader never got (its appends were not acknowledged
// by the replicas, which never fetched them): cutting its log cannot undo their effects, so
// it drops its copy and fetches the whole log again.
TEST(ReplicatedEngineTest, AnExLeaderWithEntriesTheNewLeaderLacksIsRebuiltFromZero) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadThenLoseTheLeadership(a, b));
  // At least: b replays from the progress it got, which may lag behind the counts it got
  // (stream topologies recover at-least-once; docs/runtime.md).
  EXPECT_GE(b.Count("kept"), 40);
  EXPECT_EQ(b.Count("lost"), 0);

  Result<int64_t> point = a.rep().TruncationPoint(
      kModule, 0, [&](int64_t epoch) { return b.rep().EndOffsetFor(kModule, 0, epoch); });
  ASSERT_TRUE(point.ok()) << point.status().ToString();
  Result<ReplicaGroupStatus> a_status = a.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(a_status.ok());
  EXPECT_LT(*point, a_status->log_end);  // epoch 1 ends earlier on b
  Result<bool> truncated = a.rep().TruncateTo(kModule, 0, *point);
  ASSERT_TRUE(truncated.ok()) << truncated.status().ToString();
  EXPECT_FALSE(*truncated);  // kNeedsRebuild: its tables hold the lost entries' effects
  EXPECT_EQ(a.rep().GroupStatus(kModule, 0)->log_end, a_status->log_end);  // nothing changed
  ASSERT_TRUE(a.rep().DropReplica(kModule).ok());
  ASSERT_NO_FATAL_FAILURE(Ship(b, a));
  ASSERT_NO_FATAL_FAILURE(StopAndShip(b, a));
  EXPECT_EQ(a.Digest(), b.Digest());
}

// The ex-leader of the test above, rebuilt from its own log instead: it keeps every entry
// below the truncation point (those an in-sync replica acknowledged) while its tables are
// rebuilt, and ends equal to the new leader — also across a restart in the middle.
TEST(ReplicatedEngineTest, AnExLeaderRebuildsItsTablesFromTheLogItKeeps) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadThenLoseTheLeadership(a, b));

  Result<int64_t> point = a.rep().TruncationPoint(
      kModule, 0, [&](int64_t epoch) { return b.rep().EndOffsetFor(kModule, 0, epoch); });
  ASSERT_TRUE(point.ok()) << point.status().ToString();
  ASSERT_FALSE(*a.rep().TruncateTo(kModule, 0, *point));
  ASSERT_TRUE(a.rep().RebuildFromLog(kModule, 0, *point).ok());
  Result<ReplicaGroupStatus> cut = a.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(cut.ok());
  EXPECT_EQ(cut->log_end, *point);  // the entries below the point are kept
  EXPECT_EQ(cut->applied_end, 0);
  EXPECT_FALSE(a.rep().NeedsModuleFile(kModule));  // its file is kept too
  // A restart before anything is applied again clears what the tables hold.
  a.Close();
  a.Open();
  ASSERT_NO_FATAL_FAILURE(Ship(b, a));
  EXPECT_EQ(a.Digest(), b.Digest());
  // It can lead at once: its tables are rebuilt from its log.
  ASSERT_TRUE(b.rep().Follow(kModule, 0).ok());
  ASSERT_TRUE(a.rep().Lead(kModule, 0, 3).ok());
  EXPECT_EQ(a.Count("lost"), 0);
  EXPECT_GE(a.Count("kept"), 40);
}

TEST(ReplicatedEngineTest, WhenLogPassesWaitsForACommitOrTheEndOfTheLeadership) {
  TempDir dir;
  Node a(dir.Sub("a"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  const int64_t end = a.rep().GroupStatus(kModule, 0)->log_end;
  std::promise<void> at_once;
  a.rep().WhenLogPasses(kModule, 0, end - 1, [&] { at_once.set_value(); });
  at_once.get_future().get();
  std::promise<void> passed;
  std::future<void> passed_done = passed.get_future();
  a.rep().WhenLogPasses(kModule, 0, end, [&] { passed.set_value(); });
  EXPECT_EQ(passed_done.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 1, "poll"));
  passed_done.get();
  std::promise<void> moved;
  std::future<void> moved_done = moved.get_future();
  a.rep().WhenLogPasses(kModule, 0, a.rep().GroupStatus(kModule, 0)->log_end + 1000,
                        [&] { moved.set_value(); });
  EXPECT_EQ(moved_done.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  EXPECT_EQ(moved_done.wait_for(std::chrono::seconds(0)), std::future_status::ready);
}

// Appends in flight when the leadership moves: each is acknowledged (it completed before
// Follow stopped the module) or fails with kAborted, never anything else.
TEST(ReplicatedEngineTest, AppendsWaitingWhenTheLeadershipMovesFailAborted) {
  TempDir dir;
  Node a(dir.Sub("a"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  constexpr int kAppends = 200;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  std::vector<std::string> unexpected;
  for (int i = 0; i < kAppends; ++i) {
    a.engine().AppendAsync(
        kModule, "*sentences", {Value("moving " + std::to_string(i))}, AckLevel::kProcessed,
        [&](Result<std::vector<AppendResult>> r) {
          std::lock_guard<std::mutex> lock(mu);
          if (!r.ok()) {
            if (r.status().code() != StatusCode::kAborted ||
                r.status().message().find("may or may not be kept") == std::string::npos) {
              unexpected.push_back(r.status().ToString());
            }
          }
          ++done;
          cv.notify_all();
        });
  }
  ASSERT_TRUE(a.rep().Follow(kModule, 0).ok());
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done == kAppends; });  // Follow returned: every callback ran
  EXPECT_TRUE(unexpected.empty()) << unexpected.front();
}

// Outbox rows a previous leader put reach a follower after its Open: once the module is
// adopted (at Lead) they are left over, to be appended, and new rows are numbered above them.
TEST(OutboxAdoptTest, RowsReplicatedAfterOpenAreLeftOverOnceAdopted) {
  TempDir dir;
  std::unique_ptr<Storage> storage = strata::testing::OpenSmallStorage(dir.Sub("db"));
  std::unique_ptr<Session> session = std::move(storage->OpenSession()).value();
  auto mine = std::move(runtime::Outbox::Open(*storage, *session)).value();
  auto previous_leader = std::move(runtime::Outbox::Open(*storage, *session)).value();
  ASSERT_TRUE(session->Begin().ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(previous_leader->Put(*session, "m", "*d", 0, "r" + std::to_string(i)).ok());
  }
  ASSERT_TRUE(session->Commit().ok());
  auto left_over = [&] {
    std::vector<std::string> records;
    EXPECT_TRUE(mine->ForEachLeftOver(*session, "m",
                                      [&](runtime::Outbox::Entry e) {
                                        records.push_back(e.record);
                                        return Status::Ok();
                                      })
                    .ok());
    return records;
  };
  EXPECT_TRUE(left_over().empty());  // put after this outbox was opened
  ASSERT_TRUE(mine->Adopt(*session, "m").ok());
  EXPECT_EQ(left_over(), (std::vector<std::string>{"r0", "r1", "r2"}));
  ASSERT_TRUE(session->Begin().ok());
  Result<std::string> key = mine->Put(*session, "m", "*d", 0, "new");
  ASSERT_TRUE(key.ok());
  ASSERT_TRUE(session->Commit().ok());
  EXPECT_EQ(left_over().size(), 3u);  // the new row is not left over, and overwrote none
  int rows = 0;
  ASSERT_TRUE(session
                  ->Scan(mine->table(), "", "", false,
                         [&](std::string_view, std::string_view) {
                           ++rows;
                           return true;
                         })
                  .ok());
  EXPECT_EQ(rows, 4);
}

// The gate holds the acknowledgements of appends at kAppended and above, in a queue the
// test releases: OK passes the results on, another status fails the append with it.
class HeldAcks {
 public:
  void Hold(const std::string& module, std::function<void(Status)> release) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back({module, std::move(release)});
    cv_.notify_all();
  }
  // Waits until one is held and returns its release (a failure when none comes: the gate
  // was not called).
  std::pair<std::string, std::function<void(Status)>> Next() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, std::chrono::seconds(30), [&] { return !held_.empty(); })) {
      ADD_FAILURE() << "no acknowledgement reached the gate";
      return {"", [](Status) {}};
    }
    auto next = std::move(held_.front());
    held_.erase(held_.begin());
    return next;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::function<void(Status)>>> held_;
};

// The durable end follows the storage's flushes: inside any WhenDurable callback (where a
// leader's acknowledgements are released, and its high watermark counts its own durable
// end), every entry committed before the WhenDurable call is counted durable already.
TEST(ReplicatedEngineTest, TheDurableEndIsUpToDateInsideAFlushsCallbacks) {
  TempDir dir;
  Node leader(dir.Sub("leader"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(leader, 1));
  for (int i = 0; i < 50; ++i) {
    Result<AppendResult> appended = leader.engine().Append(
        kModule, "*sentences", Value("word" + std::to_string(i)), AckLevel::kAppended);
    ASSERT_TRUE(appended.ok()) << appended.status().ToString();
    Result<ReplicaGroupStatus> now = leader.rep().GroupStatus(kModule, 0);
    ASSERT_TRUE(now.ok());
    std::promise<int64_t> durable;
    leader.rep().WhenDurable([&](Status st) {
      Result<ReplicaGroupStatus> then = leader.rep().GroupStatus(kModule, 0);
      durable.set_value(st.ok() && then.ok() ? then->durable_end : -1);
    });
    EXPECT_GE(durable.get_future().get(), now->log_end) << i;
  }
}

TEST(ReplicatedEngineTest, TheAckGateHoldsAcknowledgementsUntilReleased) {
  TempDir dir;
  auto acks = std::make_shared<HeldAcks>();
  EngineOptions options = SmallOptions(dir.Sub("gate"));
  options.ack_gate = [acks](const std::string& module, std::function<void(Status)> release) {
    acks->Hold(module, std::move(release));
  };
  Result<std::unique_ptr<Engine>> opened = Engine::Open(options);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::unique_ptr<Engine> engine = std::move(opened).value();
  EXPECT_EQ(engine->replication(), nullptr);
  ASSERT_TRUE(engine->Deploy(WORDCOUNT_MODULE, {.partitions = kPartitions}).ok());

  std::promise<Result<std::vector<AppendResult>>> first;
  std::future<Result<std::vector<AppendResult>>> first_done = first.get_future();
  engine->AppendAsync(kModule, "*sentences", {Value("gate one")}, AckLevel::kProcessed,
                      [&](Result<std::vector<AppendResult>> r) { first.set_value(std::move(r)); });
  auto [module, release] = acks->Next();
  EXPECT_EQ(module, kModule);
  // Processed already (the gate sees what reached its level), not acknowledged yet.
  EXPECT_EQ(first_done.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  release(Status::Ok());
  Result<std::vector<AppendResult>> acked = first_done.get();
  ASSERT_TRUE(acked.ok()) << acked.status().ToString();
  ASSERT_EQ(acked->size(), 1u);
  EXPECT_GE((*acked)[0].offset, 0);

  std::promise<Result<std::vector<AppendResult>>> second;
  std::future<Result<std::vector<AppendResult>>> second_done = second.get_future();
  engine->AppendAsync(kModule, "*sentences", {Value("gate two")}, AckLevel::kAppended,
                      [&](Result<std::vector<AppendResult>> r) { second.set_value(std::move(r)); });
  auto [module2, release2] = acks->Next();
  EXPECT_EQ(second_done.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  release2(Status::NotEnoughReplicas("only 1 of min_isr 2 in sync"));
  Result<std::vector<AppendResult>> failed = second_done.get();
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kNotEnoughReplicas);
  // kNone is acknowledged at once, without the gate.
  EXPECT_TRUE(engine->AppendBatch(kModule, "*sentences", {Value("none")}, AckLevel::kNone).ok());
  ASSERT_TRUE(engine->WaitProcessed(kModule).ok());
  Result<Value> count = engine->SelectOne(kModule, "$$word_counts", Path().Key("gate"));
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, Value(2));  // both appends are kept: the gate decides the ack only
}

}  // namespace
}  // namespace strata
