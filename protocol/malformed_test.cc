// DecodeRequest on untrusted bytes: random, truncated, mutated, and well-formed
// FlatBuffers that break the protocol's rules (built here with the generated code, which
// the library's users never see). Each gets the documented error code and, once the id is
// readable, the id.
#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "strata/protocol/messages.h"
#include "strata/testing/test_seed.h"
#include "strata/value_codec.h"
#include "strata_generated.h"
#include "testing/sample_messages.h"

namespace strata::protocol {
namespace {

namespace fb = flatbuffers;
namespace w = strata::wire;

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::string Finish(fb::FlatBufferBuilder& b, uint64_t id, w::RequestBody type,
                   fb::Offset<void> body) {
  b.Finish(w::CreateRequest(b, id, type, body));
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

// The error DecodeRequest gives for `bytes`; a test failure if it accepts them.
RequestError RejectionOf(const std::string& bytes, const DecodeLimits& limits = {}) {
  auto decoded = DecodeRequest(Bytes(bytes), bytes.size(), limits);
  if (std::holds_alternative<Request>(decoded)) {
    ADD_FAILURE() << "request accepted";
    return {};
  }
  return std::get<RequestError>(decoded);
}

void ExpectInvalid(const std::string& bytes, uint64_t id, std::string_view mention) {
  RequestError e = RejectionOf(bytes);
  EXPECT_EQ(e.error.code, ErrorCode::kInvalidArgument) << e.error.message;
  EXPECT_EQ(e.id, id);
  EXPECT_NE(e.error.message.find(mention), std::string::npos)
      << "message \"" << e.error.message << "\" does not mention \"" << mention << "\"";
}

// An AppendRequest whose records are the given raw byte strings (null: no data field).
std::string AppendWithRecords(uint64_t id, const std::vector<const std::string*>& records,
                              const char* module = "m", const char* depot = "*d",
                              w::AckLevel ack = w::AckLevel::PROCESSED) {
  fb::FlatBufferBuilder b;
  std::vector<fb::Offset<w::ValueBytes>> offsets;
  for (const std::string* r : records) {
    fb::Offset<fb::Vector<uint8_t>> data;
    if (r != nullptr) data = b.CreateVector(Bytes(*r), r->size());
    offsets.push_back(w::CreateValueBytes(b, data));
  }
  auto body = w::CreateAppendRequestDirect(b, module, depot, &offsets, ack);
  return Finish(b, id, w::RequestBody::AppendRequest, body.Union());
}

std::string Encoded(const Value& v) {
  std::vector<uint8_t> bytes = EncodeValue(v);
  return std::string(bytes.begin(), bytes.end());
}

TEST(MalformedRequestTest, TooShortForARootOffset) {
  for (std::string bytes : {std::string(), std::string("\x04"), std::string("\x04\x00\x00", 3)}) {
    RequestError e = RejectionOf(bytes);
    EXPECT_EQ(e.error.code, ErrorCode::kBadFrame);
    EXPECT_FALSE(e.id.has_value());
  }
}

TEST(MalformedRequestTest, RandomBytesAreRejectedOrRoundTrip) {
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 20000; ++i) {
    std::string bytes(rng() % 200, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
    if (const auto* e = std::get_if<RequestError>(&decoded)) {
      EXPECT_TRUE(e->error.code == ErrorCode::kBadFrame ||
                  e->error.code == ErrorCode::kInvalidArgument ||
                  e->error.code == ErrorCode::kUnsupported)
          << ErrorCodeName(e->error.code);
      EXPECT_FALSE(e->error.message.empty());
      if (e->error.code != ErrorCode::kBadFrame) {
        EXPECT_TRUE(e->id.has_value());
      }
      continue;
    }
    const Request& r = std::get<Request>(decoded);
    std::string again = EncodeRequest(r);
    auto redecoded = DecodeRequest(Bytes(again), again.size());
    ASSERT_TRUE(std::holds_alternative<Request>(redecoded));
    EXPECT_TRUE(std::get<Request>(redecoded) == r);
  }
}

// The builder writes children first, at the end of the buffer, so a cut loses data that
// some offset points to. Only alignment padding after a string's NUL may be cut without
// loss; the request then decodes unchanged.
TEST(MalformedRequestTest, EveryTruncationOfEverySampleIsABadFrameOrLosesOnlyPadding) {
  for (const auto& [name, request] : testing::SampleRequests()) {
    const std::string bytes = EncodeRequest(request);
    size_t rejected = 0;
    for (size_t size = 0; size < bytes.size(); ++size) {
      auto decoded = DecodeRequest(Bytes(bytes), size);
      if (const auto* r = std::get_if<Request>(&decoded)) {
        EXPECT_GE(size + 3, bytes.size()) << name << " truncated to " << size;
        EXPECT_TRUE(*r == request) << name << " truncated to " << size;
        continue;
      }
      ++rejected;
      EXPECT_EQ(std::get<RequestError>(decoded).error.code, ErrorCode::kBadFrame)
          << name << " truncated to " << size;
    }
    EXPECT_GE(rejected + 3, bytes.size()) << name;
  }
}

TEST(MalformedRequestTest, MutatedSamplesNeverCrashAndAcceptedOnesRoundTrip) {
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const auto samples = testing::SampleRequests();
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = EncodeRequest(samples[rng() % samples.size()].request);
    for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
    if (const auto* r = std::get_if<Request>(&decoded)) {
      ++accepted;
      std::string again = EncodeRequest(*r);
      auto redecoded = DecodeRequest(Bytes(again), again.size());
      ASSERT_TRUE(std::holds_alternative<Request>(redecoded));
      EXPECT_TRUE(std::get<Request>(redecoded) == *r);
    }
  }
  // Flipping a bit of a string or a value's payload keeps the request valid.
  EXPECT_GT(accepted, 0);
}

TEST(MalformedRequestTest, IdIsReportedWhenOnlyTheBodyFailsVerification) {
  // The union says AppendRequest, the table is a Hello: its protocol_version (1) read as
  // the module's offset points into the middle of the table.
  fb::FlatBufferBuilder b;
  auto hello = w::CreateHelloDirect(b, 1, "client");
  std::string bytes = Finish(b, 4242, w::RequestBody::AppendRequest, hello.Union());
  RequestError e = RejectionOf(bytes);
  EXPECT_EQ(e.error.code, ErrorCode::kBadFrame) << e.error.message;
  EXPECT_EQ(e.id, 4242u);
}

TEST(MalformedRequestTest, NoIdWhenTheRootOffsetIsOutOfBounds) {
  std::string bytes = EncodeRequest({77, ListModulesRequest{}});
  bytes[0] = static_cast<char>(0xf0);
  bytes[1] = static_cast<char>(0xff);
  RequestError e = RejectionOf(bytes);
  EXPECT_EQ(e.error.code, ErrorCode::kBadFrame);
  EXPECT_FALSE(e.id.has_value());
}

TEST(MalformedRequestTest, WrongUnionTypeWithCompatibleLayoutFailsOnMissingFields) {
  // A ListModulesRequest table (no fields) declared as a DescribeRequest.
  fb::FlatBufferBuilder b;
  auto list = w::CreateListModulesRequest(b);
  ExpectInvalid(Finish(b, 5, w::RequestBody::DescribeRequest, list.Union()), 5,
                "DescribeRequest.module is missing or empty");
}

TEST(MalformedRequestTest, UnknownUnionMemberIsUnsupported) {
  fb::FlatBufferBuilder b;
  auto list = w::CreateListModulesRequest(b);
  std::string bytes = Finish(b, 99, static_cast<w::RequestBody>(200), list.Union());
  RequestError e = RejectionOf(bytes);
  EXPECT_EQ(e.error.code, ErrorCode::kUnsupported) << e.error.message;
  EXPECT_EQ(e.id, 99u);
  EXPECT_NE(e.error.message.find("200"), std::string::npos) << e.error.message;
}

TEST(MalformedRequestTest, NoBodyIsInvalid) {
  fb::FlatBufferBuilder b;
  ExpectInvalid(Finish(b, 6, w::RequestBody::NONE, 0), 6, "no body");
  // A type without its table verifies (the table field is optional) but is no request.
  for (auto type :
       {w::RequestBody::Hello, w::RequestBody::AppendRequest, w::RequestBody::ListModulesRequest}) {
    fb::FlatBufferBuilder typed;
    ExpectInvalid(Finish(typed, 7, type, 0), 7, "no body");
  }
}

TEST(MalformedRequestTest, AppendFieldsAreChecked) {
  const std::string good = Encoded(Value::MapOf({{"x", 1}}));
  ASSERT_TRUE(std::holds_alternative<Request>(
      DecodeRequest(Bytes(AppendWithRecords(1, {&good})), AppendWithRecords(1, {&good}).size())));
  ExpectInvalid(AppendWithRecords(10, {&good}, nullptr), 10, "AppendRequest.module");
  ExpectInvalid(AppendWithRecords(11, {&good}, "m", ""), 11, "AppendRequest.depot");
  ExpectInvalid(AppendWithRecords(12, {}), 12, "AppendRequest.records is empty");
  ExpectInvalid(AppendWithRecords(13, {&good, nullptr}), 13, "AppendRequest.records[1] is missing");
  ExpectInvalid(AppendWithRecords(14, {&good}, "m", "d", static_cast<w::AckLevel>(4)), 14,
                "AppendRequest.ack 4");

  // The records vector itself absent.
  fb::FlatBufferBuilder b;
  auto body = w::CreateAppendRequestDirect(b, "m", "d", nullptr);
  ExpectInvalid(Finish(b, 15, w::RequestBody::AppendRequest, body.Union()), 15,
                "AppendRequest.records is empty");
}

TEST(MalformedRequestTest, BadValueNamesTheRecordIndex) {
  const std::string good = Encoded(Value(1));
  const std::string garbage("\x01\x02\x03", 3);  // root byte width 3: not 1, 2, 4 or 8
  const std::string empty;
  Value deep(1);
  for (int i = 0; i <= kMaxValueDepth; ++i) deep = Value::ListOf({deep});
  const std::string too_deep = Encoded(deep);
  ExpectInvalid(AppendWithRecords(20, {&good, &good, &garbage}), 20, "AppendRequest.records[2]");
  ExpectInvalid(AppendWithRecords(21, {&empty}), 21,
                "AppendRequest.records[0] is not a valid value");
  ExpectInvalid(AppendWithRecords(22, {&good, &too_deep}), 22, "AppendRequest.records[1]");
}

TEST(MalformedRequestTest, DeployNeedsExactlyOneSourceAndSanePartitions) {
  auto deploy = [](uint64_t id, const char* path, const char* so, int partitions) {
    fb::FlatBufferBuilder b;
    std::vector<uint8_t> so_bytes;
    if (so != nullptr) so_bytes.assign(so, so + std::strlen(so));
    auto body =
        w::CreateDeployRequestDirect(b, path, so != nullptr ? &so_bytes : nullptr, partitions);
    return Finish(b, id, w::RequestBody::DeployRequest, body.Union());
  };
  ExpectInvalid(deploy(30, nullptr, nullptr, 8), 30, "has neither");
  ExpectInvalid(deploy(31, "", "", 8), 31, "has neither");
  ExpectInvalid(deploy(32, "/m.so", "ELF", 8), 32, "has both");
  ExpectInvalid(deploy(33, "/m.so", nullptr, 0), 33, "DeployRequest.partitions 0");
  ExpectInvalid(deploy(34, "/m.so", nullptr, 1025), 34, "DeployRequest.partitions 1025");
  ExpectInvalid(deploy(35, "/m.so", nullptr, -1), 35, "DeployRequest.partitions -1");
  for (int partitions : {1, 1024}) {
    std::string bytes = deploy(36, nullptr, "ELF", partitions);
    auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
    ASSERT_TRUE(std::holds_alternative<Request>(decoded)) << partitions;
    const auto& d = std::get<DeployRequest>(std::get<Request>(decoded).body);
    EXPECT_EQ(d.so_bytes, "ELF");
    EXPECT_EQ(d.partitions, partitions);
  }
}

TEST(MalformedRequestTest, DeployReplicationAndMinIsrAreInRange) {
  auto deploy = [](uint64_t id, int replication, int min_isr) {
    fb::FlatBufferBuilder b;
    auto body = w::CreateDeployRequestDirect(b, "/m.so", nullptr, 8, replication, min_isr);
    return Finish(b, id, w::RequestBody::DeployRequest, body.Union());
  };
  ExpectInvalid(deploy(40, -1, 0), 40, "DeployRequest.replication -1");
  ExpectInvalid(deploy(41, kMaxReplication + 1, 0), 41, "DeployRequest.replication 17");
  ExpectInvalid(deploy(42, 3, 4), 42, "DeployRequest.min_isr 4");
  ExpectInvalid(deploy(43, 3, -1), 43, "DeployRequest.min_isr -1");
  ExpectInvalid(deploy(44, 0, kMaxReplication + 1), 44, "DeployRequest.min_isr 17");
  // 0 is each one's default; a min_isr above the default replication is the server's to judge.
  for (const auto& [replication, min_isr] :
       std::vector<std::pair<int, int>>{{0, 0}, {1, 1}, {3, 2}, {3, 3}, {0, 2}, {16, 0}}) {
    std::string bytes = deploy(45, replication, min_isr);
    auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
    ASSERT_TRUE(std::holds_alternative<Request>(decoded)) << replication << " " << min_isr;
    const auto& d = std::get<DeployRequest>(std::get<Request>(decoded).body);
    EXPECT_EQ(d.replication, replication);
    EXPECT_EQ(d.min_isr, min_isr);
  }
}

TEST(MalformedRequestTest, ReplicaRequestsNeedNamesAndNonNegativeNumbers) {
  auto fetch = [](uint64_t id, const char* module, const char* node, int64_t from,
                  uint32_t max_bytes, uint32_t wait_ms) {
    fb::FlatBufferBuilder b;
    auto body =
        w::CreateReplicaFetchRequestDirect(b, module, 0, node, 1, from, 0, max_bytes, wait_ms);
    return Finish(b, id, w::RequestBody::ReplicaFetchRequest, body.Union());
  };
  ExpectInvalid(fetch(50, nullptr, "n1", 0, 1, 0), 50, "ReplicaFetchRequest.module");
  ExpectInvalid(fetch(51, "m", "", 0, 1, 0), 51, "ReplicaFetchRequest.node");
  ExpectInvalid(fetch(52, "m", "n1", -1, 1, 0), 52, "ReplicaFetchRequest.from -1");
  ExpectInvalid(fetch(53, "m", "n1", 0, 0, 0), 53, "ReplicaFetchRequest.max_bytes 0");
  ExpectInvalid(fetch(54, "m", "n1", 0, 1, kMaxReplicaFetchWaitMs + 1), 54,
                "ReplicaFetchRequest.wait_ms 60001");
  std::string ok = fetch(55, "m", "n1", 0, 1, kMaxReplicaFetchWaitMs);
  EXPECT_TRUE(std::holds_alternative<Request>(DecodeRequest(Bytes(ok), ok.size())));
  {
    fb::FlatBufferBuilder b;
    auto body = w::CreateReplicaEpochRequestDirect(b, "m", 0, "n1", 2, -1);
    ExpectInvalid(Finish(b, 56, w::RequestBody::ReplicaEpochRequest, body.Union()), 56,
                  "ReplicaEpochRequest.log_epoch -1");
  }
  {
    fb::FlatBufferBuilder b;
    auto body = w::CreateReplicaEpochRequestDirect(b, "m", -1, "n1", 2, 1);
    ExpectInvalid(Finish(b, 57, w::RequestBody::ReplicaEpochRequest, body.Union()), 57,
                  "ReplicaEpochRequest.group -1");
  }
  {
    fb::FlatBufferBuilder b;
    auto body = w::CreateModuleFileRequestDirect(b, nullptr);
    ExpectInvalid(Finish(b, 58, w::RequestBody::ModuleFileRequest, body.Union()), 58,
                  "ModuleFileRequest.module");
  }
}

TEST(MalformedRequestTest, UpdateNeedsExactlyOneSourceNamedDropsAndSanePartitions) {
  auto update = [](uint64_t id, const char* path, const char* so,
                   const std::vector<std::string>& drop, int partitions) {
    fb::FlatBufferBuilder b;
    std::vector<uint8_t> so_bytes;
    if (so != nullptr) so_bytes.assign(so, so + std::strlen(so));
    std::vector<fb::Offset<fb::String>> names;
    for (const std::string& d : drop) names.push_back(b.CreateString(d));
    auto body = w::CreateUpdateRequestDirect(b, path, so != nullptr ? &so_bytes : nullptr,
                                             drop.empty() ? nullptr : &names, partitions, true);
    return Finish(b, id, w::RequestBody::UpdateRequest, body.Union());
  };
  ExpectInvalid(update(130, nullptr, nullptr, {}, 0), 130,
                "UpdateRequest needs one of path and so_bytes, has neither");
  ExpectInvalid(update(131, "/m.so", "ELF", {}, 0), 131, "has both");
  ExpectInvalid(update(132, "/m.so", nullptr, {}, -1), 132, "UpdateRequest.partitions -1");
  ExpectInvalid(update(133, "/m.so", nullptr, {}, 1025), 133, "UpdateRequest.partitions 1025");
  ExpectInvalid(update(134, "/m.so", nullptr, {"*old", ""}, 0), 134,
                "UpdateRequest.drop[1] is missing or empty");
  for (int partitions : {0, 1, 1024}) {
    std::string bytes = update(135, nullptr, "ELF", {"*old", "$$gone"}, partitions);
    auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
    ASSERT_TRUE(std::holds_alternative<Request>(decoded)) << partitions;
    const auto& u = std::get<UpdateRequest>(std::get<Request>(decoded).body);
    EXPECT_EQ(u.so_bytes, "ELF");
    EXPECT_EQ(u.drop, (std::vector<std::string>{"*old", "$$gone"}));
    EXPECT_EQ(u.partitions, partitions);
    EXPECT_TRUE(u.new_topologies_from_end);
  }
}

TEST(MalformedRequestTest, RecomputeNeedsAModuleAndNamedPStates) {
  auto recompute = [](uint64_t id, const char* module, const std::vector<std::string>* pstates) {
    fb::FlatBufferBuilder b;
    std::vector<fb::Offset<fb::String>> names;
    if (pstates != nullptr) {
      for (const std::string& p : *pstates) names.push_back(b.CreateString(p));
    }
    auto body = w::CreateRecomputeRequestDirect(b, module, pstates != nullptr ? &names : nullptr);
    return Finish(b, id, w::RequestBody::RecomputeRequest, body.Union());
  };
  const std::vector<std::string> none, one{"$$p"}, blank{"$$p", ""};
  ExpectInvalid(recompute(140, nullptr, &one), 140, "RecomputeRequest.module");
  ExpectInvalid(recompute(141, "m", nullptr), 141, "RecomputeRequest.pstates is empty");
  ExpectInvalid(recompute(142, "m", &none), 142, "RecomputeRequest.pstates is empty");
  ExpectInvalid(recompute(143, "m", &blank), 143, "RecomputeRequest.pstates[1] is missing");
  std::string bytes = recompute(144, "m", &one);
  auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
  ASSERT_TRUE(std::holds_alternative<Request>(decoded));
  EXPECT_EQ(std::get<RecomputeRequest>(std::get<Request>(decoded).body),
            (RecomputeRequest{"m", {"$$p"}}));
}

TEST(MalformedRequestTest, InvokeNeedsNamesDecodableArgsAndATimeoutInRange) {
  auto invoke = [](uint64_t id, const char* module, const char* query,
                   const std::vector<const std::string*>& args, int64_t timeout_ms) {
    fb::FlatBufferBuilder b;
    std::vector<fb::Offset<w::ValueBytes>> offsets;
    for (const std::string* a : args) {
      fb::Offset<fb::Vector<uint8_t>> data;
      if (a != nullptr) data = b.CreateVector(Bytes(*a), a->size());
      offsets.push_back(w::CreateValueBytes(b, data));
    }
    auto body = w::CreateInvokeRequestDirect(b, module, query, &offsets, timeout_ms);
    return Finish(b, id, w::RequestBody::InvokeRequest, body.Union());
  };
  const std::string one = Encoded(Value(1)), garbage = "\xff\xff\xff";
  ExpectInvalid(invoke(150, nullptr, "q", {}, 100), 150, "InvokeRequest.module");
  ExpectInvalid(invoke(151, "m", nullptr, {}, 100), 151, "InvokeRequest.query");
  ExpectInvalid(invoke(152, "m", "", {}, 100), 152, "InvokeRequest.query is missing or empty");
  ExpectInvalid(invoke(153, "m", "q", {&one, &garbage}, 100), 153,
                "InvokeRequest.args[1] is not a valid value");
  ExpectInvalid(invoke(154, "m", "q", {nullptr}, 100), 154, "InvokeRequest.args[0] is missing");
  ExpectInvalid(invoke(155, "m", "q", {}, 0), 155, "InvokeRequest.timeout_ms 0 is outside");
  ExpectInvalid(invoke(156, "m", "q", {}, -5), 156, "InvokeRequest.timeout_ms -5");
  ExpectInvalid(invoke(157, "m", "q", {}, 3'600'001), 157, "InvokeRequest.timeout_ms 3600001");
  for (int64_t timeout : {int64_t{1}, int64_t{3'600'000}}) {
    std::string bytes = invoke(158, "m", "q", {&one}, timeout);
    auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
    ASSERT_TRUE(std::holds_alternative<Request>(decoded)) << timeout;
    EXPECT_EQ(std::get<InvokeRequest>(std::get<Request>(decoded).body),
              (InvokeRequest{"m", "q", {Value(1)}, timeout}));
  }
}

TEST(MalformedRequestTest, SelectPageNeedsNamesAPathValueAndALimitInRange) {
  auto page = [](uint64_t id, const char* pstate, const std::string* path, const char* token,
                 int64_t limit) {
    fb::FlatBufferBuilder b;
    fb::Offset<fb::Vector<uint8_t>> p, t;
    if (path != nullptr) p = b.CreateVector(Bytes(*path), path->size());
    if (token != nullptr) t = b.CreateVector(reinterpret_cast<const uint8_t*>(token), 3);
    auto body = w::CreateSelectPageRequest(
        b, b.CreateString("m"), pstate != nullptr ? b.CreateString(pstate) : 0, p, t, limit);
    return Finish(b, id, w::RequestBody::SelectPageRequest, body.Union());
  };
  const std::string all = Encoded(Value::ListOf({Value::ListOf({"all"})})), garbage = "\xff";
  ExpectInvalid(page(160, nullptr, &all, nullptr, 10), 160, "SelectPageRequest.pstate");
  ExpectInvalid(page(161, "$$p", nullptr, nullptr, 10), 161, "SelectPageRequest.path is missing");
  ExpectInvalid(page(162, "$$p", &garbage, nullptr, 10), 162,
                "SelectPageRequest.path is not a valid value");
  ExpectInvalid(page(163, "$$p", &all, nullptr, 0), 163, "SelectPageRequest.limit 0 is outside");
  ExpectInvalid(page(164, "$$p", &all, nullptr, 10'001), 164, "SelectPageRequest.limit 10001");
  std::string bytes = page(165, "$$p", &all, "t\0k", 10'000);
  auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
  ASSERT_TRUE(std::holds_alternative<Request>(decoded));
  EXPECT_EQ(std::get<SelectPageRequest>(std::get<Request>(decoded).body),
            (SelectPageRequest{"m", "$$p", Value::ListOf({Value::ListOf({"all"})}),
                               std::string("t\0k", 3), 10'000}));
}

TEST(MalformedRequestTest, SelectNeedsNamesAndAValidPath) {
  auto select = [](uint64_t id, const char* pstate, const std::string* path,
                   const std::string* key) {
    fb::FlatBufferBuilder b;
    fb::Offset<fb::Vector<uint8_t>> p, k;
    if (path != nullptr) p = b.CreateVector(Bytes(*path), path->size());
    if (key != nullptr) k = b.CreateVector(Bytes(*key), key->size());
    auto body = w::CreateSelectRequest(b, b.CreateString("m"), b.CreateString(pstate), p, k);
    return Finish(b, id, w::RequestBody::SelectRequest, body.Union());
  };
  const std::string path = Encoded(testing::SamplePath());
  const std::string garbage("\xff\xff\xff", 3);
  ExpectInvalid(select(40, "", &path, nullptr), 40, "SelectRequest.pstate");
  ExpectInvalid(select(41, "$$p", nullptr, nullptr), 41, "SelectRequest.path is missing");
  ExpectInvalid(select(42, "$$p", &garbage, nullptr), 42,
                "SelectRequest.path is not a valid value");
  ExpectInvalid(select(43, "$$p", &path, &garbage), 43, "SelectRequest.partition_key");
}

TEST(MalformedRequestTest, ReadDepotRangeIsChecked) {
  auto read = [](uint64_t id, int partition, int64_t from, int64_t to, int64_t limit) {
    fb::FlatBufferBuilder b;
    auto body = w::CreateReadDepotRequestDirect(b, "m", "*d", partition, from, to, limit);
    return Finish(b, id, w::RequestBody::ReadDepotRequest, body.Union());
  };
  ExpectInvalid(read(50, -1, 0, 10, 5), 50, "ReadDepotRequest.partition -1");
  ExpectInvalid(read(51, 0, -5, 10, 5), 51, "[-5, 10)");
  ExpectInvalid(read(52, 0, 10, 9, 5), 52, "[10, 9)");
  ExpectInvalid(read(53, 0, 0, 10, 0), 53, "ReadDepotRequest.limit 0");
  std::string empty_range = read(54, 0, 10, 10, 1);
  EXPECT_TRUE(
      std::holds_alternative<Request>(DecodeRequest(Bytes(empty_range), empty_range.size())));
}

TEST(MalformedRequestTest, StatsFailurePageIsChecked) {
  auto stats = [](uint64_t id, int64_t from, int64_t limit) {
    fb::FlatBufferBuilder b;
    auto body = w::CreateStatsRequestDirect(b, "m", from, limit);
    return Finish(b, id, w::RequestBody::StatsRequest, body.Union());
  };
  ExpectInvalid(stats(60, -1, 10), 60, "StatsRequest.failures_from -1");
  ExpectInvalid(stats(61, 0, -1), 61, "StatsRequest.failures_limit -1");
  ExpectInvalid(stats(62, 0, kMaxStatsFailuresLimit + 1), 62, "StatsRequest.failures_limit 1001");
  std::string counts_only = stats(63, 5, 0);
  EXPECT_TRUE(
      std::holds_alternative<Request>(DecodeRequest(Bytes(counts_only), counts_only.size())));
}

TEST(MalformedRequestTest, NamesAreRequired) {
  {
    fb::FlatBufferBuilder b;
    auto body = w::CreateDestroyRequestDirect(b, nullptr, "x");
    ExpectInvalid(Finish(b, 60, w::RequestBody::DestroyRequest, body.Union()), 60,
                  "DestroyRequest.module");
  }
  {
    // Destroy without confirmation decodes: the server answers CONFIRMATION_REQUIRED.
    fb::FlatBufferBuilder b;
    auto body = w::CreateDestroyRequestDirect(b, "m", nullptr);
    std::string bytes = Finish(b, 61, w::RequestBody::DestroyRequest, body.Union());
    auto decoded = DecodeRequest(Bytes(bytes), bytes.size());
    ASSERT_TRUE(std::holds_alternative<Request>(decoded));
    EXPECT_EQ(std::get<DestroyRequest>(std::get<Request>(decoded).body).confirm, "");
  }
  {
    fb::FlatBufferBuilder b;
    auto body = w::CreateReadDepotRequestDirect(b, "m", nullptr);
    ExpectInvalid(Finish(b, 62, w::RequestBody::ReadDepotRequest, body.Union()), 62,
                  "ReadDepotRequest.depot");
  }
}

TEST(MalformedRequestTest, VerifierLimitsApply) {
  const std::string one = Encoded(Value(1));
  const std::string bytes = AppendWithRecords(70, {&one, &one, &one});
  // Request -> AppendRequest -> ValueBytes: depth 3, 5 tables.
  ASSERT_TRUE(std::holds_alternative<Request>(
      DecodeRequest(Bytes(bytes), bytes.size(), DecodeLimits{3, 5})));
  RequestError deep = RejectionOf(bytes, DecodeLimits{2, 1000});
  EXPECT_EQ(deep.error.code, ErrorCode::kBadFrame);
  EXPECT_EQ(deep.id, 70u);
  RequestError many = RejectionOf(bytes, DecodeLimits{64, 4});
  EXPECT_EQ(many.error.code, ErrorCode::kBadFrame);
  EXPECT_EQ(many.id, 70u);
}

}  // namespace
}  // namespace strata::protocol
