#include "strata/protocol/messages.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "strata/testing/test_seed.h"
#include "strata/value_codec.h"
#include "testing/random_value.h"
#include "testing/sample_messages.h"

namespace strata::protocol {
namespace {

const uint8_t* Bytes(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Decodes `bytes` at an odd address too: frames sit at any offset of a read buffer.
std::vector<std::variant<Request, RequestError>> DecodeRequestBothWays(const std::string& bytes) {
  std::string shifted = "x" + bytes;
  return {DecodeRequest(Bytes(bytes), bytes.size()),
          DecodeRequest(Bytes(shifted) + 1, bytes.size())};
}

std::string Describe(const std::variant<Request, RequestError>& decoded) {
  if (std::holds_alternative<Request>(decoded)) return "a Request";
  const RequestError& e = std::get<RequestError>(decoded);
  return std::string(ErrorCodeName(e.error.code)) + ": " + e.error.message;
}

void ExpectRequestRoundTrip(const Request& request, const std::string& name) {
  const std::string bytes = EncodeRequest(request);
  EXPECT_EQ(EncodeRequest(request), bytes) << name << ": encoding is not deterministic";
  for (const auto& decoded : DecodeRequestBothWays(bytes)) {
    ASSERT_TRUE(std::holds_alternative<Request>(decoded)) << name << ": " << Describe(decoded);
    EXPECT_TRUE(std::get<Request>(decoded) == request) << name;
  }
}

void ExpectResponseRoundTrip(const Response& response, const std::string& name) {
  const std::string bytes = EncodeResponse(response);
  std::string shifted = "x" + bytes;
  for (const uint8_t* data : {Bytes(bytes), Bytes(shifted) + 1}) {
    Result<Response> decoded = DecodeResponse(data, bytes.size());
    ASSERT_TRUE(decoded.ok()) << name << ": " << decoded.status().ToString();
    EXPECT_TRUE(*decoded == response) << name;
  }
}

TEST(MessagesTest, EveryRequestKindRoundTrips) {
  std::set<size_t> kinds;
  for (const auto& [name, request] : testing::SampleRequests()) {
    ExpectRequestRoundTrip(request, name);
    kinds.insert(request.body.index());
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<RequestBody>) << "a request kind has no sample";
}

TEST(MessagesTest, EveryResponseKindRoundTrips) {
  std::set<size_t> kinds;
  for (const auto& [name, response] : testing::SampleResponses()) {
    ExpectResponseRoundTrip(response, name);
    kinds.insert(response.body.index());
  }
  EXPECT_EQ(kinds.size(), std::variant_size_v<ResponseBody>) << "a response kind has no sample";
}

TEST(MessagesTest, DefaultsRoundTripAlthoughTheyAreNotWritten) {
  ExpectRequestRoundTrip({1, ReadDepotRequest{"m", "d"}}, "read_depot defaults");
  ExpectRequestRoundTrip({2, AppendRequest{"m", "d", {Value()}}}, "append defaults");
  ExpectRequestRoundTrip({3, DeployRequest{"p", ""}}, "deploy defaults");
  ExpectRequestRoundTrip({4, SelectRequest{"m", "p", Value::ListOf({}), std::nullopt}},
                         "select defaults");
  ExpectRequestRoundTrip({7, InvokeRequest{"m", "q", {}}}, "invoke defaults");
  ExpectRequestRoundTrip({8, SelectPageRequest{"m", "p", Value::ListOf({}), ""}},
                         "select page defaults");
  ExpectRequestRoundTrip({9, ReplicaFetchRequest{"m", 0, "n1"}}, "replica fetch defaults");
  ExpectResponseRoundTrip({5, {}, Appended{{AppendResult{}}}}, "append result defaults");
  ExpectResponseRoundTrip({6, Error{ErrorCode::kInternal, ""}, {}}, "error without message");
}

TEST(MessagesTest, ErrorResponseCarriesNoBody) {
  Response r{9, Error{ErrorCode::kOverloaded, "busy"}, Selected{{Value(1)}}};
  Result<Response> decoded = DecodeResponse(Bytes(EncodeResponse(r)), EncodeResponse(r).size());
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->id, 9u);
  EXPECT_TRUE(decoded->error == r.error);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(decoded->body));
}

// Random requests of every kind with random values round-trip exactly.
TEST(MessagesTest, RandomRequestsRoundTrip) {
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  strata::testing::RandomValueGenerator gen(seed);
  auto name = [&] {  // non-empty, any bytes
    std::string s(1, 'n');
    return s.append(gen.String());
  };
  for (int i = 0; i < 3000; ++i) {
    Request r;
    r.id = gen.rng()();
    switch (gen.Uniform(0, 10)) {
      case 0:
        r.body = Hello{static_cast<uint32_t>(gen.rng()()), gen.String()};
        break;
      case 1:
        r.body = gen.Uniform(0, 1)
                     ? DeployRequest{name(), "", static_cast<int>(gen.Uniform(1, 1024))}
                     : DeployRequest{"", name(), static_cast<int>(gen.Uniform(1, 1024))};
        break;
      case 2:
        r.body = ListModulesRequest{};
        break;
      case 3:
        r.body = DescribeRequest{name()};
        break;
      case 4:
        r.body = DestroyRequest{name(), gen.String()};
        break;
      case 5: {
        AppendRequest a{name(), name(), {}, static_cast<AckLevel>(gen.Uniform(0, 2))};
        for (int n = static_cast<int>(gen.Uniform(1, 5)); n > 0; --n)
          a.records.push_back(gen.Any());
        r.body = std::move(a);
        break;
      }
      case 6: {
        SelectRequest s{name(), name(), gen.Any(), {}, gen.Uniform(0, 1) == 1};
        if (gen.Uniform(0, 1)) s.partition_key = gen.Any(2);
        r.body = std::move(s);
        break;
      }
      case 7: {
        int64_t from = gen.Uniform(0, INT64_MAX / 2);
        r.body = ReadDepotRequest{name(),
                                  name(),
                                  static_cast<int>(gen.Uniform(0, 1023)),
                                  from,
                                  from + gen.Uniform(0, INT64_MAX / 2),
                                  gen.Uniform(1, INT64_MAX)};
        break;
      }
      case 8: {
        InvokeRequest invoke{name(), name(), {}, gen.Uniform(1, kMaxInvokeTimeoutMs)};
        for (int n = static_cast<int>(gen.Uniform(0, 4)); n > 0; --n) {
          invoke.args.push_back(gen.Any());
        }
        r.body = std::move(invoke);
        break;
      }
      case 9:
        r.body = SelectPageRequest{name(), name(), gen.Any(), gen.Uniform(0, 1) ? gen.String() : "",
                                   gen.Uniform(1, kMaxPageLimit)};
        break;
      default:
        r.body = StatsRequest{gen.Uniform(0, 1) ? name() : "", gen.Uniform(0, INT64_MAX),
                              gen.Uniform(0, kMaxStatsFailuresLimit)};
        break;
    }
    ExpectRequestRoundTrip(r, "random request " + std::to_string(i));
    if (HasFatalFailure()) return;
  }
}

TEST(MessagesTest, RandomValueResponsesRoundTrip) {
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  strata::testing::RandomValueGenerator gen(seed);
  for (int i = 0; i < 1000; ++i) {
    Selected selected;
    SelectedPage page{{}, gen.Uniform(0, 1) ? gen.String() : ""};
    DepotRecords records;
    Appended appended;
    for (int n = static_cast<int>(gen.Uniform(0, 4)); n > 0; --n) {
      selected.values.push_back(gen.Any());
      page.values.push_back(gen.Any());
      records.records.push_back({gen.Int(), gen.Any()});
      AppendResult result{static_cast<int>(gen.Uniform(-1, 1023)), gen.Int(), {}, {}};
      result.ack_returns.emplace_back(gen.String(), gen.Any());
      if (gen.Uniform(0, 3) == 0) result.failure = Error{ErrorCode::kTopologyFailed, gen.String()};
      appended.results.push_back(std::move(result));
    }
    const uint64_t id = gen.rng()();
    ExpectResponseRoundTrip({id, {}, selected}, "selected " + std::to_string(i));
    ExpectResponseRoundTrip({id, {}, page}, "selected page " + std::to_string(i));
    ExpectResponseRoundTrip({id, {}, Invoked{gen.Any()}}, "invoked " + std::to_string(i));
    ExpectResponseRoundTrip({id, {}, records}, "depot records " + std::to_string(i));
    ExpectResponseRoundTrip({id, {}, appended}, "appended " + std::to_string(i));
    if (HasFatalFailure()) return;
  }
}

TEST(MessagesTest, ErrorCodeNamesMatchTheSchema) {
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNone), "NONE");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kBadFrame), "BAD_FRAME");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotFound), "NOT_FOUND");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kTopologyFailed), "TOPOLOGY_FAILED");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kConfirmationRequired), "CONFIRMATION_REQUIRED");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kTimeout), "TIMEOUT");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kQueryFailed), "QUERY_FAILED");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotLeader), "NOT_LEADER");
  EXPECT_EQ(ErrorCodeName(ErrorCode::kNotEnoughReplicas), "NOT_ENOUGH_REPLICAS");
  EXPECT_EQ(ErrorCodeName(static_cast<ErrorCode>(21)), "UNKNOWN");
  std::set<std::string_view> names;
  for (int c = 0; c <= 20; ++c) names.insert(ErrorCodeName(static_cast<ErrorCode>(c)));
  EXPECT_EQ(names.size(), 21u) << "two codes share a name";
}

TEST(MessagesTest, StatusCodesMapToWireCodesAndBack) {
  const std::vector<std::pair<StatusCode, ErrorCode>> table = {
      {StatusCode::kOk, ErrorCode::kNone},
      {StatusCode::kInvalidArgument, ErrorCode::kInvalidArgument},
      {StatusCode::kNotFound, ErrorCode::kNotFound},
      {StatusCode::kAlreadyExists, ErrorCode::kAlreadyExists},
      {StatusCode::kSchemaViolation, ErrorCode::kSchemaViolation},
      {StatusCode::kCorruption, ErrorCode::kIoError},
      {StatusCode::kIOError, ErrorCode::kIoError},
      {StatusCode::kBusy, ErrorCode::kOverloaded},
      {StatusCode::kAborted, ErrorCode::kAborted},
      {StatusCode::kInternal, ErrorCode::kInternal},
      {StatusCode::kUserError, ErrorCode::kTopologyFailed},
      {StatusCode::kTimeout, ErrorCode::kTimeout},
      {StatusCode::kNotLeader, ErrorCode::kNotLeader},
      {StatusCode::kNotEnoughReplicas, ErrorCode::kNotEnoughReplicas},
  };
  for (const auto& [status, wire] : table) {
    Status s = status == StatusCode::kOk ? Status::Ok() : Status(status, "m");
    EXPECT_EQ(ErrorCodeFor(s), wire) << StatusCodeName(status);
    if (status != StatusCode::kCorruption) {
      EXPECT_EQ(StatusCodeFor(wire), status) << ErrorCodeName(wire);
    }
  }
  EXPECT_EQ(StatusCodeFor(ErrorCode::kBadFrame), StatusCode::kCorruption);
  EXPECT_EQ(StatusCodeFor(ErrorCode::kShuttingDown), StatusCode::kBusy);
  EXPECT_EQ(StatusCodeFor(ErrorCode::kConfirmationRequired), StatusCode::kInvalidArgument);
  // A query's own failure (the server maps Invoke's kUserError to it, not TOPOLOGY_FAILED).
  EXPECT_EQ(StatusCodeFor(ErrorCode::kQueryFailed), StatusCode::kUserError);
  EXPECT_EQ(StatusCodeFor(static_cast<ErrorCode>(999)), StatusCode::kInternal);
}

TEST(MessagesTest, DecodeResponseRejectsGarbageWithCorruption) {
  const std::string bytes = EncodeResponse(testing::SampleResponses()[2].response);
  // Cutting only a string's alignment padding (at most 3 bytes) loses nothing.
  for (size_t size = 0; size + 3 < bytes.size(); ++size) {
    Result<Response> r = DecodeResponse(Bytes(bytes), size);
    ASSERT_FALSE(r.ok()) << "truncated to " << size;
    EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
  }
}

TEST(MessagesTest, MutatedResponsesAreRejectedWithCorruptionOrRoundTrip) {
  const uint64_t seed = strata::testing::RandomTestSeed();
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  const auto samples = testing::SampleResponses();
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = EncodeResponse(samples[rng() % samples.size()].response);
    for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
      bytes[rng() % bytes.size()] ^= static_cast<char>(1 << (rng() % 8));
    }
    Result<Response> decoded = DecodeResponse(Bytes(bytes), bytes.size());
    if (!decoded.ok()) {
      EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
      continue;
    }
    std::string again = EncodeResponse(*decoded);
    Result<Response> redecoded = DecodeResponse(Bytes(again), again.size());
    ASSERT_TRUE(redecoded.ok()) << redecoded.status().ToString();
    EXPECT_TRUE(*redecoded == *decoded);
  }
}

TEST(MessagesTest, DecodeResponseNamesABadValue) {
  // A valid Selected response whose second value holds bytes DecodeValue rejects: the
  // bytes of a FlexBuffers int with its width byte changed to 3.
  Response r{21, {}, Selected{{Value(1), Value(12345)}}};
  std::string bytes = EncodeResponse(r);
  std::vector<uint8_t> good = EncodeValue(Value(12345));
  const std::string needle(good.begin(), good.end());
  size_t at = bytes.rfind(needle);
  ASSERT_NE(at, std::string::npos);
  bytes[at + needle.size() - 1] = 3;
  Result<Response> decoded = DecodeResponse(Bytes(bytes), bytes.size());
  ASSERT_FALSE(decoded.ok());
  EXPECT_EQ(decoded.status().code(), StatusCode::kCorruption);
  EXPECT_NE(decoded.status().message().find("Selected.values[1]"), std::string::npos)
      << decoded.status().ToString();
  EXPECT_NE(decoded.status().message().find("response 21"), std::string::npos)
      << decoded.status().ToString();
}

}  // namespace
}  // namespace strata::protocol
