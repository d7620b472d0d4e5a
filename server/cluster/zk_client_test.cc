// ZkClient against a real ZooKeeper server (testing/zk_server.h).
#include "zk_client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include "testing/zk_test.h"

namespace strata::cluster {
namespace {

using testing::Eventually;
using namespace std::chrono_literals;

using ZkClientTest = testing::ZooKeeperTest;

TEST_F(ZkClientTest, CreatesTheRootAndWorksInsideIt) {
  std::unique_ptr<ZkClient> deep = Connect("/a/b");
  ASSERT_TRUE(deep);
  ASSERT_TRUE(deep->Create("/x", "hello", CreateMode::kPersistent).ok());
  // The same znode seen from a client rooted one level up: the root is a chroot.
  std::unique_ptr<ZkClient> up = Connect("/a");
  ASSERT_TRUE(up);
  Result<ZnodeData> x = up->Get("/b/x");
  ASSERT_TRUE(x.ok()) << x.status().ToString();
  EXPECT_EQ(x->data, "hello");
  EXPECT_EQ(deep->session_timeout(), 2000ms);
}

TEST_F(ZkClientTest, RefusesAnUnreachableEnsembleAfterTheConnectTimeout) {
  ZkClientOptions options;
  options.url.servers = {"127.0.0.1:" + std::to_string(testing::UnusedPort())};
  options.url.root = "/test";
  options.connect_timeout = 1s;
  Result<std::unique_ptr<ZkClient>> client = ZkClient::Connect(options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kTimeout);
  EXPECT_EQ(client.status().message(),
            "cannot reach ZooKeeper at " + options.url.servers[0] + " within 1000 ms");
}

TEST_F(ZkClientTest, OperationsMapErrorsToStatusesNamingTheZnode) {
  std::unique_ptr<ZkClient> client = Connect();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Create("/k", "v0", CreateMode::kPersistent).ok());

  Result<std::string> again = client->Create("/k", "v", CreateMode::kPersistent);
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(again.status().message(), "znode /k (create) exists already");
  EXPECT_EQ(client->Create("/no/parent", "", CreateMode::kPersistent).status().code(),
            StatusCode::kNotFound);

  Result<ZnodeData> read = client->Get("/k");
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(read->data, "v0");
  EXPECT_EQ(read->version, 0);
  EXPECT_EQ(read->ephemeral_owner, 0);

  Result<int32_t> set = client->Set("/k", "v1", 0);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(*set, 1);
  Result<int32_t> stale = client->Set("/k", "v2", 0);
  EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
  EXPECT_NE(stale.status().message().find("znode /k (set)"), std::string::npos);
  EXPECT_EQ(client->Get("/k")->data, "v1");

  Status missing = client->Delete("/nope");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "znode /nope (delete) does not exist");
  EXPECT_EQ(client->Get("/nope").status().code(), StatusCode::kNotFound);

  ASSERT_TRUE(client->Create("/k/child", "", CreateMode::kPersistent).ok());
  EXPECT_EQ(client->Delete("/k").code(), StatusCode::kBusy);
  EXPECT_TRUE(client->Delete("/k/child").ok());
  EXPECT_EQ(client->Delete("/k", 0).code(), StatusCode::kAborted);
  EXPECT_TRUE(client->Delete("/k", 1).ok());
  EXPECT_FALSE(*client->Exists("/k"));
}

TEST_F(ZkClientTest, GuardedWritesNeedTheGuardAndReportTheirOwnErrors) {
  std::unique_ptr<ZkClient> client = Connect();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->Create("/guard", "", CreateMode::kEphemeral).ok());
  Result<std::string> created =
      client->CreateGuarded("/guard", "/k", "v0", CreateMode::kPersistent);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, "/k");  // relative to the root, as Create answers
  Result<int32_t> set = client->SetGuarded("/guard", "/k", "v1", 0);
  ASSERT_TRUE(set.ok()) << set.status().ToString();
  EXPECT_EQ(*set, 1);
  // The guard holds; the write itself fails, with the error it would have alone.
  Result<std::string> exists = client->CreateGuarded("/guard", "/k", "", CreateMode::kPersistent);
  EXPECT_EQ(exists.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(exists.status().message(), "znode /k (create) exists already");
  Result<int32_t> stale = client->SetGuarded("/guard", "/k", "v2", 0);
  EXPECT_EQ(stale.status().code(), StatusCode::kAborted);
  EXPECT_NE(stale.status().message().find("its version moved"), std::string::npos)
      << stale.status().ToString();
  EXPECT_EQ(client->SetGuarded("/guard", "/none", "", -1).status().code(), StatusCode::kNotFound);
  // Without the guard nothing is written, whatever the write.
  ASSERT_TRUE(client->Delete("/guard").ok());
  Result<int32_t> unguarded = client->SetGuarded("/guard", "/k", "v3", 1);
  EXPECT_EQ(unguarded.status().code(), StatusCode::kAborted);
  EXPECT_NE(unguarded.status().message().find("the guard /guard does not exist"), std::string::npos)
      << unguarded.status().ToString();
  EXPECT_EQ(client->CreateGuarded("/guard", "/new", "", CreateMode::kPersistent).status().code(),
            StatusCode::kAborted);
  EXPECT_EQ(client->Get("/k")->data, "v1");
  EXPECT_FALSE(*client->Exists("/new"));
}

TEST_F(ZkClientTest, LargeDataReadsWhole) {
  std::unique_ptr<ZkClient> client = Connect();
  ASSERT_TRUE(client);
  const std::string big(100'000, 'x');
  ASSERT_TRUE(client->Create("/big", big, CreateMode::kPersistent).ok());
  EXPECT_EQ(client->Get("/big")->data, big);
}

TEST_F(ZkClientTest, SequentialZnodesGetIncreasingTenDigitSuffixes) {
  std::unique_ptr<ZkClient> client = Connect();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->CreateAll("/seq").ok());
  Result<std::string> first = client->Create("/seq/c-", "", CreateMode::kEphemeralSequential);
  Result<std::string> second = client->Create("/seq/c-", "", CreateMode::kEphemeralSequential);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, "/seq/c-0000000000");
  EXPECT_EQ(*second, "/seq/c-0000000001");
  std::vector<std::string> children = *client->Children("/seq");
  std::sort(children.begin(), children.end());
  EXPECT_EQ(children, (std::vector<std::string>{"c-0000000000", "c-0000000001"}));
}

TEST_F(ZkClientTest, WatchesFireOnceWithTheirEvent) {
  std::unique_ptr<ZkClient> watcher = Connect();
  std::unique_ptr<ZkClient> writer = Connect();
  ASSERT_TRUE(watcher && writer);
  ASSERT_TRUE(writer->Create("/w", "0", CreateMode::kPersistent).ok());

  std::atomic<int> data_events{0};
  std::atomic<int> child_events{0};
  std::atomic<int> created_events{0};
  std::mutex mu;
  std::vector<WatchEvent> events;
  auto record = [&](std::atomic<int>& count) {
    return [&](const WatchEvent& event) {
      std::lock_guard<std::mutex> lock(mu);
      events.push_back(event);
      ++count;
    };
  };
  ASSERT_TRUE(watcher->Get("/w", record(data_events)).ok());
  ASSERT_TRUE(watcher->Children("/w", record(child_events)).ok());
  Result<bool> exists = watcher->Exists("/later", record(created_events));
  ASSERT_TRUE(exists.ok());
  EXPECT_FALSE(*exists);

  ASSERT_TRUE(writer->Set("/w", "1", -1).ok());
  ASSERT_TRUE(writer->Set("/w", "2", -1).ok());  // the watch is spent: no second event
  ASSERT_TRUE(writer->Create("/w/c", "", CreateMode::kPersistent).ok());
  ASSERT_TRUE(writer->Create("/later", "", CreateMode::kPersistent).ok());
  // Events arrive in order: once /later's is in, the others have been delivered.
  ASSERT_TRUE(Eventually([&] { return created_events.load() == 1; }));
  EXPECT_EQ(data_events.load(), 1);
  EXPECT_EQ(child_events.load(), 1);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].type, WatchEvent::Type::kDataChanged);
  EXPECT_EQ(events[0].path, "/w");
  EXPECT_EQ(events[1].type, WatchEvent::Type::kChildrenChanged);
  EXPECT_EQ(events[1].path, "/w");
  EXPECT_EQ(events[2].type, WatchEvent::Type::kCreated);
  EXPECT_EQ(events[2].path, "/later");
}

TEST_F(ZkClientTest, EphemeralZnodesGoWhenTheClientCloses) {
  std::unique_ptr<ZkClient> owner = Connect();
  std::unique_ptr<ZkClient> observer = Connect();
  ASSERT_TRUE(owner && observer);
  ASSERT_TRUE(owner->Create("/e", "", CreateMode::kEphemeral).ok());
  Result<ZnodeData> e = observer->Get("/e");
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->ephemeral_owner, owner->session().id);
  owner.reset();
  // Closing ends the session at once, not after its timeout.
  EXPECT_FALSE(*observer->Exists("/e"));
}

TEST_F(ZkClientTest, ReportsTheSessionsExpiry) {
  std::atomic<int> expiries{0};
  std::unique_ptr<ZkClient> owner = Connect("/test", [&] { ++expiries; });
  std::unique_ptr<ZkClient> observer = Connect();
  ASSERT_TRUE(owner && observer);
  ASSERT_TRUE(owner->Create("/e", "", CreateMode::kEphemeral).ok());

  ASSERT_TRUE(testing::ExpireSession(server_->Url("/test"), owner->session()).ok());
  EXPECT_FALSE(*observer->Exists("/e"));
  ASSERT_TRUE(Eventually([&] { return expiries.load() == 1; }));
  EXPECT_TRUE(owner->expired());
  Result<ZnodeData> after = owner->Get("/e");
  EXPECT_EQ(after.status().code(), StatusCode::kAborted) << after.status().ToString();
}

}  // namespace
}  // namespace strata::cluster
