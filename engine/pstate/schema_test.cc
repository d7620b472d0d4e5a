// Schemas: wire form, printing, structural rules and value validation messages.
#include "strata/schema.h"

#include <gtest/gtest.h>

#include "strata/json.h"

namespace strata {
namespace {

Value J(std::string_view json) {
  Result<Value> v = ParseJson(json);
  EXPECT_TRUE(v.ok()) << json;
  return v.ok() ? *v : Value();
}

Schema Accounts() {
  return Schema::Map(Schema::String(),
                     Schema::Record({{"balance", Schema::Int64()},
                                     {"follows", Schema::Set(Schema::String()).Subindexed()},
                                     {"history", Schema::List(Schema::Double())},
                                     {"meta", Schema::Map(Schema::Any(), Schema::Bytes())},
                                     {"flag", Schema::Bool()}}));
}

TEST(SchemaTest, PrintsReadably) {
  EXPECT_EQ(Accounts().ToString(),
            "map<string, record{balance: int64, flag: bool, follows: subindexed set<string>, "
            "history: list<double>, meta: map<any, bytes>}>");
  EXPECT_EQ((PStateSchema{Schema::Int64(), true}).ToString(), "global int64");
  EXPECT_EQ(Schema::List(Schema::Any()).Subindexed().ToString(), "subindexed list<any>");
}

TEST(SchemaTest, RoundTripsThroughValue) {
  const Schema schemas[] = {
      Accounts(),
      Schema::Any(),
      Schema::Bool(),
      Schema::Bytes(),
      Schema::List(Schema::Map(Schema::Int64(), Schema::Double())).Subindexed(),
      Schema::Record({})};
  for (const Schema& s : schemas) {
    SCOPED_TRACE(s.ToString());
    Result<Schema> back = Schema::FromValue(s.ToValue());
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, s);
    EXPECT_EQ(back->ToString(), s.ToString());
  }
  PStateSchema p{Accounts(), true};
  Result<PStateSchema> back = PStateSchema::FromValue(p.ToValue());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, p);
  EXPECT_FALSE(*back == (PStateSchema{Accounts(), false}));
}

TEST(SchemaTest, WireFormIsDocumented) {
  EXPECT_EQ(Schema::Int64().ToValue(), Value("int64"));
  EXPECT_EQ(Schema::Map(Schema::String(), Schema::Int64()).Subindexed().ToValue(),
            J(R"({"type":"map","key":"string","value":"int64","subindexed":true})"));
  EXPECT_EQ(Schema::Record({{"a", Schema::Set(Schema::Bool())}}).ToValue(),
            J(R"({"type":"record","fields":{"a":{"type":"set","element":"bool"}}})"));
}

TEST(SchemaTest, MalformedWireFormsAreExplained) {
  struct Bad {
    std::string json;
    std::string message;
  };
  const Bad cases[] = {
      {R"("int")", "schema at root: unknown type \"int\""},
      {R"(5)", "schema at root: expected a type name or a map, got int 5"},
      {R"("map")", "schema at root: map needs a map form with its parts"},
      {R"({"key":"string"})", "schema at root: missing \"type\""},
      {R"({"type":"map","key":"string"})", "schema at root: missing \"value\""},
      {R"({"type":"set","element":"strin"})", "schema at root.element: unknown type \"strin\""},
      {R"({"type":"record","fields":[]})", "schema at root: a record needs \"fields\""},
      {R"({"type":"record","fields":{"a":"int64","b":{"type":"list"}}})",
       "schema at root.b: missing \"element\""},
      {R"({"type":"list","element":"any","subindexed":"yes"})",
       "schema at root: \"subindexed\" must be a bool"},
      {R"({"type":"list","element":"any","sorted":true})",
       "schema at root: unknown entry \"sorted\" for a list"},
  };
  for (const Bad& bad : cases) {
    SCOPED_TRACE(bad.json);
    Result<Schema> s = Schema::FromValue(J(bad.json));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(bad.message), std::string::npos) << s.status().message();
  }
}

TEST(SchemaTest, StructuralRules) {
  EXPECT_TRUE((PStateSchema{Accounts()}).Check().ok());
  // Subindexed inside subindexed, under records, at the root.
  Schema nested =
      Schema::Map(Schema::String(),
                  Schema::Map(Schema::String(),
                              Schema::Record({{"s", Schema::Set(Schema::Int64()).Subindexed()}}))
                      .Subindexed());
  EXPECT_TRUE((PStateSchema{nested}).Check().ok());
  EXPECT_TRUE((PStateSchema{Schema::List(Schema::Int64()).Subindexed(), true}).Check().ok());

  struct Bad {
    Schema schema;
    std::string message;
  };
  const Bad cases[] = {
      {Schema::Int64().Subindexed(),
       "schema at root: only maps, sets and lists can be subindexed, not int64"},
      {Schema::Map(Schema::String(), Schema::List(Schema::Set(Schema::Int64()).Subindexed())),
       "schema at root{value}{element}: a subindexed set cannot be inside a blob"},
      {Schema::Map(Schema::String(),
                   Schema::Map(Schema::String(), Schema::Set(Schema::Int64()).Subindexed())),
       "schema at root{value}{value}: a subindexed set cannot be inside a blob"},
      {Schema::Map(Schema::Set(Schema::Int64()).Subindexed(), Schema::Int64()),
       "schema at root{key}: a subindexed set cannot be inside a blob"},
      {Schema::List(Schema::Record({{"m", Schema::Map(Schema::Any(), Schema::Any()).Subindexed()}}))
           .Subindexed(),
       "schema at root{element}.m: a subindexed map cannot be inside a blob"},
      {Schema::Record({{"a", Schema::Int64()}, {"a", Schema::Bool()}}),
       "schema at root: duplicate field \"a\""},
  };
  for (const Bad& bad : cases) {
    SCOPED_TRACE(bad.schema.ToString());
    Status st = (PStateSchema{bad.schema}).Check();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find(bad.message), std::string::npos) << st.message();
  }
}

TEST(SchemaTest, ValidationNamesPathExpectedTypeAndValue) {
  struct Case {
    std::string value;
    std::string message;  // empty: valid
  };
  const Case cases[] = {
      {R"({"alice": {"balance": 5, "follows": {"$set": ["bob"]}, "history": [1.5],
           "meta": {"1": {"$bytes": ""}}, "flag": true}})",
       ""},
      {R"({"alice": {}})", ""},
      {R"({"alice": {"balance": "x"}})",
       R"($$accounts["alice"].balance: expected int64, got string "x")"},
      {R"({"alice": {"balance": null}})",
       R"($$accounts["alice"].balance: expected int64, got nil null)"},
      {R"({"alice": {"history": [1.5, 2]}})",
       R"($$accounts["alice"].history[1]: expected double, got int 2)"},
      {R"({"alice": {"follows": {"$set": ["a", 3]}}})",
       R"($$accounts["alice"].follows[3]: expected string, got int 3)"},
      {R"({"alice": {"bal": 1}})",
       R"($$accounts["alice"]: unknown field "bal" (fields: balance, flag, follows, history, meta))"},
      {R"({"$map": [[7, {}]]})", R"($$accounts[7]: expected a string key, got int 7)"},
      {R"({"alice": 3})", R"($$accounts["alice"]: expected record{balance: int64, flag: bool, )"},
      {R"([1])", R"($$accounts: expected map<string, record{)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.value);
    Status st = ValidateValue(Accounts(), J(c.value), "$$accounts");
    if (c.message.empty()) {
      EXPECT_TRUE(st.ok()) << st.ToString();
      continue;
    }
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), StatusCode::kSchemaViolation);
    EXPECT_EQ(st.message().substr(0, c.message.size()), c.message) << st.message();
  }
}

TEST(SchemaTest, LongValuesAreCutInMessages) {
  std::string big(1000, 'x');
  Status st = ValidateValue(Schema::Int64(), Value(big), "$$p");
  ASSERT_FALSE(st.ok());
  EXPECT_LT(st.message().size(), 200u);
  EXPECT_NE(st.message().find("..."), std::string::npos);
}

// ---- SchemaWidens ----------------------------------------------------------------------

PStateSchema P(Schema root, bool global = false) { return PStateSchema{std::move(root), global}; }

TEST(SchemaWidensTest, EqualSchemasDoNotWiden) {
  Result<bool> same = SchemaWidens(P(Accounts()), P(Accounts()));
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_FALSE(*same);
}

TEST(SchemaWidensTest, AcceptsEachWideningRule) {
  const Schema counts = Schema::Map(Schema::String(), Schema::Int64());
  struct Case {
    std::string rule;
    Schema stored;
    Schema declared;
  };
  const Case cases[] = {
      {"a leaf to any", Schema::Int64(), Schema::Any()},
      {"a composite to any", Schema::List(Schema::Int64()), Schema::Any()},
      {"a map value to any", counts, Schema::Map(Schema::String(), Schema::Any())},
      {"a map key to any", counts, Schema::Map(Schema::Any(), Schema::Int64())},
      {"a set element to any", Schema::Set(Schema::String()).Subindexed(),
       Schema::Set(Schema::Any()).Subindexed()},
      {"a list element to any", Schema::List(Schema::Double()), Schema::List(Schema::Any())},
      {"a record gains a field", Schema::Record({{"a", Schema::Int64()}}),
       Schema::Record({{"a", Schema::Int64()}, {"b", Schema::Map(Schema::Any(), Schema::Any())}})},
      {"a record gains a field inside a map value",
       Schema::Map(Schema::String(), Schema::Record({{"a", Schema::Int64()}})),
       Schema::Map(Schema::String(),
                   Schema::Record({{"a", Schema::Int64()}, {"b", Schema::String()}}))},
      {"a record field to any, deep",
       Schema::Map(
           Schema::String(),
           Schema::Map(Schema::Int64(), Schema::Record({{"a", Schema::Int64()}})).Subindexed()),
       Schema::Map(
           Schema::String(),
           Schema::Map(Schema::Int64(), Schema::Record({{"a", Schema::Any()}})).Subindexed())},
      {"a record with subindexed fields gains a subindexed field",
       Schema::Record({{"s", Schema::Set(Schema::Int64()).Subindexed()}}),
       Schema::Record({{"s", Schema::Set(Schema::Int64()).Subindexed()},
                       {"t", Schema::Set(Schema::Int64()).Subindexed()}})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rule);
    for (bool global : {false, true}) {
      Result<bool> widens = SchemaWidens(P(c.stored, global), P(c.declared, global));
      ASSERT_TRUE(widens.ok()) << widens.status().ToString();
      EXPECT_TRUE(*widens);
    }
  }
}

TEST(SchemaWidensTest, RefusesEverythingElseNamingBothSchemasAndThePlace) {
  const Schema counts = Schema::Map(Schema::String(), Schema::Int64());
  struct Case {
    std::string rule;
    PStateSchema stored;
    PStateSchema declared;
    std::string where;  // after "without a migration: "
  };
  const Case cases[] = {
      {"a leaf changes type", P(counts), P(Schema::Map(Schema::String(), Schema::String())),
       "value of the map: int64 became string"},
      {"any narrows", P(Schema::Map(Schema::String(), Schema::Any())), P(counts),
       "value of the map: any became int64"},
      {"a key changes type", P(counts), P(Schema::Map(Schema::Int64(), Schema::Int64())),
       "key of the map: string became int64"},
      {"a composite changes kind", P(Schema::List(Schema::Int64())),
       P(Schema::Set(Schema::Int64())), "root: list<int64> became set<int64>"},
      {"a list element changes type", P(Schema::List(Schema::Int64())),
       P(Schema::List(Schema::Double())), "element of the list: int64 became double"},
      {"a set element changes type", P(Schema::Set(Schema::Int64())),
       P(Schema::Set(Schema::String())), "element of the set: int64 became string"},
      {"a record loses a field",
       P(Schema::Map(Schema::String(),
                     Schema::Record({{"a", Schema::Int64()}, {"b", Schema::Int64()}}))),
       P(Schema::Map(Schema::String(), Schema::Record({{"a", Schema::Int64()}}))),
       "value of the map: field \"b\" was removed"},
      {"a record field changes type, deep",
       P(Schema::Map(Schema::String(), Schema::Record({{"a", Schema::List(Schema::Int64())}}))),
       P(Schema::Map(Schema::String(), Schema::Record({{"a", Schema::List(Schema::Bool())}}))),
       "element of the list in the field \"a\" of the record in the value of the map: int64 "
       "became bool"},
      {"a map becomes subindexed", P(Schema::Map(Schema::String(), counts)),
       P(Schema::Map(Schema::String(), counts.Subindexed())),
       "value of the map: map<string, int64> became subindexed map<string, int64> (the "
       "subindexed flag decides how the data is stored)"},
      {"a subindexed set stops being subindexed",
       P(Schema::Record({{"s", Schema::Set(Schema::Int64()).Subindexed()}})),
       P(Schema::Record({{"s", Schema::Set(Schema::Int64())}})),
       "field \"s\" of the record: subindexed set<int64> became set<int64>"},
      {"a part with subindexed parts becomes any",
       P(Schema::Map(Schema::String(),
                     Schema::Record({{"s", Schema::Set(Schema::Int64()).Subindexed()}}))),
       P(Schema::Map(Schema::String(), Schema::Any())),
       "value of the map: record{s: subindexed set<int64>} became any, but its subindexed parts "
       "are stored one element per record"},
      {"a blob record gains a subindexed field",
       P(Schema::Map(Schema::String(), Schema::Record({{"a", Schema::Int64()}}))),
       P(Schema::Map(Schema::String(),
                     Schema::Record({{"a", Schema::Int64()},
                                     {"s", Schema::Set(Schema::Int64()).Subindexed()}}))),
       "value of the map: new field \"s\" (subindexed set<int64>) has a subindexed part"},
      {"global changes", P(counts, false), P(counts, true),
       "a partitioned PState cannot become global"},
      {"global changes, even to any", P(counts, true), P(Schema::Any(), false),
       "a global PState cannot become partitioned"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.rule);
    Result<bool> widens = SchemaWidens(c.stored, c.declared);
    ASSERT_FALSE(widens.ok());
    EXPECT_EQ(widens.status().code(), StatusCode::kInvalidArgument);
    const std::string head =
        c.stored.ToString() + " cannot become " + c.declared.ToString() + " without a migration: ";
    EXPECT_EQ(widens.status().message().substr(0, head.size()), head) << widens.status().message();
    EXPECT_EQ(widens.status().message().substr(head.size(), c.where.size()), c.where)
        << widens.status().message();
  }
}

}  // namespace
}  // namespace strata
