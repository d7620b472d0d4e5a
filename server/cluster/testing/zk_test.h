// A GoogleTest fixture with a real ZooKeeper server per test and clients of it
// (strata_testing_zookeeper).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "zk_client.h"
#include "zk_server.h"

namespace strata::cluster::testing {

class ZooKeeperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<ZooKeeperServer>> server = ZooKeeperServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  // A new session rooted at `root` with a 2 s session timeout; null (and a test failure)
  // when it cannot connect.
  std::unique_ptr<ZkClient> Connect(const std::string& root = "/test",
                                    std::function<void()> on_expired = nullptr) {
    ZkClientOptions options;
    options.url = server_->Url(root);
    options.session_timeout = std::chrono::seconds(2);
    options.on_session_expired = std::move(on_expired);
    Result<std::unique_ptr<ZkClient>> client = ZkClient::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    return client.ok() ? std::move(client).value() : nullptr;
  }

  std::unique_ptr<ZooKeeperServer> server_;
};

}  // namespace strata::cluster::testing
