// Measures processed appends per second of the rt_test word count (a split step, a hash
// hop, a counting step) with several appender threads, each keeping a window of
// asynchronous batches in flight. Usage: runtime_throughput [records] [threads] [batch]
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "strata/engine.h"

int main(int argc, char** argv) {
  const int64_t records = argc > 1 ? std::atoll(argv[1]) : 100000;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 4;
  const int batch = argc > 3 ? std::atoi(argv[3]) : 10;
  const std::string dir = "/tmp/strata-runtime-throughput-" + std::to_string(getpid());
  strata::EngineOptions options;
  options.data_dir = dir;
  options.cache_size_bytes = 256ull << 20;
  auto engine = strata::Engine::Open(options);
  if (!engine.ok()) return std::fprintf(stderr, "%s\n", engine.status().ToString().c_str()), 1;
  auto deployed = (*engine)->Deploy(STRATA_RT_TEST_MODULE, {.partitions = 8});
  if (!deployed.ok()) return std::fprintf(stderr, "%s\n", deployed.status().ToString().c_str()), 1;
  const char* words[] = {"apple", "banana", "cherry", "date", "elder", "fig", "grape", "kiwi"};
  std::atomic<int64_t> failures{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> appenders;
  for (int t = 0; t < threads; ++t) {
    appenders.emplace_back([&, t] {
      std::mutex mu;
      std::condition_variable cv;
      int in_flight = 0;
      const int64_t mine = records / threads;
      for (int64_t i = 0; i < mine; i += batch) {
        std::vector<strata::Value> sentences;
        for (int j = 0; j < batch; ++j) {
          const int64_t n = i + j + t;
          sentences.emplace_back(std::string(words[n % 8]) + " " + words[(n / 8) % 8] + " " +
                                 words[(n / 64) % 8]);
        }
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return in_flight < 64; });
          ++in_flight;
        }
        (*engine)->AppendAsync("rt_test", "*sentences", std::move(sentences),
                               strata::AckLevel::kProcessed,
                               [&](strata::Result<std::vector<strata::AppendResult>> r) {
                                 if (!r.ok()) failures.fetch_add(1);
                                 std::lock_guard lock(mu);
                                 --in_flight;
                                 cv.notify_one();
                               });
      }
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight == 0; });
    });
  }
  for (auto& a : appenders) a.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const int64_t done = records / threads / batch * batch * threads;
  std::printf(
      "%lld processed appends (3 words each, 2 topology hops) in %.2f s: %.0f records/s, "
      "%d appender threads, batches of %d, %u task threads, failures %lld\n",
      static_cast<long long>(done), seconds, done / seconds, threads, batch,
      std::thread::hardware_concurrency(), static_cast<long long>(failures.load()));
  engine->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
