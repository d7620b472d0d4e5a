// stratad --cluster: real stratad processes on loopback, a real ZooKeeper server per test
// (docs/cluster.md, "Coordination (ZooKeeper)"). Sessions time out after 2 s here.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "membership.h"
#include "stratad_process.h"
#include "testing/zk_server.h"
#include "zk_client.h"

namespace strata::cluster {
namespace {

using server_test::ReadFile;
using server_test::StratadProcess;
using testing::Eventually;
using namespace std::chrono_literals;

constexpr const char* kRoot = "/strata-test";

struct HttpAnswer {
  int status = 0;
  std::string body;
};

HttpAnswer HttpGet(const std::string& address, const std::string& path) {
  const size_t colon = address.rfind(':');
  httplib::Client client(address.substr(0, colon), std::stoi(address.substr(colon + 1)));
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  httplib::Result result = client.Get(path.c_str());
  if (!result) return {};
  return {result->status, result->body};
}

// The value of an unlabelled sample in a /metrics text; -1 when absent.
double Sample(const std::string& metrics, const std::string& name) {
  const size_t at = metrics.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::stod(metrics.substr(at + name.size() + 2));
}

class StratadClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = "/tmp/strata-cluster-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr) << std::strerror(errno);
    dir_ = pattern;
    Result<std::unique_ptr<testing::ZooKeeperServer>> zk = testing::ZooKeeperServer::Start();
    ASSERT_TRUE(zk.ok()) << zk.status().ToString();
    zk_ = std::move(zk).value();
    ZkClientOptions options;
    options.url = zk_->Url(kRoot);
    Result<std::unique_ptr<ZkClient>> observer = ZkClient::Connect(options);
    ASSERT_TRUE(observer.ok()) << observer.status().ToString();
    observer_ = std::move(observer).value();
  }

  void TearDown() override {
    nodes_.clear();  // SIGKILL what still runs
    observer_.reset();
    zk_.reset();
    std::error_code ignored;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ignored);
  }

  std::string Log(const std::string& id) const { return dir_ + "/" + id + ".log"; }

  // Whether node `id`'s log comes to hold `text`: a node's thread logs a change just after
  // its view shows it, so a test that saw the view waits for the line.
  bool Logs(const std::string& id, const std::string& text) const {
    return Eventually([&] { return ReadFile(Log(id)).find(text) != std::string::npos; });
  }

  // Starts node `id` with --cluster; false (the log in the failure) when it does not start.
  bool StartNode(const std::string& id, const std::string& session_timeout = "2s") {
    const std::vector<std::string> args = {"--http",
                                           "127.0.0.1:0",
                                           "--cluster",
                                           zk_->UrlText(kRoot),
                                           "--node-id",
                                           id,
                                           "--cluster-session-timeout",
                                           session_timeout};
    auto process = std::make_unique<StratadProcess>();
    if (!process->Start(dir_ + "/" + id, Log(id), args)) {
      ADD_FAILURE() << "node " << id << " did not start:\n" << ReadFile(Log(id));
      return false;
    }
    nodes_[id] = std::move(process);
    return true;
  }

  // The live registrations, by node id.
  std::map<std::string, NodeInfo> Registered() {
    std::map<std::string, NodeInfo> nodes;
    Result<std::vector<NodeInfo>> listed = ListNodes(*observer_);
    if (!listed.ok()) return nodes;
    for (NodeInfo& node : *listed) nodes[node.id] = node;
    return nodes;
  }

  // GET /rest/cluster of node `id` (its HTTP address from its registration), parsed; null
  // when it does not answer 200.
  nlohmann::json ClusterOf(const std::string& http) {
    const HttpAnswer answer = HttpGet(http, "/rest/cluster");
    if (answer.status != 200) return nullptr;
    return nlohmann::json::parse(answer.body);
  }

  // True once every node of `ids` answers /rest/cluster with exactly `ids` and the same
  // controller, one of them; sets *controller.
  bool Agree(const std::map<std::string, std::string>& http_by_id, std::string* controller) {
    std::string agreed;
    for (const auto& [id, http] : http_by_id) {
      const nlohmann::json view = ClusterOf(http);
      if (view.is_null() || view["node"] != id || !view["controller"].is_string()) return false;
      std::vector<std::string> listed;
      for (const auto& node : view["nodes"]) listed.push_back(node["id"]);
      std::vector<std::string> expected;
      for (const auto& [other, ignored] : http_by_id) expected.push_back(other);
      if (listed != expected) return false;
      const std::string c = view["controller"];
      if (!agreed.empty() && c != agreed) return false;
      agreed = c;
    }
    if (http_by_id.count(agreed) == 0) return false;
    *controller = agreed;
    return true;
  }

  std::string dir_;
  std::unique_ptr<testing::ZooKeeperServer> zk_;
  std::unique_ptr<ZkClient> observer_;
  std::map<std::string, std::unique_ptr<StratadProcess>> nodes_;
};

TEST_F(StratadClusterTest, ThreeNodesAgreeAndAKilledControllerIsReplaced) {
  for (const char* id : {"n1", "n2", "n3"}) ASSERT_TRUE(StartNode(id));
  std::map<std::string, NodeInfo> registered = Registered();
  ASSERT_EQ(registered.size(), 3u);
  std::map<std::string, std::string> http;
  for (const auto& [id, node] : registered) {
    http[id] = node.http;
    EXPECT_EQ(node.advertise, "127.0.0.1:" + std::to_string(nodes_[id]->port()));
    EXPECT_EQ(node.pid, nodes_[id]->pid());
  }
  std::string controller;
  ASSERT_TRUE(Eventually([&] { return Agree(http, &controller); }));
  double controllers = 0;
  for (const auto& [id, address] : http) {
    const std::string metrics = HttpGet(address, "/metrics").body;
    EXPECT_EQ(Sample(metrics, "strata_cluster_nodes"), 3) << id;
    controllers += Sample(metrics, "strata_cluster_is_controller");
    EXPECT_EQ(Sample(metrics, "strata_cluster_is_controller"), id == controller ? 1 : 0) << id;
  }
  EXPECT_EQ(controllers, 1);
  EXPECT_TRUE(Logs(controller, "cluster: node " + controller + " joined"));

  // kill -9 of the controller: its session times out (2 s), another node takes over and
  // the dead one leaves every view.
  nodes_[controller]->Stop(SIGKILL);
  http.erase(controller);
  std::string successor;
  ASSERT_TRUE(Eventually([&] { return Agree(http, &successor); }, 30s));
  EXPECT_NE(successor, controller);
  EXPECT_EQ(Registered().count(controller), 0u);
  EXPECT_TRUE(Logs(successor, "cluster: controller is now " + successor + " (this node)"));
}

TEST_F(StratadClusterTest, SigtermDeregistersAtOnce) {
  // A session timeout far longer than the wait below: only the closed session explains
  // the registration going.
  ASSERT_TRUE(StartNode("n1", "60s"));
  ASSERT_EQ(Registered().count("n1"), 1u);
  EXPECT_EQ(nodes_["n1"]->Stop(SIGTERM), 0);
  EXPECT_EQ(Registered().count("n1"), 0u);
  EXPECT_NE(ReadFile(Log("n1")).find("cluster: left (ZooKeeper session closed)"),
            std::string::npos);
}

TEST_F(StratadClusterTest, AStoppedNodesSessionExpiresAndItRejoinsWhenItResumes) {
  ASSERT_TRUE(StartNode("n1"));
  ASSERT_TRUE(StartNode("n2"));
  const std::map<std::string, NodeInfo> before = Registered();
  ASSERT_EQ(before.size(), 2u);
  std::map<std::string, std::string> http = {{"n1", before.at("n1").http},
                                             {"n2", before.at("n2").http}};
  std::string controller;
  ASSERT_TRUE(Eventually([&] { return Agree(http, &controller); }));
  ASSERT_EQ(controller, "n1");  // the first candidate
  // SIGSTOP the controller n1 past its session timeout: the ensemble expires the session,
  // deletes n1's registration and candidacy, and n2 takes over.
  ASSERT_EQ(kill(nodes_["n1"]->pid(), SIGSTOP), 0);
  const bool expired = Eventually(
      [&] {
        return Registered().count("n1") == 0 && Agree({{"n2", http["n2"]}}, &controller);
      },
      30s);
  ASSERT_EQ(kill(nodes_["n1"]->pid(), SIGCONT), 0);
  ASSERT_TRUE(expired);
  EXPECT_EQ(controller, "n2");
  // Resumed, n1 learns of the expiry and registers again, in a new session, and enters
  // the election again at the end of the line: n2 stays the controller.
  ASSERT_TRUE(Eventually([&] { return Registered().count("n1") == 1; }, 30s));
  EXPECT_NE(Registered()["n1"].session, before.at("n1").session);
  ASSERT_TRUE(Eventually([&] { return Agree(http, &controller); }));
  EXPECT_EQ(controller, "n2");
  EXPECT_TRUE(Logs("n1", "expired"));
  EXPECT_TRUE(Logs("n1", "cluster: node n1 rejoined"));
}

// Cut off from ZooKeeper (the server paused), a node cannot know that it is still the
// controller: its session may expire meanwhile and another candidate take over. Every node
// reports no controller until it is connected again; then one controller again.
TEST_F(StratadClusterTest, NodesCutOffFromZooKeeperReportNoControllerUntilBack) {
  ASSERT_TRUE(StartNode("n1"));
  ASSERT_TRUE(StartNode("n2"));
  const std::map<std::string, NodeInfo> registered = Registered();
  ASSERT_EQ(registered.size(), 2u);
  std::map<std::string, std::string> http = {{"n1", registered.at("n1").http},
                                             {"n2", registered.at("n2").http}};
  std::string controller;
  ASSERT_TRUE(Eventually([&] { return Agree(http, &controller); }));
  ASSERT_EQ(controller, "n1");
  observer_.reset();  // its own session would only slow the server's return
  ASSERT_TRUE(zk_->Pause());
  const bool nobody = Eventually(
      [&] {
        for (const auto& [id, address] : http) {
          const nlohmann::json view = ClusterOf(address);
          if (view.is_null() || !view["controller"].is_null()) return false;
          if (Sample(HttpGet(address, "/metrics").body, "strata_cluster_is_controller") != 0) {
            return false;
          }
        }
        return true;
      },
      30s);
  ASSERT_TRUE(zk_->Resume());
  ASSERT_TRUE(nobody) << "a node still reports a controller while ZooKeeper is paused";
  EXPECT_TRUE(Logs("n1", "not acting as controller until it is back"));
  // Back (with their sessions, or rejoined in new ones if the pause outlasted them): one
  // controller again, seen by both.
  ASSERT_TRUE(Eventually([&] { return Agree(http, &controller); }, 30s));
  double controllers = 0;
  for (const auto& [id, address] : http) {
    controllers += Sample(HttpGet(address, "/metrics").body, "strata_cluster_is_controller");
  }
  EXPECT_EQ(controllers, 1);
}

TEST_F(StratadClusterTest, ALiveDuplicateNodeIdIsRefused) {
  ASSERT_TRUE(StartNode("n1"));
  const uint16_t first_port = nodes_["n1"]->port();
  StratadProcess duplicate;
  EXPECT_FALSE(duplicate.Start(dir_ + "/dup", Log("dup"),
                               {"--http", "off", "--cluster", zk_->UrlText(kRoot), "--node-id",
                                "n1", "--cluster-session-timeout", "2s"}));
  const int status = duplicate.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(
      ReadFile(Log("dup"))
          .find("node-id n1 is already registered by 127.0.0.1:" + std::to_string(first_port)),
      std::string::npos)
      << ReadFile(Log("dup"));
  EXPECT_EQ(Registered().at("n1").pid, nodes_["n1"]->pid());
}

TEST_F(StratadClusterTest, AnUnreachableZooKeeperFailsTheStart) {
  const std::string servers = "127.0.0.1:" + std::to_string(testing::UnusedPort());
  StratadProcess node;
  EXPECT_FALSE(
      node.Start(dir_ + "/n1", Log("n1"),
                 {"--http", "off", "--cluster", "zk://" + servers + "/s", "--node-id", "n1"}));
  const int status = node.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(ReadFile(Log("n1")).find("cannot reach ZooKeeper at " + servers + " within 10000 ms"),
            std::string::npos)
      << ReadFile(Log("n1"));
}

TEST_F(StratadClusterTest, WithoutClusterRestClusterIsNotFoundAndNoClusterMetrics) {
  // No --cluster: no ZooKeeper client is made (the server is not even named), /rest/cluster
  // answers 404 and /metrics has no cluster family.
  StratadProcess node;
  ASSERT_TRUE(node.Start(dir_ + "/solo", Log("solo"), {"--http", "127.0.0.1:0"}));
  ASSERT_TRUE(
      Eventually([&] { return ReadFile(Log("solo")).find("HTTP on ") != std::string::npos; }));
  const std::string log = ReadFile(Log("solo"));
  const size_t at = log.find("HTTP on ");
  const std::string http = log.substr(at + 8, log.find_first_of(" \n", at + 8) - at - 8);
  const HttpAnswer answer = HttpGet(http, "/rest/cluster");
  EXPECT_EQ(answer.status, 404);
  EXPECT_NE(answer.body.find("not in cluster mode"), std::string::npos) << answer.body;
  EXPECT_EQ(nlohmann::json::parse(answer.body)["error"]["code"], "NOT_FOUND");
  EXPECT_EQ(HttpGet(http, "/metrics").body.find("strata_cluster_"), std::string::npos);
  EXPECT_EQ(log.find("cluster:"), std::string::npos);
  EXPECT_EQ(node.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace strata::cluster
