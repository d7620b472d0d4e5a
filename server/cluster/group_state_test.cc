// The group state store against a real ZooKeeper server (testing/zk_test.h): its
// compare-and-set is the fencing of the replication design.
#include "group_state.h"

#include <gtest/gtest.h>

#include <barrier>
#include <thread>

#include "controller_election.h"
#include "testing/zk_test.h"

namespace strata::cluster {
namespace {

class GroupStateTest : public testing::ZooKeeperTest {
 protected:
  // Enters `client` in the controller election as `id`; the store of its writes is fenced
  // by the candidacy. The election must be destroyed before the client.
  std::unique_ptr<ControllerElection> Enter(ZkClient& client, const std::string& id) {
    Result<std::unique_ptr<ControllerElection>> election =
        ControllerElection::Enter(client, id, nullptr);
    EXPECT_TRUE(election.ok()) << election.status().ToString();
    return election.ok() ? std::move(election).value() : nullptr;
  }
};

const GroupState kState{
    "n1", 1, {"n1", "n2", "n3"}, 2, {"n1", "n2", "n3"}, "1234@2026-12-07T19:00:00Z"};

TEST(GroupStateJsonTest, RoundTripsAndRefusesOtherJson) {
  EXPECT_EQ(GroupStateJson(kState),
            R"({"epoch":1,"isr":["n1","n2","n3"],"leader":"n1",)"
            R"("leader_incarnation":"1234@2026-12-07T19:00:00Z","min_isr":2,)"
            R"("replicas":["n1","n2","n3"]})");
  EXPECT_EQ(*ParseGroupState("/groups/m/g", GroupStateJson(kState)), kState);
  // A move in progress carries its target.
  GroupState moving = kState;
  moving.target = {"n2", "n4"};
  EXPECT_NE(GroupStateJson(moving).find(R"("target":["n2","n4"])"), std::string::npos);
  EXPECT_EQ(*ParseGroupState("/groups/m/g", GroupStateJson(moving)), moving);
  // Written before replicas and incarnations: replicas = isr, no incarnation.
  Result<GroupState> older =
      ParseGroupState("/groups/m/g", R"({"epoch":3,"isr":["n2","n1"],"leader":"n2","min_isr":1})");
  ASSERT_TRUE(older.ok()) << older.status().ToString();
  EXPECT_EQ(older->replicas, (std::vector<std::string>{"n2", "n1"}));
  EXPECT_EQ(older->leader_incarnation, "");
  EXPECT_EQ(ParseGroupState("/groups/m/g", R"({"epoch":3,"isr":[],"leader":"","min_isr":1,)"
                                           R"("replicas":"n1"})")
                .status()
                .code(),
            StatusCode::kCorruption);
  Result<GroupState> bad = ParseGroupState("/groups/m/g", R"({"leader":"n1"})");
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("znode /groups/m/g"), std::string::npos);
  EXPECT_EQ(ParseGroupState("/groups/m/g", "not json").status().code(), StatusCode::kCorruption);
}

TEST_F(GroupStateTest, CreateReadAndCompareAndSet) {
  std::unique_ptr<ZkClient> client = Connect();
  ASSERT_TRUE(client);
  std::unique_ptr<ControllerElection> election = Enter(*client, "n1");
  ASSERT_TRUE(election);
  GroupStateStore store(*client, election->candidate());
  EXPECT_EQ(store.Read("bank", "g0").status().code(), StatusCode::kNotFound);
  ASSERT_TRUE(store.Create("bank", "g0", kState).ok());
  EXPECT_EQ(store.Create("bank", "g0", kState).code(), StatusCode::kAlreadyExists);

  Result<VersionedGroupState> read = store.Read("bank", "g0");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->state, kState);
  EXPECT_EQ(read->version, 0);

  GroupState next = kState;
  next.leader = "n2";
  next.epoch = 2;
  next.isr = {"n2", "n3"};
  Result<int32_t> set = store.CompareAndSet("bank", "g0", next, read->version);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(*set, 1);
  // A writer that read version 0 is fenced off.
  Result<int32_t> stale = store.CompareAndSet("bank", "g0", kState, 0);
  EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
  EXPECT_NE(stale.status().message().find("/groups/bank/g0"), std::string::npos);
  EXPECT_EQ(store.Read("bank", "g0")->state, next);
  EXPECT_EQ(store.Read("bank", "g0")->version, 1);

  EXPECT_EQ(store.CompareAndSet("bank", "g9", kState, 0).status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.CompareAndSet("bank", "g0", kState, -1).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Read("a/b", "g0").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Create("bank", "", kState).code(), StatusCode::kInvalidArgument);
}

TEST_F(GroupStateTest, TwoClientsRacingFromTheSameVersionExactlyOneWins) {
  std::unique_ptr<ZkClient> a = Connect();
  std::unique_ptr<ZkClient> b = Connect();
  ASSERT_TRUE(a && b);
  // Both candidacies exist, so only the versions decide between the two writers.
  std::unique_ptr<ControllerElection> election_a = Enter(*a, "a");
  std::unique_ptr<ControllerElection> election_b = Enter(*b, "b");
  ASSERT_TRUE(election_a && election_b);
  GroupStateStore store_a(*a, election_a->candidate());
  GroupStateStore store_b(*b, election_b->candidate());
  ASSERT_TRUE(store_a.Create("bank", "g0", kState).ok());
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const VersionedGroupState read_a = *store_a.Read("bank", "g0");
    const VersionedGroupState read_b = *store_b.Read("bank", "g0");
    ASSERT_EQ(read_a.version, read_b.version);
    GroupState by_a = read_a.state;
    by_a.leader = "a";
    by_a.epoch = read_a.state.epoch + 1;
    GroupState by_b = read_b.state;
    by_b.leader = "b";
    by_b.epoch = read_b.state.epoch + 1;
    std::barrier start(2);
    Result<int32_t> result_a = Status::Internal("not run");
    Result<int32_t> result_b = Status::Internal("not run");
    std::thread racer([&] {
      start.arrive_and_wait();
      result_b = store_b.CompareAndSet("bank", "g0", by_b, read_b.version);
    });
    start.arrive_and_wait();
    result_a = store_a.CompareAndSet("bank", "g0", by_a, read_a.version);
    racer.join();
    ASSERT_NE(result_a.ok(), result_b.ok())
        << result_a.status().ToString() << " / " << result_b.status().ToString();
    const Result<int32_t>& loser = result_a.ok() ? result_b : result_a;
    EXPECT_EQ(loser.status().code(), StatusCode::kAborted);
    const VersionedGroupState after = *store_a.Read("bank", "g0");
    EXPECT_EQ(after.version, read_a.version + 1);
    EXPECT_EQ(after.state, result_a.ok() ? by_a : by_b);
  }
}

// The hole the version alone leaves: a controller that read version V, lost its office,
// and writes while nobody else has written since. Its write must fail although V is still
// current — whether it writes in the same live session after withdrawing, or in a new
// session after its old one expired.
TEST_F(GroupStateTest, AWriterWhoseCandidacyEndedCannotWriteEvenAtTheCurrentVersion) {
  std::unique_ptr<ZkClient> client = Connect();
  ASSERT_TRUE(client);
  std::unique_ptr<ControllerElection> election = Enter(*client, "n1");
  ASSERT_TRUE(election);
  const std::string candidate = election->candidate();
  GroupStateStore store(*client, candidate);
  ASSERT_TRUE(store.Create("bank", "g0", kState).ok());
  const VersionedGroupState read = *store.Read("bank", "g0");
  GroupState next = kState;
  next.leader = "n2";
  next.epoch = 2;

  election.reset();  // withdraws: the candidacy znode is deleted, the session lives on
  Result<int32_t> withdrawn = store.CompareAndSet("bank", "g0", next, read.version);
  EXPECT_EQ(withdrawn.status().code(), StatusCode::kAborted) << withdrawn.status().ToString();
  EXPECT_NE(withdrawn.status().message().find(candidate), std::string::npos)
      << withdrawn.status().ToString();
  EXPECT_EQ(store.Create("bank", "g1", kState).code(), StatusCode::kAborted);

  // The same after the session expired, from a new session that kept the old candidacy.
  std::unique_ptr<ZkClient> second = Connect();
  ASSERT_TRUE(second);
  std::unique_ptr<ControllerElection> second_election = Enter(*second, "n1");
  ASSERT_TRUE(second_election);
  const std::string lost = second_election->candidate();
  ASSERT_TRUE(testing::ExpireSession(server_->Url("/test"), second->session()).ok());
  std::unique_ptr<ZkClient> rejoined = Connect();
  ASSERT_TRUE(rejoined);
  GroupStateStore stale(*rejoined, lost);
  Result<int32_t> expired = stale.CompareAndSet("bank", "g0", next, read.version);
  EXPECT_EQ(expired.status().code(), StatusCode::kAborted) << expired.status().ToString();

  // Nothing was written: the state is still the one read, at its version.
  const VersionedGroupState after = *store.Read("bank", "g0");
  EXPECT_EQ(after.version, read.version);
  EXPECT_EQ(after.state, kState);
  EXPECT_EQ(store.Read("bank", "g1").status().code(), StatusCode::kNotFound);
  // And a live candidacy's write at that version goes through.
  std::unique_ptr<ControllerElection> current = Enter(*rejoined, "n3");
  ASSERT_TRUE(current);
  GroupStateStore live(*rejoined, current->candidate());
  Result<int32_t> written = live.CompareAndSet("bank", "g0", next, read.version);
  ASSERT_TRUE(written.ok()) << written.status().ToString();
  EXPECT_EQ(*written, read.version + 1);
  second_election.reset();
}

}  // namespace
}  // namespace strata::cluster
