#include "strata/json.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "strata/status.h"
#include "strata/testing/test_seed.h"
#include "strata/value.h"
#include "strata/value_codec.h"
#include "testing/random_value.h"

namespace strata {
namespace {

using ::testing::AssertionFailure;
using ::testing::AssertionResult;
using ::testing::AssertionSuccess;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

std::string Str(std::string_view s) { return std::string(s); }

AssertionResult SameValue(const Value& expected, const Value& actual) {
  if (expected == actual) return AssertionSuccess();
  return AssertionFailure() << "expected " << ToJson(expected) << "\n  but got " << ToJson(actual);
}

// Parses `text`, which must be valid, and compares with `expected`.
AssertionResult ParsesTo(std::string_view text, const Value& expected) {
  Result<Value> r = ParseJson(text);
  if (!r.ok())
    return AssertionFailure() << "ParseJson(" << text << ") failed: " << r.status().ToString();
  return SameValue(expected, *r) << "\n  parsing " << text;
}

// ---------------------------------------------------------------------------
// Printing and parsing of every type: ToJson(value) == json and ParseJson(json) == value.

struct FormCase {
  std::string name;
  Value value;
  std::string json;
};

std::vector<FormCase> FormCases() {
  return {
      {"nil", Value(), "null"},
      {"true", Value(true), "true"},
      {"false", Value(false), "false"},
      {"int_zero", Value(0), "0"},
      {"int_negative", Value(-17), "-17"},
      {"int64_min", Value(kInt64Min), "-9223372036854775808"},
      {"int64_max", Value(kInt64Max), "9223372036854775807"},
      {"double_integral", Value(1.0), "1.0"},
      {"double_zero", Value(0.0), "0.0"},
      {"double_negative_zero", Value(-0.0), "-0.0"},
      {"double_fraction", Value(0.1), "0.1"},
      {"double_negative", Value(-2.5), "-2.5"},
      {"double_hundred", Value(100.0), "100.0"},
      {"double_exponent_shorter", Value(100000.0), "1e+05"},
      {"double_large", Value(1e300), "1e+300"},
      {"double_small", Value(1e-7), "1e-07"},
      {"double_fixed_longer_than_int64", Value(123456789012345680000.0), "123456789012345683968.0"},
      {"double_max", Value(std::numeric_limits<double>::max()), "1.7976931348623157e+308"},
      {"double_denorm_min", Value(std::numeric_limits<double>::denorm_min()), "5e-324"},
      {"double_17_digits", Value(0.30000000000000004), "0.30000000000000004"},
      {"double_nan", Value(kNaN), R"({"$double":"NaN"})"},
      {"double_negative_nan", Value(-kNaN), R"({"$double":"-NaN"})"},
      {"double_infinity", Value(kInf), R"({"$double":"Infinity"})"},
      {"double_negative_infinity", Value(-kInf), R"({"$double":"-Infinity"})"},
      {"string_empty", Value(""), R"("")"},
      {"string_plain", Value("hello"), R"("hello")"},
      {"string_quote_backslash", Value("a\"b\\c/"), R"("a\"b\\c/")"},
      {"string_nul", Value(Str(std::string_view("\0", 1))), R"("\u0000")"},
      {"string_nul_inside", Value(Str(std::string_view("a\0b", 3))), R"("a\u0000b")"},
      {"string_newline_tab", Value("a\nb\tc"), R"("a\nb\tc")"},
      {"string_control", Value("\x01\x1f"), R"("\u0001\u001f")"},
      {"string_del", Value("\x7f"), "\"\x7f\""},
      {"string_utf8", Value("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"),
       "\"\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\""},
      {"string_invalid_utf8", Value("\xff"), R"({"$string":"/w=="})"},
      {"string_invalid_utf8_with_nul", Value(Str(std::string_view("a\0\xc0\x80", 4))),
       R"({"$string":"YQDAgA=="})"},
      {"string_looks_like_tag", Value("$set"), R"("$set")"},
      {"bytes_empty", Value::BytesOf(""), R"({"$bytes":""})"},
      {"bytes_one", Value::BytesOf("a"), R"({"$bytes":"YQ=="})"},
      {"bytes_two", Value::BytesOf("ab"), R"({"$bytes":"YWI="})"},
      {"bytes_three", Value::BytesOf("abc"), R"({"$bytes":"YWJj"})"},
      {"bytes_binary", Value::BytesOf(std::string_view("\x00\x01\xff", 3)), R"({"$bytes":"AAH/"})"},
      {"bytes_alphabet_end", Value::BytesOf("\xfb\xff"), R"({"$bytes":"+/8="})"},
      {"list_empty", Value::ListOf({}), "[]"},
      {"list_mixed", Value::ListOf({1, "a", Value(), 2.0}), R"([1,"a",null,2.0])"},
      {"list_nested", Value::ListOf({Value::ListOf({}), Value::ListOf({Value::ListOf({})})}),
       "[[],[[]]]"},
      {"map_empty", Value::EmptyMap(), "{}"},
      {"map_string_keys_sorted", Value::MapOf({{"b", 1}, {"a", 2}, {"", 3}}),
       R"({"":3,"a":2,"b":1})"},
      {"map_int_key", Value::MapOf({{1, "x"}}), R"({"$map":[[1,"x"]]})"},
      {"map_mixed_keys_in_value_order", Value::MapOf({{"b", 2}, {1, "a"}, {Value(), true}}),
       R"({"$map":[[null,true],[1,"a"],["b",2]]})"},
      {"map_container_keys",
       Value::MapOf({{Value::ListOf({1, 2}), Value::MapOf({{Value::BytesOf("x"), 1}})},
                     {Value::SetOf({3}), Value::EmptyMap()}}),
       R"({"$map":[[[1,2],{"$map":[[{"$bytes":"eA=="},1]]}],[{"$set":[3]},{}]]})"},
      {"map_invalid_utf8_key", Value::MapOf({{"\xff", 1}}), R"({"$map":[[{"$string":"/w=="},1]]})"},
      {"map_lone_reserved_key_set", Value::MapOf({{"$set", 1}}), R"({"$map":[["$set",1]]})"},
      {"map_lone_reserved_key_bytes", Value::MapOf({{"$bytes", "YQ=="}}),
       R"({"$map":[["$bytes","YQ=="]]})"},
      {"map_lone_reserved_key_double", Value::MapOf({{"$double", "NaN"}}),
       R"({"$map":[["$double","NaN"]]})"},
      {"map_lone_reserved_key_string", Value::MapOf({{"$string", ""}}),
       R"({"$map":[["$string",""]]})"},
      {"map_lone_reserved_key_map", Value::MapOf({{"$map", Value::ListOf({})}}),
       R"({"$map":[["$map",[]]]})"},
      {"map_reserved_key_with_other", Value::MapOf({{"$set", 1}, {"x", 2}}), R"({"$set":1,"x":2})"},
      {"map_two_reserved_keys", Value::MapOf({{"$set", 1}, {"$map", 2}}), R"({"$map":2,"$set":1})"},
      {"map_unreserved_dollar_key", Value::MapOf({{"$foo", 1}}), R"({"$foo":1})"},
      {"map_nested", Value::MapOf({{"a", Value::MapOf({{"b", Value::ListOf({1})}})}}),
       R"({"a":{"b":[1]}})"},
      {"set_empty", Value::EmptySet(), R"({"$set":[]})"},
      {"set_sorted", Value::SetOf({3, 1, 2}), R"({"$set":[1,2,3]})"},
      {"set_mixed", Value::SetOf({"a", 1, Value(), 1.5}), R"({"$set":[null,1,1.5,"a"]})"},
      {"set_of_sets", Value::SetOf({Value::EmptySet(), Value::SetOf({Value::EmptyMap()})}),
       R"({"$set":[{"$set":[]},{"$set":[{}]}]})"},
  };
}

void PrintTo(const FormCase& c, std::ostream* os) { *os << c.json; }

class JsonFormTest : public ::testing::TestWithParam<FormCase> {};

TEST_P(JsonFormTest, PrintsCompactForm) { EXPECT_EQ(ToJson(GetParam().value), GetParam().json); }

TEST_P(JsonFormTest, ParsesCompactForm) {
  EXPECT_TRUE(ParsesTo(GetParam().json, GetParam().value));
}

TEST_P(JsonFormTest, PrettyFormParsesBack) {
  for (int indent : {0, 1, 2, 4}) {
    std::string pretty = ToJson(GetParam().value, indent);
    EXPECT_TRUE(ParsesTo(pretty, GetParam().value)) << "indent " << indent;
  }
}

INSTANTIATE_TEST_SUITE_P(JsonAllTypes, JsonFormTest, ::testing::ValuesIn(FormCases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------
// Pretty printing layout.

TEST(JsonPrettyTest, IndentsNestedContainers) {
  Value v = Value::MapOf({{"a", Value::ListOf({1, 2.5})},
                          {"b", Value::EmptyMap()},
                          {"c", Value::SetOf({true})},
                          {"d", Value::BytesOf("x")},
                          {"e", Value(-kInf)},
                          {"f", Value::ListOf({})}});
  EXPECT_EQ(ToJson(v, 2),
            "{\n"
            "  \"a\": [\n"
            "    1,\n"
            "    2.5\n"
            "  ],\n"
            "  \"b\": {},\n"
            "  \"c\": {\n"
            "    \"$set\": [\n"
            "      true\n"
            "    ]\n"
            "  },\n"
            "  \"d\": {\"$bytes\": \"eA==\"},\n"
            "  \"e\": {\"$double\": \"-Infinity\"},\n"
            "  \"f\": []\n"
            "}");
}

TEST(JsonPrettyTest, MapFormPairsAreArrays) {
  Value v = Value::MapOf({{1, "x"}});
  EXPECT_EQ(ToJson(v, 1),
            "{\n"
            " \"$map\": [\n"
            "  [\n"
            "   1,\n"
            "   \"x\"\n"
            "  ]\n"
            " ]\n"
            "}");
}

TEST(JsonPrettyTest, IndentZeroBreaksLinesWithoutSpaces) {
  EXPECT_EQ(ToJson(Value::ListOf({1, Value::MapOf({{"k", 2}})}), 0), "[\n1,\n{\n\"k\": 2\n}\n]");
}

TEST(JsonPrettyTest, ScalarsAreTheSameInEveryForm) {
  for (const Value& v : {Value(1), Value("s"), Value(0.5), Value()}) {
    EXPECT_EQ(ToJson(v, 2), ToJson(v));
  }
}

TEST(JsonPrettyTest, NegativeIndentIsCompact) {
  Value v = Value::MapOf({{"a", Value::ListOf({1, 2})}});
  EXPECT_EQ(ToJson(v, -1), R"({"a":[1,2]})");
  EXPECT_EQ(ToJson(v, -7), R"({"a":[1,2]})");
  EXPECT_EQ(v.ToString(), R"({"a":[1,2]})");
}

// ---------------------------------------------------------------------------
// Inputs that ToJson never writes but that are valid.

TEST(JsonParseTest, NumberKindFollowsTheLiteral) {
  EXPECT_TRUE(ParsesTo("1", Value(1)));
  EXPECT_TRUE(ParsesTo("1.0", Value(1.0)));
  EXPECT_TRUE(ParsesTo("1e2", Value(100.0)));
  EXPECT_TRUE(ParsesTo("1E2", Value(100.0)));
  EXPECT_TRUE(ParsesTo("1e+2", Value(100.0)));
  EXPECT_TRUE(ParsesTo("25E-1", Value(2.5)));
  EXPECT_TRUE(ParsesTo("-0", Value(0)));
  EXPECT_TRUE(ParsesTo("-0.0", Value(-0.0)));
  EXPECT_TRUE(ParsesTo("-0e0", Value(-0.0)));
  EXPECT_TRUE(ParsesTo("1e-400", Value(0.0)));  // underflows to zero: representable
  EXPECT_TRUE(ParsesTo("9223372036854775807", Value(kInt64Max)));
  EXPECT_TRUE(ParsesTo("-9223372036854775808", Value(kInt64Min)));
  EXPECT_TRUE(ParsesTo("9223372036854775808.0", Value(9223372036854775808.0)));
  EXPECT_TRUE(ParsesTo("1.0e20", Value(1e20)));
  EXPECT_TRUE(ParsesTo("1.7976931348623157e308", Value(std::numeric_limits<double>::max())));
}

TEST(JsonParseTest, WhiteSpaceAroundAndInside) {
  EXPECT_TRUE(ParsesTo(" \t\r\n 1 \n", Value(1)));
  EXPECT_TRUE(
      ParsesTo("[ 1 , { \"a\" : null } ]\n", Value::ListOf({1, Value::MapOf({{"a", Value()}})})));
  EXPECT_TRUE(ParsesTo("\xEF\xBB\xBF[]", Value::ListOf({})));  // a UTF-8 byte order mark
}

TEST(JsonParseTest, StringEscapes) {
  EXPECT_TRUE(ParsesTo(R"("\u00e9\u20AC")", Value("\xC3\xA9\xE2\x82\xAC")));
  EXPECT_TRUE(ParsesTo(R"("\ud83d\ude00")", Value("\xF0\x9F\x98\x80")));
  EXPECT_TRUE(ParsesTo(R"("\u0000")", Value(Str(std::string_view("\0", 1)))));
  EXPECT_TRUE(ParsesTo(R"("\/\b\f\n\r\t\"\\")", Value("/\b\f\n\r\t\"\\")));
}

TEST(JsonParseTest, ObjectsThatAreNotTaggedFormsArePlainMaps) {
  EXPECT_TRUE(ParsesTo(R"({"$foo":1})", Value::MapOf({{"$foo", 1}})));
  EXPECT_TRUE(
      ParsesTo(R"({"$set":[],"x":1})", Value::MapOf({{"$set", Value::ListOf({})}, {"x", 1}})));
  EXPECT_TRUE(
      ParsesTo(R"({"x":1,"$set":[]})", Value::MapOf({{"$set", Value::ListOf({})}, {"x", 1}})));
  // As plain members, contents that would be invalid in the tagged form are fine.
  EXPECT_TRUE(ParsesTo(R"({"$set":[1,1],"x":1})",
                       Value::MapOf({{"$set", Value::ListOf({1, 1})}, {"x", 1}})));
  EXPECT_TRUE(
      ParsesTo(R"({"$map":[1],"y":0})", Value::MapOf({{"$map", Value::ListOf({1})}, {"y", 0}})));
  EXPECT_TRUE(
      ParsesTo(R"({"$bytes":"!","$double":7})", Value::MapOf({{"$bytes", "!"}, {"$double", 7}})));
}

TEST(JsonParseTest, TaggedFormsInNonCanonicalSpelling) {
  EXPECT_TRUE(ParsesTo(R"({"$set":[2,1]})", Value::SetOf({1, 2})));
  EXPECT_TRUE(ParsesTo(R"({"$map":[["b",1],["a",2]]})", Value::MapOf({{"a", 2}, {"b", 1}})));
  EXPECT_TRUE(ParsesTo(R"({"$map":[]})", Value::EmptyMap()));
  EXPECT_TRUE(ParsesTo(R"({"$string":"YQ=="})", Value("a")));
  EXPECT_TRUE(ParsesTo(R"({"$string":""})", Value("")));
  EXPECT_TRUE(ParsesTo(R"({ "$bytes" : "" })", Value::BytesOf("")));
  EXPECT_TRUE(ParsesTo(R"({"b":1,"a":2})", Value::MapOf({{"a", 2}, {"b", 1}})));
}

// ---------------------------------------------------------------------------
// Errors: kInvalidArgument, "offset N" and, for semantic errors, the location.

struct ErrorCase {
  std::string name;
  std::string text;
  size_t offset;
  std::string location;  // JSON path in the message; empty for syntax errors
  std::string what;      // another substring of the message
};

std::vector<ErrorCase> ErrorCases() {
  return {
      {"empty", "", 0, "", "end of input"},
      {"only_space", "   ", 3, "", "end of input"},
      {"trailing_comma", "[1,]", 3, "", "unexpected ']'"},
      {"bad_literal", "tru", 3, "", "invalid literal"},
      {"missing_comma", "[1 2]", 3, "", "expected ']'"},
      {"missing_colon", R"({"a" 1})", 5, "", "expected ':'"},
      {"key_not_string", "{1:2}", 1, "", "expected string literal"},
      {"unclosed_array", "[1", 2, "", "expected ']'"},
      {"unclosed_object", R"({"a":1)", 6, "", "expected '}'"},
      {"trailing_garbage", "1 x", 2, "", "invalid literal"},
      {"second_document", "[1] [2]", 4, "", "expected end of input"},
      {"raw_control_char", "\"a\nb\"", 2, "", "control character"},
      {"invalid_utf8_in_string", "[\"\xff\"]", 2, "", "ill-formed UTF-8"},
      {"lone_surrogate", R"(["\ud800"])", 8, "", "surrogate"},
      {"bad_escape", R"(["\x"])", 3, "", "forbidden character after backslash"},
      {"incomplete_number", "[1.", 3, "", "expected digit after '.'"},
      {"leading_zero", "01", 1, "", "expected end of input"},
      {"int_above_int64", "9223372036854775808", 0, "$", "out of the int64 range"},
      {"int_below_int64", "[0,-9223372036854775809]", 3, "$[1]", "1.0e20"},
      {"int_above_uint64", R"({"n":18446744073709551616})", 5, "$.n",
       "integer 18446744073709551616"},
      {"int_huge", "[" + std::string(400, '9') + "]", 1, "$[0]", "out of the int64 range"},
      {"double_overflow", R"({"a":[1e400]})", 6, "$.a[0]", "out of the double range"},
      {"double_overflow_negative", "[-1.5e309]", 1, "$[0]", "-Infinity"},
      {"duplicate_key", R"({"a":1,"a":2})", 7, "$.a", R"(duplicate object key "a")"},
      {"duplicate_key_deep", R"({"a b":{"c":[true,{"d":1,"d":2}]}})", 25, R"($["a b"].c[1].d)",
       "duplicate object key"},
      {"duplicate_key_after_bom", "\xEF\xBB\xBF{\"a\":1,\"a\":2}", 10, "$.a", "duplicate"},
      {"duplicate_reserved_key", R"({"$set":[1],"$set":[2]})", 12, "$.$set",
       "duplicate object key"},
      {"bytes_bad_length", R"({"x":{"$bytes":"abc"}})", 15, "$.x.$bytes", "multiple of 4"},
      {"bytes_not_string", R"({"$bytes":5})", 10, "$.$bytes", "must be a base64 string, not int 5"},
      {"bytes_bad_char", R"({"$bytes":"QQ!="})", 10, "$.$bytes",
       "invalid base64 character '!' at position 2"},
      {"bytes_misplaced_padding", R"({"$bytes":"Q=Q="})", 10, "$.$bytes",
       "invalid base64 character '='"},
      {"bytes_noncanonical", R"({"$bytes":"QR=="})", 10, "$.$bytes", "non-zero bits"},
      {"string_bad_base64", R"({"$string":"=="})", 11, "$.$string", "multiple of 4"},
      {"double_bad_name", R"({"$double":"nan"})", 11, "$.$double",
       R"(one of "NaN", "-NaN", "Infinity", "-Infinity")"},
      {"double_number", R"({"$double":1.5})", 11, "$.$double", "not double 1.5"},
      {"set_duplicate", R"([{"$set":[1,2,1]}])", 14, "$[0].$set[2]", "duplicate $set element 1"},
      {"set_duplicate_double", R"({"$set":[1.0,2,1.0]})", 15, "$.$set[2]",
       "duplicate $set element 1.0"},
      {"set_not_array", R"({"$set":{"a":1}})", 8, "$.$set", "must be an array of elements"},
      {"map_duplicate_key", R"({"$map":[[1,2],[1,3]]})", 15, "$.$map[1]", "duplicate $map key 1"},
      {"map_pair_too_short", R"({"$map":[[1]]})", 9, "$.$map[0]", "[key, value]"},
      {"map_pair_not_array", R"({"$map":[[1,2],3]})", 15, "$.$map[1]", "[key, value]"},
      {"map_not_array", R"({"$map":{}})", 8, "$.$map", "array of [key, value] pairs"},
      // The offsets after a number include the byte the parser read ahead.
      {"semantic_after_number", R"([1 ,{"$double":true}])", 15, "$[1].$double", "not bool true"},
      {"too_deep", std::string(65, '[') + std::string(65, ']'), 64,
       "$" +
           [] {
             std::string p;
             for (int i = 0; i < 64; ++i) p += "[0]";
             return p;
           }(),
       "deeper than the limit of 64 levels"},
  };
}

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.text.substr(0, 80); }

class JsonErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(JsonErrorTest, ReportsOffsetAndLocation) {
  const ErrorCase& c = GetParam();
  Result<Value> r = ParseJson(c.text);
  ASSERT_FALSE(r.ok()) << "parsed to " << ToJson(*r);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = r.status().message();
  if (c.location.empty()) {
    std::string where = "at offset " + std::to_string(c.offset);
    if (c.offset >= c.text.size()) where += " (end of input)";
    EXPECT_NE(m.find(where + ":"), std::string::npos) << m;
  } else {
    EXPECT_NE(m.find("at " + c.location + " (offset " + std::to_string(c.offset) + ")"),
              std::string::npos)
        << m;
  }
  EXPECT_NE(m.find(c.what), std::string::npos) << m;
}

INSTANTIATE_TEST_SUITE_P(JsonMalformed, JsonErrorTest, ::testing::ValuesIn(ErrorCases()),
                         [](const auto& info) { return info.param.name; });

TEST(JsonErrorMessageTest, LongTokensAreAbbreviated) {
  std::string long_string = "[\"" + std::string(100000, 'a') + "\n\"]";
  Result<Value> r = ParseJson(long_string);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at offset 100002:"), std::string::npos);
  EXPECT_LT(r.status().message().size(), 400u) << r.status().message();

  std::string long_int = "[" + std::string(100000, '7') + "]";
  r = ParseJson(long_int);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("int64 range"), std::string::npos);
  EXPECT_LT(r.status().message().size(), 400u) << r.status().message();

  std::string long_key =
      "{\"" + std::string(1000, 'k') + "\":1,\"" + std::string(1000, 'k') + "\":2}";
  r = ParseJson(long_key);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("duplicate object key"), std::string::npos);
  EXPECT_LT(r.status().message().size(), 400u) << r.status().message();
}

// ---------------------------------------------------------------------------
// Nesting limit: kMaxValueDepth Value levels, whatever the JSON spelling.

// A value `depth` levels deep whose containers take the shapes shape(0), shape(1), ...
// from the outside in. Shapes: list, set, string-key map, $map form with the nested
// value as key, $map form with it as value, plain map with a reserved and a plain key,
// map with a lone reserved key ($map form).
constexpr int kShapes = 7;

Value Nested(int depth, const std::function<int(int)>& shape, int level = 0) {
  if (depth == 0) return Value("leaf");
  Value inner = Nested(depth - 1, shape, level + 1);
  switch (shape(level) % kShapes) {
    case 0:
      return Value(Value::List{std::move(inner)});
    case 1:
      return Value::SetOf(Value::Set{std::move(inner)});
    case 2:
      return Value::MapOf(Value::Map{{Value("k"), std::move(inner)}});
    case 3:
      return Value::MapOf(Value::Map{{std::move(inner), Value(1)}});
    case 4:
      return Value::MapOf(Value::Map{{Value(1), std::move(inner)}});
    case 5:
      return Value::MapOf(Value::Map{{Value("$set"), std::move(inner)}, {Value("x"), Value(1)}});
    default:
      return Value::MapOf(Value::Map{{Value("$set"), std::move(inner)}});
  }
}

TEST(JsonDepthTest, LimitHoldsForEveryShape) {
  ASSERT_EQ(kMaxValueDepth, 64);
  std::vector<std::pair<std::string, std::function<int(int)>>> patterns;
  for (int s = 0; s < kShapes; ++s) {
    patterns.emplace_back("all shape " + std::to_string(s), [s](int) { return s; });
  }
  patterns.emplace_back("cycling", [](int level) { return level; });
  patterns.emplace_back("cycling backwards", [](int level) { return 1000 - level; });
  const uint64_t seed = strata::testing::TestSeed(7);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937 rng(static_cast<std::mt19937::result_type>(seed));
  for (int i = 0; i < 20; ++i) {
    std::vector<int> shapes(70);
    for (int& s : shapes) s = static_cast<int>(rng() % kShapes);
    patterns.emplace_back("random " + std::to_string(i),
                          [shapes](int level) { return shapes[level]; });
  }
  for (const auto& [name, shape] : patterns) {
    SCOPED_TRACE(name);
    Value ok = Nested(kMaxValueDepth, shape);
    for (int indent : {-1, 2}) {
      std::string json = ToJson(ok, indent);
      EXPECT_TRUE(ParsesTo(json, ok));
    }
    Value too_deep = Nested(kMaxValueDepth + 1, shape);
    Result<Value> r = ParseJson(ToJson(too_deep));
    ASSERT_FALSE(r.ok()) << ToJson(too_deep);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("deeper than the limit of 64 levels"), std::string::npos)
        << r.status().message();
  }
}

TEST(JsonDepthTest, ReservedKeyThatTurnsOutPlainCountsItsLevel) {
  // {"$set": <list of depth d>, "x": 1} is a plain map: depth d + 1.
  auto text = [](int d) {
    return "{\"$set\":" + std::string(d, '[') + std::string(d, ']') + ",\"x\":1}";
  };
  EXPECT_TRUE(ParseJson(text(63)).ok());
  Result<Value> r = ParseJson(text(64));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("at $.$set (offset 8): values nest deeper"),
            std::string::npos)
      << r.status().message();
}

TEST(JsonDepthTest, HugeNestingIsRejectedEarly) {
  struct Case {
    std::string unit;
    size_t offset;  // of the first container beyond the limit
  };
  for (const Case& c : std::vector<Case>{{"[", 64},
                                         {"{\"a\":", 64 * 5},
                                         {"{\"$set\":[", 64 * 9},
                                         {"{\"$map\":[[", 64 * 10},
                                         {"{\"$map\":[[1,", 64 * 12}}) {
    std::string text;
    while (text.size() < 1000000) text += c.unit;
    Result<Value> r = ParseJson(text);
    ASSERT_FALSE(r.ok()) << c.unit;
    EXPECT_NE(
        r.status().message().find("(offset " + std::to_string(c.offset) + "): values nest deeper"),
        std::string::npos)
        << c.unit << ": " << r.status().message();
  }
}

// ---------------------------------------------------------------------------
// UTF-8: strings print as JSON strings exactly when they are well-formed UTF-8.

// Reference decoder for the test: well-formed per RFC 3629.
bool ReferenceValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    int len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    for (int k = 1; k < len; ++k) {
      auto c = static_cast<unsigned char>(s[i + k]);
      if ((c >> 6) != 2) return false;
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

TEST(JsonUtf8Test, StringFormMatchesUtf8Validity) {
  std::vector<std::string> samples;
  for (int a = 0; a < 256; ++a) {
    samples.push_back(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) samples.push_back({static_cast<char>(a), static_cast<char>(b)});
  }
  const int kEdges[] = {0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF};
  for (int a = 0xE0; a <= 0xF7; ++a) {
    for (int b : kEdges) {
      for (int c : kEdges) {
        samples.push_back({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
        for (int d : kEdges) {
          samples.push_back({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                             static_cast<char>(d)});
        }
      }
    }
  }
  int valid = 0;
  for (const std::string& s : samples) {
    std::string json = ToJson(Value(s));
    bool as_string = json.front() == '"';
    ASSERT_EQ(as_string, ReferenceValidUtf8(s))
        << "bytes " << ToJson(Value::BytesOf(s)) << " printed " << json;
    valid += as_string;
    ASSERT_TRUE(ParsesTo(json, Value(s)));
  }
  EXPECT_GT(valid, 1000);  // the samples do include well-formed multi-byte characters
}

// ---------------------------------------------------------------------------
// Property: ParseJson(ToJson(v)) == v for random values, compact and pretty.

TEST(JsonPropertyTest, RandomValuesRoundTrip) {
  const uint64_t kSeed = strata::testing::TestSeed(0x5157A7A);
  constexpr int kCases = 12000;
  testing::RandomValueGenerator gen(kSeed);
  for (int i = 0; i < kCases; ++i) {
    Value v = gen.Any(i % 3 == 0 ? 6 : 4);
    for (int indent : {-1, 2}) {
      std::string json = ToJson(v, indent);
      Result<Value> r = ParseJson(json);
      ASSERT_TRUE(r.ok()) << "seed " << kSeed << " case " << i << " indent " << indent << ": "
                          << r.status().ToString() << "\n  json: " << json;
      ASSERT_TRUE(SameValue(v, *r))
          << "seed " << kSeed << " case " << i << " indent " << indent << "\n  json: " << json;
      ASSERT_EQ(ToJson(*r, indent), json)
          << "seed " << kSeed << " case " << i << ": printing is not stable";
    }
  }
}

// ---------------------------------------------------------------------------
// Robustness: mutated valid texts never crash; what parses is a value that round-trips,
// what fails is kInvalidArgument with an offset inside the text.

std::string Mutate(std::string text, std::mt19937_64& rng) {
  static constexpr char kInteresting[] =
      "[]{}:,\"\\0123456789.eE-+$ntfaulsbmpdgr \n\x00\xff\x80\xc3";
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto byte = [&] { return kInteresting[pick(sizeof kInteresting - 1)]; };
  int edits = 1 + static_cast<int>(rng() % 3);
  for (int e = 0; e < edits; ++e) {
    switch (rng() % 6) {
      case 0:
        if (!text.empty()) text[pick(text.size())] = byte();
        break;
      case 1:
        text.insert(text.begin() + static_cast<ptrdiff_t>(pick(text.size() + 1)), byte());
        break;
      case 2:
        if (!text.empty()) text.erase(pick(text.size()), 1);
        break;
      case 3:
        text.resize(pick(text.size() + 1));
        break;
      case 4:
        if (!text.empty()) {
          size_t from = pick(text.size());
          size_t len = pick(text.size() - from) + 1;
          text.insert(pick(text.size() + 1), text.substr(from, len));
        }
        break;
      default:
        if (text.size() >= 2) std::swap(text[pick(text.size())], text[pick(text.size())]);
        break;
    }
  }
  return text;
}

TEST(JsonFuzzTest, MutatedTextsNeverCrash) {
  const uint64_t kSeed = strata::testing::TestSeed(0xF022);
  SCOPED_TRACE(strata::testing::SeedTrace(kSeed));
  testing::RandomValueGenerator gen(kSeed);
  std::mt19937_64 rng(kSeed);
  int accepted = 0, rejected = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string original = ToJson(gen.Any(4), i % 2 == 0 ? -1 : 1);
    for (int m = 0; m < 6; ++m) {
      std::string text = Mutate(original, rng);
      Result<Value> r = ParseJson(text);
      if (r.ok()) {
        ++accepted;
        ASSERT_TRUE(ParsesTo(ToJson(*r), *r))
            << "seed " << kSeed << " case " << i << " text " << text;
        continue;
      }
      ++rejected;
      ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().ToString();
      const std::string& msg = r.status().message();
      size_t at = msg.find("offset ");
      ASSERT_NE(at, std::string::npos) << msg;
      size_t offset = std::stoul(msg.substr(at + 7));
      ASSERT_LE(offset, text.size()) << msg << "\n  text: " << text;
    }
  }
  // Both outcomes occur, so the assertions above were exercised.
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace strata
