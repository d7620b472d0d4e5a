// Depot appends against raw WiredTiger, at equal durability (an append counts once a log
// flush with fsync that began after its commit has returned).
//
//   depot_batch:  AppendBatch of 100 records of 50 bytes, then WaitDurable (group commit
//                 by the Storage flusher thread).
//   raw_batch:    the reference: the same 100 inserts into a key_format=q table in one
//                 transaction, commit, then log_flush(sync=on) on the same thread.
//   depot_single: N threads, each Append of one record to its own partition, then
//                 WaitDurable: concurrent commits share flushes.
//   raw_single:   N threads, each insert + commit + log_flush(sync=on) per record.
//   *_batch_committed: the batch pairs without waiting for durability: the CPU cost of the
//                 depot layer over raw inserts (fsync latency dominates the others).
//
// Both sides use the same connection configuration (cache, log, checkpoints, snappy) and
// table configuration. Data lives in a fresh directory under $STRATA_BENCH_DIR (default
// /tmp), removed afterwards. Runs are repeated 3 times in random interleaved order (the
// disk's fsync latency drifts); at the end the depot/raw ratio of the medians is printed.
#include <stdlib.h>
#include <unistd.h>
#include <wiredtiger.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "depot/depot.h"
#include "storage/storage.h"

namespace strata {
namespace {

constexpr int kBatch = 100;
constexpr int kRecordBytes = 50;
constexpr int kMaxThreads = 16;
const std::string kRecord(kRecordBytes, 'r');

std::string MakeDataDir() {
  const char* base = std::getenv("STRATA_BENCH_DIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/strata-bench-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "storage_bench: mkdtemp(%s) failed\n", pattern.c_str());
    std::abort();
  }
  return pattern;
}

StorageOptions BenchOptions(const std::string& path) {
  // The settings of stratad's defaults (EngineOptions), stated: the benchmark says what it
  // measures.
  StorageOptions options;
  options.path = path;
  options.cache_size_bytes = 512ull << 20;
  options.checkpoint_interval_s = 60;
  options.checkpoint_log_bytes = 16ull << 20;
  options.log_file_max_bytes = 16ull << 20;
  options.max_sessions = 200;
  return options;
}

[[noreturn]] void Die(const Status& status) {
  std::fprintf(stderr, "storage_bench: %s\n", status.ToString().c_str());
  std::abort();
}

// ---- Strata side ----------------------------------------------------------------------

struct DepotFixture {
  std::string dir;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<Depot> depot;
  std::vector<std::unique_ptr<Session>> sessions;  // One per benchmark thread.
};
DepotFixture* g_depot = nullptr;

void DepotSetup(const benchmark::State& state) {
  g_depot = new DepotFixture;
  g_depot->dir = MakeDataDir();
  auto storage = Storage::Open(BenchOptions(g_depot->dir));
  if (!storage.ok()) Die(storage.status());
  g_depot->storage = std::move(storage).value();
  auto depot = Depot::Open(g_depot->storage.get(), "bench", "events", kMaxThreads);
  if (!depot.ok()) Die(depot.status());
  g_depot->depot = std::move(depot).value();
  for (int i = 0; i < state.threads(); ++i) {
    auto session = g_depot->storage->OpenSession();
    if (!session.ok()) Die(session.status());
    g_depot->sessions.push_back(std::move(session).value());
  }
}

void DepotTeardown(const benchmark::State&) {
  g_depot->sessions.clear();
  g_depot->depot.reset();
  g_depot->storage.reset();
  std::filesystem::remove_all(g_depot->dir);
  delete g_depot;
  g_depot = nullptr;
}

void DepotBatch(benchmark::State& state, bool durable) {
  std::vector<std::string_view> batch(kBatch, kRecord);
  Session& session = *g_depot->sessions[state.thread_index()];
  for (auto _ : state) {
    auto first = g_depot->depot->AppendBatch(session, state.thread_index(), batch);
    if (!first.ok()) Die(first.status());
    if (durable) {
      Status status = g_depot->storage->WaitDurable();
      if (!status.ok()) Die(status);
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
void BM_DepotBatch(benchmark::State& state) { DepotBatch(state, true); }
void BM_DepotBatchCommitted(benchmark::State& state) { DepotBatch(state, false); }

void BM_DepotSingle(benchmark::State& state) {
  Session& session = *g_depot->sessions[state.thread_index()];
  for (auto _ : state) {
    auto offset = g_depot->depot->Append(session, state.thread_index(), kRecord);
    if (!offset.ok()) Die(offset.status());
    Status durable = g_depot->storage->WaitDurable();
    if (!durable.ok()) Die(durable);
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    state.counters["fsyncs"] = benchmark::Counter(
        static_cast<double>(g_depot->storage->FlushCount()), benchmark::Counter::kIsRate);
  }
}

// ---- Raw WiredTiger reference ---------------------------------------------------------

struct RawFixture {
  std::string dir;
  WT_CONNECTION* conn = nullptr;
  std::vector<WT_SESSION*> sessions;
  std::vector<WT_CURSOR*> cursors;
};
RawFixture* g_raw = nullptr;

void CheckWt(int ret, const char* what) {
  if (ret != 0) {
    std::fprintf(stderr, "storage_bench: %s: %s\n", what, wiredtiger_strerror(ret));
    std::abort();
  }
}

void RawSetup(const benchmark::State& state) {
  g_raw = new RawFixture;
  g_raw->dir = MakeDataDir();
  // The configuration Storage::Open builds from BenchOptions (see storage.cc).
  const StorageOptions options = BenchOptions(g_raw->dir);
  std::string config =
      "create,config_base=false,cache_size=" + std::to_string(options.cache_size_bytes) +
      ",session_max=" + std::to_string(options.max_sessions + 40) +
      ",log=(enabled=true,archive=true,file_max=" + std::to_string(options.log_file_max_bytes) +
      "),checkpoint=(wait=" + std::to_string(options.checkpoint_interval_s) +
      "),extensions=[/usr/lib/x86_64-linux-gnu/libwiredtiger_snappy.so]";
  CheckWt(wiredtiger_open(g_raw->dir.c_str(), nullptr, config.c_str(), &g_raw->conn),
          "wiredtiger_open");
  for (int i = 0; i < state.threads(); ++i) {
    WT_SESSION* session = nullptr;
    CheckWt(g_raw->conn->open_session(g_raw->conn, nullptr, nullptr, &session), "open_session");
    std::string uri = "table:events." + std::to_string(i);
    CheckWt(session->create(session, uri.c_str(),
                            "key_format=q,value_format=u,block_compressor=snappy"),
            "create");
    WT_CURSOR* cursor = nullptr;
    CheckWt(session->open_cursor(session, uri.c_str(), nullptr, nullptr, &cursor), "open_cursor");
    g_raw->sessions.push_back(session);
    g_raw->cursors.push_back(cursor);
  }
}

void RawTeardown(const benchmark::State&) {
  CheckWt(g_raw->conn->close(g_raw->conn, nullptr), "close");
  std::filesystem::remove_all(g_raw->dir);
  delete g_raw;
  g_raw = nullptr;
}

void RawBatch(benchmark::State& state, bool durable) {
  WT_SESSION* session = g_raw->sessions[state.thread_index()];
  WT_CURSOR* cursor = g_raw->cursors[state.thread_index()];
  WT_ITEM value{};
  value.data = kRecord.data();
  value.size = kRecord.size();
  int64_t next = 0;
  for (auto _ : state) {
    CheckWt(session->begin_transaction(session, nullptr), "begin_transaction");
    for (int i = 0; i < kBatch; ++i) {
      cursor->set_key(cursor, next++);
      cursor->set_value(cursor, &value);
      CheckWt(cursor->insert(cursor), "insert");
    }
    CheckWt(session->commit_transaction(session, nullptr), "commit_transaction");
    if (durable) CheckWt(session->log_flush(session, "sync=on"), "log_flush");
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
void BM_RawBatch(benchmark::State& state) { RawBatch(state, true); }
void BM_RawBatchCommitted(benchmark::State& state) { RawBatch(state, false); }

void BM_RawSingle(benchmark::State& state) {
  WT_SESSION* session = g_raw->sessions[state.thread_index()];
  WT_CURSOR* cursor = g_raw->cursors[state.thread_index()];
  WT_ITEM value{};
  value.data = kRecord.data();
  value.size = kRecord.size();
  int64_t next = 0;
  for (auto _ : state) {
    cursor->set_key(cursor, next++);
    cursor->set_value(cursor, &value);
    CheckWt(cursor->insert(cursor), "insert");  // Auto-commit.
    CheckWt(session->log_flush(session, "sync=on"), "log_flush");
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_DepotBatch)->Setup(DepotSetup)->Teardown(DepotTeardown)->UseRealTime()->MinTime(1);
BENCHMARK(BM_RawBatch)->Setup(RawSetup)->Teardown(RawTeardown)->UseRealTime()->MinTime(1);
BENCHMARK(BM_DepotBatchCommitted)
    ->Setup(DepotSetup)
    ->Teardown(DepotTeardown)
    ->UseRealTime()
    ->MinTime(0.5);
BENCHMARK(BM_RawBatchCommitted)
    ->Setup(RawSetup)
    ->Teardown(RawTeardown)
    ->UseRealTime()
    ->MinTime(0.5);
BENCHMARK(BM_DepotSingle)
    ->Setup(DepotSetup)
    ->Teardown(DepotTeardown)
    ->Threads(1)
    ->Threads(4)
    ->Threads(kMaxThreads)
    ->UseRealTime()
    ->MinTime(0.5);
BENCHMARK(BM_RawSingle)
    ->Setup(RawSetup)
    ->Teardown(RawTeardown)
    ->Threads(1)
    ->Threads(4)
    ->Threads(kMaxThreads)
    ->UseRealTime()
    ->MinTime(0.5);

// Console output plus, at the end, the depot/raw throughput ratio of each pair of runs
// (of the medians when runs are repeated).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  explicit RatioReporter(OutputOptions options) : ConsoleReporter(options) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      auto it = run.counters.find("items_per_second");
      if (run.error_occurred || it == run.counters.end()) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      const bool single = run.run_type == Run::RT_Iteration && run.repetitions <= 1;
      if (!median && !single) continue;
      const std::string name = run.run_name.str();
      if (rates_.find(name) == rates_.end()) order_.push_back(name);
      rates_[name] = it->second.value;
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nrecords/s, depot vs raw WiredTiger (same durability per pair):\n");
    for (const std::string& name : order_) {
      if (!name.starts_with("BM_Depot")) continue;
      auto raw = rates_.find("BM_Raw" + name.substr(8));
      if (raw == rates_.end()) continue;
      std::printf("  %-44s depot %9.0f  raw %9.0f  ratio %.2f\n", name.c_str(), rates_[name],
                  raw->second, rates_[name] / raw->second);
    }
  }

 private:
  std::vector<std::string> order_;
  std::map<std::string, double> rates_;
};

}  // namespace
}  // namespace strata

int main(int argc, char** argv) {
  // Defaults that the command line can override (later flags win).
  std::vector<char*> args = {argv[0]};
  std::string repetitions = "--benchmark_repetitions=3";
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  std::string aggregates = "--benchmark_display_aggregates_only=true";
  args.push_back(repetitions.data());
  args.push_back(interleave.data());
  args.push_back(aggregates.data());
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  strata::RatioReporter reporter(isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_Defaults
                                                       : benchmark::ConsoleReporter::OO_Tabular);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
