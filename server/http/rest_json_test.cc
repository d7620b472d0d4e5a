// The REST API's JSON shapes (docs/http.md): the HTTP status of every protocol error code,
// the error body, and the shapes of modules, append results, depot reads, stats and
// updates, checked as parsed JSON documents.
#include "rest_json.h"

#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>

#include "strata/json.h"

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
  };
  // Every code of the enum is listed: the codes are 0 to kQueryFailed, without gaps.
  ASSERT_EQ(expected.size(), static_cast<size_t>(proto::ErrorCode::kQueryFailed) + 1);
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
  for (int c = 0; c <= static_cast<int>(proto::ErrorCode::kQueryFailed); ++c) {
    const auto code = static_cast<proto::ErrorCode>(c);
    const Value body = Json(ErrorJson(code, "m"));
    EXPECT_EQ(*body.Find("error")->Find("code"), Value(proto::ErrorCodeName(code)));
  }
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

TEST(RestJsonTest, ModuleShape) {
  proto::ModuleInfo m;
  m.name = "wordcount";
  m.version = 2;
  m.partitions = 8;
  m.depots = {{"*sentences", "random", Value("string"), "string"}};
  m.pstates = {{"$$word_counts", Value(), "map<string, int64>"}};
  m.topologies = {{"count", {"*sentences"}, "stream"}};
  m.queries = {{"top-words", {{"n", Value("int64"), "int64"}}}};
  m.dependents = {"leaderboard"};
  const Value expected = Json(R"({
      "name": "wordcount", "version": 2, "partitions": 8, "load_error": "",
      "depots": [{"name": "*sentences", "partitioning": "random", "schema": "string"}],
      "pstates": [{"name": "$$word_counts", "schema": "map<string, int64>"}],
      "topologies": [{"name": "count", "kind": "stream", "sources": ["*sentences"]}],
      "queries": [{"name": "top-words", "params": [{"name": "n", "schema": "int64"}]}],
      "depends_on": [], "dependents": ["leaderboard"]})");
  EXPECT_EQ(ModuleJson(m), expected);
  proto::ModuleList list;
  list.modules = {m, m};
  EXPECT_EQ(ModuleListJson(list), Value::MapOf({{"modules", Value::ListOf({expected, expected})}}));
  EXPECT_EQ(ModuleListJson(proto::ModuleList{}), Json(R"({"modules": []})"));

  proto::ModuleInfo failed;
  failed.name = "broken";
  failed.load_error = "no such file";
  EXPECT_EQ(*ModuleJson(failed).Find("load_error"), Value("no such file"));
}

TEST(RestJsonTest, AppendResultShapeWithAndWithoutAFailure) {
  proto::AppendResult r;
  r.partition = 3;
  r.offset = 17;
  r.ack_returns = {{"deposit", Value::MapOf({{"status", "ok"}})}, {"count", Value()}};
  EXPECT_EQ(AppendResultJson(r), Json(R"({"partition": 3, "offset": 17,
      "ack_returns": {"count": null, "deposit": {"status": "ok"}}})"));
  r.failure = proto::Error{proto::ErrorCode::kTopologyFailed, "topology count gave up"};
  EXPECT_EQ(AppendResultJson(r), Json(R"({"partition": 3, "offset": 17,
      "ack_returns": {"count": null, "deposit": {"status": "ok"}},
      "failure": {"code": "TOPOLOGY_FAILED", "message": "topology count gave up"}})"));
  // ack none: no offset, no returns.
  proto::AppendResult none;
  none.partition = 5;
  EXPECT_EQ(AppendResultJson(none), Json(R"({"partition": 5, "offset": -1, "ack_returns": {}})"));
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

TEST(RestJsonTest, StatsShapes) {
  proto::ModuleStats s;
  s.module = "bank";
  s.depots = {{"*deposits", 1, 0, 12}};
  s.topologies = {{"deposit", "*deposits", 1, 11, 1}};
  s.failures = 7;
  s.failure_page = {{"deposit", "*deposits", 1, 4, "amount must be > 0"}};
  s.rebuilds = {{"recompute", {"$$balances"}, 3, 12}};
  s.microbatches = {{"mb", 9, ""}};
  const Value module = Json(R"({"module": "bank", "load_error": "",
      "depots": [{"depot": "*deposits", "partition": 1, "start_offset": 0, "end_offset": 12}],
      "topologies": [{"topology": "deposit", "depot": "*deposits", "partition": 1,
                      "processed_offset": 11, "lag": 1}],
      "failures": 7,
      "failure_page": [{"topology": "deposit", "depot": "*deposits", "partition": 1,
                        "offset": 4, "message": "amount must be > 0"}],
      "rebuilds": [{"kind": "recompute", "names": ["$$balances"], "records_done": 3,
                    "records_total": 12}],
      "microbatches": [{"topology": "mb", "batch": 9, "stalled": ""}]})");
  EXPECT_EQ(ModuleStatsJson(s), module);
  proto::StatsResult all;
  all.server = {1234, 2, 10, 99};
  all.modules = {s};
  EXPECT_EQ(StatsJson(all), Value::MapOf({{"server", Json(R"({"uptime_ms": 1234,
      "connections": 2, "total_connections": 10, "requests": 99})")},
                                          {"modules", Value::ListOf({module})}}));
}

TEST(RestJsonTest, UpdatedShape) {
  proto::Updated u;
  u.module.name = "wordcount";
  u.module.version = 2;
  u.version = 2;
  u.created = {"$$word_lengths"};
  u.backfilling = {"lengths"};
  u.pause_us = 2561;
  const Value json = UpdatedJson(u);
  EXPECT_EQ(*json.Find("module"), ModuleJson(u.module));
  EXPECT_EQ(json, Value::MapOf({{"module", ModuleJson(u.module)},
                                {"version", 2},
                                {"created", Value::ListOf({"$$word_lengths"})},
                                {"dropped", Value(Value::List{})},
                                {"widened", Value(Value::List{})},
                                {"backfilling", Value::ListOf({"lengths"})},
                                {"migrated", Value(Value::List{})},
                                {"pause_us", 2561}}));
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

}  // namespace
}  // namespace strata::server::http
