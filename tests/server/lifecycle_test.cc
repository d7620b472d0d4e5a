// Update and Recompute over the wire (docs/protocol.md; the rules are docs/modules.md,
// "Changing a deployed module"): a real stratad on loopback and the test module "evolve" in
// its versions (engine/runtime/testdata/evolve_module.cc): v1 *events -> $$totals (+n) and
// *extra -> $$extra_seen; v2 adds 2n per event, a new view $$counts (backfilled) and
// *notes; v3 drops *extra; v4 changes $$totals incompatibly; v5 widens it; v6 does not load.
#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "strata/path.h"
#include "strata/protocol/frame.h"
#include "strata/protocol/messages.h"
#include "stratad_test.h"
#include "test_client.h"

namespace strata::server_test {
namespace {

namespace proto = protocol;
using proto::ErrorCode;

// The response of a successful call, or a test failure.
#define ASSERT_CALL_OK(lhs, client, body)                                                         \
  ::strata::Result<proto::Response> lhs##_result = (client).Call(body);                           \
  ASSERT_TRUE(lhs##_result.ok()) << lhs##_result.status().ToString();                             \
  ASSERT_FALSE(lhs##_result->error.has_value())                                                   \
      << proto::ErrorCodeName(lhs##_result->error->code) << ": " << lhs##_result->error->message; \
  proto::Response lhs = std::move(lhs##_result).value()

void ExpectError(const Result<proto::Response>& response, ErrorCode code,
                 const std::vector<std::string>& words = {}) {
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ASSERT_TRUE(response->error.has_value()) << "expected " << proto::ErrorCodeName(code);
  EXPECT_EQ(response->error->code, code)
      << proto::ErrorCodeName(response->error->code) << ": " << response->error->message;
  for (const std::string& word : words) {
    EXPECT_NE(response->error->message.find(word), std::string::npos)
        << "no '" << word << "' in: " << response->error->message;
  }
}

std::string FileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

proto::UpdateRequest UpdateFromPath(const std::string& path, std::vector<std::string> drop = {}) {
  proto::UpdateRequest request;
  request.path = path;
  request.drop = std::move(drop);
  return request;
}

proto::UpdateRequest UpdateFromBytes(const std::string& path) {
  proto::UpdateRequest request;
  request.so_bytes = FileBytes(path);
  return request;
}

std::set<std::string> AsSet(const std::vector<std::string>& names) {
  return std::set<std::string>(names.begin(), names.end());
}

template <typename T>
std::set<std::string> NamesOf(const std::vector<T>& items) {
  std::set<std::string> out;
  for (const T& item : items) out.insert(item.name);
  return out;
}

constexpr int kKeys = 10;
std::string KeyName(int k) { return "k" + std::to_string(k); }

class ServerLifecycleTest : public StratadTest {
 protected:
  ServerLifecycleTest() : StratadTest("stratad_lifecycle_test_") {}

  void SetUp() override {
    StartServer();
    client_ = ConnectedTestClient(server_->port());
  }

  void DeployV1() {
    proto::DeployRequest deploy;
    deploy.path = EVOLVE_V1;
    deploy.partitions = 4;
    ASSERT_CALL_OK(deployed, client_, deploy);
    const auto& info = std::get<proto::ModuleInfo>(deployed.body);
    ASSERT_EQ(info.name, "evolve");
    EXPECT_EQ(info.version, 1);
  }

  // Appends `rounds` events on every key (event i of key k has n = i + 1), acknowledged
  // once processed; returns the sum of n per key.
  std::map<std::string, int64_t> AppendEvents(int rounds) {
    proto::AppendRequest append;
    append.module = "evolve";
    append.depot = "*events";
    std::map<std::string, int64_t> sums;
    for (int i = 0; i < rounds; ++i) {
      for (int k = 0; k < kKeys; ++k) {
        append.records.push_back(Value::MapOf({{"k", KeyName(k)}, {"n", i + 1}}));
        sums[KeyName(k)] += i + 1;
      }
    }
    Result<proto::Response> r = client_.Call(append);
    EXPECT_TRUE(r.ok() && !r->error) << (r.ok() ? r->error->message : r.status().ToString());
    return sums;
  }

  // Every key's value in `pstate` (nil where it has none).
  std::map<std::string, Value> ViewOf(const std::string& pstate) {
    std::map<std::string, Value> view;
    for (int k = 0; k < kKeys; ++k) {
      proto::SelectRequest select;
      select.module = "evolve";
      select.pstate = pstate;
      select.path = Path().Key(KeyName(k)).ToValue();
      Result<proto::Response> r = client_.Call(select);
      EXPECT_TRUE(r.ok() && !r->error) << (r.ok() ? r->error->message : r.status().ToString());
      if (!r.ok() || r->error) continue;
      const auto& values = std::get<proto::Selected>(r->body).values;
      view[KeyName(k)] = values.empty() ? Value() : values[0];
    }
    return view;
  }

  proto::ModuleInfo Describe() {
    Result<proto::Response> r = client_.Call(proto::DescribeRequest{"evolve"});
    EXPECT_TRUE(r.ok() && !r->error) << (r.ok() ? r->error->message : r.status().ToString());
    if (!r.ok() || r->error) return {};
    return std::get<proto::ModuleInfo>(r->body);
  }

  // Polls stats until the module has no rebuild running (a backfill or a recompute), checking
  // every progress seen on the way; a test failure after 120 s.
  void WaitRebuildsDone(const std::set<std::string>& allowed_kinds = {"backfill", "recompute"}) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (true) {
      proto::StatsRequest stats;
      stats.module = "evolve";
      stats.failures_limit = 0;
      ASSERT_CALL_OK(answered, client_, stats);
      const auto& modules = std::get<proto::StatsResult>(answered.body).modules;
      ASSERT_EQ(modules.size(), 1u);
      if (modules[0].rebuilds.empty()) return;
      for (const proto::RebuildProgress& r : modules[0].rebuilds) {
        EXPECT_TRUE(allowed_kinds.count(r.kind)) << "rebuild kind " << r.kind;
        EXPECT_FALSE(r.names.empty()) << r.kind;
        EXPECT_GE(r.records_done, 0) << r.kind;
        EXPECT_GE(r.records_total, 0) << r.kind;
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "a rebuild still runs after 120 s";
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  int64_t EventRecords() {
    proto::StatsRequest stats;
    stats.module = "evolve";
    stats.failures_limit = 0;
    Result<proto::Response> r = client_.Call(stats);
    EXPECT_TRUE(r.ok() && !r->error);
    if (!r.ok() || r->error) return -1;
    int64_t records = 0;
    for (const auto& d : std::get<proto::StatsResult>(r->body).modules.at(0).depots) {
      if (d.depot == "*events") records += d.end_offset - d.start_offset;
    }
    return records;
  }

  TestClient client_;
};

TEST_F(ServerLifecycleTest, UpdateFromBytesKeepsDataRunsNewCodeAndBackfillsTheNewView) {
  DeployV1();
  std::map<std::string, int64_t> sums = AppendEvents(4);
  const std::map<std::string, Value> totals_v1 = ViewOf("$$totals");
  for (const auto& [k, sum] : sums) EXPECT_EQ(totals_v1.at(k), Value(sum)) << k;

  ASSERT_CALL_OK(response, client_, UpdateFromBytes(EVOLVE_V2));
  const auto& updated = std::get<proto::Updated>(response.body);
  EXPECT_EQ(updated.version, 2);
  EXPECT_EQ(updated.module.name, "evolve");
  EXPECT_EQ(updated.module.version, 2);
  EXPECT_EQ(updated.module.partitions, 4);
  EXPECT_EQ(AsSet(updated.created), (std::set<std::string>{"*notes", "$$counts"}));
  EXPECT_EQ(updated.backfilling, std::vector<std::string>{"counts"});
  EXPECT_TRUE(updated.dropped.empty());
  EXPECT_TRUE(updated.widened.empty());
  EXPECT_GE(updated.pause_us, 0);

  const proto::ModuleInfo info = Describe();
  EXPECT_EQ(info.version, 2);
  EXPECT_EQ(NamesOf(info.pstates), (std::set<std::string>{"$$totals", "$$extra_seen", "$$counts"}));
  EXPECT_EQ(NamesOf(info.topologies), (std::set<std::string>{"totals", "extra", "counts"}));
  // Reads keep working across the update, and the old values are there.
  EXPECT_EQ(ViewOf("$$totals"), totals_v1);

  // New records run the new code (2n); the new view counts old and new records.
  AppendEvents(1);
  WaitRebuildsDone();
  const std::map<std::string, Value> totals = ViewOf("$$totals");
  const std::map<std::string, Value> counts = ViewOf("$$counts");
  for (int k = 0; k < kKeys; ++k) {
    EXPECT_EQ(totals.at(KeyName(k)), Value(sums[KeyName(k)] + 2)) << KeyName(k);
    EXPECT_EQ(counts.at(KeyName(k)), Value(5)) << KeyName(k);
  }
  EXPECT_EQ(EventRecords(), 5 * kKeys);
}

TEST_F(ServerLifecycleTest, UpdateFromServerPathAndAWideningSchemaChange) {
  DeployV1();
  AppendEvents(2);
  const std::map<std::string, Value> totals_v1 = ViewOf("$$totals");
  ASSERT_CALL_OK(v2, client_, UpdateFromPath(EVOLVE_V2));
  EXPECT_EQ(std::get<proto::Updated>(v2.body).version, 2);

  ASSERT_CALL_OK(v5, client_, UpdateFromPath(EVOLVE_V5));
  const auto& updated = std::get<proto::Updated>(v5.body);
  EXPECT_EQ(updated.version, 3);
  EXPECT_EQ(updated.widened, std::vector<std::string>{"$$totals"});
  EXPECT_TRUE(updated.created.empty());
  EXPECT_TRUE(updated.backfilling.empty());
  EXPECT_EQ(Describe().version, 3);
  WaitRebuildsDone();
  EXPECT_EQ(ViewOf("$$totals"), totals_v1);
}

// partitions=N with the running build: every record moves, the views are recomputed from
// them, and the module then has N partitions.
TEST_F(ServerLifecycleTest, UpdateWithPartitionsRescales) {
  DeployV1();
  AppendEvents(3);
  const std::map<std::string, Value> totals = ViewOf("$$totals");
  proto::UpdateRequest rescale = UpdateFromPath(EVOLVE_V1);
  rescale.partitions = 7;
  ASSERT_CALL_OK(response, client_, rescale);
  const auto& updated = std::get<proto::Updated>(response.body);
  EXPECT_EQ(updated.version, 2);
  EXPECT_EQ(updated.module.partitions, 7);
  EXPECT_EQ(Describe().partitions, 7);
  WaitRebuildsDone();
  EXPECT_EQ(ViewOf("$$totals"), totals);
  EXPECT_EQ(EventRecords(), 3 * kKeys);
}

TEST_F(ServerLifecycleTest, UpdateDroppingNamesIsRefusedUntilTheyAreListed) {
  DeployV1();
  AppendEvents(1);
  ExpectError(client_.Call(UpdateFromPath(EVOLVE_V3)), ErrorCode::kInvalidArgument,
              {"*extra", "$$extra_seen", "extra"});
  proto::ModuleInfo info = Describe();
  EXPECT_EQ(info.version, 1);
  EXPECT_TRUE(NamesOf(info.depots).count("*extra"));

  // A partial list is refused too, naming what is still missing.
  ExpectError(client_.Call(UpdateFromPath(EVOLVE_V3, {"*extra"})), ErrorCode::kInvalidArgument,
              {"$$extra_seen"});
  EXPECT_EQ(Describe().version, 1);

  ASSERT_CALL_OK(response, client_, UpdateFromPath(EVOLVE_V3, {"*extra", "$$extra_seen", "extra"}));
  const auto& updated = std::get<proto::Updated>(response.body);
  EXPECT_EQ(updated.version, 2);
  EXPECT_EQ(AsSet(updated.dropped), (std::set<std::string>{"*extra", "$$extra_seen", "extra"}));
  info = Describe();
  EXPECT_FALSE(NamesOf(info.depots).count("*extra"));
  EXPECT_FALSE(NamesOf(info.pstates).count("$$extra_seen"));
  EXPECT_FALSE(NamesOf(info.topologies).count("extra"));
}

TEST_F(ServerLifecycleTest, BuildsThatCannotReplaceTheModuleAreRefusedAndV1KeepsServing) {
  DeployV1();
  std::map<std::string, int64_t> sums = AppendEvents(2);
  // v6's define function throws; v4 changes $$totals' values from int64 to string.
  ExpectError(client_.Call(UpdateFromBytes(EVOLVE_V6)), ErrorCode::kInvalidArgument,
              {"evolve version 6 cannot define itself"});
  ExpectError(client_.Call(UpdateFromPath(EVOLVE_V4)), ErrorCode::kInvalidArgument, {"$$totals"});
  // Another module's build updates that module, which is not deployed.
  ExpectError(client_.Call(UpdateFromPath(WORDCOUNT_MODULE)), ErrorCode::kNotFound, {"wordcount"});
  ExpectError(client_.Call(UpdateFromPath(dir_ + "/no-such-module.so")), ErrorCode::kNotFound,
              {"no-such-module.so"});

  EXPECT_EQ(Describe().version, 1);
  std::map<std::string, int64_t> more = AppendEvents(1);  // v1 code: +n
  const std::map<std::string, Value> totals = ViewOf("$$totals");
  for (const auto& [k, sum] : sums) EXPECT_EQ(totals.at(k), Value(sum + more[k])) << k;
}

TEST_F(ServerLifecycleTest, RecomputeRebuildsAViewEqualToTheLiveOne) {
  DeployV1();
  for (int i = 0; i < 10; ++i) AppendEvents(20);
  const std::map<std::string, Value> before = ViewOf("$$totals");

  // The PState's "$$" is optional on the wire; the answer names it with it.
  ASSERT_CALL_OK(response, client_, (proto::RecomputeRequest{"evolve", {"totals"}}));
  EXPECT_EQ(std::get<proto::RecomputeStarted>(response.body),
            (proto::RecomputeStarted{"evolve", {"$$totals"}}));
  // Reads are served while it runs.
  EXPECT_EQ(ViewOf("$$totals"), before);
  WaitRebuildsDone({"recompute"});
  EXPECT_EQ(ViewOf("$$totals"), before);
  EXPECT_EQ(Describe().version, 1);
}

// While a recompute runs, a second one is ALREADY_EXISTS and an update OVERLOADED. 100,000
// events make the rebuild take far longer than the few milliseconds between the requests,
// which are sent together.
TEST_F(ServerLifecycleTest, OneRebuildAtATime) {
  DeployV1();
  for (int batch = 0; batch < 20; ++batch) {
    proto::AppendRequest append;
    append.module = "evolve";
    append.depot = "*events";
    append.ack = proto::AckLevel::kAppended;
    for (int i = 0; i < 5000; ++i) {
      append.records.push_back(Value::MapOf({{"k", KeyName(i % kKeys)}, {"n", 1}}));
    }
    ASSERT_CALL_OK(appended, client_, append);
  }
  std::string burst;
  for (const char* pstate : {"$$totals", "$$extra_seen"}) {
    const std::string payload = proto::EncodeRequest(
        proto::Request{client_.NextId(), proto::RecomputeRequest{"evolve", {pstate}}});
    proto::AppendFrame(reinterpret_cast<const uint8_t*>(payload.data()), payload.size(), &burst);
  }
  ASSERT_TRUE(client_.SendRaw(burst).ok());
  int started = 0, refused = 0;
  for (int i = 0; i < 2; ++i) {
    Result<proto::Response> r = client_.Receive();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    if (!r->error) {
      ++started;
      continue;
    }
    ++refused;
    EXPECT_EQ(r->error->code, ErrorCode::kAlreadyExists) << r->error->message;
    EXPECT_NE(r->error->message.find("is running"), std::string::npos) << r->error->message;
  }
  EXPECT_EQ(started, 1);
  EXPECT_EQ(refused, 1);
  ExpectError(client_.Call(UpdateFromPath(EVOLVE_V2)), ErrorCode::kOverloaded,
              {"recompute of module evolve"});
  WaitRebuildsDone({"recompute"});
  EXPECT_EQ(Describe().version, 1);
  const std::map<std::string, Value> totals = ViewOf("$$totals");
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(totals.at(KeyName(k)), Value(10000)) << KeyName(k);
}

TEST_F(ServerLifecycleTest, RecomputeOfUnknownNamesIsRefused) {
  DeployV1();
  ExpectError(client_.Call(proto::RecomputeRequest{"evolve", {"$$nope"}}), ErrorCode::kNotFound,
              {"$$nope"});
  ExpectError(client_.Call(proto::RecomputeRequest{"nomodule", {"$$totals"}}), ErrorCode::kNotFound,
              {"nomodule"});
  WaitRebuildsDone();
}

// What the protocol refuses before the engine sees it: each is answered with the request's
// id and the connection keeps serving.
TEST_F(ServerLifecycleTest, MalformedUpdateAndRecomputeRequestsAreRefused) {
  proto::UpdateRequest neither;
  ExpectError(client_.Call(neither), ErrorCode::kInvalidArgument,
              {"UpdateRequest needs one of path and so_bytes, has neither"});
  proto::UpdateRequest both = UpdateFromPath(EVOLVE_V2);
  both.so_bytes = "ELF";
  ExpectError(client_.Call(both), ErrorCode::kInvalidArgument, {"has both"});
  for (int partitions : {-1, 1025}) {
    proto::UpdateRequest rescale = UpdateFromPath(EVOLVE_V2);
    rescale.partitions = partitions;
    ExpectError(client_.Call(rescale), ErrorCode::kInvalidArgument,
                {"UpdateRequest.partitions " + std::to_string(partitions)});
  }
  ExpectError(client_.Call(UpdateFromPath(EVOLVE_V2, {"*old", ""})), ErrorCode::kInvalidArgument,
              {"UpdateRequest.drop[1]"});
  ExpectError(client_.Call(proto::RecomputeRequest{"evolve", {}}), ErrorCode::kInvalidArgument,
              {"RecomputeRequest.pstates is empty"});
  ExpectError(client_.Call(proto::RecomputeRequest{"", {"$$totals"}}), ErrorCode::kInvalidArgument,
              {"RecomputeRequest.module"});
  ASSERT_CALL_OK(listed, client_, proto::ListModulesRequest{});
  EXPECT_TRUE(std::get<proto::ModuleList>(listed.body).modules.empty());
}

}  // namespace
}  // namespace strata::server_test
