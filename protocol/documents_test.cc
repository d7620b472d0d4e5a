// The JSON documents of protocol responses (strata/protocol/documents.h), which the shell's
// --json output and the REST API share: their shapes, checked as parsed JSON documents.
#include "strata/protocol/documents.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string_view>

#include "strata/json.h"

namespace strata {
// A failed expectation shows values as JSON.
void PrintTo(const Value& v, std::ostream* os) { *os << ToJson(v); }
}  // namespace strata

namespace strata::protocol {
namespace {

Value Json(std::string_view text) {
  Result<Value> parsed = ParseJson(text);
  EXPECT_TRUE(parsed.ok()) << parsed.status().message() << " in " << text;
  return parsed.ok() ? *parsed : Value();
}

TEST(DocumentsTest, Module) {
  ModuleInfo m;
  m.name = "wordcount";
  m.version = 2;
  m.partitions = 8;
  m.depots = {{"*sentences", "random", Value("string"), "string"}};
  m.pstates = {{"$$word_counts", Value::MapOf({{"map", Value::ListOf({"string", "int64"})}}),
                "map<string, int64>"}};
  m.topologies = {{"count", {"*sentences"}, "stream"}};
  m.queries = {{"top-words", {{"n", Value("int64"), "int64"}}}};
  m.dependents = {"leaderboard"};
  EXPECT_EQ(ModuleDocument(m), Json(R"({
      "name": "wordcount", "version": 2, "partitions": 8,
      "depots": [{"name": "*sentences", "partitioning": "random", "record_schema": "string",
                  "record_schema_text": "string"}],
      "pstates": [{"name": "$$word_counts", "schema": {"map": ["string", "int64"]},
                   "schema_text": "map<string, int64>"}],
      "topologies": [{"name": "count", "kind": "stream", "sources": ["*sentences"]}],
      "queries": [{"name": "top-words",
                   "params": [{"name": "n", "schema": "int64", "schema_text": "int64"}]}],
      "depends_on": [], "dependents": ["leaderboard"]})"));

  // load_error only on a module that failed to load.
  ModuleInfo failed;
  failed.name = "broken";
  failed.load_error = "no such file";
  EXPECT_EQ(*ModuleDocument(failed).Find("load_error"), Value("no such file"));
  EXPECT_EQ(ModuleDocument(m).Find("load_error"), nullptr);
}

TEST(DocumentsTest, AppendResultWithAndWithoutAFailure) {
  AppendResult r;
  r.partition = 3;
  r.offset = 17;
  r.ack_returns = {{"deposit", Value::MapOf({{"status", "ok"}})}, {"count", Value()}};
  EXPECT_EQ(AppendResultDocument(r), Json(R"({"partition": 3, "offset": 17,
      "ack_returns": {"count": null, "deposit": {"status": "ok"}}})"));
  r.failure = Error{ErrorCode::kTopologyFailed, "topology count gave up"};
  EXPECT_EQ(AppendResultDocument(r), Json(R"({"partition": 3, "offset": 17,
      "ack_returns": {"count": null, "deposit": {"status": "ok"}},
      "failure": {"code": "TOPOLOGY_FAILED", "message": "topology count gave up"}})"));
  // ack none: no offset, no returns.
  AppendResult none;
  none.partition = 5;
  EXPECT_EQ(AppendResultDocument(none),
            Json(R"({"partition": 5, "offset": -1, "ack_returns": {}})"));
}

TEST(DocumentsTest, ModuleStatsAndServerStats) {
  ModuleStats s;
  s.module = "bank";
  s.depots = {{"*deposits", 1, 0, 12}};
  s.topologies = {{"deposit", "*deposits", 1, 11, 1}};
  s.failures = 7;
  s.failure_page = {{"deposit", "*deposits", 1, 4, "amount must be > 0"}};
  s.rebuilds = {{"recompute", {"$$balances"}, 3, 12}};
  s.microbatches = {{"mb", 9, ""}};
  EXPECT_EQ(ModuleStatsDocument(s), Json(R"({"module": "bank",
      "depots": [{"depot": "*deposits", "partition": 1, "start_offset": 0, "end_offset": 12}],
      "topologies": [{"topology": "deposit", "depot": "*deposits", "partition": 1,
                      "processed_offset": 11, "lag": 1}],
      "failures": 7,
      "failure_page": [{"topology": "deposit", "depot": "*deposits", "partition": 1,
                        "offset": 4, "message": "amount must be > 0"}],
      "rebuilds": [{"kind": "recompute", "names": ["$$balances"], "records_done": 3,
                    "records_total": 12}],
      "microbatches": [{"topology": "mb", "batch": 9, "stalled": ""}]})"));
  s.load_error = "gone";
  EXPECT_EQ(*ModuleStatsDocument(s).Find("load_error"), Value("gone"));
  EXPECT_EQ(ServerStatsDocument({1234, 2, 10, 99}),
            Json(R"({"uptime_ms": 1234, "connections": 2, "total_connections": 10,
                     "requests": 99})"));
}

TEST(DocumentsTest, Updated) {
  Updated u;
  u.module.name = "wordcount";
  u.module.version = 2;
  u.version = 2;
  u.created = {"$$word_lengths"};
  u.backfilling = {"lengths"};
  u.pause_us = 2561;
  EXPECT_EQ(UpdatedDocument(u), Value::MapOf({{"module", ModuleDocument(u.module)},
                                              {"version", 2},
                                              {"created", Value::ListOf({"$$word_lengths"})},
                                              {"dropped", Value(Value::List{})},
                                              {"widened", Value(Value::List{})},
                                              {"backfilling", Value::ListOf({"lengths"})},
                                              {"migrated", Value(Value::List{})},
                                              {"pause_us", 2561}}));
}

TEST(DocumentsTest, Error) {
  EXPECT_EQ(ErrorDocument(ErrorCode::kNotFound, "no module x"),
            Json(R"({"code": "NOT_FOUND", "message": "no module x"})"));
}

TEST(DocumentsTest, DiffHasOnlyTheFieldsOfItsOp) {
  Diff key_set{Diff::Op::kKeySet, {Value("alice")}, Value("bio"), Value::BytesOf("hi"), 0};
  EXPECT_EQ(DiffDocument(key_set), Json(R"({"op": "key_set", "at": ["alice"], "key": "bio",
                     "value": {"$bytes": "aGk="}})"));
  Diff removed{Diff::Op::kKeyRemoved, {}, Value(int64_t{7}), Value(), 0};
  EXPECT_EQ(DiffDocument(removed), Json(R"({"op": "key_removed", "at": [], "key": 7})"));
  Diff insert{Diff::Op::kSeqInsert, {Value(int64_t{0})}, Value(), Value("x"), 2};
  EXPECT_EQ(DiffDocument(insert),
            Json(R"({"op": "seq_insert", "at": [0], "value": "x", "index": 2})"));
  Diff seq_remove{Diff::Op::kSeqRemove, {}, Value(), Value(), 1};
  EXPECT_EQ(DiffDocument(seq_remove), Json(R"({"op": "seq_remove", "at": [], "index": 1})"));
  Diff resync{Diff::Op::kResync, {}, Value(), Value::EmptyMap(), 0};
  EXPECT_EQ(DiffDocument(resync), Json(R"({"op": "resync", "at": [], "value": {}})"));
}

}  // namespace
}  // namespace strata::protocol
