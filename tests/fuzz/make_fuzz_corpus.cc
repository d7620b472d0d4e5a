// make_fuzz_corpus: writes the seed corpus of the fuzz targets (README.md, "Fuzzing").
//
//   make_fuzz_corpus OUT_DIR
//
// creates OUT_DIR/fuzz_key_decode, OUT_DIR/fuzz_value_decode, OUT_DIR/fuzz_json_parse and
// OUT_DIR/fuzz_path_decode and writes one file per seed: the key encoding, the FlexBuffers
// value encoding and the JSON text of a list of sample values, plus inputs only the
// decoders see from other writers (key tuples, FlexBuffers forms EncodeValue never writes,
// hand-written JSON); and the FlexBuffers encoding of the wire form of sample paths (every
// navigator and terminal, as modules and clients write them) and of malformed ones.
// Deterministic: the same program writes the same files. The committed corpus in
// tests/fuzz/corpus/ is its output.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <flatbuffers/flexbuffers.h>

#include "strata/json.h"
#include "strata/key_codec.h"
#include "strata/path.h"
#include "strata/value.h"
#include "strata/value_codec.h"

namespace {

using strata::Value;

struct Sample {
  std::string name;
  Value value;
};

// [[...[1]...]] with `depth` brackets: a value of that depth.
Value NestedLists(int depth) {
  Value v(1);
  for (int i = 0; i < depth; ++i) v = Value::ListOf({std::move(v)});
  return v;
}

std::vector<Sample> Samples() {
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
  using namespace std::string_literals;
  return {
      {"nil", Value()},
      {"false", Value(false)},
      {"true", Value(true)},
      {"int_0", Value(0)},
      {"int_1", Value(1)},
      {"int_minus_1", Value(-1)},
      {"int_300", Value(300)},
      {"int_min", Value(std::numeric_limits<int64_t>::min())},
      {"int_max", Value(std::numeric_limits<int64_t>::max())},
      {"double_0", Value(0.0)},
      {"double_minus_0", Value(-0.0)},
      {"double_1_5", Value(1.5)},
      {"double_0_1", Value(0.1)},
      {"double_1e300", Value(1e300)},
      {"double_max", Value(std::numeric_limits<double>::max())},
      {"double_denorm_min", Value(std::numeric_limits<double>::denorm_min())},
      {"double_inf", Value(kInf)},
      {"double_minus_inf", Value(-kInf)},
      {"double_nan", Value(kNaN)},
      {"double_minus_nan", Value(-kNaN)},
      {"string_empty", Value("")},
      {"string_ascii", Value("hello")},
      {"string_nul", Value("a\0b\0"s)},
      {"string_ff", Value("\xff\xfe\x01"s)},
      {"string_utf8", Value("caf\xc3\xa9 \xf0\x9f\x98\x80")},
      {"string_invalid_utf8", Value("\xc0\xaf\xed\xa0\x80")},
      {"string_escapes", Value("\"\\\b\f\n\r\t\x01/")},
      {"string_reserved_tag", Value("$set")},
      {"bytes_empty", Value::BytesOf("")},
      {"bytes_binary", Value::BytesOf("\x00\x01\xff\x00"s)},
      {"list_empty", Value::ListOf({})},
      {"list_mixed", Value::ListOf({Value(), true, 7, 2.5, "s", Value::BytesOf("b")})},
      {"list_nested", Value::ListOf({Value::ListOf({1, 2}), Value::ListOf({}),
                                     Value::ListOf({Value::ListOf({3})})})},
      {"list_depth_64", NestedLists(64)},
      {"map_empty", Value::EmptyMap()},
      {"map_string_keys",
       Value::MapOf({{"name", "ann"}, {"age", 31}, {"tags", Value::ListOf({"a", "b"})}})},
      {"map_int_keys", Value::MapOf({{1, "one"}, {2, "two"}, {-5, Value()}})},
      {"map_mixed_keys", Value::MapOf({{Value(), 0},
                                       {false, 1},
                                       {2.5, 2},
                                       {"s", 3},
                                       {Value::BytesOf("b"), 4},
                                       {Value::ListOf({1, 2}), 5},
                                       {Value::MapOf({{1, 1}}), 6},
                                       {Value::SetOf({1}), 7}})},
      {"map_nul_key", Value::MapOf({{"a\0b"s, 1}, {"c", 2}})},
      {"map_invalid_utf8_key", Value::MapOf({{"\xff", 1}})},
      {"map_reserved_set_key", Value::MapOf({{"$set", 1}})},
      {"map_reserved_map_key", Value::MapOf({{"$map", Value::ListOf({})}})},
      {"map_reserved_key_and_more", Value::MapOf({{"$set", 1}, {"x", 2}})},
      {"set_empty", Value::EmptySet()},
      {"set_ints", Value::SetOf({3, 1, 2, -7})},
      {"set_mixed",
       Value::SetOf({Value(), true, 1, 1.0, "1", Value::BytesOf("1"), Value::ListOf({1})})},
      {"set_of_sets", Value::SetOf({Value::SetOf({}), Value::SetOf({1}), Value::SetOf({1, 2})})},
      {"map_of_sets",
       Value::MapOf({{"followers", Value::SetOf({"bob", "eve"})}, {"blocked", Value::EmptySet()}})},
      {"record",
       Value::MapOf(
           {{"id", 42},
            {"balance", -12.75},
            {"history", Value::ListOf({Value::MapOf({{"at", 1700000000}, {"amount", 5}}),
                                       Value::MapOf({{"at", 1700000100}, {"amount", -3}})})},
            {"by_day",
             Value::MapOf({{20240101, Value::SetOf({"x"})}, {20240102, Value::EmptySet()}})}})},
  };
}

// Key tuples: what PState tables store (enc(top key) ‖ enc(inner key)).
std::vector<std::pair<std::string, std::string>> KeyTuples() {
  auto tuple = [](std::initializer_list<Value> parts) {
    std::string out;
    for (const Value& p : parts) strata::AppendKey(p, &out);
    return out;
  };
  return {
      {"tuple_string_int", tuple({"users", 42})},
      {"tuple_ordered_pair", tuple({Value::ListOf({1, "a"}), Value::ListOf({1, "a\0"})})},
      {"tuple_mixed", tuple({Value(), -0.0, 0.0, Value::BytesOf("k"), Value::SetOf({1, 2})})},
  };
}

template <typename Fill>
std::vector<uint8_t> Flex(Fill fill) {
  flexbuffers::Builder b;
  fill(b);
  b.Finish();
  return b.GetBuffer();
}

// FlexBuffers that other writers (drivers in other languages) may produce but EncodeValue
// does not: the decoder must read them too.
std::vector<std::pair<std::string, std::vector<uint8_t>>> ForeignFlexBuffers() {
  return {
      {"flex_uint", Flex([](flexbuffers::Builder& b) { b.UInt(uint64_t{1} << 40); })},
      {"flex_uint_too_big", Flex([](flexbuffers::Builder& b) { b.UInt(~uint64_t{0}); })},
      {"flex_float32", Flex([](flexbuffers::Builder& b) { b.Float(0.5f); })},
      {"flex_indirect_int", Flex([](flexbuffers::Builder& b) { b.IndirectInt(-123456789); })},
      {"flex_indirect_uint", Flex([](flexbuffers::Builder& b) { b.IndirectUInt(77); })},
      {"flex_indirect_double", Flex([](flexbuffers::Builder& b) { b.IndirectDouble(3.25); })},
      {"flex_typed_vector_int", Flex([](flexbuffers::Builder& b) {
         std::vector<int64_t> v = {1, -2, 300};
         b.Vector(v);
       })},
      {"flex_typed_vector_string", Flex([](flexbuffers::Builder& b) {
         b.TypedVector([&] {
           b.String("a");
           b.String("b");
         });
       })},
      {"flex_fixed_vector_3", Flex([](flexbuffers::Builder& b) {
         int32_t v[3] = {1, 2, 3};
         b.FixedTypedVector(v, 3);
       })},
      {"flex_unsorted_set", Flex([](flexbuffers::Builder& b) {
         b.Map([&] {
           b.Vector("$set", [&] {
             b.Int(3);
             b.Int(1);
             b.Int(2);
           });
         });
       })},
      {"flex_duplicate_set", Flex([](flexbuffers::Builder& b) {
         b.Map([&] {
           b.Vector("$set", [&] {
             b.Int(1);
             b.Int(1);
           });
         });
       })},
      {"flex_odd_tagged_map",
       Flex([](flexbuffers::Builder& b) { b.Map([&] { b.Vector("$map", [&] { b.Int(1); }); }); })},
      {"flex_map_nested", Flex([](flexbuffers::Builder& b) {
         b.Map([&] {
           b.Bool("ok", true);
           b.Map("inner", [&] { b.Double("x", 1.25); });
         });
       })},
  };
}

// JSON text nobody's ToJson writes: white space, escapes, other number spellings,
// hand-written tagged forms, and a few rejected documents.
std::vector<std::pair<std::string, std::string>> HandWrittenJson() {
  return {
      {"ws_object", " \t\n{ \"a\" : [ 1 , 2.0 , null ] ,\r\n \"b\" : { } }\n"},
      {"bom", "\xEF\xBB\xBF[true]"},
      {"unicode_escapes", R"("\u00e9\ud83d\ude00\u0000")"},
      {"number_spellings", "[0, -0, 1E2, 1e-7, -0.0, 123456789012345678, 9223372036854775807]"},
      {"tagged_set_unsorted", R"({"$set": [3, 1, 2]})"},
      {"tagged_map", R"({"$map": [[1, "one"], [[2], {"$set": []}]]})"},
      {"tagged_bytes", R"({"$bytes": "AAH/"})"},
      {"tagged_string", R"({"$string": "//4="})"},
      {"tagged_double", R"([{"$double": "NaN"}, {"$double": "-Infinity"}])"},
      {"bad_duplicate_key", R"({"a": 1, "a": 2})"},
      {"bad_int_range", "9223372036854775808"},
      {"bad_base64", R"({"$bytes": "AAE"})"},
      {"bad_trailing", "[1] 2"},
  };
}

// Wire forms of paths: built ones (valid, as modules, the engine and clients write them)
// and hand-made malformed ones FromValue must refuse.
std::vector<Sample> PathSamples() {
  using strata::Path;
  using strata::PredicateOp;
  auto wire = [](const Path& p) { return p.ToValue(); };
  auto step = [](std::initializer_list<Value> parts) { return Value::ListOf(parts); };
  return {
      {"path_empty", wire(Path())},
      {"path_key", wire(Path().Key("alice"))},
      {"path_key_nested", wire(Path().Key("alice", 3, Value::BytesOf("b")))},
      {"path_wordcount_inc", wire(Path().Key("the").NullTo(0).Inc())},
      {"path_sequences_append", wire(Path().Key("producer0").Append(7))},
      {"path_follows_add_to_set",
       wire(Path().Key("ann").NullTo(Value::EmptySet()).AddToSet("bob", "eve"))},
      {"path_must_nth_add", wire(Path().Must("a", "b").Nth(2).Add(-2.5))},
      {"path_first_last", wire(Path().First().Last())},
      {"path_all_map_keys", wire(Path().All().MapKeys())},
      {"path_map_vals_size", wire(Path().MapVals().Size())},
      {"path_range", wire(Path().Range({.from = "a", .to = "m", .limit = 20}))},
      {"path_range_reverse",
       wire(Path().Range(
           {.from = 1, .from_inclusive = false, .to_inclusive = true, .reverse = true}))},
      {"path_range_open", wire(Path().Key("k").Range({}))},
      {"path_filter_gt", wire(Path().MapVals().Filter(PredicateOp::kGt, 10))},
      {"path_filter_exists", wire(Path().All().Filter(PredicateOp::kExists))},
      {"path_filter_on",
       wire(Path().MapVals().FilterOn(Path().Key("age"), PredicateOp::kGe, 18).Key("name"))},
      {"path_filter_on_nested", wire(Path().All().FilterOn(Path().Key("tags").All().FilterOn(
                                                               Path().Size(), PredicateOp::kEq, 1),
                                                           PredicateOp::kExists))},
      {"path_set", wire(Path().Key("profile", "name").Set(Value::MapOf({{"first", "ann"}})))},
      {"path_set_if_absent", wire(Path().Key("created").SetIfAbsent(1700000000))},
      {"path_remove", wire(Path().Key("x").Remove())},
      {"path_bad_not_a_list", Value("key")},
      {"path_bad_step_not_a_list", Value::ListOf({"key", "alice"})},
      {"path_bad_unknown_step", Value::ListOf({step({"jump", 1})})},
      {"path_bad_negative_nth", Value::ListOf({step({"nth", -1})})},
      {"path_bad_key_without_keys", Value::ListOf({step({"key"})})},
      {"path_bad_terminal_not_last", Value::ListOf({step({"add", 1}), step({"key", "a"})})},
      {"path_bad_range_limit", Value::ListOf({step({"range", Value::MapOf({{"limit", -3}})})})},
      {"path_bad_filter_op", Value::ListOf({step({"filter", "between", 1})})},
  };
}

bool WriteFile(const std::filesystem::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) std::fprintf(stderr, "make_fuzz_corpus: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

std::string_view AsChars(const std::vector<uint8_t>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  const std::filesystem::path key_dir = root / "fuzz_key_decode";
  const std::filesystem::path value_dir = root / "fuzz_value_decode";
  const std::filesystem::path json_dir = root / "fuzz_json_parse";
  const std::filesystem::path path_dir = root / "fuzz_path_decode";
  std::error_code ec;
  for (const auto& dir : {key_dir, value_dir, json_dir, path_dir}) {
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      std::fprintf(stderr, "make_fuzz_corpus: cannot create %s: %s\n", dir.c_str(),
                   ec.message().c_str());
      return 1;
    }
  }

  bool ok = true;
  for (const Sample& s : Samples()) {
    ok &= WriteFile(key_dir / s.name, strata::EncodeKey(s.value));
    ok &= WriteFile(value_dir / s.name, AsChars(strata::EncodeValue(s.value)));
    ok &= WriteFile(json_dir / s.name, strata::ToJson(s.value));
    if (s.value.size() > 0 && s.value.size() < 10 && s.name != "list_depth_64") {
      ok &= WriteFile(json_dir / (s.name + "_pretty"), strata::ToJson(s.value, 2));
    }
  }
  for (const auto& [name, bytes] : KeyTuples()) ok &= WriteFile(key_dir / name, bytes);
  for (const auto& [name, bytes] : ForeignFlexBuffers())
    ok &= WriteFile(value_dir / name, AsChars(bytes));
  for (const auto& [name, text] : HandWrittenJson()) ok &= WriteFile(json_dir / name, text);
  for (const Sample& s : PathSamples())
    ok &= WriteFile(path_dir / s.name, AsChars(strata::EncodeValue(s.value)));
  return ok ? 0 : 1;
}
