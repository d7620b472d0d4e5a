// stratad as a real process on loopback: the request set end to end, restart, kill -9
// durability of acknowledged appends, bad input, a client that never reads, many
// connections, and the data-directory lock. Each test starts its own server on port 0
// with a fresh data directory.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include "strata/path.h"
#include "strata/protocol/frame.h"
#include "strata/protocol/messages.h"
#include "strata/testing/test_seed.h"
#include "stratad_test.h"
#include "test_client.h"

namespace strata::server_test {
namespace {

namespace fs = std::filesystem;
namespace proto = protocol;
using proto::ErrorCode;

#define ASSERT_OK(expr)                                     \
  do {                                                      \
    const ::strata::Status _s = (expr);                     \
    ASSERT_TRUE(_s.ok()) << #expr << ": " << _s.ToString(); \
  } while (0)

// The response of a successful call, or a test failure.
#define ASSERT_CALL_OK(lhs, client, body)                                                         \
  ::strata::Result<proto::Response> lhs##_result = (client).Call(body);                           \
  ASSERT_TRUE(lhs##_result.ok()) << lhs##_result.status().ToString();                             \
  ASSERT_FALSE(lhs##_result->error.has_value())                                                   \
      << proto::ErrorCodeName(lhs##_result->error->code) << ": " << lhs##_result->error->message; \
  proto::Response lhs = std::move(lhs##_result).value()

void ExpectError(const Result<proto::Response>& response, ErrorCode code,
                 const std::string& words = "") {
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ASSERT_TRUE(response->error.has_value()) << "expected " << proto::ErrorCodeName(code);
  EXPECT_EQ(response->error->code, code)
      << proto::ErrorCodeName(response->error->code) << ": " << response->error->message;
  if (!words.empty()) {
    EXPECT_NE(response->error->message.find(words), std::string::npos) << response->error->message;
  }
}

proto::AppendRequest Sentences(std::vector<std::string> texts,
                               proto::AckLevel ack = proto::AckLevel::kProcessed) {
  proto::AppendRequest request;
  request.module = "wordcount";
  request.depot = "*sentences";
  for (std::string& t : texts) request.records.push_back(Value(std::move(t)));
  request.ack = ack;
  return request;
}

proto::SelectRequest CountOf(const std::string& word) {
  proto::SelectRequest request;
  request.module = "wordcount";
  request.pstate = "$$word_counts";
  request.path = Path().Key(word).ToValue();
  request.one = true;
  return request;
}

proto::DeployRequest DeployPath(const std::string& path) {
  proto::DeployRequest request;
  request.path = path;
  return request;
}

class ServerTest : public StratadTest {
 protected:
  ServerTest() : StratadTest("stratad_test_") {}

  TestClient Connected() { return ConnectedTestClient(server_->port()); }
  // A new client's frame of `bytes` (an append to an unknown module) is received whole and
  // answered NOT_FOUND: the server-wide budget for partial frames had room for it.
  void ExpectBigFrameTaken(size_t bytes) {
    TestClient client;
    ASSERT_OK(client.Connect(server_->port(), std::chrono::seconds(10)));
    ASSERT_OK(client.Handshake());
    proto::AppendRequest append;
    append.module = "nosuchmodule";
    append.depot = "*sentences";
    append.records.push_back(Value(std::string(bytes, 'z')));
    const uint64_t id = client.NextId();
    const std::string payload = proto::EncodeRequest(proto::Request{id, append});
    std::string frame;
    proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &frame);
    (void)client.SendRaw(frame);  // fails if the server refuses it and closes
    Result<proto::Response> r = client.Receive();
    ASSERT_TRUE(r.ok()) << r.status().ToString() << "\n" << ReadFile(log_);
    EXPECT_EQ(r->id, id);
    ExpectError(r, ErrorCode::kNotFound, "nosuchmodule");
  }
  void DeployWordcount(TestClient& client) {
    ASSERT_CALL_OK(deployed, client, DeployPath(WORDCOUNT_MODULE));
    ASSERT_TRUE(std::holds_alternative<proto::ModuleInfo>(deployed.body));
    EXPECT_EQ(std::get<proto::ModuleInfo>(deployed.body).name, "wordcount");
  }
  Value Count(TestClient& client, const std::string& word) {
    Result<proto::Response> r = client.Call(CountOf(word));
    EXPECT_TRUE(r.ok() && !r->error) << (r.ok() ? r->error->message : r.status().ToString());
    if (!r.ok() || r->error) return Value("error");
    const auto& values = std::get<proto::Selected>(r->body).values;
    EXPECT_EQ(values.size(), 1u);
    return values.empty() ? Value("none") : values[0];
  }
  // Every record of every partition of *sentences: partition -> offset -> record (a test
  // failure, and what was read, when a read fails).
  std::map<int, std::map<int64_t, Value>> ReadAllSentences(TestClient& client, int partitions) {
    auto read = server_test::ReadAllSentences(client, partitions);
    EXPECT_TRUE(read.ok()) << read.status().ToString();
    return read.ok() ? std::move(read).value() : std::map<int, std::map<int64_t, Value>>{};
  }
  // Deploys wordcount and appends 64 records of 16 KiB (8 per partition), so that reading
  // a partition answers ~128 KiB.
  void DeployWithBigRecords() {
    TestClient setup = Connected();
    DeployWordcount(setup);
    std::vector<std::string> big;
    for (int i = 0; i < 64; ++i)
      big.push_back(std::string(16 << 10, 'a' + i % 26) + " " + std::to_string(i));
    ASSERT_CALL_OK(appended, setup, Sentences(big, proto::AckLevel::kAppended));
  }
  // 64 framed ReadDepot requests of ~60 bytes over the 8 partitions: after
  // DeployWithBigRecords, ~8 MiB of answers, more than the loopback socket buffers hold.
  static std::string ReadEveryPartitionBurst(TestClient& client) {
    std::string burst;
    for (int i = 0; i < 64; ++i) {
      proto::ReadDepotRequest read;
      read.module = "wordcount";
      read.depot = "*sentences";
      read.partition = i % 8;
      const std::string payload = proto::EncodeRequest(proto::Request{client.NextId(), read});
      proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &burst);
    }
    return burst;
  }
  // A fresh client still gets answers: the server keeps serving after bad input.
  void ExpectServerServes() {
    TestClient other = Connected();
    Result<proto::Response> listed = other.Call(proto::ListModulesRequest{});
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    EXPECT_FALSE(listed->error.has_value());
  }
};

TEST_F(ServerTest, DeployAppendSelectDescribeStatsDestroy) {
  StartServer();
  TestClient client = Connected();
  DeployWordcount(client);
  ExpectError(client.Call(DeployPath(WORDCOUNT_MODULE)), ErrorCode::kAlreadyExists, "wordcount");

  ASSERT_CALL_OK(appended, client, Sentences({"Hello world", "hello again"}));
  const auto& results = std::get<proto::Appended>(appended.body).results;
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_GE(r.partition, 0);
    EXPECT_LT(r.partition, 8);
    EXPECT_GE(r.offset, 0);
    EXPECT_FALSE(r.failure.has_value());
    ASSERT_EQ(r.ack_returns.size(), 1u);
    EXPECT_EQ(r.ack_returns[0].first, "count");
  }
  EXPECT_EQ(Count(client, "hello"), Value(2));
  EXPECT_EQ(Count(client, "world"), Value(1));

  proto::SelectRequest many = CountOf("again");
  many.one = false;
  many.pstate = "word_counts";  // the sigil is optional on the wire
  ASSERT_CALL_OK(selected, client, many);
  EXPECT_EQ(std::get<proto::Selected>(selected.body).values, std::vector<Value>{Value(1)});

  ASSERT_CALL_OK(described, client, proto::DescribeRequest{"wordcount"});
  const auto& info = std::get<proto::ModuleInfo>(described.body);
  EXPECT_EQ(info.partitions, 8);
  ASSERT_EQ(info.depots.size(), 1u);
  EXPECT_EQ(info.depots[0].name, "*sentences");
  ASSERT_EQ(info.pstates.size(), 2u);  // $$word_counts and its index $$ranking
  EXPECT_EQ(info.pstates[0].name, "$$word_counts");
  EXPECT_FALSE(info.pstates[0].schema_text.empty());
  EXPECT_EQ(info.pstates[1].name, "$$ranking");
  ASSERT_EQ(info.topologies.size(), 1u);
  EXPECT_EQ(info.topologies[0].name, "count");

  ASSERT_CALL_OK(listed, client, proto::ListModulesRequest{});
  ASSERT_EQ(std::get<proto::ModuleList>(listed.body).modules.size(), 1u);

  ASSERT_CALL_OK(stats, client, proto::StatsRequest{});
  const auto& s = std::get<proto::StatsResult>(stats.body);
  EXPECT_EQ(s.server.connections, 1);
  EXPECT_GE(s.server.total_connections, 1);
  EXPECT_GE(s.server.requests, 8);
  EXPECT_GE(s.server.uptime_ms, 0);
  ASSERT_EQ(s.modules.size(), 1u);
  int64_t records = 0;
  for (const auto& d : s.modules[0].depots) records += d.end_offset - d.start_offset;
  EXPECT_EQ(records, 2);

  ExpectError(client.Call(proto::DestroyRequest{"wordcount", ""}), ErrorCode::kConfirmationRequired,
              "wordcount");
  ExpectError(client.Call(proto::DestroyRequest{"wordcount", "wordcont"}),
              ErrorCode::kConfirmationRequired);
  EXPECT_EQ(Count(client, "hello"), Value(2));  // nothing was destroyed
  ASSERT_CALL_OK(destroyed, client, (proto::DestroyRequest{"wordcount", "wordcount"}));
  EXPECT_EQ(std::get<proto::Destroyed>(destroyed.body).module, "wordcount");
  ExpectError(client.Call(proto::DescribeRequest{"wordcount"}), ErrorCode::kNotFound, "wordcount");
  ExpectError(client.Call(CountOf("hello")), ErrorCode::kNotFound);

  // Deployed again, the module starts empty.
  DeployWordcount(client);
  EXPECT_EQ(Count(client, "hello"), Value());
  StopServer();
}

TEST_F(ServerTest, DeployFromUploadedBytes) {
  StartServer();
  TestClient client = Connected();
  proto::DeployRequest request;
  request.so_bytes = ReadFile(WORDCOUNT_MODULE);
  request.partitions = 3;
  ASSERT_FALSE(request.so_bytes.empty());
  ASSERT_CALL_OK(deployed, client, request);
  EXPECT_EQ(std::get<proto::ModuleInfo>(deployed.body).partitions, 3);
  ASSERT_CALL_OK(appended, client, Sentences({"uploaded module works"}));
  EXPECT_EQ(Count(client, "uploaded"), Value(1));
  // The upload file is gone; the engine keeps its own copy.
  for (const auto& entry : fs::directory_iterator(data_dir_)) {
    EXPECT_EQ(entry.path().filename().string().find(".upload"), std::string::npos) << entry.path();
  }

  proto::DeployRequest garbage;
  garbage.so_bytes = "this is not a shared object";
  Result<proto::Response> refused = client.Call(garbage);
  ASSERT_TRUE(refused.ok()) << refused.status().ToString();
  EXPECT_TRUE(refused->error.has_value());
  ExpectError(client.Call(proto::DeployRequest{}), ErrorCode::kInvalidArgument,
              "path and so_bytes");
  StopServer();
}

TEST_F(ServerTest, RestartReloadsModulesAndData) {
  StartServer();
  {
    TestClient client = Connected();
    DeployWordcount(client);
    ASSERT_CALL_OK(appended, client, Sentences({"to be or not to be", "be quick"}));
    EXPECT_EQ(Count(client, "be"), Value(3));
  }
  StopServer();

  StartServer();
  TestClient client = Connected();
  ASSERT_CALL_OK(listed, client, proto::ListModulesRequest{});
  const auto& modules = std::get<proto::ModuleList>(listed.body).modules;
  ASSERT_EQ(modules.size(), 1u);
  EXPECT_EQ(modules[0].name, "wordcount");
  EXPECT_EQ(Count(client, "be"), Value(3));
  EXPECT_EQ(Count(client, "quick"), Value(1));
  std::multiset<Value> sentences;
  for (const auto& [p, records] : ReadAllSentences(client, 8)) {
    for (const auto& [offset, record] : records) sentences.insert(record);
  }
  EXPECT_EQ(sentences, (std::multiset<Value>{Value("to be or not to be"), Value("be quick")}));
  // Processing resumed: new appends are counted on top of the old ones.
  ASSERT_CALL_OK(more, client, Sentences({"be"}));
  EXPECT_EQ(Count(client, "be"), Value(4));
  StopServer();
}

TEST_F(ServerTest, EveryAcknowledgedAppendSurvivesKill9) {
  StartServer();
  {
    TestClient client = Connected();
    DeployWordcount(client);
  }
  struct Acked {
    int partition;
    int64_t offset;
    std::string sentence;
  };
  std::mutex mu;
  std::vector<Acked> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> appenders;
  for (int t = 0; t < 4; ++t) {
    appenders.emplace_back([&, t] {
      TestClient client;
      if (!client.Connect(server_->port()).ok() || !client.Handshake().ok()) return;
      // Pipelined batches: up to 8 requests outstanding per connection.
      std::map<uint64_t, std::vector<std::string>> pending;
      int n = 0;
      while (true) {
        while (!stop.load() && pending.size() < 8) {
          std::vector<std::string> batch;
          for (int i = 0; i < 10; ++i) {
            std::string sentence = "t";
            sentence += std::to_string(t);
            sentence += " s";
            sentence += std::to_string(n++);
            batch.push_back(std::move(sentence));
          }
          proto::Request request;
          request.id = client.NextId();
          request.body = Sentences(
              batch, t % 2 == 0 ? proto::AckLevel::kAppended : proto::AckLevel::kProcessed);
          if (!client.Send(request).ok()) return;
          pending[request.id] = std::move(batch);
        }
        if (pending.empty()) return;
        Result<proto::Response> r = client.Receive();
        if (!r.ok()) return;  // killed
        auto it = pending.find(r->id);
        if (it == pending.end() || r->error) return;
        const auto& results = std::get<proto::Appended>(r->body).results;
        std::lock_guard lock(mu);
        for (size_t i = 0; i < results.size() && i < it->second.size(); ++i) {
          acked.push_back({results[i].partition, results[i].offset, it->second[i]});
        }
        pending.erase(it);
      }
    });
  }
  // The kill comes once enough appends were acknowledged to test something (appends keep
  // running meanwhile, so some are in flight when it lands).
  constexpr size_t kAckedBeforeKill = 200;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto enough_acked = [&] {
    std::lock_guard lock(mu);
    return acked.size() >= kAckedBeforeKill;
  };
  while (!enough_acked() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const int status = server_->Stop(SIGKILL);
  stop.store(true);
  for (std::thread& t : appenders) t.join();
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GE(acked.size(), kAckedBeforeKill)
      << "fewer than " << kAckedBeforeKill << " appends were acknowledged within 60 s";

  StartServer();
  TestClient client = Connected();
  const auto stored = ReadAllSentences(client, 8);
  size_t missing = 0;
  for (const Acked& a : acked) {
    auto p = stored.find(a.partition);
    const Value* found = nullptr;
    if (p != stored.end()) {
      auto r = p->second.find(a.offset);
      if (r != p->second.end()) found = &r->second;
    }
    if (found == nullptr || *found != Value(a.sentence)) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged appends";
  StopServer();
}

// ---- Bad input ------------------------------------------------------------------------------

TEST_F(ServerTest, RandomBytesGetAnErrorOrACloseAndOthersAreServed) {
  StartServer();
  const uint64_t seed = strata::testing::TestSeed(20240501);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  for (int round = 0; round < 5; ++round) {
    TestClient client;
    ASSERT_OK(client.Connect(server_->port(), std::chrono::seconds(10)));
    std::string noise(4096, '\0');
    for (char& c : noise) c = static_cast<char>(rng());
    // A noise prefix of 0 or above the cap is refused at once; one below the cap makes the
    // server wait for a frame that never completes, until the client closes its side.
    (void)client.SendRaw(noise);
    client.ShutdownWrite();
    Result<proto::Response> first = client.Receive();
    if (first.ok()) {
      ASSERT_TRUE(first->error.has_value());
      EXPECT_TRUE(first->error->code == ErrorCode::kBadFrame ||
                  first->error->code == ErrorCode::kFrameTooLarge ||
                  first->error->code == ErrorCode::kHandshakeRequired)
          << proto::ErrorCodeName(first->error->code);
    }
    EXPECT_TRUE(client.WaitForClose());
    ExpectServerServes();
  }
  StopServer();
}

TEST_F(ServerTest, TruncatedFrameThenCloseIsACleanClose) {
  StartServer();
  TestClient client = Connected();
  std::string frame;
  const std::string payload = proto::EncodeRequest({client.NextId(), proto::ListModulesRequest{}});
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &frame);
  ASSERT_OK(client.SendRaw(frame.substr(0, frame.size() - 3)));
  client.ShutdownWrite();
  EXPECT_TRUE(client.WaitForClose());
  ExpectServerServes();
  StopServer();
}

TEST_F(ServerTest, AbsurdLengthPrefixIsFrameTooLargeThenClose) {
  StartServer();
  TestClient client = Connected();
  ASSERT_OK(client.SendRaw(std::string("\xff\xff\xff\x7f", 4)));
  Result<proto::Response> response = client.Receive();
  ExpectError(response, ErrorCode::kFrameTooLarge);
  EXPECT_EQ(response->id, 0u);
  EXPECT_TRUE(client.WaitForClose());

  TestClient zero = Connected();
  ASSERT_OK(zero.SendRaw(std::string("\0\0\0\0", 4)));
  ExpectError(zero.Receive(), ErrorCode::kBadFrame);
  EXPECT_TRUE(zero.WaitForClose());
  ExpectServerServes();
  StopServer();
}

// A Request whose union says `body_type` over a table holding one uint (a Hello's shape).
std::string RequestWithUnionType(uint64_t id, uint8_t body_type) {
  flatbuffers::FlatBufferBuilder fbb;
  const auto body_start = fbb.StartTable();
  fbb.AddElement<uint32_t>(4, 12345, 0);
  const flatbuffers::uoffset_t body = fbb.EndTable(body_start);
  const auto start = fbb.StartTable();
  fbb.AddElement<uint64_t>(4, id, 0);
  fbb.AddElement<uint8_t>(6, body_type, 0);
  fbb.AddOffset(8, flatbuffers::Offset<void>(body));
  const flatbuffers::uoffset_t root = fbb.EndTable(start);
  fbb.Finish(flatbuffers::Offset<void>(root));
  std::string frame;
  proto::AppendFrame(fbb.GetBufferPointer(), fbb.GetSize(), &frame);
  return frame;
}

TEST_F(ServerTest, WrongUnionTypesGetErrorsAndTheConnectionGoesOn) {
  StartServer();
  TestClient client = Connected();
  DeployWordcount(client);

  ASSERT_OK(client.SendRaw(RequestWithUnionType(901, 200)));  // a kind this server does not know
  Result<proto::Response> unknown = client.Receive();
  ExpectError(unknown, ErrorCode::kUnsupported);
  EXPECT_EQ(unknown->id, 901u);

  // Type confusion: SelectRequest (7) and AppendRequest (6) over a Hello-shaped table.
  for (uint8_t type : {uint8_t{7}, uint8_t{6}, uint8_t{0}}) {
    ASSERT_OK(client.SendRaw(RequestWithUnionType(902, type)));
    Result<proto::Response> confused = client.Receive();
    ASSERT_TRUE(confused.ok()) << confused.status().ToString();
    ASSERT_TRUE(confused->error.has_value()) << "type " << int{type};
    if (confused->id == 0) {
      EXPECT_TRUE(client.WaitForClose());
      client = Connected();
    } else {
      EXPECT_EQ(confused->id, 902u);
    }
  }
  ASSERT_CALL_OK(fine, client, Sentences({"still fine"}));
  EXPECT_EQ(Count(client, "fine"), Value(1));
  StopServer();
}

TEST_F(ServerTest, UnknownNamesInvalidPathsAndMistypedRecordsAreErrors) {
  StartServer();
  TestClient client = Connected();
  DeployWordcount(client);

  ExpectError(client.Call(proto::DescribeRequest{"nosuchmodule"}), ErrorCode::kNotFound,
              "nosuchmodule");
  proto::AppendRequest bad_depot = Sentences({"x"});
  bad_depot.depot = "*nosuchdepot";
  ExpectError(client.Call(bad_depot), ErrorCode::kNotFound, "nosuchdepot");
  proto::AppendRequest bad_module = Sentences({"x"});
  bad_module.module = "nosuchmodule";
  ExpectError(client.Call(bad_module), ErrorCode::kNotFound, "nosuchmodule");
  proto::SelectRequest bad_pstate = CountOf("x");
  bad_pstate.pstate = "$$nosuchpstate";
  ExpectError(client.Call(bad_pstate), ErrorCode::kNotFound, "nosuchpstate");
  proto::ReadDepotRequest bad_read;
  bad_read.module = "wordcount";
  bad_read.depot = "*nosuchdepot";
  ExpectError(client.Call(bad_read), ErrorCode::kNotFound, "nosuchdepot");
  ExpectError(client.Call(proto::StatsRequest{"nosuchmodule"}), ErrorCode::kNotFound,
              "nosuchmodule");
  ExpectError(client.Call(proto::DeployRequest{"/nonexistent/module.so", "", 8}),
              ErrorCode::kNotFound, "/nonexistent/module.so");

  proto::SelectRequest bad_path = CountOf("x");
  bad_path.path = Value::ListOf({Value::ListOf({Value("frobnicate"), Value(1)})});
  ExpectError(client.Call(bad_path), ErrorCode::kInvalidArgument, "invalid path");
  bad_path.path = Value("not a list");
  ExpectError(client.Call(bad_path), ErrorCode::kInvalidArgument, "invalid path");

  // Records of the wrong shape. One that does not match its depot's record schema is
  // refused with the whole batch; one its topology rejects is acknowledged with a
  // per-record failure.
  ASSERT_CALL_OK(profiles, client, DeployPath(PROFILES_MODULE));
  ExpectError(client.Call(proto::AppendRequest{"profiles", "*registrations", {Value(7)}}),
              ErrorCode::kSchemaViolation, "*registrations: expected record{");
  ExpectError(client.Call(proto::AppendRequest{"wordcount", "*sentences", {Value(42)}}),
              ErrorCode::kSchemaViolation, "*sentences: expected string, got int 42");
  ASSERT_CALL_OK(
      failed, client,
      (proto::AppendRequest{"profiles", "*registrations", {Value::MapOf({{"username", ""}})}}));
  const auto& results = std::get<proto::Appended>(failed.body).results;
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].failure.has_value());
  EXPECT_EQ(results[0].failure->code, ErrorCode::kTopologyFailed);
  EXPECT_NE(results[0].failure->message.find("username"), std::string::npos);

  ASSERT_CALL_OK(fine, client, Sentences({"after the errors"}));
  EXPECT_EQ(Count(client, "errors"), Value(1));
  StopServer();
}

// The bank module's stats with failures [from, from + limit), or a test failure.
proto::ModuleStats BankStats(TestClient& client, int64_t from, int64_t limit) {
  Result<proto::Response> r = client.Call(proto::StatsRequest{"bank", from, limit});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (!r.ok()) return {};
  EXPECT_FALSE(r->error.has_value())
      << proto::ErrorCodeName(r->error->code) << ": " << r->error->message;
  if (r->error.has_value()) return {};
  const auto& modules = std::get<proto::StatsResult>(r->body).modules;
  EXPECT_EQ(modules.size(), 1u);
  return modules.empty() ? proto::ModuleStats{} : modules[0];
}

// A deposit whose step fails (amount 0) quotes the whole record, here over 1 MB, in its
// error. 24 of them used to make every stats answer larger than the frame cap, for good;
// now each recorded failure keeps about 1 KB, stats answers and pages them, also after a
// restart, and each failure still leads to its record.
TEST_F(ServerTest, FailuresOfHugeRecordsStaySmallAndStatsPagesThem) {
  constexpr int kFailed = 24;
  StartServer();
  auto check = [&](TestClient& client, const std::string& when) {
    proto::ModuleStats all = BankStats(client, 0, proto::kMaxStatsFailuresLimit);
    EXPECT_EQ(all.failures, kFailed) << when;
    ASSERT_EQ(all.failure_page.size(), static_cast<size_t>(kFailed)) << when;
    for (const proto::TopologyFailure& f : all.failure_page) {
      EXPECT_EQ(f.depot, "*deposits") << when;
      EXPECT_LE(f.message.size(), 1024u) << when;
      EXPECT_NE(f.message.find("\"amount\" must be an int > 0"), std::string::npos) << f.message;
      EXPECT_TRUE(f.message.ends_with(" bytes more)")) << f.message;
    }
    EXPECT_EQ(BankStats(client, 0, 100).failure_page, all.failure_page) << when;  // the default
    proto::ModuleStats page = BankStats(client, 5, 7);
    EXPECT_EQ(page.failures, kFailed) << when;
    EXPECT_EQ(page.failure_page, std::vector<proto::TopologyFailure>(all.failure_page.begin() + 5,
                                                                     all.failure_page.begin() + 12))
        << when;
    EXPECT_EQ(BankStats(client, 20, 10).failure_page.size(), 4u) << when;
    proto::ModuleStats past_the_end = BankStats(client, kFailed, 10);
    EXPECT_EQ(past_the_end.failures, kFailed) << when;
    EXPECT_TRUE(past_the_end.failure_page.empty()) << when;
    ASSERT_CALL_OK(every_module, client, proto::StatsRequest{});
    // The record is where its failure says.
    const proto::TopologyFailure& f = all.failure_page[3];
    ASSERT_CALL_OK(
        read, client,
        (proto::ReadDepotRequest{"bank", "*deposits", f.partition, f.offset, f.offset + 1, 1}));
    const auto& records = std::get<proto::DepotRecords>(read.body).records;
    ASSERT_EQ(records.size(), 1u) << when;
    EXPECT_GT(records[0].value.Find(Value("account"))->as_string().size(), 1u << 20) << when;
  };
  {
    TestClient client = Connected();
    ASSERT_CALL_OK(deployed, client, DeployPath(BANK_MODULE));
    for (int i = 0; i < kFailed; i += 4) {
      proto::AppendRequest request{"bank", "*deposits", {}, proto::AckLevel::kProcessed};
      for (int j = i; j < i + 4; ++j) {
        request.records.push_back(Value::MapOf(
            {{"account", "acct" + std::to_string(j) + std::string(1 << 20, 'x')}, {"amount", 0}}));
      }
      ASSERT_CALL_OK(appended, client, request);
      for (const proto::AppendResult& r : std::get<proto::Appended>(appended.body).results) {
        ASSERT_TRUE(r.failure.has_value());
        EXPECT_EQ(r.failure->code, ErrorCode::kTopologyFailed);
        EXPECT_LT(r.failure->message.size(), 2048u);
      }
    }
    check(client, "before the restart");
  }
  StopServer();
  StartServer();
  TestClient client = Connected();
  check(client, "after the restart");
  StopServer();
}

// A batch with one record that does not match its depot's record schema is refused as a
// whole with SCHEMA_VIOLATION naming the record, the path, the expected type and the value;
// nothing of it enters the log. describe shows the schema.
TEST_F(ServerTest, RecordSchemaRefusesAMistypedBatchBeforeTheLog) {
  StartServer();
  TestClient client = Connected();
  ASSERT_CALL_OK(deployed, client, DeployPath(BANK_MODULE));
  auto deposit = [](const std::string& account, Value amount) {
    return Value::MapOf({{"account", account}, {"amount", std::move(amount)}});
  };
  Result<proto::Response> refused =
      client.Call(proto::AppendRequest{"bank",
                                       "*deposits",
                                       {deposit("a", 10), deposit("b", "ten"), deposit("c", 30)},
                                       proto::AckLevel::kAppended});
  ExpectError(refused, ErrorCode::kSchemaViolation,
              "*deposits.amount: expected int64, got string \"ten\"");
  ExpectError(refused, ErrorCode::kSchemaViolation, "record 1 of the batch of 3");
  ExpectError(refused, ErrorCode::kSchemaViolation, "no record of the batch was appended");
  ExpectError(client.Call(proto::AppendRequest{
                  "bank", "*transfers", {Value::MapOf({{"id", "t"}, {"from", "a"}, {"to", 3}})}}),
              ErrorCode::kSchemaViolation, "*transfers.to: expected string, got int 3");

  proto::ModuleStats stats = BankStats(client, 0, 0);
  for (const proto::DepotPartitionStats& d : stats.depots) {
    EXPECT_EQ(d.end_offset, 0) << d.depot << " partition " << d.partition;
  }
  EXPECT_EQ(stats.failures, 0);

  ASSERT_CALL_OK(good, client,
                 (proto::AppendRequest{"bank", "*deposits", {deposit("a", 10), deposit("c", 30)}}));
  for (const proto::AppendResult& r : std::get<proto::Appended>(good.body).results) {
    EXPECT_FALSE(r.failure.has_value()) << r.failure->message;
  }
  int64_t logged = 0;
  for (const proto::DepotPartitionStats& d : BankStats(client, 0, 0).depots) logged += d.end_offset;
  EXPECT_EQ(logged, 2);

  ASSERT_CALL_OK(described, client, proto::DescribeRequest{"bank"});
  const proto::ModuleInfo& info = std::get<proto::ModuleInfo>(described.body);
  ASSERT_EQ(info.depots.size(), 2u);
  EXPECT_EQ(info.depots[0].name, "*deposits");
  EXPECT_EQ(info.depots[0].record_schema_text, "record{account: string, amount: int64}");
  EXPECT_EQ(info.depots[0].record_schema,
            Value::MapOf({{"type", "record"},
                          {"fields", Value::MapOf({{"account", "string"}, {"amount", "int64"}})}}));
  StopServer();
}

TEST_F(ServerTest, HandshakeIsRequiredFirstAndVersionChecked) {
  StartServer();
  TestClient client;
  ASSERT_OK(client.Connect(server_->port()));
  ExpectError(client.Call(proto::ListModulesRequest{}), ErrorCode::kHandshakeRequired, "Hello");
  ASSERT_OK(client.Handshake());  // the connection stays usable
  ASSERT_CALL_OK(listed, client, proto::ListModulesRequest{});

  TestClient future;
  ASSERT_OK(future.Connect(server_->port()));
  ExpectError(future.Call(proto::Hello{99, "from the future"}), ErrorCode::kUnsupportedVersion,
              "99");
  EXPECT_TRUE(future.WaitForClose());
  StopServer();
}

TEST_F(ServerTest, PipelinedRequestsAreAllAnswered) {
  StartServer();
  TestClient client = Connected();
  DeployWordcount(client);
  std::set<uint64_t> ids;
  for (int i = 0; i < 500; ++i) {
    proto::Request request{client.NextId(), Sentences({"pipelined word"})};
    if (i % 5 == 0) request.body = CountOf("pipelined");
    ids.insert(request.id);
    ASSERT_OK(client.Send(request));
  }
  for (int i = 0; i < 500; ++i) {
    Result<proto::Response> r = client.Receive();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_FALSE(r->error.has_value()) << r->error->message;
    EXPECT_EQ(ids.erase(r->id), 1u) << "unexpected or repeated id " << r->id;
  }
  EXPECT_EQ(Count(client, "pipelined"), Value(400));
  StopServer();
}

// Requests still buffered behind the in-flight cap (default 256) when the client shuts
// down its sending side are answered too (docs/protocol.md, "When the server closes a connection").
TEST_F(ServerTest, EveryRequestSentBeforeEofIsAnswered) {
  StartServer();
  TestClient client = Connected();
  DeployWordcount(client);
  std::set<uint64_t> ids;
  for (int i = 0; i < 600; ++i) {
    proto::Request request{client.NextId(), CountOf("eof")};
    ids.insert(request.id);
    ASSERT_OK(client.Send(request));
  }
  client.ShutdownWrite();
  for (int i = 0; i < 600; ++i) {
    Result<proto::Response> r = client.Receive();
    ASSERT_TRUE(r.ok()) << "response " << i << ": " << r.status().ToString();
    EXPECT_EQ(ids.erase(r->id), 1u) << "unexpected or repeated id " << r->id;
  }
  EXPECT_TRUE(client.WaitForClose());
  StopServer();
}

// True when this test (and with it, the same tree's stratad: STRATA_SANITIZE applies to
// every target) is built with AddressSanitizer; gcc defines __SANITIZE_ADDRESS__ then.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif

// Sets an environment variable until destruction, then restores the previous value (or its
// absence). For the environment of a child started meanwhile: use it while this process
// runs no other thread.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// A client that sends read-heavy requests and never reads the answers: the server stops
// reading it (in-flight and queued-bytes caps), so its memory stays bounded, and it keeps
// answering other clients. The bound, 300 MiB of RSS growth, is the same in every build;
// with the caps raised out of the way the server grows by about 2 GB within the 4 s (1 GB
// under AddressSanitizer).
// Under AddressSanitizer, freed blocks wait in a quarantine of up to 256 MiB (the default)
// before they are reused, so the RSS grows by that much more although what the server
// holds stays bounded: this test's server runs with a 16 MiB quarantine instead
// (ASAN_OPTIONS, appended to any options already set), which still catches a use after
// free of recently freed blocks.
TEST_F(ServerTest, ClientThatNeverReadsCannotGrowServerMemory) {
  std::optional<ScopedEnv> asan_options;
  if (kAddressSanitizer) {
    const char* set = getenv("ASAN_OPTIONS");
    asan_options.emplace("ASAN_OPTIONS", set != nullptr && *set != '\0'
                                             ? std::string(set) + ":quarantine_size_mb=16"
                                             : std::string("quarantine_size_mb=16"));
  }
  StartServer();
  asan_options.reset();
  ASSERT_NO_FATAL_FAILURE(DeployWithBigRecords());
  const int64_t rss_before = server_->RssKib();
  ASSERT_GT(rss_before, 0);

  // Each request is ~60 bytes; each answer is every record of a partition (~128 KiB).
  TestClient hog;
  ASSERT_OK(hog.Connect(server_->port(), std::chrono::milliseconds(200)));
  ASSERT_OK(hog.Handshake());
  const std::string burst = ReadEveryPartitionBurst(hog);
  int64_t rss_max = rss_before;
  int64_t sent_bytes = 0;
  int blocked_sends = 0;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(4);
  TestClient other = Connected();
  while (std::chrono::steady_clock::now() < end) {
    if (hog.SendRaw(burst).ok()) {
      sent_bytes += static_cast<int64_t>(burst.size());
    } else {
      ++blocked_sends;  // the send timed out: the server stopped reading us
    }
    rss_max = std::max(rss_max, server_->RssKib());
    if (blocked_sends > 0 && blocked_sends % 5 == 1) {
      Result<proto::Response> stats = other.Call(proto::StatsRequest{});
      ASSERT_TRUE(stats.ok()) << stats.status().ToString();
      ASSERT_FALSE(stats->error.has_value());
    }
  }
  EXPECT_GT(blocked_sends, 0) << "sent " << sent_bytes << " bytes without backpressure";
  EXPECT_LT(rss_max - rss_before, 300 << 10)
      << "RSS grew from " << rss_before << " KiB to " << rss_max << " KiB";
  ASSERT_CALL_OK(served, other, CountOf("zzz"));
  hog.Close();  // else the shutdown waits for its write deadline
  StopServer();
}

// A client that sends requests with big answers and never reads: once the socket buffers
// are full the response write stalls, and --write-timeout closes that connection while
// the others are served.
TEST_F(ServerTest, StalledResponseWriteClosesAtTheWriteTimeout) {
  StartServer({"--write-timeout", "1s"});
  ASSERT_NO_FATAL_FAILURE(DeployWithBigRecords());
  TestClient hog;
  ASSERT_OK(hog.Connect(server_->port(), std::chrono::milliseconds(200)));
  ASSERT_OK(hog.Handshake());
  const std::string burst = ReadEveryPartitionBurst(hog);
  ASSERT_OK(hog.SendRaw(burst));
  const std::string closed = "a response write made no progress for 1s";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (ReadFile(log_).find(closed) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(ReadFile(log_).find(closed), std::string::npos) << ReadFile(log_);
  ExpectServerServes();
  StopServer();
}

TEST_F(ServerTest, FiveHundredConcurrentConnections) {
  constexpr int kConnections = 500;
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  const rlim_t wanted = 2 * kConnections + 200;  // both ends live in this test
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = std::min<rlim_t>(wanted, limit.rlim_max);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  }
  ASSERT_GE(limit.rlim_cur, wanted) << "the hard limit on open files is too low for this test";
  StartServer();  // inherits the raised limit
  {
    TestClient setup = Connected();
    DeployWordcount(setup);
    ASSERT_CALL_OK(appended, setup, Sentences({"many many clients"}));
  }
  std::vector<TestClient> clients(kConnections);
  for (TestClient& c : clients) ASSERT_OK(c.Connect(server_->port()));
  for (TestClient& c : clients) ASSERT_OK(c.Send({0, proto::Hello{1, "many"}}));
  for (TestClient& c : clients) {
    Result<proto::Response> welcome = c.Receive();
    ASSERT_TRUE(welcome.ok()) << welcome.status().ToString();
    ASSERT_TRUE(std::holds_alternative<proto::Welcome>(welcome->body));
  }
  for (TestClient& c : clients) ASSERT_OK(c.Send({1, CountOf("many")}));
  for (TestClient& c : clients) {
    Result<proto::Response> r = c.Receive();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_FALSE(r->error.has_value()) << r->error->message;
    EXPECT_EQ(std::get<proto::Selected>(r->body).values, std::vector<Value>{Value(2)});
  }
  ASSERT_CALL_OK(stats, clients[0], proto::StatsRequest{});
  EXPECT_EQ(std::get<proto::StatsResult>(stats.body).server.connections, kConnections);
  StopServer();
}

TEST_F(ServerTest, SecondServerOnTheSameDataDirectoryIsRefused) {
  StartServer();
  StratadProcess second;
  const std::string second_log = dir_ + "/second.log";
  EXPECT_FALSE(second.Start(data_dir_, second_log));
  const int status = second.Wait();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(ReadFile(second_log).find("another stratad is using " + data_dir_), std::string::npos)
      << ReadFile(second_log);
  ExpectServerServes();
  StopServer();
}

TEST_F(ServerTest, OutOfRangeCheckpointFlagsAreRefused) {
  const std::vector<std::pair<std::string, std::string>> bad = {{"--checkpoint-log-size", "3GB"},
                                                                {"--checkpoint-interval", "0"}};
  for (const auto& [flag, value] : bad) {
    StratadProcess refused;
    const std::string refused_log = dir_ + "/refused.log";
    EXPECT_FALSE(refused.Start(data_dir_, refused_log, {flag, value})) << flag << " " << value;
    const int status = refused.Wait();
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_NE(WEXITSTATUS(status), 0);
    EXPECT_NE(ReadFile(refused_log).find(flag), std::string::npos) << ReadFile(refused_log);
  }
  StartServer({"--checkpoint-log-size", "64MB", "--checkpoint-interval", "5min"});
  ExpectServerServes();
  StopServer();
}

TEST_F(ServerTest, ShutdownAnswersInFlightRequestsFirst) {
  StartServer();
  TestClient client = Connected();
  DeployWordcount(client);
  for (int i = 0; i < 200; ++i) ASSERT_OK(client.Send({client.NextId(), Sentences({"draining"})}));
  kill(server_->pid(), SIGTERM);
  int answered = 0;
  while (true) {
    Result<proto::Response> r = client.Receive();
    if (!r.ok()) break;  // closed after the last answer
    ASSERT_FALSE(r->error.has_value()) << r->error->message;
    ++answered;
  }
  const int status = server_->Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << ReadFile(log_);
  // Every request the server read was answered before it closed; what it had not read
  // yet is simply not processed. Read back what was acknowledged:
  StartServer();
  TestClient after = Connected();
  EXPECT_EQ(Count(after, "draining"), answered > 0 ? Value(answered) : Value());
  EXPECT_GT(answered, 0);
  StopServer();
}

// Requests the server has read but not started when SIGTERM arrives (buffered behind the
// in-flight cap) are answered SHUTTING_DOWN and not executed; the one in flight completes.
TEST_F(ServerTest, ShutdownRefusesRequestsNotStartedWithShuttingDown) {
  StartServer({"--max-in-flight", "1"});
  TestClient client = Connected();
  DeployWordcount(client);
  // 300 appends of about 100 bytes in one write, well inside the server's 64 KiB read
  // buffer: the server reads them at once and, one in flight at a time, starts them in
  // order, each waiting for its log flush and its processing.
  constexpr int kRequests = 300;
  std::string burst;
  std::vector<uint64_t> sent;
  for (int i = 0; i < kRequests; ++i) {
    const proto::Request request{client.NextId(), Sentences({"refused"})};
    sent.push_back(request.id);
    const std::string payload = proto::EncodeRequest(request);
    proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &burst);
  }
  ASSERT_OK(client.SendRaw(burst));
  Result<proto::Response> first = client.Receive();  // the server has read the burst
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_FALSE(first->error.has_value()) << first->error->message;
  kill(server_->pid(), SIGTERM);
  // The request in flight may be answered after the refusals: compare sets of ids.
  std::set<uint64_t> executed = {first->id};
  std::set<uint64_t> refused;
  while (true) {
    Result<proto::Response> r = client.Receive();
    if (!r.ok()) break;  // closed after the last answer
    if (!r->error.has_value()) {
      executed.insert(r->id);
      continue;
    }
    EXPECT_EQ(r->error->code, ErrorCode::kShuttingDown)
        << proto::ErrorCodeName(r->error->code) << ": " << r->error->message;
    EXPECT_NE(r->error->message.find("not executed"), std::string::npos) << r->error->message;
    refused.insert(r->id);
  }
  // Every request read is answered once; the executed ones are those started first. The
  // server may not have read the whole burst from its socket when the signal came (a loaded
  // machine delivers it in pieces): requests never read are never answered, so the
  // answered ones are a prefix of the burst.
  std::set<uint64_t> answered = executed;
  answered.insert(refused.begin(), refused.end());
  EXPECT_EQ(answered.size(), executed.size() + refused.size()) << "an id answered twice";
  ASSERT_FALSE(answered.empty());
  const std::set<uint64_t> prefix(sent.begin(),
                                  std::find(sent.begin(), sent.end(), *answered.rbegin()) + 1);
  EXPECT_EQ(answered, prefix) << "a request read before a later answered one got no answer";
  if (!refused.empty()) {
    EXPECT_LT(*executed.rbegin(), *refused.begin());
  }
  EXPECT_FALSE(refused.empty()) << "no request was answered SHUTTING_DOWN (did all " << kRequests
                                << " complete before the shutdown?)";
  const int status = server_->Wait();
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << "\n" << ReadFile(log_);
  // Exactly the appends answered without an error were executed.
  StartServer();
  TestClient after = Connected();
  EXPECT_EQ(Count(after, "refused"), Value(static_cast<int64_t>(executed.size())));
  StopServer();
}

// A module file that cannot be loaded is a bad deploy request, not a topology failure.
TEST_F(ServerTest, DeployOfAModuleWhoseDefineThrowsIsInvalidArgument) {
  StartServer();
  TestClient client = Connected();
  ExpectError(client.Call(DeployPath(THROWING_DEFINE_MODULE)), ErrorCode::kInvalidArgument,
              "its define function failed: define refuses: no configuration");
  ExpectError(client.Call(proto::DescribeRequest{"throwing_define"}), ErrorCode::kNotFound);
  StopServer();
}

TEST_F(ServerTest, ConfigFileIdleTimeoutAndDeployAtStart) {
  const std::string config = dir_ + "/stratad.toml";
  {
    std::ofstream out(config);
    out << "idle-timeout = \"1s\"\nmax-in-flight = 4\n";
  }
  StartServer({"--config", config, "--deploy", WORDCOUNT_MODULE});
  TestClient client;
  ASSERT_OK(client.Connect(server_->port()));
  proto::Hello hello;
  ASSERT_CALL_OK(welcome, client, hello);
  EXPECT_EQ(std::get<proto::Welcome>(welcome.body).max_in_flight, 4u);
  ASSERT_CALL_OK(described, client, proto::DescribeRequest{"wordcount"});
  EXPECT_TRUE(client.WaitForClose());
  // Closed because it was idle (the log says why), not for another reason.
  const std::string idle = "idle for 1s; closed";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (ReadFile(log_).find(idle) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_NE(ReadFile(log_).find(idle), std::string::npos) << ReadFile(log_);
  StopServer();

  // Deployed already: --deploy keeps it and the server starts.
  StartServer({"--deploy", WORDCOUNT_MODULE});
  ExpectServerServes();
  StopServer();
}

// Engine settings from a config file reach the engine: a failing step is tried
// max-step-attempts times, the storage's log files are log-file-size (WiredTiger
// preallocates each at that size), and the log's start line states every setting.
TEST_F(ServerTest, ConfigFileEngineSettingsTakeEffect) {
  const std::string config = dir_ + "/engine.toml";
  {
    std::ofstream out(config);
    out << "log-file-size = \"1MB\"\nmax-step-attempts = 2\ntask-threads = 3\n"
           "cache-size = \"64MB\"\n";
  }
  StartServer({"--config", config, "--deploy", BANK_MODULE});
  TestClient client = Connected();
  proto::AppendRequest refused_deposit{
      "bank", "*deposits", {Value::MapOf({{"account", "a"}, {"amount", 0}})}};
  ASSERT_CALL_OK(appended, client, refused_deposit);
  const auto& results = std::get<proto::Appended>(appended.body).results;
  ASSERT_EQ(results.size(), 1u);
  ASSERT_TRUE(results[0].failure.has_value());
  EXPECT_NE(results[0].failure->message.find("after 2 attempts"), std::string::npos)
      << results[0].failure->message;
  int log_files = 0;
  for (const fs::directory_entry& entry : fs::directory_iterator(data_dir_)) {
    if (entry.path().filename().string().rfind("WiredTigerLog.", 0) != 0) continue;
    ++log_files;
    EXPECT_EQ(entry.file_size(), 1u << 20) << entry.path();
  }
  EXPECT_GT(log_files, 0);
  StopServer();
  const std::string log = ReadFile(log_);
  EXPECT_NE(log.find("cache-size 64MB"), std::string::npos) << log;
  EXPECT_NE(log.find("task-threads 3,"), std::string::npos) << log;
}

// ---- Memory and time against slow and lying clients ----------------------------------------

// Raises this process's limit of open files (a server started afterwards inherits it) to
// at least `wanted`.
void RaiseOpenFileLimit(rlim_t wanted) {
  rlimit limit{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_cur < wanted) {
    limit.rlim_cur = std::min<rlim_t>(wanted, limit.rlim_max);
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  }
  ASSERT_GE(limit.rlim_cur, wanted) << "the hard limit on open files is too low for this test";
}

// A frame's 4-byte little-endian length prefix announcing `length` payload bytes.
std::string LengthPrefix(uint32_t length) {
  std::string prefix(4, '\0');
  for (int i = 0; i < 4; ++i) prefix[i] = static_cast<char>(length >> (8 * i));
  return prefix;
}

// "127.0.0.1:PORT" of the client's end of its connection, as the server names it.
std::string LocalAddress(const TestClient& client) {
  sockaddr_in address{};
  socklen_t size = sizeof address;
  if (getsockname(client.fd(), reinterpret_cast<sockaddr*>(&address), &size) != 0) return "?";
  return "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
}

// 300 connections that each announce a 16,000,000-byte frame and send 4 bytes of it: the
// server's read buffers grow with the bytes that arrived, not with the announced length,
// so its memory stays under the storage cache + 256 MiB (before the fix: 300 × 16 MB), and
// it serves a normal client meanwhile. Each lying connection is closed at its frame
// deadline, which also shows the server read every prefix.
TEST_F(ServerTest, LengthPrefixesAloneCannotGrowServerMemory) {
  constexpr int kConnections = 300;
  constexpr int64_t kCacheMib = 64;
  ASSERT_NO_FATAL_FAILURE(RaiseOpenFileLimit(2 * kConnections + 200));
  StartServer({"--cache-size", std::to_string(kCacheMib) + "MB", "--frame-timeout", "5s"});
  const int64_t bound_kib = (kCacheMib + 256) << 10;
  int64_t rss_max = server_->RssKib();
  ASSERT_GT(rss_max, 0);

  std::vector<TestClient> liars(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    ASSERT_OK(liars[i].Connect(server_->port()));
    ASSERT_OK(liars[i].SendRaw(LengthPrefix(16'000'000) + "abcd"));
    if (i % 10 == 9) {
      rss_max = std::max(rss_max, server_->RssKib());
      ASSERT_LT(rss_max, bound_kib) << "RSS after " << i + 1 << " lying connections";
    }
  }
  TestClient client = Connected();
  DeployWordcount(client);
  ASSERT_CALL_OK(appended, client, Sentences({"served meanwhile"}));
  EXPECT_EQ(Count(client, "meanwhile"), Value(1));
  for (TestClient& liar : liars) {
    rss_max = std::max(rss_max, server_->RssKib());
    EXPECT_TRUE(liar.WaitForClose());
  }
  EXPECT_LT(rss_max, bound_kib) << "RSS peaked at " << rss_max << " KiB";
  EXPECT_NE(ReadFile(log_).find(
                "was not complete 5s after its first byte arrived (8 of its 16000004 bytes"),
            std::string::npos)
      << ReadFile(log_);
  EXPECT_EQ(Count(client, "meanwhile"), Value(1));
  StopServer();
}

// A client sending a frame one byte at a time is active all along (the idle timeout never
// fires), but its frame is not complete within --frame-timeout: the server closes it and
// logs why, long before the frame would have been complete.
TEST_F(ServerTest, TricklingClientIsClosedAtTheFrameTimeout) {
  StartServer({"--frame-timeout", "1s"});
  TestClient trickler = Connected();
  const std::string frame = LengthPrefix(296) + std::string(296, 'x');  // 300 bytes, 50 ms each
  size_t sent = 0;
  bool closed = false;
  while (sent < frame.size() && !closed) {
    if (!trickler.SendRaw(frame.substr(sent, 1)).ok()) break;  // reset by the close
    ++sent;
    pollfd p{trickler.fd(), POLLIN, 0};
    closed = poll(&p, 1, 50) > 0;  // readable: end of file (nothing is answered)
  }
  EXPECT_LT(sent, frame.size()) << "the whole frame was sent without the server closing";
  EXPECT_TRUE(trickler.WaitForClose());
  EXPECT_NE(ReadFile(log_).find("a request frame was not complete 1s after its first byte arrived"),
            std::string::npos)
      << ReadFile(log_);
  ExpectServerServes();
  StopServer();
}

// Frames of 3 MiB whose first halves, sent by 8 clients, together need more than the
// server's 8 MiB for partial frames: a connection whose frame would go above it is
// answered OVERLOADED and closed, the others receive their frames whole.
TEST_F(ServerTest, PartialFramesAboveTheServerWideCapAreOverloaded) {
  StartServer({"--max-frame-size", "4MB", "--max-partial-frame-bytes", "8MB"});
  constexpr int kClients = 8;
  std::vector<TestClient> clients(kClients);
  std::vector<std::string> frames(kClients);
  std::vector<uint64_t> ids(kClients);
  for (int i = 0; i < kClients; ++i) {
    ASSERT_OK(clients[i].Connect(server_->port(), std::chrono::seconds(10)));
    ASSERT_OK(clients[i].Handshake());
    proto::AppendRequest append;  // of an unknown module: answered NOT_FOUND once received
    append.module = "nosuchmodule";
    append.depot = "*sentences";
    append.records.push_back(Value(std::string(3 << 20, static_cast<char>('a' + i))));
    ids[i] = clients[i].NextId();
    const std::string payload = proto::EncodeRequest(proto::Request{ids[i], append});
    proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(),
                       &frames[i]);
  }
  const size_t half = frames[0].size() / 2;
  for (int i = 0; i < kClients; ++i) (void)clients[i].SendRaw(frames[i].substr(0, half));
  // The server reads every first half unless it refuses the connection: some refusal must come.
  const std::string overloaded = "(--max-partial-frame-bytes), too few for more of this frame";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ReadFile(log_).find(overloaded) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  int received = 0;
  int refused = 0;
  for (int i = 0; i < kClients; ++i) {
    (void)clients[i].SendRaw(frames[i].substr(half));  // fails on a closed connection
    Result<proto::Response> r = clients[i].Receive();
    if (!r.ok()) {
      ++refused;  // closed before its OVERLOADED answer was read (unread bytes reset it)
    } else if (r->id == 0) {
      ExpectError(r, ErrorCode::kOverloaded, "--max-partial-frame-bytes");
      ++refused;
    } else {
      EXPECT_EQ(r->id, ids[i]);
      ExpectError(r, ErrorCode::kNotFound, "nosuchmodule");
      ++received;
    }
  }
  EXPECT_GE(received, 1);
  EXPECT_GE(refused, 1);
  EXPECT_NE(ReadFile(log_).find(overloaded), std::string::npos) << ReadFile(log_);
  ExpectServerServes();
  StopServer();
}

// A connection that received a large frame and then stops reading (the answer to it fills
// --max-queued-bytes because its client does not read) holds no partial frame: it gives the
// frame's memory back to the server-wide --max-partial-frame-bytes at once, so two such
// connections with 12 MiB frames do not make a third client's 12 MiB frame OVERLOADED.
TEST_F(ServerTest, PausedConnectionsHoldNoPartialFrameBudget) {
  StartServer({"--max-frame-size", "16MB", "--max-partial-frame-bytes", "32MB"});
  constexpr size_t kBig = 12 << 20;
  std::vector<TestClient> stalled(2);
  for (int i = 0; i < 2; ++i) {
    ASSERT_OK(stalled[i].Connect(server_->port(), std::chrono::seconds(10)));
    ASSERT_OK(stalled[i].Handshake());
    // A point read (answered as soon as it is parsed) of a module named by 12 MiB: its
    // NOT_FOUND answer names it, more than --max-queued-bytes and the socket buffers hold,
    // so the server stops reading this client right after the frame.
    proto::SelectRequest select = CountOf("word");
    select.module = std::string(kBig, static_cast<char>('a' + i));
    const std::string payload = proto::EncodeRequest(proto::Request{stalled[i].NextId(), select});
    std::string frame;
    proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &frame);
    ASSERT_OK(stalled[i].SendRaw(frame));
    // Its answer starts arriving: the frame was read and answered.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    int unread = 0;
    while ((ioctl(stalled[i].fd(), FIONREAD, &unread) != 0 || unread == 0) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_GT(unread, 0) << "no answer to the big frame of stalled client " << i;
  }
  ASSERT_NO_FATAL_FAILURE(ExpectBigFrameTaken(kBig));
  for (TestClient& c : stalled) c.Close();  // else the shutdown waits for their write deadline
  ExpectServerServes();
  StopServer();
}

// A connection failed for a bad frame gives its read buffer back to the server-wide budget
// at once, not when its pending answers are written: here its earlier 12 MiB answer is
// stalled (its client does not read), and a second client's 12 MiB frame is still taken.
TEST_F(ServerTest, FailedConnectionHoldsNoPartialFrameBudget) {
  StartServer({"--max-frame-size", "16MB", "--max-partial-frame-bytes", "16MB",
               "--max-queued-bytes", "64MB"});
  constexpr size_t kBig = 12 << 20;
  TestClient failed;
  ASSERT_OK(failed.Connect(server_->port(), std::chrono::seconds(10)));
  ASSERT_OK(failed.Handshake());
  // A point read whose NOT_FOUND answer names a 12 MiB module: its write stalls.
  proto::SelectRequest select = CountOf("word");
  select.module = std::string(kBig, 'a');
  const std::string payload = proto::EncodeRequest(proto::Request{failed.NextId(), select});
  std::string bytes;
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &bytes);
  // Then a 12 MiB frame that is no request at all: answered BAD_FRAME, and closed once the
  // answers before it are written.
  const std::string garbage(kBig, '\xff');
  proto::AppendFrame(reinterpret_cast<const uint8_t*>(garbage.data()), garbage.size(), &bytes);
  ASSERT_OK(failed.SendRaw(bytes));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ReadFile(log_).find("undecodable request") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_NE(ReadFile(log_).find("undecodable request"), std::string::npos) << ReadFile(log_);

  ASSERT_NO_FATAL_FAILURE(ExpectBigFrameTaken(kBig));
  failed.Close();  // else the shutdown waits for its write deadline
  ExpectServerServes();
  StopServer();
}

// ---- Start-up and operations ------------------------------------------------------------

// --listen on a port in use fails before --deploy writes anything: the data directory
// holds no module afterwards.
TEST_F(ServerTest, TakenListenPortFailsBeforeDeployCommitsAnything) {
  const int taken = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(taken, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof address;
  ASSERT_EQ(bind(taken, reinterpret_cast<sockaddr*>(&address), size), 0);
  ASSERT_EQ(listen(taken, 1), 0);
  ASSERT_EQ(getsockname(taken, reinterpret_cast<sockaddr*>(&address), &size), 0);
  const uint16_t port = ntohs(address.sin_port);

  StratadProcess refused;
  EXPECT_FALSE(refused.Start(data_dir_, log_, {"--deploy", WORDCOUNT_MODULE}, port));
  const int status = refused.Wait();
  close(taken);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_NE(WEXITSTATUS(status), 0);
  const std::string log = ReadFile(log_);
  EXPECT_NE(log.find("cannot listen on 127.0.0.1:" + std::to_string(port)), std::string::npos)
      << log;
  EXPECT_EQ(log.find("deployed module"), std::string::npos) << log;

  StartServer();
  TestClient client = Connected();
  ASSERT_CALL_OK(listed, client, proto::ListModulesRequest{});
  EXPECT_TRUE(std::get<proto::ModuleList>(listed.body).modules.empty());
  StopServer();
}

// A data directory that cannot be used is reported with its real cause, not as one that
// "cannot be created".
TEST_F(ServerTest, UnusableDataDirectoryIsReportedWithItsCause) {
  {
    std::ofstream file(data_dir_);
    file << "a file where the data directory should be\n";
  }
  StratadProcess on_file;
  EXPECT_FALSE(on_file.Start(data_dir_, log_));
  int status = on_file.Wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_NE(WEXITSTATUS(status), 0);
  std::string log = ReadFile(log_);
  EXPECT_NE(log.find("data directory " + data_dir_ + " is not a directory"), std::string::npos)
      << log;
  EXPECT_EQ(log.find("cannot create"), std::string::npos) << log;

  // A directory without permissions: root ignores them, so a test running as root starts
  // the server as user nobody (setpriv).
  const std::string locked = dir_ + "/locked";
  ASSERT_TRUE(fs::create_directory(locked));
  fs::permissions(locked, fs::perms::none);
  fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  StratadProcess denied;
  if (geteuid() == 0) {
    if (!fs::exists("/usr/bin/setpriv")) GTEST_SKIP() << "running as root without /usr/bin/setpriv";
    denied.set_wrapper({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  }
  const std::string denied_log = dir_ + "/denied.log";
  EXPECT_FALSE(denied.Start(locked, denied_log));
  status = denied.Wait();
  fs::permissions(locked, fs::perms::owner_all);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_NE(WEXITSTATUS(status), 0);
  log = ReadFile(denied_log);
  EXPECT_NE(log.find("cannot use data directory " + locked + ": Permission denied"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("cannot create"), std::string::npos) << log;
}

// Deploy and destroy over the protocol are logged with the module, its partitions, the
// client and the outcome (before the response is sent).
TEST_F(ServerTest, DeployAndDestroyAreLoggedWithClientAndOutcome) {
  StartServer();
  TestClient client = Connected();
  const std::string peer = LocalAddress(client);
  DeployWordcount(client);
  ExpectError(client.Call(DeployPath(WORDCOUNT_MODULE)), ErrorCode::kAlreadyExists);
  ExpectError(client.Call(proto::DestroyRequest{"wordcount", "nope"}),
              ErrorCode::kConfirmationRequired);
  ASSERT_CALL_OK(destroyed, client, (proto::DestroyRequest{"wordcount", "wordcount"}));
  const std::string log = ReadFile(log_);
  const std::string path = WORDCOUNT_MODULE;
  for (const std::string& line :
       {"INFO deployed module wordcount (8 partitions) from path " + path + " for " + peer,
        "WARN deploy from path " + path + " (8 partitions) by " + peer +
            " failed: ALREADY_EXISTS: ",
        "WARN destroy of module wordcount by " + peer + " failed: CONFIRMATION_REQUIRED: ",
        "INFO destroyed module wordcount and its data for " + peer}) {
    EXPECT_NE(log.find(line), std::string::npos) << "no line \"" << line << "\" in\n" << log;
  }
  StopServer();
}

}  // namespace
}  // namespace strata::server_test
