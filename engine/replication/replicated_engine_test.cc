// Replicated engines (EngineOptions::replicated, strata/replication.h) in one process, each
// with its own data directory, running the example module wordcount: a leader ships its
// group's log to a follower with Read / Append / ApplyUpTo, then the leadership moves (Follow
// on the old leader, Lead at a new epoch on the other), the module starts there from the
// replicated tables and its shipped file, and the old leader follows the new one (truncation
// by epochs) until both digests are equal. Also: the ack gate, refused writes of a group not
// led, Follow then Lead on one node, DropReplica and a refetch, a restart.
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "storage/testing/temp_dir.h"
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

  // Waits until the group's durable end reaches its log end (the tracking is asynchronous:
  // a flush that completes may be noted after the caller's WhenDurable returns).
  void WaitDurable() {
    for (;;) {
      std::promise<Status> flushed;
      rep().WhenDurable([&](Status st) { flushed.set_value(st); });
      ASSERT_TRUE(flushed.get_future().get().ok());
      Result<ReplicaGroupStatus> status = rep().GroupStatus(kModule, 0);
      ASSERT_TRUE(status.ok()) << status.status().ToString();
      if (status->durable_end == status->log_end) return;
    }
  }
  std::string Digest() {
    Result<std::string> digest = rep().Digest(kModule, 0);
    EXPECT_TRUE(digest.ok()) << digest.status().ToString();
    return digest.ok() ? *digest : "";
  }
  int64_t Count(const std::string& word) {
    Result<Value> count = engine_->SelectOne(kModule, "$$word_counts", Path().Key(word));
    EXPECT_TRUE(count.ok()) << count.status().ToString();
    return count.ok() && count->is_int() ? count->as_int() : -1;
  }

 private:
  std::string dir_;
  std::unique_ptr<Engine> engine_;
};

// Ships the leader's durable entries that the follower lacks, a bounded read at a time, and
// applies them all (the leader's durable end is this pair's high watermark).
void Ship(Node& leader, Node& follower) {
  ASSERT_NO_FATAL_FAILURE(leader.WaitDurable());
  Result<ReplicaGroupStatus> led = leader.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(led.ok()) << led.status().ToString();
  Result<ReplicaGroupStatus> mine = follower.rep().GroupStatus(kModule, 0);
  int64_t from = mine.ok() ? mine->log_end : 0;
  for (;;) {
    Result<std::vector<ReplicaEntry>> entries =
        leader.rep().Read(kModule, 0, from, led->durable_end, 64 << 10);
    ASSERT_TRUE(entries.ok()) << entries.status().ToString();
    if (entries->empty()) break;
    ASSERT_EQ(entries->front().offset, from);
    Status appended = follower.rep().Append(kModule, 0, *entries);
    ASSERT_TRUE(appended.ok()) << appended.ToString();
    from = entries->back().offset + 1;
  }
  EXPECT_EQ(from, led->durable_end);
  ASSERT_TRUE(follower.rep().ApplyUpTo(kModule, 0, led->durable_end).ok());
  Result<ReplicaGroupStatus> applied = follower.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(applied->applied_end, led->durable_end);
  EXPECT_FALSE(applied->leading);
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
  EXPECT_EQ(a.Digest(), b.Digest());
  Result<ReplicaGroupStatus> b_status = b.rep().GroupStatus(kModule, 0);
  ASSERT_TRUE(b_status.ok());
  EXPECT_TRUE(b_status->leading);
  EXPECT_EQ(b_status->epoch, 2);
  EXPECT_EQ(b.rep().Append(kModule, 0, {}).code(), StatusCode::kInvalidArgument);
}

TEST(ReplicatedEngineTest, DigestsAreEqualOnEqualReplicasAndDifferAfterOneMoreWrite) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 40, "x"));
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  const std::string equal = a.Digest();
  EXPECT_EQ(equal, b.Digest());
  EXPECT_NE(equal.find("\"digest\":\""), std::string::npos) << equal;
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 1, "y"));
  EXPECT_NE(a.Digest(), b.Digest());
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  EXPECT_EQ(a.Digest(), b.Digest());
  EXPECT_NE(a.Digest(), equal);
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
  ASSERT_TRUE(a.engine().WaitProcessed(kModule).ok());
}

TEST(ReplicatedEngineTest, ADroppedReplicaRefetchedFromZeroHasTheSameDigest) {
  TempDir dir;
  Node a(dir.Sub("a"));
  Node b(dir.Sub("b"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 60, "drop"));
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  ASSERT_TRUE(b.rep().InstallModuleFile(kModule, *a.rep().ModuleFile(kModule)).ok());
  const std::string digest = a.Digest();
  EXPECT_EQ(b.Digest(), digest);
  EXPECT_EQ(a.rep().DropReplica(kModule).code(), StatusCode::kInvalidArgument);  // a leads it
  ASSERT_TRUE(b.rep().DropReplica(kModule).ok());
  EXPECT_EQ(b.rep().GroupStatus(kModule, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(b.rep().ModuleFile(kModule).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(b.rep().NeedsModuleFile(kModule));
  ASSERT_NO_FATAL_FAILURE(Ship(a, b));
  EXPECT_EQ(b.Digest(), digest);
  EXPECT_TRUE(b.rep().NeedsModuleFile(kModule));
}

TEST(ReplicatedEngineTest, ARestartedNodeStartsNoModuleUntilItLeads) {
  TempDir dir;
  Node a(dir.Sub("a"));
  ASSERT_NO_FATAL_FAILURE(LeadAndDeploy(a, 1));
  ASSERT_NO_FATAL_FAILURE(AppendSentences(a, 10, "restart"));
  EXPECT_EQ(a.engine().Update(WORDCOUNT_MODULE, {}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(a.engine().Recompute(kModule, {"$$word_counts"}).code(), StatusCode::kInvalidArgument);
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

// The gate holds the acknowledgements of appends at kAppended and above, in a queue the
// test releases: OK passes the results on, another status fails the append with it.
class HeldAcks {
 public:
  void Hold(const std::string& module, std::function<void(Status)> release) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.push_back({module, std::move(release)});
    cv_.notify_all();
  }
  // Waits until one is held and returns its release.
  std::pair<std::string, std::function<void(Status)>> Next() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !held_.empty(); });
    auto next = std::move(held_.front());
    held_.erase(held_.begin());
    return next;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, std::function<void(Status)>>> held_;
};

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
