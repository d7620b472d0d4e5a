// The REST API's own JSON shapes (docs/http.md): the HTTP status of every protocol error
// code, the error body, the module list, depot reads and stats (the shapes it shares with
// the shell are tested in protocol/documents_test.cc), checked as parsed JSON documents.
#include "rest_json.h"

#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>

#include "strata/json.h"
#include "strata/protocol/documents.h"

namespace strata {
// A failed expectation shows values as JSON.
void PrintTo(const Value& v, std::ostream* os) { *os << ToJson(v); }
}  // namespace strata

namespace strata::server::http {
namespace {

namespace proto = strata::protocol;

Value Json(std::string_view text) {
  Result<Value> parsed = ParseJson(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message() << " in " << text;
  return parsed.ok() ? *parsed : Value();
}

TEST(RestJsonTest, EveryErrorCodeHasTheStatusOfDocsHttpMd) {
  // docs/http.md, "Errors"; the binary protocol's own framing errors are 400.
  const std::map<proto::ErrorCode, int> expected = {
      {proto::ErrorCode::kNone, 200},
      {proto::ErrorCode::kBadFrame, 400},
      {proto::ErrorCode::kFrameTooLarge, 413},
      {proto::ErrorCode::kUnsupportedVersion, 400},
      {proto::ErrorCode::kHandshakeRequired, 400},
      {proto::ErrorCode::kUnsupported, 405},
      {proto::ErrorCode::kInvalidArgument, 400},
      {proto::ErrorCode::kNotFound, 404},
      {proto::ErrorCode::kAlreadyExists, 409},
      {proto::ErrorCode::kSchemaViolation, 400},
      {proto::ErrorCode::kTopologyFailed, 500},
      {proto::ErrorCode::kOverloaded, 503},
      {proto::ErrorCode::kAborted, 409},
      {proto::ErrorCode::kIoError, 500},
      {proto::ErrorCode::kInternal, 500},
      {proto::ErrorCode::kShuttingDown, 503},
      {proto::ErrorCode::kConfirmationRequired, 409},
      {proto::ErrorCode::kTimeout, 504},
      {proto::ErrorCode::kQueryFailed, 500},
      {proto::ErrorCode::kNotLeader, 421},
      {proto::ErrorCode::kNotEnoughReplicas, 503},
  };
  // Every code of the enum is listed: the codes are 0 to kNotEnoughReplicas, without gaps.
  ASSERT_EQ(expected.size(), static_cast<size_t>(proto::ErrorCode::kNotEnoughReplicas) + 1);
  for (const auto& [code, status] : expected) {
    EXPECT_EQ(HttpStatusFor(code), status) << proto::ErrorCodeName(code);
  }
  // A code of a newer protocol is a server error.
  EXPECT_EQ(HttpStatusFor(static_cast<proto::ErrorCode>(999)), 500);
}

TEST(RestJsonTest, ErrorBodyNamesTheCodeAndTheMessage) {
  EXPECT_EQ(Json(ErrorJson(proto::ErrorCode::kNotFound, "no module \"wordcont\" is deployed")),
            Json(R"({"error": {"code": "NOT_FOUND",
                               "message": "no module \"wordcont\" is deployed"}})"));
  for (int c = 0; c <= static_cast<int>(proto::ErrorCode::kNotEnoughReplicas); ++c) {
    const auto code = static_cast<proto::ErrorCode>(c);
    const Value body = Json(ErrorJson(code, "m"));
    EXPECT_EQ(*body.Find("error")->Find("code"), Value(proto::ErrorCodeName(code)));
  }
}

TEST(RestJsonTest, NotLeaderErrorNamesTheLeaderWhenKnown) {
  EXPECT_EQ(
      Json(ErrorJson(proto::ErrorCode::kNotLeader, "node n2 does not lead bank", "10.0.0.1:7450")),
      Json(R"({"error": {"code": "NOT_LEADER", "message": "node n2 does not lead bank",
                               "leader": "10.0.0.1:7450"}})"));
  EXPECT_EQ(Json(ErrorJson(proto::ErrorCode::kNotLeader, "no leader")),
            Json(R"({"error": {"code": "NOT_LEADER", "message": "no leader"}})"));
}

TEST(RestJsonTest, ErrorMessageIsAJsonStringEvenWhenItQuotesInvalidUtf8) {
  // A message quoting a client's bytes that are not UTF-8 (e.g. "last read: '\xff'") is
  // still a JSON string, with those bytes as \xNN; valid UTF-8 stays as it is.
  const std::string text = ErrorJson(proto::ErrorCode::kInvalidArgument,
                                     "bad \xff\xc0\x80 \xed\xa0\x80 caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(Json(text), Json(R"({"error": {"code": "INVALID_ARGUMENT",
      "message": "bad \\xff\\xc0\\x80 \\xed\\xa0\\x80 caf\u00e9 \ud83d\ude00"}})"))
      << text;
  // Truncated sequences at the end.
  EXPECT_EQ(
      *Json(ErrorJson(proto::ErrorCode::kInternal, "x\xe2\x82")).Find("error")->Find("message"),
      Value("x\\xe2\\x82"));
}

TEST(RestJsonTest, ModuleListIsTheModulesDocuments) {
  proto::ModuleInfo m;
  m.name = "wordcount";
  m.partitions = 8;
  proto::ModuleList list;
  list.modules = {m, m};
  const Value doc = proto::ModuleDocument(m);
  EXPECT_EQ(ModuleListJson(list), Value::MapOf({{"modules", Value::ListOf({doc, doc})}}));
  EXPECT_EQ(ModuleListJson(proto::ModuleList{}), Json(R"({"modules": []})"));
}

TEST(RestJsonTest, DepotRecordsNextIsTheOffsetAfterTheLastRecordOrFrom) {
  proto::DepotRecords records;
  EXPECT_EQ(DepotRecordsJson(records, 42), Json(R"({"records": [], "next": 42})"));
  records.records = {{5, Value("a")}, {6, Value::ListOf({1, 2})}};
  EXPECT_EQ(DepotRecordsJson(records, 5), Json(R"({"records": [{"offset": 5, "value": "a"},
      {"offset": 6, "value": [1, 2]}], "next": 7})"));
  // Records start where the log does, after `from` (a trimmed start): next follows them.
  records.records = {{100, Value::BytesOf("\x01")}};
  EXPECT_EQ(DepotRecordsJson(records, 0),
            Json(R"({"records": [{"offset": 100, "value": {"$bytes": "AQ=="}}], "next": 101})"));
}

TEST(RestJsonTest, StatsAreTheServerAndModulesDocuments) {
  proto::StatsResult all;
  all.server = {1234, 2, 10, 99};
  proto::ModuleStats s;
  s.module = "bank";
  all.modules = {s};
  EXPECT_EQ(StatsJson(all),
            Value::MapOf({{"server", Json(R"({"uptime_ms": 1234,
      "connections": 2, "total_connections": 10, "requests": 99})")},
                          {"modules", Value::ListOf({proto::ModuleStatsDocument(s)})}}));
}

TEST(RestJsonTest, AckLevelsByName) {
  const std::map<std::string, proto::AckLevel> names = {
      {"none", proto::AckLevel::kNone},
      {"appended", proto::AckLevel::kAppended},
      {"processed", proto::AckLevel::kProcessed},
      {"processed_streams", proto::AckLevel::kProcessedStreams}};
  for (const auto& [name, level] : names) {
    proto::AckLevel parsed = proto::AckLevel::kNone;
    EXPECT_TRUE(ParseAckLevel(name, &parsed)) << name;
    EXPECT_EQ(parsed, level) << name;
  }
  proto::AckLevel untouched = proto::AckLevel::kAppended;
  for (const char* bad : {"", "Processed", "streams", "processedstreams", "durable"}) {
    EXPECT_FALSE(ParseAckLevel(bad, &untouched)) << bad;
  }
  EXPECT_EQ(untouched, proto::AckLevel::kAppended);
}

// GET /rest/cluster (docs/http.md, "Cluster"): the controller is null while unknown.
TEST(RestJsonTest, ClusterView) {
  cluster::ClusterView view;
  view.node = "n2";
  view.controller = "n1";
  view.nodes = {{"n1", "10.0.0.1:7450", "10.0.0.1:7451", 11, "2026-12-07T16:00:00Z", 5},
                {"n2", "10.0.0.2:7450", "", 12, "2026-12-07T16:00:01Z", 6}};
  EXPECT_EQ(ToJson(ClusterJson(view)),
            R"({"controller":"n1","node":"n2","nodes":[)"
            R"({"advertise":"10.0.0.1:7450","http":"10.0.0.1:7451","id":"n1"},)"
            R"({"advertise":"10.0.0.2:7450","http":"","id":"n2"}]})");
  view.controller.clear();
  view.nodes.clear();
  EXPECT_EQ(ToJson(ClusterJson(view)), R"({"controller":null,"node":"n2","nodes":[]})");
}

}  // namespace
}  // namespace strata::server::http
