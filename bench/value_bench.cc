// Encode/decode throughput of the key encoding and the FlexBuffers value encoding.
// bytes/s counts encoded bytes; items/s counts Values (every scalar and every container
// is one item, so a list of 1000 ints is 1001 items).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata {
namespace {

int64_t CountValues(const Value& v) {
  int64_t n = 1;
  switch (v.type()) {
    case Type::kList:
      for (const Value& e : v.as_list()) n += CountValues(e);
      break;
    case Type::kMap:
      for (const auto& [key, value] : v.as_map()) n += CountValues(key) + CountValues(value);
      break;
    case Type::kSet:
      for (const Value& e : v.as_set()) n += CountValues(e);
      break;
    default:
      break;
  }
  return n;
}

// A composite key is a tuple of parts; as a value it is the list of those parts.
struct Subject {
  std::vector<Value> parts;
  Value AsValue() const { return parts.size() == 1 ? parts[0] : Value(Value::List(parts)); }
  int64_t Items() const {
    int64_t n = 0;
    for (const Value& p : parts) n += CountValues(p);
    return n;
  }
};

Subject ScalarKey() { return {{Value(int64_t{1234567890123})}}; }

Subject CompositeKey() { return {{Value("user-4711"), Value(17), Value("2024-06-11T10:00:00Z")}}; }

Subject Record() {
  return {{Value::MapOf({
      {"id", 4711},
      {"name", "Ada Lovelace"},
      {"email", "ada@example.com"},
      {"active", true},
      {"score", 97.25},
      {"created", int64_t{1718100000000}},
      {"tags", Value::ListOf({"admin", "beta", "math"})},
      {"address", Value::MapOf({{"city", "London"}, {"zip", "W1"}})},
      {"avatar", Value::BytesOf(std::string(32, '\x7f'))},
      {"deleted_at", Value()},
  })}};
}

Subject IntList() {
  Value::List ints;
  for (int i = 0; i < 1000; ++i) ints.push_back(Value(int64_t{i} * 7919 - 500000));
  return {{Value(std::move(ints))}};
}

void BM_EncodeKey(benchmark::State& state, Subject (*make)()) {
  Subject s = make();
  std::string out;
  for (auto _ : state) {
    out.clear();
    for (const Value& p : s.parts) AppendKey(p, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
  state.SetItemsProcessed(state.iterations() * s.Items());
  state.counters["encoded_bytes"] = static_cast<double>(out.size());
}

void BM_DecodeKey(benchmark::State& state, Subject (*make)()) {
  Subject s = make();
  std::string key;
  for (const Value& p : s.parts) AppendKey(p, &key);
  for (auto _ : state) {
    Result<std::vector<Value>> parts = DecodeKeyTuple(key);
    if (!parts.ok()) state.SkipWithError(parts.status().ToString().c_str());
    benchmark::DoNotOptimize(parts);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(key.size()));
  state.SetItemsProcessed(state.iterations() * s.Items());
}

void BM_EncodeValue(benchmark::State& state, Subject (*make)()) {
  Value v = make().AsValue();
  size_t size = 0;
  for (auto _ : state) {
    std::vector<uint8_t> bytes = EncodeValue(v);
    size = bytes.size();
    benchmark::DoNotOptimize(bytes.data());
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
  state.SetItemsProcessed(state.iterations() * CountValues(v));
  state.counters["encoded_bytes"] = static_cast<double>(size);
}

void BM_DecodeValue(benchmark::State& state, Subject (*make)()) {
  Value v = make().AsValue();
  std::vector<uint8_t> bytes = EncodeValue(v);
  for (auto _ : state) {
    Result<Value> decoded = DecodeValue(bytes.data(), bytes.size());
    if (!decoded.ok()) state.SkipWithError(decoded.status().ToString().c_str());
    benchmark::DoNotOptimize(decoded);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(bytes.size()));
  state.SetItemsProcessed(state.iterations() * CountValues(v));
}

BENCHMARK_CAPTURE(BM_EncodeKey, scalar, ScalarKey);
BENCHMARK_CAPTURE(BM_EncodeKey, composite, CompositeKey);
BENCHMARK_CAPTURE(BM_EncodeKey, record, Record);
BENCHMARK_CAPTURE(BM_EncodeKey, int_list_1000, IntList);
BENCHMARK_CAPTURE(BM_DecodeKey, scalar, ScalarKey);
BENCHMARK_CAPTURE(BM_DecodeKey, composite, CompositeKey);
BENCHMARK_CAPTURE(BM_DecodeKey, record, Record);
BENCHMARK_CAPTURE(BM_DecodeKey, int_list_1000, IntList);
BENCHMARK_CAPTURE(BM_EncodeValue, scalar, ScalarKey);
BENCHMARK_CAPTURE(BM_EncodeValue, composite, CompositeKey);
BENCHMARK_CAPTURE(BM_EncodeValue, record, Record);
BENCHMARK_CAPTURE(BM_EncodeValue, int_list_1000, IntList);
BENCHMARK_CAPTURE(BM_DecodeValue, scalar, ScalarKey);
BENCHMARK_CAPTURE(BM_DecodeValue, composite, CompositeKey);
BENCHMARK_CAPTURE(BM_DecodeValue, record, Record);
BENCHMARK_CAPTURE(BM_DecodeValue, int_list_1000, IntList);

}  // namespace
}  // namespace strata

BENCHMARK_MAIN();
