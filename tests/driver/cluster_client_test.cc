// strata::Client in a cluster (docs/drivers/cpp.md, "Clusters"): NOT_LEADER redirects,
// the module -> leader address it remembers, retries while no leader is known, and appends
// whose connection broke are not sent again. The nodes are fake servers speaking the frame
// format of protocol/frame.h on loopback (a real cluster needs ZooKeeper; tests/cluster
// covers that): a fake is the only way to choose exactly when a node answers NOT_LEADER or
// drops a connection.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include "client_router.h"  // SplitAddress
#include "strata/client.h"
#include "strata/protocol/frame.h"
#include "strata/protocol/messages.h"

namespace strata {
namespace {

namespace proto = protocol;
using asio::ip::tcp;

// A node that answers Hello with a Welcome and every other request with what `handler`
// returns; nullopt closes the connection without an answer. Counts the requests it got.
class FakeNode {
 public:
  using Handler = std::function<std::optional<proto::Response>(const proto::Request&)>;

  explicit FakeNode(Handler handler)
      : handler_(std::move(handler)), acceptor_(io_, tcp::endpoint(tcp::v4(), 0)) {
    address_ = "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
    accepting_ = std::thread([this] { AcceptLoop(); });
  }

  ~FakeNode() {
    ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
    accepting_.join();
    {
      std::lock_guard lock(mu_);
      for (auto& socket : sockets_) ::shutdown(socket->native_handle(), SHUT_RDWR);
    }
    for (std::thread& t : serving_) t.join();
  }

  const std::string& address() const { return address_; }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }

  // Requests of body type T received (Hello excluded).
  template <typename T>
  int Count() {
    std::lock_guard lock(mu_);
    int n = 0;
    for (const proto::Request& r : received_) n += std::holds_alternative<T>(r.body) ? 1 : 0;
    return n;
  }

 private:
  void AcceptLoop() {
    for (;;) {
      auto socket = std::make_shared<tcp::socket>(io_);
      std::error_code ec;
      acceptor_.accept(*socket, ec);
      if (ec) return;
      std::lock_guard lock(mu_);
      sockets_.push_back(socket);
      serving_.emplace_back([this, socket] { Serve(*socket); });
    }
  }

  void Serve(tcp::socket& socket) {
    for (;;) {
      uint32_t length = 0;
      std::error_code ec;
      asio::read(socket, asio::buffer(&length, sizeof length), ec);
      if (ec) return;
      std::string payload(length, '\0');
      asio::read(socket, asio::buffer(payload), ec);
      if (ec) return;
      auto decoded =
          proto::DecodeRequest(reinterpret_cast<const uint8_t*>(payload.data()), payload.size());
      ASSERT_TRUE(std::holds_alternative<proto::Request>(decoded));
      const proto::Request request = std::get<proto::Request>(decoded);
      std::optional<proto::Response> response;
      if (std::holds_alternative<proto::Hello>(request.body)) {
        response = proto::Response{0, std::nullopt, proto::Welcome{1, "fake", 1u << 20, 16}};
      } else {
        {
          std::lock_guard lock(mu_);
          received_.push_back(request);
        }
        response = handler_(request);
        if (!response) {
          socket.shutdown(tcp::socket::shutdown_both, ec);
          return;
        }
        response->id = request.id;
      }
      const std::string bytes = proto::EncodeResponse(*response);
      std::string frame;
      proto::AppendFrame(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), &frame);
      asio::write(socket, asio::buffer(frame), ec);
      if (ec) return;
    }
  }

  Handler handler_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::string address_;
  std::thread accepting_;
  std::mutex mu_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;  // guarded by mu_
  std::vector<std::thread> serving_;                   // guarded by mu_
  std::vector<proto::Request> received_;               // guarded by mu_
};

proto::Response Answer(proto::ResponseBody body) {
  return proto::Response{0, std::nullopt, std::move(body)};
}

proto::Response NotLeader(std::string leader) {
  return proto::Response{
      0,
      proto::Error{proto::ErrorCode::kNotLeader, "this node does not lead", std::move(leader)},
      {}};
}

proto::ModuleInfo Info(const std::string& name) {
  proto::ModuleInfo info;
  info.name = name;
  info.partitions = 1;
  return info;
}

// A leader that answers Describe, Append and Select.
std::optional<proto::Response> Lead(const proto::Request& r) {
  if (const auto* d = std::get_if<proto::DescribeRequest>(&r.body)) return Answer(Info(d->module));
  if (std::holds_alternative<proto::AppendRequest>(r.body)) {
    return Answer(proto::Appended{{proto::AppendResult{0, 7, {}, std::nullopt}}});
  }
  if (std::holds_alternative<proto::SelectRequest>(r.body)) {
    return Answer(proto::Selected{{Value(42)}});
  }
  return proto::Response{0, proto::Error{proto::ErrorCode::kUnsupported, "fake"}, {}};
}

std::unique_ptr<Client> ConnectTo(const FakeNode& first, std::vector<std::string> seeds = {}) {
  ClientOptions options;
  options.port = first.port();
  options.seeds = std::move(seeds);
  options.request_timeout = std::chrono::seconds(20);
  auto client = Client::Connect(options);
  EXPECT_TRUE(client.ok()) << client.error().ToString();
  return client.ok() ? std::move(client).value() : nullptr;
}

TEST(ClusterClientTest, NotLeaderRedirectIsFollowedAndTheLeaderRemembered) {
  FakeNode leader(Lead);
  FakeNode follower([&](const proto::Request&) { return NotLeader(leader.address()); });
  std::unique_ptr<Client> client = ConnectTo(follower);
  ASSERT_NE(client, nullptr);

  ClientResult<proto::ModuleInfo> info = client->Describe("bank");
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  EXPECT_EQ(info->name, "bank");
  EXPECT_EQ(follower.Count<proto::DescribeRequest>(), 1);
  EXPECT_EQ(leader.Count<proto::DescribeRequest>(), 1);

  // The second request about the module goes straight to its leader.
  ClientResult<Value> n = client->SelectOne("bank", "$$balances", Path().Key("a"));
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, Value(42));
  EXPECT_EQ(follower.Count<proto::SelectRequest>(), 0);
  EXPECT_EQ(leader.Count<proto::SelectRequest>(), 1);
}

TEST(ClusterClientTest, RedirectsAreBoundedPerRequest) {
  std::string self;
  FakeNode node([&](const proto::Request&) { return NotLeader(self); });
  self = node.address();  // a node that names itself: the client gives up after 3 redirects
  std::unique_ptr<Client> client = ConnectTo(node);
  ASSERT_NE(client, nullptr);
  ClientResult<proto::ModuleInfo> info = client->Describe("bank");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, proto::ErrorCode::kNotLeader) << info.error().ToString();
  EXPECT_EQ(info.error().leader, node.address());
  EXPECT_EQ(node.Count<proto::DescribeRequest>(), 4);  // the request and 3 redirects
}

TEST(ClusterClientTest, WithoutALeaderTheRequestIsRetriedUntilOneIsNamed) {
  FakeNode leader(Lead);
  std::atomic<int> asked{0};
  // A failover: the first two answers know no leader, the third names the new one.
  FakeNode follower(
      [&](const proto::Request&) { return NotLeader(++asked <= 2 ? "" : leader.address()); });
  std::unique_ptr<Client> client = ConnectTo(follower);
  ASSERT_NE(client, nullptr);
  ClientResult<proto::AppendResult> appended = client->Append("bank", "*transfers", Value(1));
  ASSERT_TRUE(appended.ok()) << appended.error().ToString();
  EXPECT_EQ(appended->offset, 7);
  EXPECT_EQ(follower.Count<proto::AppendRequest>(), 3);
  EXPECT_EQ(leader.Count<proto::AppendRequest>(), 1);
}

TEST(ClusterClientTest, NoLeaderWithinTheRequestTimeoutFailsWithNotLeader) {
  FakeNode follower([](const proto::Request&) { return NotLeader(""); });
  ClientOptions options;
  options.port = follower.port();
  options.request_timeout = std::chrono::milliseconds(500);
  auto client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ClientResult<proto::ModuleInfo> info = (*client)->Describe("bank");
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.error().code, proto::ErrorCode::kNotLeader) << info.error().ToString();
  EXPECT_GE(follower.Count<proto::DescribeRequest>(), 2);  // retried
}

TEST(ClusterClientTest, AnAppendWhoseConnectionBrokeIsNotSentAgainButAReadIs) {
  std::atomic<int> selects{0};
  FakeNode leader([&](const proto::Request& r) -> std::optional<proto::Response> {
    if (std::holds_alternative<proto::AppendRequest>(r.body)) return std::nullopt;  // dies
    if (std::holds_alternative<proto::SelectRequest>(r.body) && ++selects == 1) {
      return std::nullopt;  // the first select's connection dies too
    }
    return Lead(r);
  });
  FakeNode other([&](const proto::Request&) { return NotLeader(leader.address()); });
  // Two seeds: the client knows a cluster, so it fails over.
  std::unique_ptr<Client> client = ConnectTo(leader, {other.address()});
  ASSERT_NE(client, nullptr);

  ClientResult<proto::AppendResult> appended = client->Append("bank", "*transfers", Value(1));
  ASSERT_FALSE(appended.ok());
  EXPECT_EQ(appended.error().kind, ErrorKind::kConnection) << appended.error().ToString();
  EXPECT_TRUE(appended.error().maybe_applied);
  EXPECT_EQ(leader.Count<proto::AppendRequest>(), 1);
  EXPECT_EQ(other.Count<proto::AppendRequest>(), 0);

  ClientResult<Value> n = client->SelectOne("bank", "$$balances", Path().Key("a"));
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, Value(42));
  EXPECT_EQ(leader.Count<proto::SelectRequest>(), 2);
}

TEST(ClusterClientTest, WhenTheLeaderDiesTheNextRequestFindsTheNewOne) {
  auto first = std::make_unique<FakeNode>(Lead);
  FakeNode second(Lead);
  std::mutex mu;
  std::string leader = first->address();  // guarded by mu
  FakeNode follower([&](const proto::Request&) {
    std::lock_guard lock(mu);
    return NotLeader(leader);
  });
  std::unique_ptr<Client> client = ConnectTo(follower);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->SelectOne("bank", "$$balances", Path().Key("a")).ok());
  EXPECT_EQ(first->Count<proto::SelectRequest>(), 1);

  // The leader dies; the controller promotes `second`.
  first.reset();
  {
    std::lock_guard lock(mu);
    leader = second.address();
  }
  ClientResult<Value> n = client->SelectOne("bank", "$$balances", Path().Key("a"));
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(second.Count<proto::SelectRequest>(), 1);
}

TEST(ClusterClientTest, ASeedThatIsDownIsSkipped) {
  FakeNode leader(Lead);
  uint16_t dead_port = 0;
  {
    FakeNode gone(Lead);
    dead_port = gone.port();
  }
  ClientOptions options;
  options.port = dead_port;
  options.seeds = {leader.address()};
  auto client = Client::Connect(options);
  ASSERT_TRUE(client.ok()) << client.error().ToString();
  ClientResult<proto::ModuleInfo> info = (*client)->Describe("bank");
  ASSERT_TRUE(info.ok()) << info.error().ToString();
}

TEST(ClusterClientTest, PlacementAndDeployOptionsTravel) {
  proto::Placement placement{"n1",
                             "n1",
                             {{"n1", "127.0.0.1:1"}},
                             {{"bank", 0, "n1", "127.0.0.1:1", 2, {"n1"}, {"n1"}, 1}}};
  std::mutex mu;
  proto::DeployRequest deployed;
  FakeNode node([&](const proto::Request& r) -> std::optional<proto::Response> {
    if (std::holds_alternative<proto::PlacementRequest>(r.body)) return Answer(placement);
    if (const auto* d = std::get_if<proto::DeployRequest>(&r.body)) {
      std::lock_guard lock(mu);
      deployed = *d;
      return Answer(Info("bank"));
    }
    return Lead(r);
  });
  std::unique_ptr<Client> client = ConnectTo(node);
  ASSERT_NE(client, nullptr);
  ClientResult<proto::Placement> got = client->Placement();
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(*got, placement);
  ASSERT_TRUE(client->Deploy("/m/bank.so", 4, 3, 2).ok());
  std::lock_guard lock(mu);
  EXPECT_EQ(deployed.replication, 3);
  EXPECT_EQ(deployed.min_isr, 2);
  EXPECT_FALSE(client->Deploy("/m/bank.so", 4, 3, 4).ok());  // min_isr above replication
}

TEST(ClusterClientTest, LeaderAddressesAreHostPortOrBracketedV6) {
  std::string host;
  uint16_t port = 0;
  ASSERT_TRUE(SplitAddress("10.0.0.1:7450", &host, &port));
  EXPECT_EQ(host, "10.0.0.1");
  EXPECT_EQ(port, 7450);
  ASSERT_TRUE(SplitAddress("node-2.example:1", &host, &port));
  EXPECT_EQ(host, "node-2.example");
  ASSERT_TRUE(SplitAddress("[::1]:65535", &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 65535);
  for (const char* bad :
       {"", "10.0.0.1", ":7450", "h:", "h:0", "h:65536", "h:12x", "[::1]", "[::1]7450", "::1"}) {
    EXPECT_FALSE(SplitAddress(bad, &host, &port)) << bad;
  }
}

}  // namespace
}  // namespace strata
