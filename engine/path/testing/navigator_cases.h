// The navigator semantics table: every navigator and terminal, each case with its
// expected outcome. path_test runs it on plain Values; pstate_test runs the same cases on
// a PState whose records are blobs and on one whose nested structures are subindexed, and
// all three must agree. The data fits the PState schema of pstate_test ("accounts":
// map<string, record{balance, tags, history, scores, groups, note}>).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "strata/json.h"
#include "strata/path.h"
#include "strata/status.h"

namespace strata::testing {

struct NavigatorCase {
  std::string name;
  Path path;
  // Select (no terminal): JSON list of the selected values.
  // Transform: the JSON value of top-level key `key` afterwards (null: removed), every other
  // top-level key unchanged; or the whole data when `key` is empty.
  std::string expected = "";
  std::string key = "";
  int64_t applied = -1;  // transforms: how many places the terminal was applied (-1: unchecked)
  StatusCode error = StatusCode::kOk;  // non-OK: the expected failure (data must be unchanged
                                       // for a select; transforms may be partly applied)
};

// gtest prints a failing case by name and path instead of its bytes.
inline void PrintTo(const NavigatorCase& c, std::ostream* os) {
  *os << c.name << ": " << c.path.ToString();
}

inline Value ParseOrDie(std::string_view json) {
  Result<Value> v = ParseJson(json);
  if (!v.ok()) std::abort();
  return std::move(v).value();
}

inline Value NavigatorCaseData() {
  return ParseOrDie(R"({
    "alice": {"balance": 10, "tags": {"$set": ["a", "b", "c"]}, "history": [1, 2, 3],
              "scores": {"math": 90, "art": 70, "bio": 80, "chem": 60},
              "groups": {"g1": {"$set": ["x", "y"]}, "g2": {"$set": ["z"]}},
              "note": "hi"},
    "bob": {"balance": 5, "tags": {"$set": []}, "history": [], "scores": {}, "groups": {}},
    "carol": {"balance": 7}
  })");
}

// The record of alice with `changes` applied (a JSON object of fields; null removes one).
inline std::string Alice(std::string_view changes) {
  Value alice = *NavigatorCaseData().Find("alice");
  const Value change_map = ParseOrDie(changes);
  for (const auto& [field, value] : change_map.as_map()) {
    if (value.is_nil()) {
      alice.Erase(field);
    } else {
      alice.Insert(field, value);
    }
  }
  return ToJson(alice);
}

inline std::vector<NavigatorCase> NavigatorCases() {
  using P = Path;
  const StatusCode kBad = StatusCode::kInvalidArgument;
  std::vector<NavigatorCase> c = {
      // key / must
      {"key", P().Key("alice", "balance"), "[10]"},
      {"key_absent_is_nil", P().Key("zed", "balance"), "[null]"},
      {"key_absent_field_is_nil", P().Key("carol", "tags"), "[null]"},
      {"key_whole_record", P().Key("carol"), R"([{"balance": 7}])"},
      {"key_set_member", P().Key("alice", "tags", "b"), R"(["b"])"},
      {"key_set_member_absent", P().Key("alice", "tags", "q"), "[null]"},
      {"must_present", P().Must("alice").Key("balance"), "[10]"},
      {"must_absent_stops", P().Must("zed").Key("balance"), "[]"},
      {"must_absent_field_stops", P().Key("carol").Must("tags"), "[]"},
      {"must_set_member", P().Key("alice", "tags").Must("c"), R"(["c"])"},
      {"must_set_member_absent", P().Key("alice", "tags").Must("q"), "[]"},
      {"must_nested_map", P().Key("alice", "groups").Must("g2"), R"([{"$set": ["z"]}])"},
      {"key_on_list_is_error", P().Key("alice", "history", "x"), "", "", -1, kBad},
      // nth / first / last
      {"nth", P().Key("alice", "history").Nth(1), "[2]"},
      {"nth_out_of_range_stops", P().Key("alice", "history").Nth(3), "[]"},
      {"nth_on_nil_stops", P().Key("carol", "history").Nth(0), "[]"},
      {"nth_on_map_is_error", P().Key("alice", "scores").Nth(0), "", "", -1, kBad},
      {"first_list", P().Key("alice", "history").First(), "[1]"},
      {"last_list", P().Key("alice", "history").Last(), "[3]"},
      {"first_empty_list_stops", P().Key("bob", "history").First(), "[]"},
      {"first_map_is_entry", P().Key("alice", "scores").First(), R"([["art", 70]])"},
      {"last_map_is_entry", P().Key("alice", "scores").Last(), R"([["math", 90]])"},
      {"first_set", P().Key("alice", "tags").First(), R"(["a"])"},
      {"last_set", P().Key("alice", "tags").Last(), R"(["c"])"},
      {"last_on_nil_stops", P().Key("carol", "scores").Last(), "[]"},
      {"first_on_scalar_is_error", P().Key("alice", "balance").First(), "", "", -1, kBad},
      // all / map_keys / map_vals
      {"all_list", P().Key("alice", "history").All(), "[1, 2, 3]"},
      {"all_set", P().Key("alice", "tags").All(), R"(["a", "b", "c"])"},
      {"all_map_entries", P().Key("alice", "scores").All(),
       R"([["art", 70], ["bio", 80], ["chem", 60], ["math", 90]])"},
      {"all_on_nil_is_empty", P().Key("carol", "tags").All(), "[]"},
      {"all_on_empty_set", P().Key("bob", "tags").All(), "[]"},
      {"all_entry_key", P().Key("alice", "scores").All().Nth(0),
       R"(["art", "bio", "chem", "math"])"},
      {"map_keys", P().Key("alice", "scores").MapKeys(), R"(["art", "bio", "chem", "math"])"},
      {"map_vals", P().Key("alice", "scores").MapVals(), "[70, 80, 60, 90]"},
      {"map_vals_on_set_is_error", P().Key("alice", "tags").MapVals(), "", "", -1, kBad},
      {"root_map_keys", P().MapKeys(), R"(["alice", "bob", "carol"])"},
      {"root_map_vals", P().MapVals().Key("balance"), "[10, 5, 7]"},
      {"nested_set_all", P().Key("alice", "groups", "g1").All(), R"(["x", "y"])"},
      {"nested_sizes", P().Key("alice", "groups").MapVals().Size(), "[2, 1]"},
      // range
      {"range_map", P().Key("alice", "scores").Range({.from = "b", .to = "d"}),
       R"([{"bio": 80, "chem": 60}])"},
      {"range_exclusive_from",
       P().Key("alice", "scores").Range({.from = "bio", .from_inclusive = false}),
       R"([{"chem": 60, "math": 90}])"},
      {"range_inclusive_to", P().Key("alice", "scores").Range({.to = "chem", .to_inclusive = true}),
       R"([{"art": 70, "bio": 80, "chem": 60}])"},
      {"range_exclusive_to", P().Key("alice", "scores").Range({.to = "chem"}),
       R"([{"art": 70, "bio": 80}])"},
      {"range_limit", P().Key("alice", "scores").Range({.from = "b", .limit = 2}),
       R"([{"bio": 80, "chem": 60}])"},
      {"range_limit_zero", P().Key("alice", "scores").Range({.limit = 0}), "[{}]"},
      {"range_reverse_limit", P().Key("alice", "scores").Range({.limit = 2, .reverse = true}),
       R"([{"chem": 60, "math": 90}])"},
      {"range_reverse_all", P().Key("alice", "scores").Range({.to = "d", .reverse = true}).All(),
       R"([["chem", 60], ["bio", 80], ["art", 70]])"},
      {"range_reverse_first", P().Key("alice", "scores").Range({.reverse = true}).First(),
       R"([["math", 90]])"},
      {"range_map_keys", P().Key("alice", "scores").Range({.from = "c"}).MapKeys(),
       R"(["chem", "math"])"},
      {"range_set", P().Key("alice", "tags").Range({.from = "b"}), R"([{"$set": ["b", "c"]}])"},
      {"range_key_outside_is_nil", P().Key("alice", "scores").Range({.to = "b"}).Key("math"),
       "[null]"},
      {"range_must_outside_stops", P().Key("alice", "scores").Range({.to = "b"}).Must("math"),
       "[]"},
      {"range_on_nil_stops", P().Key("carol", "scores").Range({.from = "a"}), "[]"},
      {"range_on_list_is_error", P().Key("alice", "history").Range({}), "", "", -1, kBad},
      // size
      {"size_list", P().Key("alice", "history").Size(), "[3]"},
      {"size_map", P().Key("alice", "scores").Size(), "[4]"},
      {"size_set", P().Key("alice", "tags").Size(), "[3]"},
      {"size_nil", P().Key("carol", "tags").Size(), "[0]"},
      {"size_empty", P().Key("bob", "scores").Size(), "[0]"},
      {"size_record", P().Key("carol").Size(), "[1]"},
      {"size_root", P().Size(), "[3]"},
      {"size_range", P().Key("alice", "scores").Range({.from = "b"}).Size(), "[3]"},
      {"size_range_limit", P().Key("alice", "scores").Range({.limit = 3}).Size(), "[3]"},
      {"size_scalar_is_error", P().Key("alice", "balance").Size(), "", "", -1, kBad},
      // filter
      {"filter_gt", P().Key("alice", "history").All().Filter(PredicateOp::kGt, 1), "[2, 3]"},
      {"filter_ge", P().Key("alice", "scores").MapVals().Filter(PredicateOp::kGe, 80), "[80, 90]"},
      {"filter_lt", P().Key("alice", "scores").MapVals().Filter(PredicateOp::kLt, 80), "[70, 60]"},
      {"filter_le", P().Key("alice", "scores").MapVals().Filter(PredicateOp::kLe, 80),
       "[70, 80, 60]"},
      {"filter_eq", P().Key("alice", "tags").All().Filter(PredicateOp::kEq, "b"), R"(["b"])"},
      {"filter_ne", P().Key("alice", "tags").All().Filter(PredicateOp::kNe, "b"), R"(["a", "c"])"},
      {"filter_numeric_across_types", P().Key("alice", "balance").Filter(PredicateOp::kEq, 10.0),
       "[10]"},
      {"filter_exists", P().MapVals().Key("tags").Filter(PredicateOp::kExists).Size(), "[3, 0]"},
      {"filter_on_subpath",
       P().Key("alice", "scores").All().FilterOn(P().Nth(1), PredicateOp::kGt, 75).Nth(0),
       R"(["bio", "math"])"},
      {"filter_exists_on_keys", P().MapKeys().Filter(PredicateOp::kExists),
       R"(["alice", "bob", "carol"])"},
      {"filter_root_records",
       P().All().FilterOn(P().Nth(1).Key("balance"), PredicateOp::kLt, 8).Nth(0),
       R"(["bob", "carol"])"},
      // null_to
      {"null_to_on_nil", P().Key("carol", "history").NullTo(Value::ListOf({})), "[[]]"},
      {"null_to_on_value", P().Key("alice", "balance").NullTo(0), "[10]"},
      {"null_to_on_absent_key", P().Key("zed", "balance").NullTo(0), "[0]"},
      {"null_to_then_navigate",
       P().Key("zed").NullTo(ParseOrDie(R"({"balance": 1})")).Key("balance"), "[1]"},
      // transforms: set
      {"set", P().Key("alice", "balance").Set(20), Alice(R"({"balance": 20})"), "alice", 1},
      {"set_creates_record", P().Key("dave", "balance").Set(1), R"({"balance": 1})", "dave", 1},
      {"set_whole_record",
       P().Key("bob").Set(ParseOrDie(R"({"balance": 1, "tags": {"$set": ["t"]}})")),
       R"({"balance": 1, "tags": {"$set": ["t"]}})", "bob", 1},
      {"set_whole_field", P().Key("alice", "scores").Set(ParseOrDie(R"({"x": 1})")),
       Alice(R"({"scores": {"x": 1}})"), "alice", 1},
      {"set_nested_map_value", P().Key("alice", "scores", "art").Set(1),
       Alice(R"({"scores": {"math": 90, "art": 1, "bio": 80, "chem": 60}})"), "alice", 1},
      {"set_new_nested_key", P().Key("carol", "scores", "x").Set(5),
       R"({"balance": 7, "scores": {"x": 5}})", "carol", 1},
      {"set_list_element", P().Key("alice", "history").Last().Set(30),
       Alice(R"({"history": [1, 2, 30]})"), "alice", 1},
      {"set_nth_out_of_range_is_noop", P().Key("alice", "history").Nth(10).Set(1), Alice("{}"),
       "alice", 0},
      {"set_through_must_absent_is_noop", P().Must("zed").Key("balance").Set(1), "null", "zed", 0},
      {"set_set_member_to_itself", P().Key("alice", "tags", "a").Set("a"), Alice("{}"), "alice", 1},
      {"set_set_member_changes_is_error", P().Key("alice", "tags", "a").Set("z"), "", "alice", -1,
       kBad},
      {"set_map_key_changes_is_error", P().Key("alice", "scores").MapKeys().Set("zz"), "", "alice",
       -1, kBad},
      {"set_entry", P().Key("alice", "scores").First().Set(Value::ListOf({"art", 1})),
       Alice(R"({"scores": {"math": 90, "art": 1, "bio": 80, "chem": 60}})"), "alice", 1},
      {"set_entry_value", P().Key("alice", "scores").First().Nth(1).Set(2),
       Alice(R"({"scores": {"math": 90, "art": 2, "bio": 80, "chem": 60}})"), "alice", 1},
      {"set_through_size_is_error", P().Key("alice", "history").Size().Set(1), "", "alice", -1,
       kBad},
      {"set_range",
       P().Key("alice", "scores").Range({.from = "b", .to = "d"}).Set(ParseOrDie(R"({"bz": 1})")),
       Alice(R"({"scores": {"art": 70, "bz": 1, "math": 90}})"), "alice", 1},
      {"set_range_limit_vals", P().Key("alice", "scores").Range({.limit = 2}).MapVals().Set(0),
       Alice(R"({"scores": {"art": 0, "bio": 0, "chem": 60, "math": 90}})"), "alice", 2},
      {"set_range_reverse_limit_vals",
       P().Key("alice", "scores").Range({.limit = 1, .reverse = true}).MapVals().Set(0),
       Alice(R"({"scores": {"art": 70, "bio": 80, "chem": 60, "math": 0}})"), "alice", 1},
      {"set_range_outside_key_is_error",
       P().Key("alice", "scores").Range({.to = "b"}).Key("zz").Set(1), "", "alice", -1, kBad},
      // add / inc
      {"inc", P().Key("alice", "balance").Inc(), Alice(R"({"balance": 11})"), "alice", 1},
      {"add_negative", P().Key("alice", "balance").Add(-3), Alice(R"({"balance": 7})"), "alice", 1},
      {"inc_absent_starts_at_zero", P().Key("dave", "balance").Inc(), R"({"balance": 1})", "dave",
       1},
      {"inc_all_map_vals", P().Key("alice", "scores").MapVals().Inc(),
       Alice(R"({"scores": {"math": 91, "art": 71, "bio": 81, "chem": 61}})"), "alice", 4},
      {"inc_first_entry_value", P().Key("alice", "scores").First().Nth(1).Add(5),
       Alice(R"({"scores": {"math": 90, "art": 75, "bio": 80, "chem": 60}})"), "alice", 1},
      {"inc_every_balance", P().MapVals().Key("balance").Inc(), "", "", 3},
      {"inc_filtered_balances",
       P().All()
           .FilterOn(P().Nth(1).Key("balance"), PredicateOp::kLt, 8)
           .Nth(1)
           .Key("balance")
           .Set(0),
       "", "", 2},
      {"inc_string_is_error", P().Key("alice", "note").Inc(), "", "alice", -1, kBad},
      {"inc_overflow_is_error", P().Key("alice", "balance").Add(INT64_MAX), "", "alice", -1, kBad},
      // append
      {"append", P().Key("alice", "history").Append(4, 5), Alice(R"({"history": [1, 2, 3, 4, 5]})"),
       "alice", 1},
      {"append_absent_field", P().Key("carol", "history").Append(1),
       R"({"balance": 7, "history": [1]})", "carol", 1},
      {"append_absent_record", P().Key("dave", "history").Append(1), R"({"history": [1]})", "dave",
       1},
      {"append_to_empty", P().Key("bob", "history").Append(9),
       R"({"balance": 5, "tags": {"$set": []}, "history": [9], "scores": {}, "groups": {}})", "bob",
       1},
      {"append_to_map_is_error", P().Key("alice", "scores").Append(1), "", "alice", -1, kBad},
      // add_to_set
      {"add_to_set", P().Key("alice", "tags").AddToSet("d", "a"),
       Alice(R"({"tags": {"$set": ["a", "b", "c", "d"]}})"), "alice", 1},
      {"add_to_set_absent_field", P().Key("carol", "tags").AddToSet("x"),
       R"({"balance": 7, "tags": {"$set": ["x"]}})", "carol", 1},
      {"add_to_nested_set", P().Key("alice", "groups", "g3").AddToSet("q"),
       Alice(
           R"({"groups": {"g1": {"$set": ["x", "y"]}, "g2": {"$set": ["z"]}, "g3": {"$set": ["q"]}}})"),
       "alice", 1},
      {"add_to_set_on_list_is_error", P().Key("alice", "history").AddToSet(1), "", "alice", -1,
       kBad},
      // set_if_absent
      {"set_if_absent_present", P().Key("alice", "balance").SetIfAbsent(0), Alice("{}"), "alice",
       1},
      {"set_if_absent_absent", P().Key("carol", "note").SetIfAbsent("n"),
       R"({"balance": 7, "note": "n"})", "carol", 1},
      // null_to in transforms
      {"null_to_append", P().Key("carol", "history").NullTo(Value::ListOf({0})).Append(1),
       R"({"balance": 7, "history": [0, 1]})", "carol", 1},
      {"null_to_unused_writes_nothing", P().Key("carol", "note").NullTo("x").SetIfAbsent("y"),
       R"({"balance": 7})", "carol", 1},
      {"null_to_nested_create",
       P().Key("dave").NullTo(ParseOrDie(R"({"balance": 100})")).Key("note").Set("n"),
       R"({"balance": 100, "note": "n"})", "dave", 1},
      // remove
      {"remove_set_member", P().Key("alice", "tags", "b").Remove(),
       Alice(R"({"tags": {"$set": ["a", "c"]}})"), "alice", 1},
      {"remove_map_key", P().Key("alice", "scores", "art").Remove(),
       Alice(R"({"scores": {"math": 90, "bio": 80, "chem": 60}})"), "alice", 1},
      {"remove_nth", P().Key("alice", "history").Nth(0).Remove(), Alice(R"({"history": [2, 3]})"),
       "alice", 1},
      {"remove_filtered_list_elements",
       P().Key("alice", "history").All().Filter(PredicateOp::kGe, 2).Remove(),
       Alice(R"({"history": [1]})"), "alice", 2},
      {"remove_all_list_elements", P().Key("alice", "history").All().Remove(),
       Alice(R"({"history": []})"), "alice", 3},
      {"remove_filtered_entries",
       P().Key("alice", "scores").All().FilterOn(P().Nth(1), PredicateOp::kLt, 80).Remove(),
       Alice(R"({"scores": {"bio": 80, "math": 90}})"), "alice", 2},
      {"remove_range", P().Key("alice", "scores").Range({.from = "b", .to = "d"}).Remove(),
       Alice(R"({"scores": {"art": 70, "math": 90}})"), "alice", 1},
      {"remove_map_keys_filtered",
       P().Key("alice", "scores").MapKeys().Filter(PredicateOp::kLt, "b").Remove(),
       Alice(R"({"scores": {"bio": 80, "chem": 60, "math": 90}})"), "alice", 1},
      {"remove_last_entry", P().Key("alice", "scores").Last().Remove(),
       Alice(R"({"scores": {"art": 70, "bio": 80, "chem": 60}})"), "alice", 1},
      {"remove_nested_container", P().Key("alice", "groups", "g1").Remove(),
       Alice(R"({"groups": {"g2": {"$set": ["z"]}}})"), "alice", 1},
      {"remove_nested_member",
       P().Key("alice", "groups", "g1").All().Filter(PredicateOp::kEq, "x").Remove(),
       Alice(R"({"groups": {"g1": {"$set": ["y"]}, "g2": {"$set": ["z"]}}})"), "alice", 1},
      {"remove_field", P().Key("alice", "tags").Remove(), Alice(R"({"tags": null})"), "alice", 1},
      {"remove_record", P().Key("alice").Remove(), "null", "alice", 1},
      {"remove_absent_is_noop", P().Key("zed").Remove(), "null", "zed", 1},
      {"remove_null_to_default", P().Key("carol", "note").NullTo("x").Remove(), R"({"balance": 7})",
       "carol", 1},
      {"remove_root_entries_filtered",
       P().All().FilterOn(P().Nth(1).Key("balance"), PredicateOp::kGt, 6).Remove(), "", "", 2},
  };
  // Whole-data expectations.
  for (NavigatorCase& nc : c) {
    if (nc.name == "inc_every_balance") {
      Value d = NavigatorCaseData();
      for (const char* k : {"alice", "bob", "carol"}) {
        Value* rec = d.Find(k);
        rec->Insert("balance", rec->Find("balance")->as_int() + 1);
      }
      nc.expected = ToJson(d);
    } else if (nc.name == "inc_filtered_balances") {
      Value d = NavigatorCaseData();
      for (const char* k : {"bob", "carol"}) d.Find(k)->Insert("balance", 0);
      nc.expected = ToJson(d);
    } else if (nc.name == "remove_root_entries_filtered") {
      Value d = NavigatorCaseData();
      d.Erase("alice");
      d.Erase("carol");
      nc.expected = ToJson(d);
    }
  }
  return c;
}

}  // namespace strata::testing
