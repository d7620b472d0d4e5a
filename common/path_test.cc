// Path building, wire form round trip, printing and malformed-path errors.
#include "strata/path.h"

#include <gtest/gtest.h>

#include "strata/json.h"

namespace strata {
namespace {

Value J(std::string_view json) {
  Result<Value> v = ParseJson(json);
  EXPECT_TRUE(v.ok()) << json << ": " << v.status().ToString();
  return v.ok() ? *v : Value();
}

// One path of every navigator and terminal, with its wire form and its printed form.
struct Example {
  Path path;
  std::string wire;
  std::string text;
};

std::vector<Example> Examples() {
  return {
      {Path().Key("alice", "balance"), R"([["key","alice","balance"]])",
       R"(key("alice", "balance"))"},
      {Path().Must(1).Nth(2), R"([["must",1],["nth",2]])", "must(1).nth(2)"},
      {Path().First(), R"([["first"]])", "first"},
      {Path().Last(), R"([["last"]])", "last"},
      {Path().All().MapKeys().MapVals(), R"([["all"],["map_keys"],["map_vals"]])",
       "all.map_keys.map_vals"},
      {Path().Range({.from = "a", .to = "m", .limit = 20}),
       R"([["range",{"from":"a","limit":20,"to":"m"}]])", R"(range(["a", "m"), limit 20))"},
      {Path().Range({.from = 1, .from_inclusive = false, .to_inclusive = true, .reverse = true}),
       R"([["range",{"from":1,"from_inclusive":false,"reverse":true}]])",
       "range((1, +inf), reverse)"},
      {Path().Size(), R"([["size"]])", "size"},
      {Path().Filter(PredicateOp::kGt, 10), R"([["filter","gt",10]])", "filter(gt 10)"},
      {Path().Filter(PredicateOp::kExists), R"([["filter","exists"]])", "filter(exists)"},
      {Path().FilterOn(Path().Key("age"), PredicateOp::kGe, 18),
       R"([["filter","ge",18,[["key","age"]]]])", R"(filter(key("age") ge 18))"},
      {Path().NullTo(0).Inc(), R"([["null_to",0],["add",1]])", "null_to(0).inc"},
      {Path().Add(2.5), R"([["add",2.5]])", "add(2.5)"},
      {Path().Set(Value::ListOf({1, 2})), R"([["set",[1,2]]])", "set([1,2])"},
      {Path().Append(1, "x"), R"([["append",1,"x"]])", R"(append(1, "x"))"},
      {Path().AddToSet("x"), R"([["add_to_set","x"]])", R"(add_to_set("x"))"},
      {Path().SetIfAbsent(0), R"([["set_if_absent",0]])", "set_if_absent(0)"},
      {Path().Key("a").Remove(), R"([["key","a"],["remove"]])", R"(key("a").remove)"},
      {Path(), "[]", "(root)"},
  };
}

TEST(PathTest, WireFormAndTextOfEveryStep) {
  for (const Example& ex : Examples()) {
    SCOPED_TRACE(ex.text);
    EXPECT_TRUE(ex.path.Validate().ok());
    EXPECT_EQ(ex.path.ToValue(), J(ex.wire)) << ex.path.ToValue().ToString();
    EXPECT_EQ(ex.path.ToString(), ex.text);
    Result<Path> back = Path::FromValue(J(ex.wire));
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, ex.path);
    EXPECT_EQ(back->ToString(), ex.text);
  }
}

TEST(PathTest, IncIsAcceptedOnTheWireAsAddOne) {
  Result<Path> p = Path::FromValue(J(R"([["key","n"],["inc"]])"));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(*p, Path().Key("n").Inc());
}

TEST(PathTest, MalformedWireFormsSayWhatAndWhere) {
  struct Bad {
    std::string wire;
    std::string message;
  };
  const Bad cases[] = {
      {R"({"key":"a"})", "a path must be a list of steps, got map"},
      {R"([["key","a"],"all"])", "path step 1: a step must be a list starting with its name"},
      {R"([[]])", "path step 0: a step must be a list starting with its name"},
      {R"([["kye","a"]])", "path step 0: unknown path step \"kye\""},
      {R"([["key"]])", "path step 0: key needs at least one key"},
      {R"([["nth","x"]])", "path step 0: nth needs an int index, got \"x\""},
      {R"([["nth",-1]])", "path step 0: nth needs an index >= 0, got -1"},
      {R"([["nth"]])", "path step 0: nth takes 1 argument(s), got 0"},
      {R"([["all",1]])", "path step 0: all takes 0 argument(s), got 1"},
      {R"([["range",[1,2]]])", "path step 0: range needs a map of options"},
      {R"([["range",{"form":1}]])", "path step 0: unknown range option \"form\""},
      {R"([["range",{"limit":"ten"}]])", "path step 0: range limit must be an int"},
      {R"([["range",{"limit":-2}]])", "path step 0: range limit must be >= 0, got -2"},
      {R"([["range",{"reverse":1}]])", "path step 0: range option reverse must be a bool"},
      {R"([["filter","bigger",1]])", "path step 0: unknown filter predicate \"bigger\""},
      {R"([["filter","eq"]])", "path step 0: filter eq needs an operand"},
      {R"([["filter","eq",1,[["set",1],["all"]]]])",
       "path step 0: filter path: path step 0: terminal set must be the last step"},
      {R"([["filter","eq",1,[["nth",1],["set",1]]]])",
       "path step 0: a filter's path cannot end in a terminal"},
      {R"([["set",1],["key","a"]])", "path step 0: terminal set must be the last step of the path"},
      {R"([["add","x"]])", "path step 0: add needs a number, got \"x\""},
      {R"([["append"]])", "path step 0: append needs at least one value"},
      {R"([["remove",1]])", "path step 0: remove takes 0 argument(s), got 1"},
  };
  for (const Bad& bad : cases) {
    SCOPED_TRACE(bad.wire);
    Result<Path> p = Path::FromValue(J(bad.wire));
    ASSERT_FALSE(p.ok());
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(bad.message), std::string::npos) << p.status().message();
  }
}

TEST(PathTest, BuilderMisuseIsReportedByValidate) {
  Path after_terminal = Path().Set(1).Key("a");
  EXPECT_EQ(after_terminal.Validate().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(after_terminal.Validate().message().find("navigator key added after terminal set"),
            std::string::npos);
  Path two_terminals = Path().Set(1).Remove();
  EXPECT_NE(two_terminals.Validate().message().find("at most one terminal"), std::string::npos);
  EXPECT_NE(Path().Nth(-3).Validate().message().find("nth needs an index >= 0"), std::string::npos);
  EXPECT_FALSE(Path().Add("x").Validate().ok());
}

TEST(PathTest, RoundTripsNestedValuesAsArguments) {
  Value key = Value::MapOf({{Value(1), Value::SetOf({"a", Value::BytesOf("\x01")})}});
  Path p = Path().Key(key).Must(Value()).NullTo(Value::ListOf({1.5, false})).Append(key);
  Result<Path> back = Path::FromValue(p.ToValue());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);
}

}  // namespace
}  // namespace strata
