// The cost of the replication log's capture on the write path (docs/cluster.md,
// "Replication log"), committed only (no fsync: the CPU and lock cost, which fsync latency
// would hide). T threads, each committing transactions of two writes (a depot record and a
// PState put) to a partition of its own, with:
//   mode 0: no commit hook (the storage as without replication);
//   mode 1: a LogWriter, every partition in one replica group (the threads contend for the
//           group's mutex, held from the entry's offset to the commit);
//   mode 2: a LogWriter, each thread's partition in a group of its own (no contention).
// And the same through an Engine (BM_WordCountEngine): the examples' wordcount (8
// partitions) in-process, batches of 100 one-word sentences appended with processed acks by
// 4 threads, without a hook (hook:0) and with a LogWriter of 4 groups per module (hook:1).
// Data lives in a fresh directory under $STRATA_BENCH_DIR (default /tmp), removed afterwards.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "replication/log_writer.h"
#include "runtime/engine_impl.h"
#include "storage/storage.h"
#include "strata/engine.h"

namespace strata {
namespace {

constexpr int kTxnsPerThread = 4000;

std::string MakeDataDir() {
  const char* base = std::getenv("STRATA_BENCH_DIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/strata-bench-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::fprintf(stderr, "replication_bench: mkdtemp(%s) failed\n", pattern.c_str());
    std::abort();
  }
  return pattern;
}

void Check(const Status& status) {
  if (!status.ok()) {
    std::fprintf(stderr, "replication_bench: %s\n", status.ToString().c_str());
    std::abort();
  }
}

void BM_Commits(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int mode = static_cast<int>(state.range(1));
  const std::string dir = MakeDataDir();
  {
    StorageOptions options;
    options.path = dir;
    options.cache_size_bytes = 512ull << 20;
    options.checkpoint_interval_s = 60;
    options.checkpoint_log_bytes = 16ull << 20;
    options.log_file_max_bytes = 16ull << 20;
    options.max_sessions = 64;
    if (mode > 0) {
      options.commit_hook = std::make_shared<replication::LogWriter>(
          replication::GroupLayout(mode == 1 ? 1 : threads), 0);
    }
    std::unique_ptr<Storage> storage = std::move(Storage::Open(options)).value();
    std::vector<TableId> depots, pstates;
    for (int p = 0; p < threads; ++p) {
      depots.push_back(*storage->OpenTable("depot.m.d." + std::to_string(p), TableKind::kLog));
      pstates.push_back(*storage->OpenTable("pstate.m.s." + std::to_string(p), TableKind::kBytes));
    }
    const std::string value(64, 'v');
    int64_t next = 0;
    for (auto _ : state) {
      std::vector<std::thread> workers;
      for (int p = 0; p < threads; ++p) {
        workers.emplace_back([&, p, first = next] {
          std::unique_ptr<Session> session = std::move(storage->OpenSession()).value();
          for (int i = 0; i < kTxnsPerThread; ++i) {
            Check(session->Begin());
            Check(session->PutRecord(depots[p], first + i, value));
            Check(session->Put(pstates[p], "k" + std::to_string(i % 1000), value));
            Check(session->Commit());
          }
        });
      }
      for (std::thread& w : workers) w.join();
      next += kTxnsPerThread;
    }
    state.SetItemsProcessed(state.iterations() * threads * kTxnsPerThread);
  }
  std::filesystem::remove_all(dir);
}

BENCHMARK(BM_Commits)
    ->ArgNames({"threads", "mode"})
    ->ArgsProduct({{1, 4}, {0, 1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Repetitions(3);

void BM_WordCountEngine(benchmark::State& state) {
  const bool hook = state.range(0) != 0;
  constexpr int kThreads = 4;
  constexpr int kBatches = 50;  // per thread and iteration
  constexpr int kBatch = 100;
  const std::string dir = MakeDataDir();
  {
    EngineOptions options;
    options.data_dir = dir;
    options.task_threads = 2;
    options.cache_size_bytes = 256ull << 20;
    std::shared_ptr<CommitHook> writer;
    if (hook) writer = std::make_shared<replication::LogWriter>(replication::GroupLayout(4), 0);
    std::unique_ptr<Engine> engine = std::move(runtime::EngineImpl::Open(options, writer)).value();
    Check(engine->Deploy(WORDCOUNT_MODULE, {.partitions = 8}).status());
    int64_t next_word = 0;
    for (auto _ : state) {
      std::vector<std::thread> appenders;
      for (int t = 0; t < kThreads; ++t) {
        appenders.emplace_back([&, first = next_word + t * kBatches * kBatch] {
          for (int b = 0; b < kBatches; ++b) {
            std::vector<Value> sentences;
            for (int i = 0; i < kBatch; ++i) {
              sentences.push_back(Value("w" + std::to_string((first + b * kBatch + i) % 100000)));
            }
            Check(engine->AppendBatch("wordcount", "*sentences", std::move(sentences)).status());
          }
        });
      }
      for (std::thread& a : appenders) a.join();
      next_word += kThreads * kBatches * kBatch;
    }
    state.SetItemsProcessed(state.iterations() * kThreads * kBatches * kBatch);
    Check(engine->Close());
  }
  std::filesystem::remove_all(dir);
}

BENCHMARK(BM_WordCountEngine)
    ->ArgName("hook")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Repetitions(3);

}  // namespace
}  // namespace strata

BENCHMARK_MAIN();
