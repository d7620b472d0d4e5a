// ReplicaManager over a real replicated engine (EngineOptions::replicated) in a temp dir,
// without ZooKeeper: the views are given by the test. A leader's long polls (the followers'
// fetches) are answered when the node stops leading or shuts down.
#include "replica_manager.h"

#include <future>
#include <memory>

#include <gtest/gtest.h>

#include "storage/testing/temp_dir.h"
#include "strata/engine.h"

namespace strata::cluster {
namespace {

using namespace std::chrono_literals;

constexpr const char* kModule = "m";

GroupAssignment Placed(const std::string& leader, const std::string& incarnation, int64_t epoch,
                       const std::string& address) {
  GroupAssignment a;
  a.module = std::string(kModule);
  a.group = 0;
  a.state.leader = leader;
  a.state.leader_incarnation = incarnation;
  a.state.epoch = epoch;
  a.state.isr = {"n1", "n2"};
  a.state.replicas = {"n1", "n2"};
  a.state.min_isr = 1;
  a.leader_address = address;
  return a;
}

// A follower's fetch that waits (much longer than the test) for entries that never come.
FetchAsk LongPoll(int64_t epoch) {
  FetchAsk ask;
  ask.module = kModule;
  ask.group = 0;
  ask.node = "n2";
  ask.epoch = epoch;
  ask.from = 0;
  ask.wait = 600s;
  return ask;
}

class ReplicaManagerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    EngineOptions options;
    options.data_dir = dir_.path();
    options.task_threads = 2;
    options.cache_size_bytes = 64ull << 20;
    options.replicated = true;
    Result<std::unique_ptr<Engine>> opened = Engine::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    engine_ = std::move(opened).value();
    ReplicaManagerOptions manager;
    manager.node_id = "n1";
    manager.incarnation = "1@t";
    manager_ = std::make_unique<ReplicaManager>(*engine_, manager);
    // This node leads the (not deployed) module's group at epoch 1.
    manager_->OnAssignments({Placed("n1", "1@t", 1, "127.0.0.1:1")}, {kModule});
    ASSERT_TRUE(manager_->WaitUntilLeading(kModule, 30s).ok());
  }
  void TearDown() override {
    manager_.reset();
    if (engine_) {
      EXPECT_TRUE(engine_->Close().ok());
    }
  }

  strata::testing::TempDir dir_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ReplicaManager> manager_;
};

TEST_F(ReplicaManagerTest, ShutdownAnswersTheLongPollsItHolds) {
  std::promise<Result<FetchAnswer>> answered;
  std::future<Result<FetchAnswer>> answer = answered.get_future();
  manager_->Fetch(LongPoll(1), [&](Result<FetchAnswer> r) { answered.set_value(std::move(r)); });
  ASSERT_NE(answer.wait_for(0s), std::future_status::ready);  // it waits for entries
  manager_->Shutdown();
  // Answered by Shutdown itself, not at the fetch's deadline nor when the engine closes
  // (a stratad that shuts down drains its connections before it closes the engine).
  ASSERT_EQ(answer.wait_for(0s), std::future_status::ready);
  EXPECT_EQ(answer.get().status().code(), StatusCode::kNotLeader);
}

TEST_F(ReplicaManagerTest, ALongPollIsRefusedOnceTheLeadershipMoved) {
  std::promise<Result<FetchAnswer>> answered;
  std::future<Result<FetchAnswer>> answer = answered.get_future();
  manager_->Fetch(LongPoll(1), [&](Result<FetchAnswer> r) { answered.set_value(std::move(r)); });
  // The controller made n2 leader at epoch 2: this node no longer leads at epoch 1, and
  // must not answer a fetch of epoch 1 as if it did.
  manager_->OnAssignments({Placed("n2", "2@t", 2, "127.0.0.1:1")}, {kModule});
  ASSERT_EQ(answer.wait_for(30s), std::future_status::ready);
  Result<FetchAnswer> got = answer.get();
  EXPECT_EQ(got.status().code(), StatusCode::kNotLeader) << got.status().ToString();
}

TEST_F(ReplicaManagerTest, ALongPollReleasedWhenTheEngineClosesAfterTheManagerIsGone) {
  // stratad destroys the manager before it closes the engine; the engine then runs the
  // long polls' callbacks it still holds.
  std::promise<Result<FetchAnswer>> answered;
  std::future<Result<FetchAnswer>> answer = answered.get_future();
  manager_->Fetch(LongPoll(1), [&](Result<FetchAnswer> r) { answered.set_value(std::move(r)); });
  manager_.reset();
  ASSERT_TRUE(engine_->Close().ok());
  engine_.reset();
  ASSERT_EQ(answer.wait_for(0s), std::future_status::ready);
  EXPECT_FALSE(answer.get().ok());
}

TEST_F(ReplicaManagerTest, ACopyIsDroppedOnlyOnceItsModuleIsGoneFromTheCluster) {
  Replication& replication = *engine_->replication();
  // The module still exists but its group is missing from the view (its znode did not
  // parse: ClusterNode leaves such a group out): this node's copy stays, and it still leads.
  manager_->OnAssignments({}, {kModule});
  Result<ReplicaGroupStatus> kept = replication.GroupStatus(kModule, 0);
  ASSERT_TRUE(kept.ok()) << kept.status().ToString();
  EXPECT_TRUE(kept->leading);
  // Destroyed (gone from /modules, then its groups): the copy goes.
  manager_->OnAssignments({}, {});
  EXPECT_EQ(replication.GroupStatus(kModule, 0).status().code(), StatusCode::kNotFound);
}

TEST_F(ReplicaManagerTest, AFetchFromAnOffsetOutsideTheLogIsRefused) {
  for (int64_t from : {int64_t{-1}, int64_t{5}}) {
    FetchAsk ask = LongPoll(1);
    ask.from = from;
    std::promise<Result<FetchAnswer>> answered;
    std::future<Result<FetchAnswer>> answer = answered.get_future();
    manager_->Fetch(ask, [&](Result<FetchAnswer> r) { answered.set_value(std::move(r)); });
    ASSERT_EQ(answer.wait_for(0s), std::future_status::ready) << from;
    EXPECT_EQ(answer.get().status().code(), StatusCode::kInvalidArgument) << from;
  }
}

TEST_F(ReplicaManagerTest, WaitUntilGoneReturnsOnceTheGroupsAreGoneAndTheCopyDropped) {
  EXPECT_EQ(manager_->WaitUntilGone(kModule, 0ms).code(), StatusCode::kTimeout);
  manager_->OnAssignments({}, {});  // destroyed: the controller deleted its groups
  EXPECT_TRUE(manager_->WaitUntilGone(kModule, 0ms).ok());
  EXPECT_EQ(engine_->replication()->GroupStatus(kModule, 0).status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata::cluster
