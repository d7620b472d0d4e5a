// strata::Client against a real stratad on loopback (build/bin/stratad, started by
// tests/testing) with the example modules wordcount and profiles: every call, typed errors,
// timeouts against a stopped (SIGSTOP) server, pipelining from many threads on one
// Client, reconnect after a restart, the callback form and shutdown with requests in
// flight; queries (Invoke, SelectPage) with the test modules of testdata/. Each test starts
// its own server on port 0 with a fresh data directory.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "strata/client.h"
#include "strata/diff.h"
#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/path.h"
#include "strata/protocol/frame.h"
#include "stratad_test.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
namespace proto = protocol;
using proto::ErrorCode;
using server_test::ReadFile;
using server_test::StratadTest;
using Clock = std::chrono::steady_clock;

// The value of a successful call, or a test failure naming the error.
#define ASSERT_CALL_OK(lhs, expr)                                                     \
  auto lhs##_result = (expr);                                                         \
  ASSERT_TRUE(lhs##_result.ok()) << #expr << ": " << lhs##_result.error().ToString(); \
  auto lhs = std::move(lhs##_result).value()

template <typename T>
void ExpectError(const ClientResult<T>& result, ErrorKind kind, ErrorCode code,
                 const std::string& words = "") {
  ASSERT_FALSE(result.ok()) << "expected an error";
  EXPECT_EQ(result.error().kind, kind) << result.error().ToString();
  EXPECT_EQ(result.error().code, code) << result.error().ToString();
  if (!words.empty()) {
    EXPECT_NE(result.error().message.find(words), std::string::npos) << result.error().ToString();
  }
}

// SIGSTOP, then waits until every thread of `pid` is stopped (a signal is delivered
// asynchronously: a thread may answer one more request in between).
void Freeze(pid_t pid) {
  ASSERT_EQ(kill(pid, SIGSTOP), 0);
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline) {
    bool all_stopped = true;
    for (const auto& task : fs::directory_iterator(tasks)) {
      const std::string stat = ReadFile(task.path().string() + "/stat");
      // "pid (comm) S ...": the state follows the last ')'.
      const size_t paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'T') {
        all_stopped = false;
      }
    }
    if (all_stopped) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  FAIL() << "process " << pid << " did not stop";
}

// A TCP socket of this machine as /proc/net/tcp and tcp6 list it.
struct TcpSocket {
  uint16_t local_port = 0;
  uint16_t remote_port = 0;
  int state = 0;  // 0x01 ESTABLISHED, 0x08 CLOSE_WAIT (the peer closed, this end not yet)
  uint64_t unread_bytes = 0;  // rx_queue
};
constexpr int kTcpEstablished = 0x01;
constexpr int kTcpCloseWait = 0x08;

std::vector<TcpSocket> TcpSockets() {
  std::vector<TcpSocket> sockets;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::istringstream lines(ReadFile(table));
    std::string line;
    std::getline(lines, line);  // the header
    while (std::getline(lines, line)) {
      // "sl: local_addr:port remote_addr:port st tx_queue:rx_queue ...", hexadecimal.
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues;
      if (!(fields >> slot >> local >> remote >> state >> queues)) continue;
      TcpSocket socket;
      socket.local_port =
          static_cast<uint16_t>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16));
      socket.remote_port =
          static_cast<uint16_t>(std::stoul(remote.substr(remote.find(':') + 1), nullptr, 16));
      socket.state = static_cast<int>(std::stoul(state, nullptr, 16));
      socket.unread_bytes = std::stoull(queues.substr(queues.find(':') + 1), nullptr, 16);
      sockets.push_back(socket);
    }
  }
  return sockets;
}

// Waits up to 10 s until some socket satisfies `condition`, or, with `none`, until none does.
template <typename Condition>
bool WaitForSockets(Condition condition, bool none = false) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::vector<TcpSocket> sockets = TcpSockets();
    bool any = std::any_of(sockets.begin(), sockets.end(), condition);
    if (any != none) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Value Json(std::string_view text) {
  Result<Value> v = ParseJson(text);
  EXPECT_TRUE(v.ok()) << text << ": " << v.status().ToString();
  return v.ok() ? *v : Value();
}

class ClientTest : public StratadTest {
 protected:
  ClientTest() : StratadTest("strata_driver_test_", {"--cache-size", "64MB"}) {}

  ClientOptions Options() const {
    ClientOptions options;
    options.port = server_->port();
    options.client_name = "driver-test";
    return options;
  }
  std::unique_ptr<Client> Connected(const ClientOptions& options) {
    ClientResult<std::unique_ptr<Client>> client = Client::Connect(options);
    EXPECT_TRUE(client.ok()) << client.error().ToString();
    return client.ok() ? std::move(client).value() : nullptr;
  }
  std::unique_ptr<Client> Connected() { return Connected(Options()); }

  Value Count(Client& client, const std::string& word) {
    ClientResult<Value> n = client.SelectOne("wordcount", "$$word_counts", Path().Key(word));
    EXPECT_TRUE(n.ok()) << word << ": " << n.error().ToString();
    return n.ok() ? *n : Value("error");
  }
};

TEST_F(ClientTest, HandshakeReportsTheServersLimits) {
  StartServer({"--max-in-flight", "17"});
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  const proto::Welcome welcome = client->server_info();
  EXPECT_EQ(welcome.protocol_version, 1u);
  EXPECT_EQ(welcome.max_in_flight, 17u);
  EXPECT_EQ(welcome.max_frame_size, 16u << 20);
  EXPECT_FALSE(welcome.server_version.empty());
}

// The module is uploaded in one frame (DeployBytes). A Release build's profiles.so is about
// 0.5 MB, far below the default frame cap, and the server runs with its defaults; built with
// the sanitizers (make sanitize) it is about 17 MB, so the server then gets a cap 1 MiB
// above the module's size (the frame also holds the request around the bytes).
TEST_F(ClientTest, DeployDescribeModulesDestroy) {
  const std::string so_bytes = ReadFile(PROFILES_MODULE);
  ASSERT_FALSE(so_bytes.empty()) << PROFILES_MODULE;
  constexpr size_t kFrameHeadroom = 1u << 20;
  if (so_bytes.size() + kFrameHeadroom > proto::kDefaultMaxFrameSize) {
    StartServer({"--max-frame-size", std::to_string(so_bytes.size() + kFrameHeadroom)});
  } else {
    StartServer();
  }
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);

  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE, 4));
  EXPECT_EQ(deployed.name, "wordcount");
  EXPECT_EQ(deployed.partitions, 4);
  ExpectError(client->Deploy(WORDCOUNT_MODULE), ErrorKind::kServer, ErrorCode::kAlreadyExists,
              "wordcount");

  ASSERT_CALL_OK(uploaded, client->DeployBytes(so_bytes, 3));
  EXPECT_EQ(uploaded.name, "profiles");
  EXPECT_EQ(uploaded.partitions, 3);

  ASSERT_CALL_OK(modules, client->Modules());
  std::set<std::string> names;
  for (const proto::ModuleInfo& m : modules) names.insert(m.name);
  EXPECT_EQ(names, (std::set<std::string>{"profiles", "wordcount"}));

  ASSERT_CALL_OK(described, client->Describe("wordcount"));
  EXPECT_EQ(described, deployed);
  ASSERT_EQ(described.depots.size(), 1u);
  EXPECT_EQ(described.depots[0].name, "*sentences");
  ASSERT_EQ(described.pstates.size(), 2u);
  EXPECT_EQ(described.pstates[0].name, "$$word_counts");
  EXPECT_EQ(described.pstates[1].name, "$$ranking");
  ASSERT_EQ(described.topologies.size(), 1u);
  EXPECT_EQ(described.topologies[0].name, "count");
  ASSERT_EQ(described.queries.size(), 1u);
  EXPECT_EQ(described.queries[0].name, "top-words");

  ASSERT_CALL_OK(destroyed, client->Destroy("wordcount"));
  EXPECT_EQ(destroyed.module, "wordcount");
  ExpectError(client->Describe("wordcount"), ErrorKind::kServer, ErrorCode::kNotFound, "wordcount");
  ASSERT_CALL_OK(left, client->Modules());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].name, "profiles");

  ExpectError(client->DeployBytes("not a shared object"), ErrorKind::kServer,
              ErrorCode::kInvalidArgument);
  ExpectError(client->Deploy("/nonexistent/module.so"), ErrorKind::kServer, ErrorCode::kNotFound,
              "/nonexistent/module.so");
}

// Subscribe: the current value, then one update per change, in order, diffs that give the
// selected value; Unsubscribe stops them; a destroy ends another subscription.
TEST_F(ClientTest, SubscribeFollowsAWordUntilUnsubscribe) {
  StartServer();
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE, 4));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ClientResult<proto::SubscriptionUpdate>> updates;
  auto record = [&](ClientResult<proto::SubscriptionUpdate> update) {
    std::lock_guard lock(mu);
    updates.push_back(std::move(update));
    cv.notify_all();
  };
  auto wait_for = [&](size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return updates.size() >= n; });
  };
  ASSERT_CALL_OK(the, client->Subscribe("wordcount", "$$word_counts", Path().Key("the"), record,
                                        {.partition_key = std::nullopt, .one = true}));
  EXPECT_EQ(the.value, Value());
  ASSERT_CALL_OK(whole, client->Subscribe("wordcount", "word_counts", Path(), record,
                                          {.partition_key = Value("the")}));
  EXPECT_NE(whole.subscription, the.subscription);
  EXPECT_EQ(whole.partition, the.partition);
  ASSERT_TRUE(client->Append("wordcount", "*sentences", Value("the cat")).ok());
  ASSERT_TRUE(client->Append("wordcount", "*sentences", Value("the dog")).ok());
  ASSERT_TRUE(wait_for(3));  // "the" twice; the partition at least once
  Value one = the.value;
  Value partition = whole.value;
  {
    std::lock_guard lock(mu);
    for (const auto& update : updates) {
      ASSERT_TRUE(update.ok()) << update.error().ToString();
      Value& target = update->subscription == the.subscription ? one : partition;
      for (const Diff& d : update->diffs) ASSERT_TRUE(ApplyDiff(&target, d).ok());
    }
  }
  EXPECT_EQ(one, Value(2));
  ASSERT_CALL_OK(now, client->Select("wordcount", "$$word_counts", Path(), Value("the")));
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] {
    Value applied = whole.value;
    for (const auto& update : updates) {
      if (update.ok() && update->subscription == whole.subscription) {
        for (const Diff& d : update->diffs) (void)ApplyDiff(&applied, d);
      }
    }
    return applied == Value(now);
  }));
  lock.unlock();

  ASSERT_TRUE(client->Unsubscribe(the.subscription).ok());
  ExpectError(client->Unsubscribe(the.subscription), ErrorKind::kServer, ErrorCode::kNotFound);
  size_t seen;
  {
    std::lock_guard relock(mu);
    seen = updates.size();
  }
  ASSERT_TRUE(client->Destroy("wordcount").ok());
  ASSERT_TRUE(wait_for(seen + 1));
  std::lock_guard relock(mu);
  const auto& last = updates.back();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(last->subscription, whole.subscription);  // none for the unsubscribed one
  ASSERT_TRUE(last->ended.has_value());
  EXPECT_EQ(last->ended->code, ErrorCode::kNotFound);
}

TEST_F(ClientTest, AppendAtEveryAckLevelThenSelectReadDepotAndStats) {
  StartServer();
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE, 4));

  ASSERT_CALL_OK(none, client->Append("wordcount", "*sentences", Value("quiet one"),
                                      protocol::AckLevel::kNone));
  EXPECT_EQ(none.offset, -1);
  EXPECT_TRUE(none.ack_returns.empty());
  ASSERT_CALL_OK(appended, client->Append("wordcount", "sentences", Value("quiet two"),
                                          protocol::AckLevel::kAppended));
  EXPECT_GE(appended.partition, 0);
  EXPECT_LT(appended.partition, 4);
  EXPECT_GE(appended.offset, 0);
  ASSERT_CALL_OK(processed, client->Append("wordcount", "*sentences", Value("Hello world")));
  EXPECT_GE(processed.offset, 0);
  ASSERT_EQ(processed.ack_returns.size(), 1u);
  EXPECT_EQ(processed.ack_returns[0].first, "count");
  EXPECT_TRUE(processed.ack_returns[0].second.is_nil());

  std::vector<Value> batch = {Value("hello again"), Value("again and again")};
  ASSERT_CALL_OK(results, client->AppendBatch("wordcount", "*sentences", batch));
  ASSERT_EQ(results.size(), 2u);
  for (const proto::AppendResult& r : results) {
    EXPECT_GE(r.offset, 0);
    EXPECT_FALSE(r.failure.has_value());
  }
  EXPECT_EQ(Count(*client, "hello"), Value(2));
  EXPECT_EQ(Count(*client, "again"), Value(3));

  ASSERT_CALL_OK(selected, client->Select("wordcount", "$$word_counts", Path().Key("world")));
  EXPECT_EQ(selected, std::vector<Value>{Value(1)});
  // A partition key picks the partition of a path that has no leading key(k) step.
  ASSERT_CALL_OK(
      must, client->Select("wordcount", "$$word_counts", Path().Must("hello"), Value("hello")));
  EXPECT_EQ(must, std::vector<Value>{Value(2)});
  ASSERT_CALL_OK(absent, client->Select("wordcount", "$$word_counts", Path().Key("zebra")));
  EXPECT_TRUE(absent.empty() || absent == std::vector<Value>{Value()});
  ExpectError(client->SelectOne("wordcount", "$$word_counts", Path().Must("zebra"), Value("zebra")),
              ErrorKind::kServer, ErrorCode::kNotFound);

  // Every record is in the depot, once, whatever its ack level. The kNone answer comes
  // once the record is queued for its partition, before it is appended, and the later acks
  // cover their own (random) partitions only, not the kNone record's: wait for it.
  std::multiset<Value> records;
  int64_t total = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  for (;;) {
    records.clear();
    total = 0;
    for (int p = 0; p < 4; ++p) {
      ASSERT_CALL_OK(part, client->ReadDepot("wordcount", "*sentences", p));
      int64_t previous = -1;
      for (const proto::DepotRecord& r : part) {
        EXPECT_GT(r.offset, previous);
        previous = r.offset;
        records.insert(r.value);
      }
      total += static_cast<int64_t>(part.size());
    }
    if (total >= 5 || Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(records,
            (std::multiset<Value>{Value("quiet one"), Value("quiet two"), Value("Hello world"),
                                  Value("hello again"), Value("again and again")}));
  ASSERT_CALL_OK(limited, client->ReadDepot("wordcount", "*sentences", processed.partition,
                                            processed.offset, processed.offset + 1, 1));
  ASSERT_EQ(limited.size(), 1u);
  EXPECT_EQ(limited[0].value, Value("Hello world"));

  ASSERT_CALL_OK(stats, client->Stats("wordcount"));
  ASSERT_EQ(stats.modules.size(), 1u);
  EXPECT_EQ(stats.modules[0].module, "wordcount");
  int64_t stored = 0;
  for (const proto::DepotPartitionStats& d : stats.modules[0].depots) {
    stored += d.end_offset - d.start_offset;
  }
  EXPECT_EQ(stored, total);
  EXPECT_EQ(stats.modules[0].failures, 0);
  ASSERT_CALL_OK(all, client->Stats());
  EXPECT_GE(all.server.requests, 10);
  EXPECT_EQ(all.server.connections, 1);
}

TEST_F(ClientTest, ProfilesAckReturnsCarryIdsAndBatchResultsArePerRecord) {
  StartServer();
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(PROFILES_MODULE));

  ASSERT_CALL_OK(alice, client->Append("profiles", "*registrations",
                                       Json(R"({"username": "alice", "request_id": "r1"})")));
  ASSERT_EQ(alice.ack_returns.size(), 1u);
  EXPECT_EQ(alice.ack_returns[0].first, "register");
  const Value& ack = alice.ack_returns[0].second;
  ASSERT_TRUE(ack.is_map()) << ToJson(ack);
  EXPECT_EQ(*ack.Find(Value("status")), Value("registered"));
  const Value id = *ack.Find(Value("id"));
  ASSERT_TRUE(id.is_int()) << ToJson(ack);

  ASSERT_CALL_OK(batch, client->AppendBatch("profiles", "*registrations",
                                            {Json(R"({"username": "alice", "request_id": "r2"})"),
                                             Json(R"({"username": "bob"})")}));
  ASSERT_EQ(batch.size(), 2u);
  ASSERT_EQ(batch[0].ack_returns.size(), 1u);
  EXPECT_EQ(batch[0].ack_returns[0].second,
            Value::MapOf({{Value("status"), Value("taken")}, {Value("id"), id}}));
  ASSERT_EQ(batch[1].ack_returns.size(), 1u);
  EXPECT_EQ(*batch[1].ack_returns[0].second.Find(Value("status")), Value("registered"));

  ASSERT_CALL_OK(alice_id, client->SelectOne("profiles", "$$users_by_name", Path().Key("alice")));
  EXPECT_EQ(alice_id, id);

  // A record the topology gives up on: a single Append reports TOPOLOGY_FAILED, a batch
  // reports it per record.
  ExpectError(client->Append("profiles", "*registrations", Json(R"({"username": ""})")),
              ErrorKind::kServer, ErrorCode::kTopologyFailed, "register");
  ASSERT_CALL_OK(
      mixed, client->AppendBatch("profiles", "*registrations",
                                 {Json(R"({"username": ""})"), Json(R"({"username": "erin"})")}));
  ASSERT_EQ(mixed.size(), 2u);
  ASSERT_TRUE(mixed[0].failure.has_value());
  EXPECT_EQ(mixed[0].failure->code, ErrorCode::kTopologyFailed);
  EXPECT_FALSE(mixed[1].failure.has_value());
}

// Stats lists the failures asked for and counts them all; a record that does not match its
// depot's record schema is refused before the log; describe shows the schema.
TEST_F(ClientTest, StatsPagesFailuresAndRecordSchemasRefuseMistypedRecords) {
  StartServer();
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(PROFILES_MODULE));
  ASSERT_CALL_OK(failed, client->AppendBatch("profiles", "*registrations",
                                             std::vector<Value>(5, Json(R"({"username": ""})"))));
  ASSERT_CALL_OK(all, client->Stats("profiles", 0, protocol::kMaxStatsFailuresLimit));
  ASSERT_EQ(all.modules.size(), 1u);
  EXPECT_EQ(all.modules[0].failures, 5);
  ASSERT_EQ(all.modules[0].failure_page.size(), 5u);
  ASSERT_CALL_OK(page, client->Stats("profiles", 1, 2));
  EXPECT_EQ(page.modules[0].failures, 5);
  EXPECT_EQ(page.modules[0].failure_page,
            std::vector<protocol::TopologyFailure>(all.modules[0].failure_page.begin() + 1,
                                                   all.modules[0].failure_page.begin() + 3));
  ExpectError(client->Stats("profiles", 0, protocol::kMaxStatsFailuresLimit + 1),
              ErrorKind::kServer, ErrorCode::kInvalidArgument, "failures_limit");

  ExpectError(client->AppendBatch("profiles", "*registrations",
                                  {Json(R"({"username": "zoe"})"),
                                   Json(R"({"username": "yan", "display_name": 7})")}),
              ErrorKind::kServer, ErrorCode::kSchemaViolation,
              "*registrations.display_name: expected string, got int 7");
  ExpectError(client->SelectOne("profiles", "$$users_by_name", Path().Must("zoe")),
              ErrorKind::kServer, ErrorCode::kNotFound);

  ASSERT_CALL_OK(described, client->Describe("profiles"));
  ASSERT_EQ(described.depots.size(), 1u);
  EXPECT_EQ(described.depots[0].record_schema_text,
            "record{display_name: string, request_id: string, username: string}");
}

TEST_F(ClientTest, ErrorsAreTyped) {
  StartServer();
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE));

  ExpectError(client->Describe("nope"), ErrorKind::kServer, ErrorCode::kNotFound, "nope");
  EXPECT_EQ(client->Describe("nope").error().ToString().rfind("NOT_FOUND: ", 0), 0u);
  ExpectError(client->Append("nope", "*sentences", Value("x")), ErrorKind::kServer,
              ErrorCode::kNotFound, "nope");
  ExpectError(client->Append("wordcount", "*nope", Value("x")), ErrorKind::kServer,
              ErrorCode::kNotFound, "nope");
  ExpectError(client->Select("wordcount", "$$nope", Path().Key("x")), ErrorKind::kServer,
              ErrorCode::kNotFound, "nope");
  ExpectError(client->SelectOne("wordcount", "$$word_counts", Path().Must("never"), Value("never")),
              ErrorKind::kServer, ErrorCode::kNotFound);
  ExpectError(client->Append("wordcount", "*sentences", Value(42)), ErrorKind::kServer,
              ErrorCode::kSchemaViolation, "*sentences: expected string, got int 42");

  // Refused before anything is sent.
  ExpectError(client->Describe(""), ErrorKind::kArgument, ErrorCode::kNone, "module name");
  ExpectError(client->AppendBatch("wordcount", "*sentences", {}), ErrorKind::kArgument,
              ErrorCode::kNone, "no records");
  ExpectError(client->Select("wordcount", "$$word_counts", Path().Nth(-1)), ErrorKind::kArgument,
              ErrorCode::kNone, "path");
  ExpectError(client->ReadDepot("wordcount", "*sentences", 0, 10, 5), ErrorKind::kArgument,
              ErrorCode::kNone, "below from");
  ExpectError(client->Deploy(WORDCOUNT_MODULE, 0), ErrorKind::kArgument, ErrorCode::kNone,
              "partitions");
  ExpectError(client->SendAsync(proto::Hello{}).get(), ErrorKind::kArgument, ErrorCode::kNone,
              "Hello");
  // A request above the server's max_frame_size is refused without being sent.
  ExpectError(client->Append("wordcount", "*sentences", Value(std::string(17u << 20, 'a'))),
              ErrorKind::kArgument, ErrorCode::kNone, "max_frame_size");
  // The connection is intact after all of that.
  EXPECT_TRUE(client->Modules().ok());
}

TEST_F(ClientTest, ConnectionRefusedIsAConnectionError) {
  StartServer();
  const uint16_t port = server_->port();
  StopServer();
  ClientOptions options;
  options.port = port;
  ClientResult<std::unique_ptr<Client>> client = Client::Connect(options);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.error().kind, ErrorKind::kConnection) << client.error().ToString();
  EXPECT_NE(client.error().message.find(std::to_string(port)), std::string::npos)
      << client.error().ToString();
  EXPECT_EQ(client.error().ToString().rfind("connection: ", 0), 0u);

  options.host = "no-such-host.invalid";
  ClientResult<std::unique_ptr<Client>> unresolved = Client::Connect(options);
  ASSERT_FALSE(unresolved.ok());
  EXPECT_EQ(unresolved.error().kind, ErrorKind::kConnection) << unresolved.error().ToString();
}

TEST_F(ClientTest, StoppedServerTimesOutThenAnswersAgain) {
  StartServer();
  ClientOptions options = Options();
  options.request_timeout = std::chrono::milliseconds(300);
  options.connect_timeout = std::chrono::milliseconds(300);
  std::unique_ptr<Client> client = Connected(options);
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE));

  Freeze(server_->pid());
  const auto start = Clock::now();
  ClientResult<proto::StatsResult> stats = client->Stats();
  const auto waited = Clock::now() - start;
  ExpectError(stats, ErrorKind::kTimeout, ErrorCode::kNone, "300 ms");
  // Not before its timeout (a lower bound cannot flake; how much later is not asserted).
  EXPECT_GE(waited, std::chrono::milliseconds(300));
  // A pipelined burst times out as a whole.
  std::vector<std::future<ClientResult<std::vector<proto::AppendResult>>>> appends;
  for (int i = 0; i < 50; ++i) {
    appends.push_back(client->AppendAsync("wordcount", "*sentences", {Value("late")}));
  }
  for (auto& f : appends) ExpectError(f.get(), ErrorKind::kTimeout, ErrorCode::kNone);

  // A new connection to a stopped server gets no Welcome within the connect timeout.
  ClientResult<std::unique_ptr<Client>> other = Client::Connect(options);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().kind, ErrorKind::kConnection) << other.error().ToString();
  EXPECT_NE(other.error().message.find("connect timeout"), std::string::npos)
      << other.error().ToString();

  // Resumed, the server answers the late requests (the client drops those answers) and the
  // new ones.
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  ASSERT_CALL_OK(after, client->Stats());
  ASSERT_CALL_OK(appended, client->Append("wordcount", "*sentences", Value("late")));
  // The last append's ack covers its own record only: the 50 late ones went to other
  // (random) depot partitions and may still be in their topology, so wait for them.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  Value count = Count(*client, "late");
  while (count != Value(51) && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    count = Count(*client, "late");
  }
  EXPECT_EQ(count, Value(51));
}

TEST_F(ClientTest, TenThousandPipelinedAppendsFromEightThreadsAreAllAcknowledged) {
  // A small max_in_flight makes the driver queue most of them itself.
  StartServer({"--max-in-flight", "64"});
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE));

  constexpr int kThreads = 8;
  constexpr int kPerThread = 1250;
  std::atomic<int> acknowledged{0};
  std::atomic<int> failed{0};
  std::set<std::pair<int, int64_t>> positions;
  std::mutex positions_mutex;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::future<ClientResult<std::vector<proto::AppendResult>>>> futures;
      futures.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) {
        futures.push_back(client->AppendAsync("wordcount", "*sentences",
                                              {Value("pipelined w" + std::to_string(t))}));
      }
      for (auto& f : futures) {
        ClientResult<std::vector<proto::AppendResult>> r = f.get();
        if (!r.ok() || r->size() != 1 || r->front().offset < 0) {
          if (failed.fetch_add(1) == 0) {
            ADD_FAILURE() << (r.ok() ? "bad result" : r.error().ToString());
          }
          continue;
        }
        acknowledged.fetch_add(1);
        std::lock_guard<std::mutex> lock(positions_mutex);
        positions.emplace(r->front().partition, r->front().offset);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(acknowledged.load(), kThreads * kPerThread);
  EXPECT_EQ(positions.size(), static_cast<size_t>(kThreads * kPerThread));  // distinct records
  EXPECT_EQ(Count(*client, "pipelined"), Value(kThreads * kPerThread));
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(Count(*client, "w" + std::to_string(t)), Value(kPerThread));
}

TEST_F(ClientTest, ReconnectsOnTheNextRequestAfterARestart) {
  StartServer();
  ClientOptions options = Options();
  options.reconnect_attempts = 2;
  options.reconnect_backoff = std::chrono::milliseconds(20);
  std::unique_ptr<Client> client = Connected(options);
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE));
  ASSERT_CALL_OK(before, client->Append("wordcount", "*sentences", Value("before restart")));
  const uint16_t port = server_->port();
  StopServer();
  // Wait until the driver saw the close (EOF) and closed its end (no socket to the port is
  // left in CLOSE_WAIT): a request sent before that would be written to the dead
  // connection and fail as "lost" instead.
  ASSERT_TRUE(WaitForSockets(
      [&](const TcpSocket& s) { return s.remote_port == port && s.state == kTcpCloseWait; },
      /*none=*/true))
      << "the driver did not close its connection to the stopped server";

  // Down: the request fails after its bounded attempts; it is not kept for later.
  ClientResult<std::vector<proto::ModuleInfo>> down = client->Modules();
  ExpectError(down, ErrorKind::kConnection, ErrorCode::kNone, "2 attempts");

  StartServer({}, port);
  ASSERT_CALL_OK(modules, client->Modules());
  ASSERT_EQ(modules.size(), 1u);
  EXPECT_EQ(modules[0].name, "wordcount");
  EXPECT_EQ(Count(*client, "restart"), Value(1));
  ASSERT_CALL_OK(after, client->Append("wordcount", "*sentences", Value("after restart")));
  EXPECT_EQ(Count(*client, "restart"), Value(2));

  // A request in flight when the server dies fails with kConnection and is not re-sent.
  Freeze(server_->pid());
  auto in_flight = client->AppendAsync("wordcount", "*sentences", {Value("lost restart")});
  // Written: its bytes wait unread in the stopped server's socket.
  ASSERT_TRUE(WaitForSockets([&](const TcpSocket& s) {
    return s.local_port == port && s.state == kTcpEstablished && s.unread_bytes > 0;
  })) << "the request never reached the stopped server's socket";
  server_->Stop(SIGKILL);
  ExpectError(in_flight.get(), ErrorKind::kConnection, ErrorCode::kNone, "may or may not");
  StartServer({}, port);
  // "lost restart" reached the socket of a stopped process and was never read: it must
  // not be in the depot, which it would be had the driver sent it again. (Counts are not
  // compared: after kill -9 wordcount may count replayed sentences twice.)
  std::multiset<Value> sentences;
  for (int p = 0; p < 8; ++p) {
    ASSERT_CALL_OK(part, client->ReadDepot("wordcount", "*sentences", p));
    for (const proto::DepotRecord& r : part) sentences.insert(r.value);
  }
  EXPECT_EQ(sentences, (std::multiset<Value>{Value("before restart"), Value("after restart")}));
}

TEST_F(ClientTest, CallbacksRunOnTheDriverThread) {
  StartServer();
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE));

  std::promise<std::thread::id> ran_on;
  std::promise<ClientResult<Client::Body>> result;
  std::promise<ClientError> nested;
  client->SendAsync(
      proto::AppendRequest{
          "wordcount", "*sentences", {Value("call me back")}, protocol::AckLevel::kProcessed},
      [&](ClientResult<Client::Body> r) {
        ran_on.set_value(std::this_thread::get_id());
        // A blocking call here would wait for this very thread: refused.
        nested.set_value(client->Modules().error());
        result.set_value(std::move(r));
      });
  EXPECT_NE(ran_on.get_future().get(), std::this_thread::get_id());
  const ClientError refused = nested.get_future().get();
  EXPECT_EQ(refused.kind, ErrorKind::kArgument) << refused.ToString();
  ClientResult<Client::Body> body = result.get_future().get();
  ASSERT_TRUE(body.ok()) << body.error().ToString();
  ASSERT_TRUE(std::holds_alternative<proto::Appended>(*body));
  EXPECT_EQ(std::get<proto::Appended>(*body).results.size(), 1u);

  // Server errors and argument errors arrive through the callback too.
  std::promise<ClientResult<Client::Body>> missing;
  client->SendAsync(proto::DescribeRequest{"nope"},
                    [&](ClientResult<Client::Body> r) { missing.set_value(std::move(r)); });
  ExpectError(missing.get_future().get(), ErrorKind::kServer, ErrorCode::kNotFound, "nope");
  std::promise<ClientResult<Client::Body>> invalid;
  client->SendAsync(proto::DescribeRequest{""},
                    [&](ClientResult<Client::Body> r) { invalid.set_value(std::move(r)); });
  ExpectError(invalid.get_future().get(), ErrorKind::kArgument, ErrorCode::kNone);

  ASSERT_CALL_OK(selected,
                 client->SelectAsync("wordcount", "$$word_counts", Path().Key("call")).get());
  EXPECT_EQ(selected, std::vector<Value>{Value(1)});
}

TEST_F(ClientTest, DestroyingTheClientFailsRequestsInFlight) {
  StartServer();
  std::unique_ptr<Client> client = Connected();
  ASSERT_NE(client, nullptr);
  ASSERT_CALL_OK(deployed, client->Deploy(WORDCOUNT_MODULE));
  Freeze(server_->pid());
  std::vector<std::future<ClientResult<std::vector<proto::AppendResult>>>> pending;
  for (int i = 0; i < 10; ++i) {
    pending.push_back(client->AppendAsync("wordcount", "*sentences", {Value("never answered")}));
  }
  client.reset();
  for (auto& f : pending) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(5)), std::future_status::ready);
    ExpectError(f.get(), ErrorKind::kConnection, ErrorCode::kNone, "closed");
  }
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
}

// Many Clients on one shared ClientIoThread: every connection's callbacks run on that one
// thread, each connection's appends are all acknowledged, and the clients keep the thread
// alive after the caller drops its handle.
TEST_F(ClientTest, ClientsShareOneIoThread) {
  StartServer();
  std::shared_ptr<ClientIoThread> io_thread = ClientIoThread::Start();
  ClientOptions options = Options();
  options.io_thread = io_thread;
  constexpr int kClients = 8;
  constexpr int kPerClient = 300;
  // Declared before the clients: a client destroyed at a failed ASSERT still runs the
  // callbacks of its requests in flight, which use these.
  std::mutex mu;
  std::set<std::thread::id> callback_threads;
  std::atomic<int> acknowledged{0};
  std::atomic<int> failed{0};
  std::promise<void> all_done;
  std::vector<std::unique_ptr<Client>> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.push_back(Connected(options));
    ASSERT_NE(clients.back(), nullptr);
  }
  io_thread.reset();  // the clients hold the thread now
  ASSERT_CALL_OK(deployed, clients[0]->Deploy(WORDCOUNT_MODULE));
  for (int c = 0; c < kClients; ++c) {
    for (int i = 0; i < kPerClient; ++i) {
      clients[static_cast<size_t>(c)]->SendAsync(
          proto::AppendRequest{"wordcount",
                               "*sentences",
                               {Value("shared c" + std::to_string(c))},
                               protocol::AckLevel::kProcessed},
          [&](ClientResult<Client::Body> r) {
            {
              std::lock_guard<std::mutex> lock(mu);
              callback_threads.insert(std::this_thread::get_id());
            }
            if (r.ok() && std::holds_alternative<proto::Appended>(*r)) {
              acknowledged.fetch_add(1);
            } else if (failed.fetch_add(1) == 0) {
              ADD_FAILURE() << (r.ok() ? "unexpected response" : r.error().ToString());
            }
            if (acknowledged.load() + failed.load() == kClients * kPerClient) all_done.set_value();
          });
    }
  }
  ASSERT_EQ(all_done.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(acknowledged.load(), kClients * kPerClient);
  EXPECT_EQ(callback_threads.size(), 1u);
  EXPECT_EQ(callback_threads.count(std::this_thread::get_id()), 0u);
  EXPECT_EQ(Count(*clients[0], "shared"), Value(kClients * kPerClient));
  for (int c = 0; c < kClients; ++c) {
    EXPECT_EQ(Count(*clients[static_cast<size_t>(kClients - 1 - c)], "c" + std::to_string(c)),
              Value(kPerClient));
  }
}

// A blocking call of another Client on the same shared thread, made inside a callback,
// would wait for the thread it runs on: it is refused like one of the same Client. Closing
// one Client fails its own requests in flight and leaves its neighbour working.
TEST_F(ClientTest, ClientsOnASharedThreadAreIndependent) {
  StartServer();
  ClientOptions options = Options();
  options.io_thread = ClientIoThread::Start();
  std::unique_ptr<Client> a = Connected(options);
  std::unique_ptr<Client> b = Connected(options);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_CALL_OK(deployed, a->Deploy(WORDCOUNT_MODULE));

  // Inside a callback: a blocking call of the sibling and a Connect on the same thread are
  // refused; destroying a sibling works (its requests fail first).
  std::unique_ptr<Client> c = Connected(options);
  ASSERT_NE(c, nullptr);
  std::promise<void> c_request_done;
  c->SendAsync(proto::ListModulesRequest{},
               [&](ClientResult<Client::Body>) { c_request_done.set_value(); });
  std::promise<std::pair<ClientResult<std::vector<proto::ModuleInfo>>, bool>> nested;
  a->SendAsync(proto::ListModulesRequest{}, [&](ClientResult<Client::Body>) {
    ClientResult<std::vector<proto::ModuleInfo>> blocking = b->Modules();
    ClientResult<std::unique_ptr<Client>> connect = Client::Connect(options);
    const bool connect_refused = !connect.ok() && connect.error().kind == ErrorKind::kArgument;
    c.reset();
    nested.set_value({std::move(blocking), connect_refused});
  });
  auto [blocking, connect_refused] = nested.get_future().get();
  ASSERT_FALSE(blocking.ok());
  EXPECT_EQ(blocking.error().kind, ErrorKind::kArgument) << blocking.error().ToString();
  EXPECT_TRUE(connect_refused);
  EXPECT_EQ(c_request_done.get_future().wait_for(std::chrono::seconds(10)),
            std::future_status::ready);

  Freeze(server_->pid());
  std::vector<std::future<ClientResult<std::vector<proto::AppendResult>>>> pending;
  for (int i = 0; i < 5; ++i) {
    pending.push_back(a->AppendAsync("wordcount", "*sentences", {Value("unanswered")}));
  }
  auto b_pending = b->AppendAsync("wordcount", "*sentences", {Value("answered later")});
  a.reset();
  for (auto& f : pending) {
    ASSERT_EQ(f.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    ClientResult<std::vector<proto::AppendResult>> r = f.get();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().kind, ErrorKind::kConnection) << r.error().ToString();
  }
  ASSERT_EQ(kill(server_->pid(), SIGCONT), 0);
  ClientResult<std::vector<proto::AppendResult>> later = b_pending.get();
  ASSERT_TRUE(later.ok()) << later.error().ToString();
  EXPECT_EQ(Count(*b, "later"), Value(1));
}

// Requests submitted from a callback just before the Client is destroyed (valid or refused
// by the driver) have had their callback when the destructor returns: none runs later
// against state the caller has freed.
TEST_F(ClientTest, NoCallbackRunsAfterTheClientIsDestroyed) {
  StartServer();
  ClientOptions options = Options();
  options.io_thread = ClientIoThread::Start();
  for (int round = 0; round < 20; ++round) {
    std::unique_ptr<Client> client = Connected(options);
    ASSERT_NE(client, nullptr);
    std::atomic<int> late_callbacks{0};
    std::promise<void> submitted;
    client->SendAsync(proto::ListModulesRequest{}, [&](ClientResult<Client::Body>) {
      client->SendAsync(proto::ListModulesRequest{},
                        [&](ClientResult<Client::Body>) { ++late_callbacks; });
      client->SendAsync(proto::DescribeRequest{""},
                        [&](ClientResult<Client::Body>) { ++late_callbacks; });
      submitted.set_value();
    });
    submitted.get_future().wait();
    client.reset();
    EXPECT_EQ(late_callbacks.load(), 2) << "round " << round;
  }
}

// Update and Recompute with the test module evolve (engine/runtime/testdata/evolve_module.cc):
// v1 *events -> $$totals (+n); v2 adds 2n and a new view $$counts (backfilled); v3 no longer
// declares *extra, $$extra_seen and extra. Uploaded as bytes: the server gets a frame cap
// above the module's size as in DeployDescribeModulesDestroy.
class ClientLifecycleTest : public ClientTest {
 protected:
  void SetUp() override {
    const size_t largest = std::max(ReadFile(EVOLVE_V1).size(), ReadFile(EVOLVE_V2).size());
    ASSERT_GT(largest, 0u) << EVOLVE_V1;
    constexpr size_t kFrameHeadroom = 1u << 20;
    if (largest + kFrameHeadroom > proto::kDefaultMaxFrameSize) {
      StartServer({"--max-frame-size", std::to_string(largest + kFrameHeadroom)});
    } else {
      StartServer();
    }
    client_ = Connected();
    ASSERT_NE(client_, nullptr);
    ASSERT_CALL_OK(deployed, client_->DeployBytes(ReadFile(EVOLVE_V1), 3));
    EXPECT_EQ(deployed.name, "evolve");
  }

  void AppendEvents(int per_key) {
    std::vector<Value> events;
    for (int i = 0; i < per_key; ++i) {
      for (const char* k : {"a", "b", "c"}) events.push_back(Value::MapOf({{"k", k}, {"n", 1}}));
    }
    ASSERT_CALL_OK(appended, client_->AppendBatch("evolve", "*events", std::move(events)));
  }

  Value Select(const std::string& pstate, const std::string& key) {
    ClientResult<std::vector<Value>> v = client_->Select("evolve", pstate, Path().Key(key));
    EXPECT_TRUE(v.ok()) << pstate << " " << key << ": " << v.error().ToString();
    return v.ok() && v->size() == 1 ? v->front() : Value("error");
  }

  // Polls Stats until evolve has no rebuild running; a test failure after 120 s.
  void WaitRebuildsDone() {
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    for (;;) {
      ASSERT_CALL_OK(stats, client_->Stats("evolve", 0, 0));
      ASSERT_EQ(stats.modules.size(), 1u);
      if (stats.modules[0].rebuilds.empty()) return;
      ASSERT_LT(Clock::now(), deadline) << "a rebuild of evolve still runs after 120 s";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  std::unique_ptr<Client> client_;
};

TEST_F(ClientLifecycleTest, UpdateBytesThenUpdateFromAPathAsync) {
  ASSERT_CALL_OK(v1, client_->Describe("evolve"));
  EXPECT_EQ(v1.version, 1);
  AppendEvents(4);
  ASSERT_CALL_OK(updated, client_->UpdateBytes(ReadFile(EVOLVE_V2)));
  EXPECT_EQ(updated.version, 2);
  EXPECT_EQ(updated.module.version, 2);
  EXPECT_EQ(updated.module.partitions, 3);
  EXPECT_EQ(std::set<std::string>(updated.created.begin(), updated.created.end()),
            (std::set<std::string>{"*notes", "$$counts"}));
  EXPECT_EQ(updated.backfilling, std::vector<std::string>{"counts"});
  ASSERT_CALL_OK(described, client_->Describe("evolve"));
  EXPECT_EQ(described, updated.module);

  AppendEvents(1);  // v2: +2 per event
  WaitRebuildsDone();
  EXPECT_EQ(Select("$$totals", "a"), Value(6));
  EXPECT_EQ(Select("$$counts", "a"), Value(5));

  // v3 drops names it must be told about: refused, then accepted with them listed.
  ExpectError(client_->UpdateAsync(EVOLVE_V3).get(), ErrorKind::kServer,
              ErrorCode::kInvalidArgument, "*extra");
  ClientUpdateOptions drop;
  drop.drop = {"*extra", "$$extra_seen", "extra"};
  ASSERT_CALL_OK(v3, client_->UpdateAsync(EVOLVE_V3, drop).get());
  EXPECT_EQ(v3.version, 3);
  EXPECT_EQ(std::set<std::string>(v3.dropped.begin(), v3.dropped.end()),
            (std::set<std::string>{"*extra", "$$extra_seen", "extra"}));
  EXPECT_EQ(Select("$$totals", "a"), Value(6));
}

TEST_F(ClientLifecycleTest, RecomputeStartsAndFinishesWithTheSameView) {
  for (int i = 0; i < 20; ++i) AppendEvents(50);
  const Value before = Select("$$totals", "b");
  EXPECT_EQ(before, Value(1000));
  ASSERT_CALL_OK(started, client_->Recompute("evolve", {"totals"}));
  EXPECT_EQ(started.module, "evolve");
  EXPECT_EQ(started.pstates, std::vector<std::string>{"$$totals"});
  WaitRebuildsDone();
  EXPECT_EQ(Select("$$totals", "b"), before);

  ExpectError(client_->RecomputeAsync("evolve", {"$$nope"}).get(), ErrorKind::kServer,
              ErrorCode::kNotFound, "$$nope");
}

TEST_F(ClientLifecycleTest, LifecycleArgumentsAreCheckedBeforeSending) {
  ExpectError(client_->Update(""), ErrorKind::kArgument, ErrorCode::kNone, "path is empty");
  ExpectError(client_->UpdateBytesAsync("").get(), ErrorKind::kArgument, ErrorCode::kNone,
              "bytes are empty");
  ClientUpdateOptions rescale;
  rescale.partitions = 1025;
  ExpectError(client_->Update(EVOLVE_V2, rescale), ErrorKind::kArgument, ErrorCode::kNone,
              "partitions must be 0 (keep) or 1 to 1024, got 1025");
  ClientUpdateOptions blank;
  blank.drop = {""};
  ExpectError(client_->Update(EVOLVE_V2, blank), ErrorKind::kArgument, ErrorCode::kNone,
              "a name to drop is empty");
  ExpectError(client_->Recompute("evolve", {}), ErrorKind::kArgument, ErrorCode::kNone,
              "no PStates to recompute");
  ExpectError(client_->Recompute("", {"$$totals"}), ErrorKind::kArgument, ErrorCode::kNone,
              "module name is empty");
  ExpectError(client_->Recompute("evolve", {"$$totals", ""}), ErrorKind::kArgument,
              ErrorCode::kNone, "a PState name is empty");
}

// Invoke and SelectPage with the test module driver_queries (testdata/query_module.cc): 8
// partitions, $$items filled from *items.
class ClientQueryTest : public ClientTest {
 protected:
  static constexpr int kPartitions = 8;

  void SetUp() override {
    StartServer();
    client_ = Connected();
    ASSERT_NE(client_, nullptr);
    ASSERT_CALL_OK(deployed, client_->Deploy(QUERY_MODULE, kPartitions));
    ASSERT_EQ(deployed.name, "driver_queries");
  }

  static std::string Key(int i) { return std::string("k").append(std::to_string(i)); }

  // Items k0 .. k(n-1) with value i, acknowledged when processed.
  void Store(int n) {
    constexpr int kBatch = 500;
    for (int start = 0; start < n; start += kBatch) {
      std::vector<Value> batch;
      for (int i = start; i < std::min(n, start + kBatch); ++i) {
        batch.push_back(Value::MapOf({{"key", Key(i)}, {"value", int64_t{i}}}));
      }
      ASSERT_CALL_OK(results, client_->AppendBatch("driver_queries", "*items", std::move(batch)));
      for (const proto::AppendResult& r : results) ASSERT_FALSE(r.failure.has_value());
    }
  }

  std::unique_ptr<Client> client_;
};

TEST_F(ClientQueryTest, InvokeReturnsEachQuerysResultSyncAndAsync) {
  constexpr int kItems = 100;
  Store(kItems);
  constexpr int64_t kSum = kItems * (kItems - 1) / 2;

  ASSERT_CALL_OK(seven, client_->Invoke("driver_queries", "get", {Value("k7")}));
  EXPECT_EQ(seven, Value::ListOf({Value(7)}));
  ASSERT_CALL_OK(absent, client_->Invoke("driver_queries", "get", {Value("nobody")}));
  EXPECT_EQ(absent, Value::ListOf({Value()}));
  ASSERT_CALL_OK(total, client_->Invoke("driver_queries", "total", {}));
  EXPECT_EQ(total, Value(kSum));
  ASSERT_CALL_OK(count, client_->Invoke("driver_queries", "count", {}));
  EXPECT_EQ(count, Value(kItems));
  ASSERT_CALL_OK(doubled, client_->Invoke("driver_queries", "doubled-total", {}));
  EXPECT_EQ(doubled, Value::ListOf({Value(2 * kSum)}));
  ASSERT_CALL_OK(echo,
                 client_->Invoke("driver_queries", "echo", {Value(1), Json(R"({"x": [2]})")}));
  EXPECT_EQ(echo, Value::ListOf({Value::ListOf({Value(1), Json(R"({"x": [2]})")})}));

  std::future<ClientResult<Value>> async_total =
      client_->InvokeAsync("driver_queries", "total", {});
  std::future<ClientResult<Value>> async_get =
      client_->InvokeAsync("driver_queries", "get", {Value("k99")}, 1000);
  ASSERT_CALL_OK(total_later, async_total.get());
  EXPECT_EQ(total_later, Value(kSum));
  ASSERT_CALL_OK(get_later, async_get.get());
  EXPECT_EQ(get_later, Value::ListOf({Value(99)}));

  // A processed append is seen by the next query (read-your-writes).
  ASSERT_CALL_OK(more, client_->Append("driver_queries", "*items",
                                       Value::MapOf({{"key", "k7"}, {"value", int64_t{1007}}})));
  ASSERT_CALL_OK(total_after, client_->Invoke("driver_queries", "total", {}));
  EXPECT_EQ(total_after, Value(kSum + 1000));

  ASSERT_CALL_OK(described, client_->Describe("driver_queries"));
  std::map<std::string, proto::QueryInfo> queries;
  for (const proto::QueryInfo& q : described.queries) queries[q.name] = q;
  EXPECT_EQ(queries.size(), 8u);
  ASSERT_EQ(queries["get"].params.size(), 1u);
  EXPECT_EQ(queries["get"].params[0].name, "key");
  EXPECT_EQ(queries["get"].params[0].schema_text, "string");
  EXPECT_FALSE(queries["get"].params[0].schema.is_nil());
  ASSERT_EQ(queries["echo"].params.size(), 2u);
  EXPECT_EQ(queries["echo"].params[1].name, "b");
  EXPECT_TRUE(queries["total"].params.empty());
  EXPECT_TRUE(described.depends_on.empty());
  EXPECT_TRUE(described.dependents.empty());
}

// Thousands of invocations in flight at once on one connection (the callback form), each
// answered with its own key's value.
TEST_F(ClientQueryTest, ThousandsOfPipelinedInvokesOnOneConnectionAreEachAnswered) {
  constexpr int kItems = 1000;
  constexpr int kInvokes = 5000;
  Store(kItems);
  std::mutex mu;
  std::vector<std::optional<ClientResult<Value>>> results(kInvokes);
  std::atomic<int> left{kInvokes};
  std::promise<void> all_done;
  for (int i = 0; i < kInvokes; ++i) {
    client_->InvokeAsync("driver_queries", "get", {Value(Key(i % kItems))}, 10'000,
                         [&, i](ClientResult<Value> result) {
                           {
                             std::lock_guard<std::mutex> lock(mu);
                             results[i].emplace(std::move(result));
                           }
                           if (left.fetch_sub(1) == 1) all_done.set_value();
                         });
  }
  ASSERT_EQ(all_done.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready)
      << left.load() << " invocations unanswered";
  std::lock_guard<std::mutex> lock(mu);
  for (int i = 0; i < kInvokes; ++i) {
    ASSERT_TRUE(results[i].has_value()) << i;
    ASSERT_TRUE(results[i]->ok()) << i << ": " << results[i]->error().ToString();
    ASSERT_EQ(results[i]->value(), Value::ListOf({Value(i % kItems)})) << i;
  }
}

TEST_F(ClientQueryTest, InvokeErrorsAreTypedAndNameTheQuery) {
  Store(10);
  ExpectError(client_->Invoke("driver_queries", "nope", {}), ErrorKind::kServer,
              ErrorCode::kNotFound, "nope");
  ExpectError(client_->Invoke("no_such_module", "get", {Value("k1")}), ErrorKind::kServer,
              ErrorCode::kNotFound, "no_such_module");
  ExpectError(client_->Invoke("driver_queries", "get", {}), ErrorKind::kServer,
              ErrorCode::kInvalidArgument, "get");
  ExpectError(client_->Invoke("driver_queries", "get", {Value("k1"), Value("k2")}),
              ErrorKind::kServer, ErrorCode::kInvalidArgument, "get");
  ExpectError(client_->Invoke("driver_queries", "get", {Value(1)}), ErrorKind::kServer,
              ErrorCode::kSchemaViolation, "get");
  ExpectError(client_->Invoke("driver_queries", "fail", {Value("boom at the origin")}),
              ErrorKind::kServer, ErrorCode::kQueryFailed, "boom at the origin");
  ExpectError(client_->Invoke("driver_queries", "write", {}), ErrorKind::kServer,
              ErrorCode::kQueryFailed, "write");
  // 2000 steps of 5 ms each: the 50 ms timeout is checked before each step call.
  ExpectError(client_->Invoke("driver_queries", "slow", {Value(2000)}, 50), ErrorKind::kServer,
              ErrorCode::kTimeout, "slow");
  // Longer than the server's inline budget (2 ms): answered by the pool's second run, and
  // so are the next invocations (sent to the pool at once), whole each time.
  for (int i = 0; i < 3; ++i) {
    ASSERT_CALL_OK(slow, client_->Invoke("driver_queries", "slow", {Value(4)}));
    EXPECT_EQ(slow, Value::ListOf({0, 1, 2, 3}));
  }
  ExpectError(client_->InvokeAsync("driver_queries", "fail", {Value("async boom")}).get(),
              ErrorKind::kServer, ErrorCode::kQueryFailed, "async boom");
  // Refused before sending.
  ExpectError(client_->Invoke("driver_queries", "get", {Value("k1")}, 0), ErrorKind::kArgument,
              ErrorCode::kNone, "timeout_ms must be 1 to 3600000");
  ExpectError(client_->Invoke("driver_queries", "", {}), ErrorKind::kArgument, ErrorCode::kNone,
              "query name is empty");
  // The connection and the module serve on.
  ASSERT_CALL_OK(one, client_->Invoke("driver_queries", "get", {Value("k1")}));
  EXPECT_EQ(one, Value::ListOf({Value(1)}));
}

// A PState of 5,000 keys over 8 partitions, page by page: every key exactly once, in key
// order within each partition, partition after partition.
TEST_F(ClientQueryTest, SelectPageWalksEveryKeyOnceInPartitionOrder) {
  constexpr int kItems = 5000;
  Store(kItems);
  std::vector<std::vector<Value>> by_partition(kPartitions);
  for (int i = 0; i < kItems; ++i) {
    by_partition[HashKey(Value(Key(i))) % kPartitions].push_back(Value(Key(i)));
  }
  std::vector<Value> expected;
  for (std::vector<Value>& keys : by_partition) {
    std::sort(keys.begin(), keys.end());
    expected.insert(expected.end(), keys.begin(), keys.end());
  }

  for (const int64_t limit : {int64_t{333}, int64_t{10'000}}) {
    std::vector<Value> walked;
    std::string token;
    int pages = 0;
    do {
      ASSERT_CALL_OK(page,
                     client_->SelectPage("driver_queries", "$$items", Path().All(), token, limit));
      EXPECT_LE(static_cast<int64_t>(page.values.size()), limit);
      for (const Value& pair : page.values) {
        ASSERT_TRUE(pair.is_list() && pair.as_list().size() == 2) << pair.ToString();
        const std::string& key = pair.as_list()[0].as_string();
        EXPECT_EQ(pair.as_list()[1], Value(std::stoll(key.substr(1)))) << key;
        walked.push_back(pair.as_list()[0]);
      }
      token = page.next_token;
      ASSERT_LT(++pages, 100) << "the pages do not end";
    } while (!token.empty());
    EXPECT_EQ(walked, expected) << "limit " << limit;
    EXPECT_GE(pages, kItems / limit);
  }

  // map_keys gives the keys alone; "$$" is optional.
  ASSERT_CALL_OK(keys, client_->SelectPage("driver_queries", "items", Path().MapKeys(), "", 10));
  EXPECT_EQ(keys.values, std::vector<Value>(expected.begin(), expected.begin() + 10));
  EXPECT_FALSE(keys.next_token.empty());

  ExpectError(client_->SelectPage("driver_queries", "$$items", Path().All(), "not a token"),
              ErrorKind::kServer, ErrorCode::kInvalidArgument, "token");
  ExpectError(client_->SelectPage("driver_queries", "$$nothing", Path().All()), ErrorKind::kServer,
              ErrorCode::kNotFound, "$$nothing");
  ExpectError(client_->SelectPage("driver_queries", "$$items", Path().All(), "", 0),
              ErrorKind::kArgument, ErrorCode::kNone, "limit must be 1 to 10000");
  ExpectError(client_->SelectPage("driver_queries", "$$items", Path().All(), "", 10'001),
              ErrorKind::kArgument, ErrorCode::kNone, "limit must be 1 to 10000");
}

// A module that depends on driver_queries: its ModuleInfo names the dependency, and its
// queries read driver_queries' PState and invoke its query over the wire.
TEST_F(ClientQueryTest, ADependentModuleReadsAndInvokesThroughTheWire) {
  Store(20);
  ASSERT_CALL_OK(mirror, client_->Deploy(MIRROR_MODULE, kPartitions));
  EXPECT_EQ(mirror.depends_on, std::vector<std::string>{"driver_queries"});
  ASSERT_CALL_OK(described, client_->Describe("driver_mirror"));
  EXPECT_EQ(described.depends_on, std::vector<std::string>{"driver_queries"});
  ASSERT_EQ(described.queries.size(), 2u);

  ASSERT_CALL_OK(item, client_->Invoke("driver_mirror", "item", {Value("k12")}));
  EXPECT_EQ(item, Value::ListOf({Value(12)}));
  ASSERT_CALL_OK(total, client_->Invoke("driver_mirror", "total-of-items", {}));
  EXPECT_EQ(total, Value::ListOf({Value(190)}));
}

}  // namespace
}  // namespace strata
