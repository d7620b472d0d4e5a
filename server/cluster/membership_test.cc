// Membership against a real ZooKeeper server (testing/zk_test.h).
#include "membership.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "testing/zk_test.h"

namespace strata::cluster {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;
using MembershipTest = testing::ZooKeeperTest;

NodeInfo Node(const std::string& id, int port) {
  return NodeInfo{id, "127.0.0.1:" + std::to_string(port), "127.0.0.1:" + std::to_string(port + 1),
                  1000 + port, "2026-12-07T16:00:00Z"};
}

std::vector<std::string> Ids(const std::vector<NodeInfo>& nodes) {
  std::vector<std::string> ids;
  for (const NodeInfo& node : nodes) ids.push_back(node.id);
  return ids;
}

TEST(NodeInfoTest, JsonRoundTripAndNodeIds) {
  const NodeInfo node = Node("n-1_a", 7450);
  EXPECT_EQ(NodeInfoJson(node),
            R"({"advertise":"127.0.0.1:7450","http":"127.0.0.1:7451","pid":8450,)"
            R"("started":"2026-12-07T16:00:00Z"})");
  Result<NodeInfo> back = ParseNodeInfo("n-1_a", NodeInfoJson(node));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, node);
  Result<NodeInfo> bad = ParseNodeInfo("n1", R"({"advertise":1})");
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find("znode /nodes/n1"), std::string::npos);

  EXPECT_TRUE(ValidNodeId("a"));
  EXPECT_TRUE(ValidNodeId(std::string(64, 'z')));
  EXPECT_FALSE(ValidNodeId(""));
  EXPECT_FALSE(ValidNodeId(std::string(65, 'z')));
  EXPECT_FALSE(ValidNodeId("a/b"));
  EXPECT_FALSE(ValidNodeId("a.b"));
  EXPECT_FALSE(ValidNodeId("é"));
  EXPECT_EQ(IsoTimeNow().size(), 20u);
}

TEST_F(MembershipTest, ListsTheLiveNodesAndWatchesChanges) {
  std::unique_ptr<ZkClient> a = Connect();
  std::unique_ptr<ZkClient> b = Connect();
  std::unique_ptr<ZkClient> c = Connect();
  ASSERT_TRUE(a && b && c);
  ASSERT_TRUE(RegisterNode(*a, Node("n1", 7450), 0ms).ok());
  ASSERT_TRUE(RegisterNode(*b, Node("n2", 7460), 0ms).ok());
  std::atomic<int> changes{0};
  Result<std::vector<NodeInfo>> nodes = ListNodes(*a, [&](const WatchEvent&) { ++changes; });
  ASSERT_TRUE(nodes.ok()) << nodes.status().ToString();
  ASSERT_EQ(Ids(*nodes), (std::vector<std::string>{"n1", "n2"}));
  NodeInfo expected = Node("n2", 7460);
  expected.session = b->session().id;
  EXPECT_EQ((*nodes)[1], expected);

  ASSERT_TRUE(RegisterNode(*c, Node("n3", 7470), 0ms).ok());
  ASSERT_TRUE(Eventually([&] { return changes.load() == 1; }));
  ASSERT_TRUE(ListNodes(*a, [&](const WatchEvent&) { ++changes; }).ok());
  b.reset();  // n2 leaves: its session closes
  ASSERT_TRUE(Eventually([&] { return changes.load() == 2; }));
  EXPECT_EQ(Ids(*ListNodes(*a)), (std::vector<std::string>{"n1", "n3"}));
}

TEST_F(MembershipTest, RefusesALiveDuplicateNodeId) {
  std::unique_ptr<ZkClient> first = Connect();
  std::unique_ptr<ZkClient> second = Connect();
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(RegisterNode(*first, Node("n1", 7450), 0ms).ok());
  Status refused = RegisterNode(*second, Node("n1", 7460), 300ms);
  EXPECT_EQ(refused.code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(refused.message().rfind("node-id n1 is already registered by 127.0.0.1:7450", 0), 0u)
      << refused.message();
  // The first registration stands.
  EXPECT_EQ(ListNodes(*second)->at(0).advertise, "127.0.0.1:7450");
}

TEST_F(MembershipTest, TakesOverTheRegistrationOfASessionThatEnds) {
  std::unique_ptr<ZkClient> crashed = Connect();
  std::unique_ptr<ZkClient> restarted = Connect();
  ASSERT_TRUE(crashed && restarted);
  ASSERT_TRUE(RegisterNode(*crashed, Node("n1", 7450), 0ms).ok());
  // The restarted node waits for the old registration to go (as a killed process's does
  // when its session times out); here the old session is ended while it waits.
  std::future<Status> registered = std::async(
      std::launch::async, [&] { return RegisterNode(*restarted, Node("n1", 7460), 20s); });
  ASSERT_TRUE(testing::ExpireSession(server_->Url("/test"), crashed->session()).ok());
  const Status status = registered.get();
  ASSERT_TRUE(status.ok()) << status.ToString();
  Result<std::vector<NodeInfo>> nodes = ListNodes(*restarted);
  ASSERT_EQ(nodes->size(), 1u);
  EXPECT_EQ(nodes->at(0).advertise, "127.0.0.1:7460");
  EXPECT_EQ(nodes->at(0).session, restarted->session().id);
}

TEST_F(MembershipTest, RefusesAnInvalidNodeId) {
  std::unique_ptr<ZkClient> client = Connect();
  ASSERT_TRUE(client);
  Status refused = RegisterNode(*client, Node("a/b", 7450), 0ms);
  EXPECT_EQ(refused.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(),
            "node-id 'a/b' must be 1 to 64 characters of A-Z, a-z, 0-9, _ and -");
}

}  // namespace
}  // namespace strata::cluster
