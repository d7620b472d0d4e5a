// A leader Engine running the example modules wordcount, social and bank, with a LogWriter
// installed on its Storage; its group logs are shipped in-process to a follower Storage
// (Apply, then ApplyUpTo the leader's log end). The follower never runs module code, yet
// every replicated table (docs/cluster.md, "Replication log") ends equal to the leader's,
// byte for byte — also when the follower restarts in the middle. And the same engine
// killed with SIGKILL under load, restarted (recovery, replays) and killed again: after
// each kill a follower built from the logs alone equals the leader's tables.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "replication/group.h"
#include "replication/group_log.h"
#include "replication/log_writer.h"
#include "replication/testing/replicated_rows.h"
#include "runtime/engine_impl.h"
#include "storage/storage.h"
#include "storage/testing/kill9_child.h"
#include "storage/testing/temp_dir.h"
#include "storage/testing/test_storage.h"
#include "strata/engine.h"
#include "strata/testing/test_seed.h"

namespace strata::replication {
namespace {

using strata::replication::testing::ReplicatedRows;
using strata::replication::testing::Rows;
using strata::testing::Kill9Child;
using strata::testing::SmallStorageOptions;
using strata::testing::TempDir;

constexpr int kPartitions = 4;
constexpr int kGroups = 2;  // partitions 0 and 2 in group 0, 1 and 3 in group 1
constexpr uint64_t kDefaultSeed = 22;

EngineOptions LeaderOptions(const std::string& dir) {
  EngineOptions options;
  options.data_dir = dir;
  options.task_threads = 2;
  options.cache_size_bytes = 64ull << 20;
  options.log_file_max_bytes = 4ull << 20;
  options.checkpoint_interval_s = 1;
  return options;
}

// The follower: a Storage of its own with a LogWriter (as every node has), fed entries.
class Follower {
 public:
  explicit Follower(const std::string& dir) : dir_(dir) { Open(); }
  void Open() {
    writer_ = std::make_shared<LogWriter>(GroupLayout(kGroups), 0);
    StorageOptions options = SmallStorageOptions(dir_);
    options.commit_hook = writer_;
    Result<std::unique_ptr<Storage>> storage = Storage::Open(options);
    ASSERT_TRUE(storage.ok()) << storage.status().ToString();
    storage_ = std::move(storage).value();
    session_ = std::move(storage_->OpenSession()).value();
  }
  void Restart() {
    session_.reset();
    storage_.reset();
    writer_.reset();
    Open();
  }
  // Fetches what the leader's group log has beyond this follower's, then applies all of it
  // (the leader's log end is the high watermark of this in-process pair).
  void FetchFrom(GroupLog& leader, Session& leader_session) {
    Result<GroupLog*> log = writer_->Open(*storage_, leader.id());
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    Result<std::vector<ShippedEntry>> entries =
        leader.Read(leader_session, (*log)->EndOffset(), 1 << 30);
    ASSERT_TRUE(entries.ok()) << entries.status().ToString();
    Status applied = (*log)->Apply(*session_, *entries);
    ASSERT_TRUE(applied.ok()) << applied.ToString();
    const int64_t high_watermark = (*log)->EndOffset();
    ASSERT_TRUE((*log)->ApplyUpTo(*session_, high_watermark).ok());
    ASSERT_EQ((*log)->AppliedEnd(), high_watermark);
  }
  Storage& storage() { return *storage_; }
  Session& session() { return *session_; }

 private:
  std::string dir_;
  std::shared_ptr<LogWriter> writer_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<Session> session_;
};

void FetchAll(LogWriter& leader_writer, Session& leader_session, Follower& follower) {
  for (GroupLog* log : leader_writer.Groups()) {
    ASSERT_NO_FATAL_FAILURE(follower.FetchFrom(*log, leader_session));
  }
}

class ReplicationEngineTest : public ::testing::TestWithParam<bool> {};

// The workload: random batches of the three modules' depots, shipped after every round.
TEST_P(ReplicationEngineTest, FollowerTablesEqualTheLeadersByteForByte) {
  const bool restart_follower = GetParam();
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  TempDir dir;
  const std::string leader_dir = dir.Sub("leader");
  Follower follower(dir.Sub("follower"));
  auto leader_writer = std::make_shared<LogWriter>(GroupLayout(kGroups), 0);
  {
    Result<std::unique_ptr<Engine>> opened =
        runtime::EngineImpl::Open(LeaderOptions(leader_dir), leader_writer);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    std::unique_ptr<Engine> engine = std::move(opened).value();
    for (const char* so : {WORDCOUNT_MODULE, SOCIAL_MODULE, BANK_MODULE}) {
      Result<ModuleInfo> deployed = engine->Deploy(so, {.partitions = kPartitions});
      ASSERT_TRUE(deployed.ok()) << deployed.status().ToString();
    }
    Storage& leader_storage = static_cast<runtime::EngineImpl&>(*engine).storage();
    std::unique_ptr<Session> leader_session = std::move(leader_storage.OpenSession()).value();
    const std::vector<std::string> words = {"a", "b", "c", "d", "e", "f", "g", "h"};
    const std::vector<std::string> users = {"ann", "bob", "cy", "dee", "eve", "fay", "gus"};
    auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
    constexpr int kRounds = 12;
    int64_t records = 0;
    int64_t post_id = 0;
    int64_t transfer_id = 0;
    for (int round = 0; round < kRounds; ++round) {
      std::vector<Value> sentences, follows, posts, deposits, transfers;
      for (int i = 0; i < 120; ++i) {
        sentences.push_back(Value(pick(words) + " " + pick(words) + " " + pick(words)));
      }
      for (int i = 0; i < 40; ++i) {
        Value follow = Value::MapOf({{"from", pick(users)}, {"to", pick(users)}});
        if (rng() % 5 == 0) follow.Insert("op", "unfollow");
        follows.push_back(std::move(follow));
        posts.push_back(Value::MapOf({{"author", pick(users)},
                                      {"id", ++post_id},
                                      {"text", "post " + std::to_string(post_id)}}));
      }
      for (int i = 0; i < 30; ++i) {
        deposits.push_back(Value::MapOf(
            {{"account", pick(users)}, {"amount", static_cast<int64_t>(1 + rng() % 100)}}));
        transfers.push_back(Value::MapOf({{"id", "t" + std::to_string(++transfer_id)},
                                          {"from", pick(users)},
                                          {"to", pick(users)},
                                          {"amount", static_cast<int64_t>(1 + rng() % 60)}}));
      }
      records += static_cast<int64_t>(sentences.size() + follows.size() + posts.size() +
                                      deposits.size() + transfers.size());
      for (auto& [module, depot, batch] :
           std::vector<std::tuple<std::string, std::string, std::vector<Value>>>{
               {"wordcount", "*sentences", std::move(sentences)},
               {"social", "*follows", std::move(follows)},
               {"social", "*posts", std::move(posts)},
               {"bank", "*deposits", std::move(deposits)},
               {"bank", "*transfers", std::move(transfers)}}) {
        auto appended = engine->AppendBatch(module, depot, std::move(batch), AckLevel::kAppended);
        ASSERT_TRUE(appended.ok())
            << module << " " << depot << ": " << appended.status().ToString();
      }
      // Ship while the topologies are still processing: entries arrive mid-stream.
      ASSERT_NO_FATAL_FAILURE(FetchAll(*leader_writer, *leader_session, follower));
      if (restart_follower && round == kRounds / 2) follower.Restart();
    }
    EXPECT_GE(records, 3000);
    for (const char* module : {"wordcount", "social", "bank"}) {
      ASSERT_TRUE(engine->WaitProcessed(module).ok());
    }
    ASSERT_NO_FATAL_FAILURE(FetchAll(*leader_writer, *leader_session, follower));
    leader_session.reset();
    ASSERT_TRUE(engine->Close().ok());
  }
  // The engine's shutdown writes too (progress markers): ship the rest from its closed log.
  auto leader = std::move(Storage::Open(SmallStorageOptions(leader_dir))).value();
  auto leader_session = std::move(leader->OpenSession()).value();
  int groups = 0;
  for (const std::string module : {"wordcount", "social", "bank"}) {
    for (int g = 0; g < kGroups; ++g) {
      auto log = std::move(GroupLog::Open(*leader, *leader_session, GroupId{module, g})).value();
      EXPECT_TRUE(log->leading());
      EXPECT_GT(log->EndOffset(), 0) << module << "/" << g;
      ASSERT_NO_FATAL_FAILURE(follower.FetchFrom(*log, *leader_session));
      ++groups;
    }
  }
  EXPECT_EQ(groups, 6);
  Rows leader_rows = ReplicatedRows(*leader, *leader_session);
  Rows follower_rows = ReplicatedRows(follower.storage(), follower.session());
  EXPECT_GT(leader_rows.size(), 30u);  // depots, PStates and meta rows of three modules
  EXPECT_TRUE(leader_rows.count("meta.progress"));
  ASSERT_EQ(follower_rows.size(), leader_rows.size());
  for (const auto& [name, table] : leader_rows) {
    ASSERT_TRUE(follower_rows.count(name)) << name << " is missing on the follower";
    EXPECT_TRUE(follower_rows[name] == table)
        << name << ": " << follower_rows[name].size() << " rows on the follower, " << table.size()
        << " on the leader";
  }
}

// The child: opens the leader engine (deploying the modules the first time), appends random
// batches until it is killed; writes a byte to `ready_fd` after its first batches.
[[noreturn]] void AppendUntilKilled(const std::string& dir, int ready_fd, uint64_t seed) {
  auto writer = std::make_shared<LogWriter>(GroupLayout(kGroups), 0);
  Result<std::unique_ptr<Engine>> opened = runtime::EngineImpl::Open(LeaderOptions(dir), writer);
  if (!opened.ok()) _exit(10);
  std::unique_ptr<Engine> engine = std::move(opened).value();
  for (const char* so : {WORDCOUNT_MODULE, SOCIAL_MODULE, BANK_MODULE}) {
    Result<ModuleInfo> deployed = engine->Deploy(so, {.partitions = kPartitions});
    if (!deployed.ok() && deployed.status().code() != StatusCode::kAlreadyExists) _exit(11);
  }
  std::mt19937_64 rng(seed);
  const std::vector<std::string> users = {"ann", "bob", "cy", "dee", "eve"};
  auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
  for (int64_t n = 0;; ++n) {
    std::vector<Value> sentences, follows, deposits;
    for (int i = 0; i < 20; ++i) {
      sentences.push_back(Value(pick(users) + " " + pick(users)));
      follows.push_back(Value::MapOf({{"from", pick(users)}, {"to", pick(users)}}));
      deposits.push_back(Value::MapOf(
          {{"account", pick(users)}, {"amount", static_cast<int64_t>(1 + rng() % 9)}}));
    }
    // Appended, not processed: the topologies run behind, so kills land in their commits too.
    if (!engine->AppendBatch("wordcount", "*sentences", sentences, AckLevel::kAppended).ok() ||
        !engine->AppendBatch("social", "*follows", follows, AckLevel::kAppended).ok() ||
        !engine->AppendBatch("bank", "*deposits", deposits, AckLevel::kAppended).ok()) {
      _exit(12);
    }
    if (n == 5) {
      const char ready = 'r';
      if (write(ready_fd, &ready, 1) != 1) _exit(13);
    }
  }
}

TEST(ReplicationEngineCrashTest, Kill9OfTheLeaderEngineNeverSeparatesEntriesFromEffects) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  TempDir dir;
  const std::string leader_dir = dir.Sub("leader");
  int64_t last_entries = 0;
  for (int round = 0; round < 4; ++round) {
    const uint64_t child_seed = rng();
    Kill9Child child([&](int fd) { AppendUntilKilled(leader_dir, fd, child_seed); });
    ASSERT_TRUE(child.WaitReady()) << "round " << round << ": the engine did not start";
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
    ASSERT_TRUE(child.Kill()) << "round " << round;

    auto leader = std::move(Storage::Open(SmallStorageOptions(leader_dir))).value();
    auto leader_session = std::move(leader->OpenSession()).value();
    Follower follower(dir.Sub("follower" + std::to_string(round)));
    int64_t entries = 0;
    for (const std::string module : {"wordcount", "social", "bank"}) {
      for (int g = 0; g < kGroups; ++g) {
        auto log = std::move(GroupLog::Open(*leader, *leader_session, GroupId{module, g})).value();
        entries += log->EndOffset();
        ASSERT_NO_FATAL_FAILURE(follower.FetchFrom(*log, *leader_session));
      }
    }
    EXPECT_GT(entries, last_entries) << "round " << round << " logged nothing";
    last_entries = entries;
    Rows leader_rows = ReplicatedRows(*leader, *leader_session);
    Rows follower_rows = ReplicatedRows(follower.storage(), follower.session());
    EXPECT_TRUE(leader_rows.count("meta.progress")) << "round " << round;
    EXPECT_TRUE(follower_rows == leader_rows)
        << "round " << round << ": " << follower_rows.size()
        << " replicated tables on the follower, " << leader_rows.size() << " on the leader";
    if (HasFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Replication, ReplicationEngineTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "FollowerRestarted" : "FollowerUp";
                         });

}  // namespace
}  // namespace strata::replication
