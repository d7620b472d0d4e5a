// One sample of every request and response kind, every field away from its default, for
// round-trip tests, the fuzz seed corpus (tests/fuzz/make_protocol_corpus.cc) and
// docs/protocol.md's examples. Test-only; header-only.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "strata/protocol/messages.h"
#include "strata/value.h"

namespace strata::protocol::testing {

struct NamedRequest {
  std::string name;  // file-name safe
  Request request;
};

// A select path in the wire form of docs/paths.md: [["key", "alice"], ["all"]].
inline Value SamplePath() {
  return Value::ListOf({Value::ListOf({"key", "alice"}), Value::ListOf({"all"})});
}

inline std::vector<NamedRequest> SampleRequests() {
  using namespace std::string_literals;
  std::vector<NamedRequest> out;
  out.push_back({"hello", {0, Hello{1, "strata-test/0.1"}}});
  out.push_back({"deploy_path", {1, DeployRequest{"/opt/modules/wordcount.so", "", 4}}});
  out.push_back({"deploy_bytes",
                 {2, DeployRequest{"",
                                   "\x7f"
                                   "ELF\x02\x01\x01\x00"s,
                                   1024}}});
  out.push_back({"list_modules", {3, ListModulesRequest{}}});
  out.push_back({"describe", {4, DescribeRequest{"wordcount"}}});
  out.push_back({"destroy", {5, DestroyRequest{"wordcount", "wordcount"}}});
  out.push_back(
      {"append_one",
       {6, AppendRequest{"social", "*follows", {Value::MapOf({{"x", 1}})}, AckLevel::kProcessed}}});
  out.push_back(
      {"append_batch",
       {7, AppendRequest{"bank",
                         "transfers",
                         {Value::MapOf({{"from", "a"}, {"to", "b"}, {"amount", 12.5}}),
                          Value::ListOf({Value(), true, -7, Value::BytesOf("\x00\xff"s)}),
                          Value::SetOf({1, 2, 3}), Value::MapOf({{Value(1), Value("int key")}})},
                         AckLevel::kNone}}});
  out.push_back({"append_appended",
                 {8, AppendRequest{"wordcount", "*sentences", {"the cat"}, AckLevel::kAppended}}});
  out.push_back({"select", {9, SelectRequest{"social", "$$followers", SamplePath(), {}, false}}});
  out.push_back(
      {"select_one_key",
       {10, SelectRequest{"bank", "balances", Value::ListOf({Value::ListOf({"key", "a"})}),
                          Value("a"), true}}});
  out.push_back({"read_depot", {11, ReadDepotRequest{"bank", "*transfers", 3, 100, 200, 50}}});
  out.push_back({"stats_all", {12, StatsRequest{}}});
  out.push_back({"stats_module", {UINT64_MAX, StatsRequest{"bank"}}});
  out.push_back({"stats_failure_page", {14, StatsRequest{"bank", 200, 50}}});
  out.push_back(
      {"update_path", {15, UpdateRequest{"/opt/modules/social-v2.so", "", {}, 0, false}}});
  out.push_back({"update_bytes",
                 {16, UpdateRequest{"",
                                    "\x7f"
                                    "ELF\x02\x01\x01\x00"s,
                                    {"*old_posts", "$$old_index", "index_posts"},
                                    16,
                                    true}}});
  out.push_back({"recompute", {17, RecomputeRequest{"wordcount", {"$$word_counts"}}}});
  out.push_back({"recompute_two", {18, RecomputeRequest{"social", {"followers", "$$timelines"}}}});
  out.push_back({"invoke", {19, InvokeRequest{"social", "timeline", {"alice", 20}, 2500}}});
  out.push_back({"invoke_no_args", {20, InvokeRequest{"bank", "total-money", {}, 10'000}}});
  out.push_back({"select_page_first",
                 {21, SelectPageRequest{"bank", "$$balances",
                                        Value::ListOf({Value::ListOf({"all"})}), "", 100}}});
  out.push_back({"select_page_next",
                 {22, SelectPageRequest{"wordcount", "word_counts",
                                        Value::ListOf({Value::ListOf({"map_keys"})}),
                                        "\x01\x02\x00\xff"s, 10'000}}});
  out.push_back(
      {"subscribe",
       {23, SubscribeRequest{"wordcount", "$$word_counts",
                             Value::ListOf({Value::ListOf({"key", "the"})}), std::nullopt, true}}});
  out.push_back(
      {"subscribe_partition",
       {24, SubscribeRequest{"social", "timelines", Value::ListOf({}), Value("alice"), false}}});
  out.push_back({"unsubscribe", {25, UnsubscribeRequest{7}}});
  out.push_back({"deploy_replicated", {26, DeployRequest{"/opt/modules/bank.so", "", 8, 3, 2}}});
  out.push_back({"placement", {27, PlacementRequest{}}});
  out.push_back(
      {"replica_fetch", {28, ReplicaFetchRequest{"bank", 0, "n2", 3, 1200, 1180, 65536, 250}}});
  out.push_back({"replica_epoch", {29, ReplicaEpochRequest{"bank", 0, "n3", 4, 2}}});
  out.push_back({"module_file", {30, ModuleFileRequest{"bank"}}});
  out.push_back({"rebalance", {33, RebalanceRequest{}}});
  out.push_back({"replica_snapshot_start", {31, ReplicaSnapshotRequest{"bank", 0, "n2", 3}}});
  out.push_back({"replica_snapshot_next",
                 {32, ReplicaSnapshotRequest{"bank", 0, "n2", 3, "depot.bank.transfers",
                                             std::string("\x00\x01", 2), 41, 65536}}});
  return out;
}

struct NamedResponse {
  std::string name;
  Response response;
};

inline ModuleInfo SampleModuleInfo() {
  return ModuleInfo{
      "social",
      8,
      {{"*follows", "hash(from)",
        Value::MapOf(
            {{"type", "record"}, {"fields", Value::MapOf({{"from", "string"}, {"to", "string"}})}}),
        "record{from: string, to: string}"},
       {"*posts", "random", Value(), ""}},
      {{"$$followers", Value::MapOf({{"key", "string"}, {"value", "set<string>"}}),
        "map<string, set<string>>"}},
      {{"followers", {"*follows"}, "stream"}, {"timeline", {"*posts", "*follows"}, "microbatch"}},
      "",
      3,
      {{"timeline", {{"user", Value("string"), "string"}, {"n", Value("int64"), "int64"}}},
       {"post-count", {}}},
      {"profiles"},
      {"leaderboard", "digest"},
  };
}

// A module with no depots, PStates, topologies or queries.
inline ModuleInfo BareModuleInfo(std::string name, int partitions, std::string load_error,
                                 int version = 0) {
  ModuleInfo m;
  m.name = std::move(name);
  m.partitions = partitions;
  m.load_error = std::move(load_error);
  m.version = version;
  return m;
}

inline std::vector<NamedResponse> SampleResponses() {
  using namespace std::string_literals;
  std::vector<NamedResponse> out;
  out.push_back({"welcome", {0, {}, Welcome{1, "stratad 0.1.0", 16u << 20, 256}}});
  out.push_back({"error", {6, Error{ErrorCode::kNotFound, "module \"nope\" is not deployed"}, {}}});
  out.push_back({"module_info", {4, {}, SampleModuleInfo()}});
  out.push_back({"module_list",
                 {3,
                  {},
                  ModuleList{{SampleModuleInfo(), BareModuleInfo("empty", 1, ""),
                              BareModuleInfo("bank", 4, "module file bank.so is damaged")}}}});
  out.push_back({"module_list_empty", {3, {}, ModuleList{}}});
  out.push_back({"destroyed", {5, {}, Destroyed{"wordcount"}}});
  AppendResult ok{2, 41, {{"timeline", Value::MapOf({{"n", 3}})}, {"followers", Value()}}, {}};
  AppendResult failed{5, 42, {}, Error{ErrorCode::kTopologyFailed, "topology timeline threw"}};
  out.push_back({"appended", {7, {}, Appended{{ok, failed}}}});
  out.push_back({"selected", {9, {}, Selected{{Value("bob"), Value::SetOf({"x", "y"}), 3.25}}}});
  out.push_back({"selected_empty", {10, {}, Selected{}}});
  out.push_back({"depot_records",
                 {11, {}, DepotRecords{{{100, Value::MapOf({{"x", 1}})}, {101, Value("y")}}}}});
  StatsResult stats;
  stats.server = ServerStats{123456, 3, 17, 99999};
  stats.modules.push_back(ModuleStats{
      "bank",
      {{"*transfers", 0, 0, 10}, {"*transfers", 1, 5, 12}},
      {{"balances", "*transfers", 0, 9, 1}},
      2,
      {{"balances", "*transfers", 1, 7, "negative amount -3"}},
      "",
      {{"recompute", {"$$balances", "$$rejected"}, 4, 22}, {"backfill", {"audit"}, 0, 0}},
      {{"transfers", 17, ""}, {"audit", 3, "IOError: disk full"}}});
  ModuleStats failed_stats;
  failed_stats.module = "orders";
  failed_stats.load_error = "no module file at /data/modules/orders.so";
  stats.modules.push_back(failed_stats);
  out.push_back({"stats", {12, {}, stats}});
  out.push_back({"no_body", {13, {}, {}}});
  out.push_back({"updated",
                 {15,
                  {},
                  Updated{SampleModuleInfo(),
                          3,
                          {"*likes", "$$like_counts"},
                          {"*old_posts", "$$old_index", "index_posts"},
                          {"$$followers"},
                          {"likes"},
                          1873,
                          {"$$profiles"}}}});
  out.push_back({"updated_nothing_new",
                 {16, {}, Updated{BareModuleInfo("empty", 1, "", 2), 2, {}, {}, {}, {}, 0, {}}}});
  out.push_back({"recompute_started", {17, {}, RecomputeStarted{"wordcount", {"$$word_counts"}}}});
  out.push_back(
      {"invoked",
       {19,
        {},
        Invoked{Value::ListOf({Value::ListOf({"the", 1204}), Value::ListOf({"cat", 17})})}}});
  out.push_back({"invoked_nil", {20, {}, Invoked{Value()}}});
  out.push_back({"selected_page",
                 {21,
                  {},
                  SelectedPage{{Value::ListOf({"alice", 70}), Value::ListOf({"bob", 130})},
                               std::string("\x01\x02\x00\xff", 4)}}});
  out.push_back({"selected_page_last", {22, {}, SelectedPage{{Value("zebra")}, ""}}});
  out.push_back({"subscribed", {23, {}, Subscribed{7, 2, Value(3)}}});
  out.push_back({"unsubscribed", {25, {}, Unsubscribed{7}}});
  using Op = Diff::Op;
  out.push_back({"subscription_update",
                 {0,
                  {},
                  SubscriptionUpdate{7,
                                     {{Op::kReplace, {}, {}, Value(4), 0},
                                      {Op::kKeySet, {"alice"}, "bio", Value("hi"), 0},
                                      {Op::kKeyRemoved, {}, "bob", {}, 0},
                                      {Op::kSetAdded, {"follows"}, {}, Value("carol"), 0},
                                      {Op::kSetRemoved, {"follows"}, {}, Value("dan"), 0},
                                      {Op::kSeqInsert, {"posts"}, {}, Value("p9"), 0},
                                      {Op::kSeqRemove, {"posts", Value(3)}, {}, {}, 20},
                                      {Op::kResync, {}, {}, Value::MapOf({{"a", 1}}), 0}},
                                     std::nullopt}}});
  out.push_back(
      {"subscription_ended",
       {0, {}, SubscriptionUpdate{7, {}, Error{ErrorCode::kNotFound, "module x was destroyed"}}}});
  out.push_back(
      {"not_leader",
       {7,
        Error{ErrorCode::kNotLeader, "node n2 does not lead module bank", "10.0.0.1:7450"},
        {}}});
  out.push_back({"placement",
                 {27,
                  {},
                  Placement{"n2",
                            "n1",
                            {{"n1", "10.0.0.1:7450"}, {"n2", "10.0.0.2:7450"}},
                            {{"bank",
                              0,
                              "n1",
                              "10.0.0.1:7450",
                              3,
                              {"n1", "n2", "n3", "n4"},
                              {"n1", "n2"},
                              2,
                              {"n2", "n4", "n3"}},
                             {"social", 0, "", "", 1, {"n3"}, {"n3"}, 1}}}}});
  out.push_back({"placement_empty", {27, {}, Placement{"n1", "", {}, {}}}});
  out.push_back(
      {"replica_entries",
       {28,
        {},
        ReplicaEntries{3, {{1200, std::string("\x01\x00\xff", 3)}, {1201, "entry"}}, 1202, 1190}}});
  out.push_back({"replica_entries_empty", {28, {}, ReplicaEntries{3, {}, 1200, 1200}}});
  out.push_back({"replica_entries_compacted", {28, {}, ReplicaEntries{3, {}, 9000, 8990, 5000}}});
  out.push_back({"replica_snapshot",
                 {31,
                  {},
                  ReplicaSnapshot{3,
                                  std::string("\x01\x00\xff", 3),
                                  2,
                                  "pstate.bank.balances.0",
                                  std::string("\x02k", 2),
                                  -1,
                                  false,
                                  9000,
                                  {{1, 0}, {3, 4200}}}}});
  out.push_back(
      {"replica_snapshot_done", {32, {}, ReplicaSnapshot{3, "", 0, "", "", -1, true, 9001, {}}}});
  out.push_back({"replica_epoch_end", {29, {}, ReplicaEpochEnd{4, 1150}}});
  out.push_back({"module_file",
                 {30,
                  {},
                  ModuleFile{"bank",
                             "\x7f"
                             "ELF\x02\x01\x01\x00"s}}});
  return out;
}

}  // namespace strata::protocol::testing
