// The word-count workload the in-process benches share (bench_lifecycle, bench_microbatch):
// its flags, its deterministic sentences, the engine it runs on, its bulk append, the check
// of $$word_counts, and the figures printed about it. Header-only; not a test.
//
// Everything runs on the caller's thread, except AppendAll, which starts f.appenders
// threads and joins them before it returns.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "strata/engine.h"

namespace strata::bench {

using Clock = std::chrono::steady_clock;

// The flags every word-count bench takes (the benches derive their own Flags from this).
struct WorkloadFlags {
  int64_t records = 200'000;
  int partitions = 8;
  int task_threads = 0;  // the engine's default: one per core
  int64_t cache_mb = 512;
  int appenders = 2;   // bulk append: threads appending asynchronous batches
  int batch = 1000;    // bulk append: records per AppendAsync
  int window = 8;      // bulk append: batches in flight per appender
  int words = 4;       // words per sentence
  int vocab = 10'000;  // distinct words
  std::string dir;     // data directory or directories' prefix (set by each bench)
  bool keep = false;   // keep the data directories
};

// Parses argv[1..] into `f`. "--help" and "-h" call usage(nullptr); "--keep" sets f.keep;
// "--records=N", "--partitions=P", "--task-threads=T", "--cache-mb=MB", "--appenders=A",
// "--batch=B", "--window=W", "--words=K", "--vocab=V" (whole numbers >= 0) and
// "--dir=PATH" set the field they name. Any other argument goes to
// other(arg, name, value, number): name and value are what stands either side of the
// first '=' of "--name=value" (both empty for an argument of another form), number()
// gives value as a whole number >= 0 (calling usage on anything else); `other` returns
// false for an argument it does not know, which calls usage("bad argument ...") or
// usage("unknown flag ..."). `usage` must not return.
template <typename Other>
void ParseWorkloadFlags(int argc, char** argv, WorkloadFlags& f, void (*usage)(const char*),
                        Other other) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") usage(nullptr);
    if (arg == "--keep") {
      f.keep = true;
      continue;
    }
    const size_t eq = arg.find('=');
    const bool named = arg.rfind("--", 0) == 0 && eq != std::string::npos;
    const std::string name = named ? arg.substr(2, eq - 2) : "";
    const std::string value = named ? arg.substr(eq + 1) : "";
    const auto number = [&]() -> int64_t {
      char* end = nullptr;
      const long long n = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 0) usage(("bad number in " + arg).c_str());
      return n;
    };
    if (name == "records")
      f.records = number();
    else if (name == "partitions")
      f.partitions = static_cast<int>(number());
    else if (name == "task-threads")
      f.task_threads = static_cast<int>(number());
    else if (name == "cache-mb")
      f.cache_mb = number();
    else if (name == "appenders")
      f.appenders = static_cast<int>(number());
    else if (name == "batch")
      f.batch = static_cast<int>(number());
    else if (name == "window")
      f.window = static_cast<int>(number());
    else if (name == "words")
      f.words = static_cast<int>(number());
    else if (name == "vocab")
      f.vocab = static_cast<int>(number());
    else if (name == "dir")
      f.dir = value;
    else if (!other(arg, name, value, number))
      usage(((named ? "unknown flag " : "bad argument ") + arg).c_str());
  }
}

// Whether the counts that must be >= 1 are.
inline bool WorkloadCountsValid(const WorkloadFlags& f) {
  return f.records >= 1 && f.partitions >= 1 && f.appenders >= 1 && f.batch >= 1 && f.window >= 1 &&
         f.words >= 1 && f.vocab >= 1 && f.cache_mb >= 1;
}

// Engine options for `dir` with the flags' task threads and cache.
inline EngineOptions WorkloadEngineOptions(const WorkloadFlags& f, const std::string& dir) {
  EngineOptions options;
  options.data_dir = dir;
  options.task_threads = f.task_threads;
  options.cache_size_bytes = static_cast<uint64_t>(f.cache_mb) << 20;
  return options;
}

inline uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Word i: 2 to 7 lower-case letters, then i in decimal (so words are distinct and
// wordcount's splitter keeps each whole); lengths vary with i.
inline std::vector<std::string> MakeVocabulary(int size) {
  std::vector<std::string> words;
  words.reserve(size);
  for (int i = 0; i < size; ++i) {
    uint64_t r = SplitMix(static_cast<uint64_t>(i) + 1);
    std::string word;
    const int letters = 2 + static_cast<int>(r % 6);
    for (int j = 0; j < letters; ++j) {
      r = SplitMix(r);
      word.push_back(static_cast<char>('a' + r % 26));
    }
    words.push_back(word + std::to_string(i));
  }
  return words;
}

// The index of word j of sentence n among `vocab` words (deterministic, so the expected
// counts are known).
inline int WordOf(int64_t n, int j, int vocab) {
  return static_cast<int>(SplitMix(static_cast<uint64_t>(n) * 64 + j) % vocab);
}

// Sentence n: f.words words of `vocab` (which holds f.vocab words), separated by spaces.
inline std::string Sentence(int64_t n, const WorkloadFlags& f,
                            const std::vector<std::string>& vocab) {
  std::string s;
  for (int j = 0; j < f.words; ++j) {
    if (j > 0) s.push_back(' ');
    s += vocab[WordOf(n, j, f.vocab)];
  }
  return s;
}

// How often each word stands in sentences [0, n).
inline std::vector<int64_t> ExpectedCounts(const WorkloadFlags& f, int64_t n) {
  std::vector<int64_t> expected(f.vocab, 0);
  for (int64_t s = 0; s < n; ++s) {
    for (int j = 0; j < f.words; ++j) ++expected[WordOf(s, j, f.vocab)];
  }
  return expected;
}

// The mean size in bytes of sentences [0, 1000).
inline double MeanSentenceBytes(const WorkloadFlags& f, const std::vector<std::string>& vocab) {
  int64_t bytes = 0;
  for (int64_t n = 0; n < 1000; ++n) bytes += Sentence(n, f, vocab).size();
  return bytes / 1000.0;
}

// "set", or "one per core: N" when the engine picks the task threads.
inline std::string TaskThreadsText(const WorkloadFlags& f) {
  return f.task_threads == 0
             ? "one per core: " + std::to_string(std::thread::hardware_concurrency())
             : "set";
}

// The failed appends of a bulk append: how many batches failed, and the first error.
struct AppendFailures {
  int64_t batches = 0;
  std::string first_error;
};

// Appends sentences [0, f.records) to `depot` of `module`: f.appenders threads each own a
// contiguous range and send it in AppendAsync batches of f.batch at `level`, at most
// f.window in flight; returns when every batch is acked.
inline AppendFailures AppendAll(Engine* engine, const std::string& module, const char* depot,
                                const WorkloadFlags& f, const std::vector<std::string>& vocab,
                                AckLevel level) {
  std::atomic<int64_t> errors{0};
  std::string first_error;
  std::mutex error_mu;
  std::vector<std::thread> appenders;
  for (int t = 0; t < f.appenders; ++t) {
    appenders.emplace_back([&, t] {
      std::mutex mu;
      std::condition_variable cv;
      int in_flight = 0;
      const int64_t from = f.records * t / f.appenders;
      const int64_t to = f.records * (t + 1) / f.appenders;
      for (int64_t i = from; i < to; i += f.batch) {
        std::vector<Value> sentences;
        for (int64_t n = i; n < std::min<int64_t>(to, i + f.batch); ++n) {
          sentences.emplace_back(Sentence(n, f, vocab));
        }
        {
          std::unique_lock lock(mu);
          cv.wait(lock, [&] { return in_flight < f.window; });
          ++in_flight;
        }
        engine->AppendAsync(module, depot, std::move(sentences), level,
                            [&](Result<std::vector<AppendResult>> r) {
                              if (!r.ok() && errors.fetch_add(1) == 0) {
                                std::lock_guard lock(error_mu);
                                first_error = r.status().ToString();
                              }
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
  return {errors.load(), first_error};
}

// Checks $$word_counts of `module` for `sample` words (the same pseudo-random ones each
// run) against `expected`; on a mismatch or an error prints "<program>: <context>: ..."
// and exits 1.
inline void CheckWordCounts(Engine* engine, const std::string& module,
                            const std::vector<std::string>& vocab,
                            const std::vector<int64_t>& expected, int sample, const char* program,
                            const std::string& context) {
  sample = std::min<int>(sample, static_cast<int>(vocab.size()));
  for (int k = 0; k < sample; ++k) {
    const int i = static_cast<int>(SplitMix(0xc0ffee + k) % vocab.size());
    auto got = engine->SelectOne(module, "$$word_counts", Path().Key(Value(vocab[i])));
    if (!got.ok()) {
      std::fprintf(stderr, "%s: %s: select $$word_counts: %s\n", program, context.c_str(),
                   got.status().ToString().c_str());
      std::exit(1);
    }
    const int64_t have = got->is_nil() ? 0 : got->as_int();
    if (have != expected[i]) {
      std::fprintf(stderr, "%s: %s: $$word_counts[%s] = %lld, expected %lld\n", program,
                   context.c_str(), vocab[i].c_str(), static_cast<long long>(have),
                   static_cast<long long>(expected[i]));
      std::exit(1);
    }
  }
}

inline double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// The first three fields of /proc/loadavg ("1.00 0.80 0.50").
inline std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// The element at rank p (0 to 1, rounded to the nearest) of `v` sorted; T{} when empty.
template <typename T>
T Percentile(std::vector<T> v, double p) {
  if (v.empty()) return T{};
  std::sort(v.begin(), v.end());
  const size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

// The median of `v` (the mean of the middle two when even); 0 when empty.
inline double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace strata::bench
