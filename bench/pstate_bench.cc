// PState benchmarks, with raw WiredTiger as the reference where there is one.
//
//   counter_inc:   Transform(key(k).inc) on a map<string, int64> PState of 100k keys, each
//                  in its own transaction (committed, not waited durable): one Get + one Put.
//   raw_inc:       the reference: begin (snapshot isolation, like Transform), search,
//                  get_value, decode, +1, encode, insert, commit.
//   point_select:  SelectOne(key(k)) on that PState.
//   raw_search:    the reference: search + get_value + DecodeValue of the same key and value
//                  bytes in a table with the same configuration in its own connection.
//   session_get_ratio: Session::Get + DecodeValue of the same key in the PState's table vs
//                  raw_search: the storage layer's share of the point-select gap.
//   *_ratio:       both sides alternately in blocks of 2000 random keys, so they share machine
//                  state; counter "ratio" = PState throughput / raw throughput.
//   range_page/N:  the first 20 entries from a random key of a subindexed sorted map of N
//                  elements (select of key(m).range({from, limit 20})), N = 10k, 1M, 10M; the
//                  map is built once, by transforms that each write a 10k-entry range.
//
// Data lives in fresh directories under $STRATA_BENCH_DIR (default /tmp), removed at exit.
#include <stdlib.h>
#include <wiredtiger.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "pstate/pstate.h"
#include "storage/storage.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata {
namespace {

constexpr int kKeys = 100000;
constexpr int kBlock = 2000;
constexpr int kPage = 20;
constexpr int kChunk = 10000;
constexpr uint64_t kCacheBytes = 2ull << 30;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "pstate_bench: %s\n", what.c_str());
  std::abort();
}
void Check(const Status& st) {
  if (!st.ok()) Die(st.ToString());
}
template <typename T>
T Check(Result<T> r) {
  if (!r.ok()) Die(r.status().ToString());
  return std::move(r).value();
}
void CheckWt(int ret, const char* what) {
  if (ret != 0) Die(std::string(what) + ": " + wiredtiger_strerror(ret));
}

std::string MakeDataDir() {
  const char* base = std::getenv("STRATA_BENCH_DIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/strata-bench-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp failed in " + pattern);
  return pattern;
}

std::string UserKey(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "user%06d", i);
  return buf;
}

std::string ElementKey(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "e%08d", i);
  return buf;
}

struct Fixture {
  std::string dir;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<Session> session;
  std::unique_ptr<PState> counters;  // map<string, int64>
  TableId counters_table = 0;
  std::unique_ptr<PState> pages;         // map<string, subindexed map<string, int64>>
  std::map<int64_t, std::string> built;  // map size -> top-level key holding it

  std::string raw_dir;
  WT_CONNECTION* raw_conn = nullptr;
  WT_SESSION* raw_session = nullptr;
  WT_CURSOR* raw_cursor = nullptr;

  std::vector<int> order;            // random permutation of the counter keys
  std::vector<std::string> encoded;  // EncodeKey of each counter key
};
Fixture* g = nullptr;

void OpenRaw(Fixture* f) {
  f->raw_dir = MakeDataDir();
  // The configuration Storage::Open builds (see engine/storage/storage.cc).
  std::string config =
      "create,config_base=false,cache_size=" + std::to_string(kCacheBytes) +
      ",session_max=50,log=(enabled=true,archive=true,file_max=104857600)"
      ",checkpoint=(wait=60),extensions=[/usr/lib/x86_64-linux-gnu/libwiredtiger_snappy.so]";
  CheckWt(wiredtiger_open(f->raw_dir.c_str(), nullptr, config.c_str(), &f->raw_conn),
          "wiredtiger_open");
  CheckWt(f->raw_conn->open_session(f->raw_conn, nullptr, nullptr, &f->raw_session),
          "open_session");
  CheckWt(f->raw_session->create(
              f->raw_session, "table:raw",
              "key_format=u,value_format=u,block_compressor=snappy,prefix_compression=false,"
              "memory_page_max=1MB"),
          "create");
  CheckWt(
      f->raw_session->open_cursor(f->raw_session, "table:raw", nullptr, nullptr, &f->raw_cursor),
      "open_cursor");
}

void Setup() {
  if (g != nullptr) return;
  g = new Fixture;
  g->dir = MakeDataDir();
  StorageOptions options;
  options.path = g->dir;
  options.cache_size_bytes = kCacheBytes;
  options.checkpoint_interval_s = 60;
  options.checkpoint_log_bytes = 16ull << 20;
  options.log_file_max_bytes = 16ull << 20;
  options.max_sessions = 20;
  g->storage = Check(Storage::Open(options));
  g->session = Check(g->storage->OpenSession());
  g->counters =
      Check(PState::Open(g->storage.get(), "bench", "counters",
                         PStateSchema{Schema::Map(Schema::String(), Schema::Int64())}, 1));
  g->pages = Check(PState::Open(
      g->storage.get(), "bench", "pages",
      PStateSchema{Schema::Map(Schema::String(),
                               Schema::Map(Schema::String(), Schema::Int64()).Subindexed())},
      1));
  g->counters_table =
      Check(g->storage->OpenTable(PState::TableName("bench", "counters", 0), TableKind::kBytes));
  OpenRaw(g);

  // The same keys and values on both sides: EncodeKey(name) -> FlexBuffers(int).
  Value::Map all;
  CheckWt(g->raw_session->begin_transaction(g->raw_session, nullptr), "begin");
  for (int i = 0; i < kKeys; ++i) {
    const std::string name = UserKey(i);
    all.emplace_back(name, i);
    g->encoded.push_back(EncodeKey(Value(name)));
    std::string value;
    AppendValue(Value(i), &value);
    WT_ITEM k{g->encoded.back().data(), g->encoded.back().size(), nullptr, 0, 0};
    WT_ITEM v{value.data(), value.size(), nullptr, 0, 0};
    g->raw_cursor->set_key(g->raw_cursor, &k);
    g->raw_cursor->set_value(g->raw_cursor, &v);
    CheckWt(g->raw_cursor->insert(g->raw_cursor), "insert");
  }
  CheckWt(g->raw_session->commit_transaction(g->raw_session, nullptr), "commit");
  Check(g->counters->Transform(*g->session, 0, Path().Set(Value::MapOf(std::move(all)))).status());
  g->order.resize(kKeys);
  for (int i = 0; i < kKeys; ++i) g->order[i] = i;
  std::shuffle(g->order.begin(), g->order.end(), std::mt19937(42));
}

void Teardown() {
  if (g == nullptr) return;
  g->counters.reset();
  g->pages.reset();
  g->session.reset();
  g->storage.reset();
  g->raw_conn->close(g->raw_conn, nullptr);
  std::filesystem::remove_all(g->dir);
  std::filesystem::remove_all(g->raw_dir);
  delete g;
  g = nullptr;
}

// ---- one operation of each kind ----------------------------------------------------------

void PStateInc(int i) {
  Check(g->counters->Transform(*g->session, 0, Path().Key(UserKey(i)).Inc()).status());
}

void PStateSelect(int i, benchmark::State* state) {
  Result<Value> v = g->counters->SelectOne(*g->session, 0, Path().Key(UserKey(i)));
  if (!v.ok() || !v->is_int()) state->SkipWithError("point select failed");
  benchmark::DoNotOptimize(v);
}

// The raw reference of a point select: what Session::Get and the decode do, nothing else.
Value RawSearch(int i) {
  WT_CURSOR* c = g->raw_cursor;
  const std::string key = EncodeKey(Value(UserKey(i)));
  WT_ITEM k{key.data(), key.size(), nullptr, 0, 0};
  c->set_key(c, &k);
  CheckWt(c->search(c), "search");
  WT_ITEM v{};
  CheckWt(c->get_value(c, &v), "get_value");
  Value out = Check(DecodeValue(static_cast<const uint8_t*>(v.data), v.size));
  c->reset(c);
  return out;
}

// A point read through the storage layer only (the PState's own record of key i).
Value SessionGet(int i) {
  const std::string key = EncodeKey(Value(UserKey(i)));
  std::string bytes;
  if (!Check(g->session->Get(g->counters_table, key, &bytes))) Die("missing key " + UserKey(i));
  return Check(DecodeValue(bytes));
}

void RawInc(int i) {
  WT_SESSION* s = g->raw_session;
  WT_CURSOR* c = g->raw_cursor;
  // Snapshot isolation, as Transform uses for its own transactions (a read-modify-write
  // needs it to detect conflicts in WiredTiger 3.2.1).
  CheckWt(s->begin_transaction(s, "isolation=snapshot"), "begin");
  const std::string key = EncodeKey(Value(UserKey(i)));
  WT_ITEM k{key.data(), key.size(), nullptr, 0, 0};
  c->set_key(c, &k);
  CheckWt(c->search(c), "search");
  WT_ITEM v{};
  CheckWt(c->get_value(c, &v), "get_value");
  Value n = Check(DecodeValue(static_cast<const uint8_t*>(v.data), v.size));
  std::string out;
  AppendValue(Value(n.as_int() + 1), &out);
  WT_ITEM nv{out.data(), out.size(), nullptr, 0, 0};
  c->set_key(c, &k);
  c->set_value(c, &nv);
  CheckWt(c->insert(c), "insert");
  c->reset(c);
  CheckWt(s->commit_transaction(s, nullptr), "commit");
}

// ---- benchmarks ---------------------------------------------------------------------------

void BM_CounterInc(benchmark::State& state) {
  Setup();
  size_t n = 0;
  for (auto _ : state) PStateInc(g->order[n++ % kKeys]);
  state.SetItemsProcessed(state.iterations());
}

void BM_RawInc(benchmark::State& state) {
  Setup();
  size_t n = 0;
  for (auto _ : state) RawInc(g->order[n++ % kKeys]);
  state.SetItemsProcessed(state.iterations());
}

void BM_PointSelect(benchmark::State& state) {
  Setup();
  size_t n = 0;
  for (auto _ : state) PStateSelect(g->order[n++ % kKeys], &state);
  state.SetItemsProcessed(state.iterations());
}

void BM_RawSearch(benchmark::State& state) {
  Setup();
  size_t n = 0;
  for (auto _ : state) benchmark::DoNotOptimize(RawSearch(g->order[n++ % kKeys]));
  state.SetItemsProcessed(state.iterations());
}

// Alternating blocks; counters report both sides and their throughput ratio.
template <typename PStateOp, typename RawOp>
void Ratio(benchmark::State& state, PStateOp pstate_op, RawOp raw_op) {
  Setup();
  using Clock = std::chrono::steady_clock;
  Clock::duration pstate_time{}, raw_time{};
  size_t n = 0;
  for (auto _ : state) {
    const size_t start = n;
    auto t0 = Clock::now();
    for (int i = 0; i < kBlock; ++i) pstate_op(g->order[n++ % kKeys]);
    auto t1 = Clock::now();
    n = start;
    for (int i = 0; i < kBlock; ++i) raw_op(g->order[n++ % kKeys]);
    auto t2 = Clock::now();
    pstate_time += t1 - t0;
    raw_time += t2 - t1;
  }
  const double ops = static_cast<double>(state.iterations()) * kBlock;
  const double pstate_rate = ops / std::chrono::duration<double>(pstate_time).count();
  const double raw_rate = ops / std::chrono::duration<double>(raw_time).count();
  state.counters["pstate_ops_per_s"] = pstate_rate;
  state.counters["raw_ops_per_s"] = raw_rate;
  state.counters["ratio"] = pstate_rate / raw_rate;
}

void BM_PointSelectRatio(benchmark::State& state) {
  Ratio(
      state, [&](int i) { PStateSelect(i, &state); },
      [](int i) { benchmark::DoNotOptimize(RawSearch(i)); });
}

void BM_CounterIncRatio(benchmark::State& state) { Ratio(state, PStateInc, RawInc); }

void BM_SessionGetRatio(benchmark::State& state) {
  Ratio(
      state, [](int i) { benchmark::DoNotOptimize(SessionGet(i)); },
      [](int i) { benchmark::DoNotOptimize(RawSearch(i)); });
}

// Builds (once) a subindexed map of `size` elements e00000000.. -> index.
const std::string& BuildPagedMap(int64_t size) {
  auto it = g->built.find(size);
  if (it != g->built.end()) return it->second;
  std::string top = "m";
  top += std::to_string(size);
  auto t0 = std::chrono::steady_clock::now();
  // A range navigates only into a map that exists.
  Check(g->pages->Transform(*g->session, 0, Path().Key(top).Set(Value::EmptyMap())).status());
  for (int64_t first = 0; first < size; first += kChunk) {
    const int64_t last = std::min<int64_t>(first + kChunk, size) - 1;
    Value::Map chunk;
    chunk.reserve(static_cast<size_t>(last - first + 1));
    for (int64_t i = first; i <= last; ++i) chunk.emplace_back(ElementKey(static_cast<int>(i)), i);
    Check(g->pages
              ->Transform(*g->session, 0,
                          Path()
                              .Key(top)
                              .Range({.from = ElementKey(static_cast<int>(first)),
                                      .to = ElementKey(static_cast<int>(last)),
                                      .to_inclusive = true})
                              .Set(Value::MapOf(std::move(chunk))))
              .status());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Value n = Check(g->pages->SelectOne(*g->session, 0, Path().Key(top).Size()));
  if (n != Value(size)) Die("built map has size " + n.ToString());
  std::fprintf(
      stderr, "pstate_bench: built a subindexed map of %lld elements in %.1f s (%.0f elements/s)\n",
      static_cast<long long>(size), secs, static_cast<double>(size) / secs);
  return g->built.emplace(size, top).first->second;
}

void BM_RangePage(benchmark::State& state) {
  Setup();
  const int64_t size = state.range(0);
  const std::string& top = BuildPagedMap(size);
  std::mt19937_64 rng(7);
  for (auto _ : state) {
    const int from = static_cast<int>(rng() % static_cast<uint64_t>(size - kPage));
    Result<Value> page = g->pages->SelectOne(
        *g->session, 0, Path().Key(top).Range({.from = ElementKey(from), .limit = kPage}));
    if (!page.ok() || page->size() != static_cast<size_t>(kPage)) {
      state.SkipWithError("page select failed");
      break;
    }
    benchmark::DoNotOptimize(page);
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_CounterInc)->MinTime(1);
BENCHMARK(BM_RawInc)->MinTime(1);
BENCHMARK(BM_CounterIncRatio)->MinTime(2);
BENCHMARK(BM_PointSelect)->MinTime(1);
BENCHMARK(BM_RawSearch)->MinTime(1);
BENCHMARK(BM_PointSelectRatio)->MinTime(2);
BENCHMARK(BM_SessionGetRatio)->MinTime(2);
BENCHMARK(BM_RangePage)->Arg(10000)->Arg(1000000)->Arg(10000000)->MinTime(1);

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  strata::Teardown();
  return 0;
}
