// Microbatch topologies against stream topologies, measured on an in-process Engine
// (docs/performance.md, "Microbatch topologies"). Two phases, each on fresh data
// directories:
//
//   throughput  --rounds rounds; each runs the stream word count (examples/wordcount.so,
//               topology "count") and the microbatch word count (bench/modules/
//               mbwordcount.so: the same split, then Aggregate with agg::Count) on the same
//               --records sentences, in alternating order: --appenders threads append
//               batches of --batch records (--window in flight each) at --ack (default
//               kAppended), then WaitProcessed. The rate is records / (appends +
//               WaitProcessed), as bench_lifecycle's stream phase.
//   latency     an open-loop client sends one record per AppendAsync at kProcessed,
//               --rate records/s on a fixed schedule for --latency-seconds (after
//               --warmup-ms), to the microbatch word count and then, for reference, to the
//               stream word count; latency runs from each record's scheduled send time
//               (so a late send counts) to its ack: for the microbatch topology, to the
//               commit of the batch holding it being durable.
//
// Batch sizes come from outside the engine: a thread polls Stats every --poll-us. The number
// of batches (the topology's last batch id, ModuleStats::microbatches) and of records (its
// processed offsets summed over partitions) are exact; the size of each batch is exact when
// one batch committed between two polls, else the mean of those that did (the polls that
// saw several are counted and printed). Every run's $$word_counts is
// checked on a sample of words against counts computed here; the bench exits non-zero on a
// mismatch, an append error or a topology failure. Prints a table, then one JSON line. Not
// a test.
// Usage: bench_microbatch [--records=N] [--rounds=R] [--rate=R] ... (--help)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "bench_support.h"
#include "strata/engine.h"

namespace {

using strata::Value;
using strata::bench::Clock;
using strata::bench::Median;
using strata::bench::Percentile;
using strata::bench::Seconds;
using strata::bench::Sentence;

constexpr char kDepot[] = "*sentences";

struct Flags : strata::bench::WorkloadFlags {
  Flags() { records = 1'000'000; }  // dir: the data directories' prefix
  int rounds = 2;
  std::string ack = "appended";  // throughput: the batches' ack level (appended, processed)
  int64_t max_records = strata::EngineOptions().microbatch_max_records;  // per batch
  int rate = 1000;                                                       // latency: records/s
  int latency_seconds = 10;  // latency: measured interval
  int warmup_ms = 1000;      // latency: sent before the measured interval
  int poll_us = 1000;        // batch sampler period
  bool throughput = true;
  bool latency = true;
  std::string stream_module = STRATA_WORDCOUNT;
  std::string microbatch_module = STRATA_MBWORDCOUNT;
};

[[noreturn]] void Usage(const char* error) {
  if (error != nullptr) std::fprintf(stderr, "bench_microbatch: %s\n", error);
  std::fprintf(stderr,
               "usage: bench_microbatch [--records=N] [--rounds=R] [--partitions=P]\n"
               "  [--task-threads=T] [--cache-mb=MB] [--appenders=A] [--batch=B] [--window=W]\n"
               "  [--ack=appended|processed] [--words=K] [--vocab=V] [--max-records=N]\n"
               "  [--rate=R] [--latency-seconds=S] [--warmup-ms=MS] [--poll-us=US]\n"
               "  [--no-throughput] [--no-latency] [--dir=PREFIX] [--keep]\n"
               "  [--stream-module=wordcount.so] [--microbatch-module=mbwordcount.so]\n");
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  strata::bench::ParseWorkloadFlags(
      argc, argv, f, Usage,
      [&](const std::string& arg, const std::string& name, const std::string& value, auto number) {
        if (arg == "--no-throughput")
          f.throughput = false;
        else if (arg == "--no-latency")
          f.latency = false;
        else if (name == "rounds")
          f.rounds = static_cast<int>(number());
        else if (name == "ack")
          f.ack = value;
        else if (name == "max-records")
          f.max_records = number();
        else if (name == "rate")
          f.rate = static_cast<int>(number());
        else if (name == "latency-seconds")
          f.latency_seconds = static_cast<int>(number());
        else if (name == "warmup-ms")
          f.warmup_ms = static_cast<int>(number());
        else if (name == "poll-us")
          f.poll_us = static_cast<int>(number());
        else if (name == "stream-module")
          f.stream_module = value;
        else if (name == "microbatch-module")
          f.microbatch_module = value;
        else
          return false;
        return true;
      });
  if (!strata::bench::WorkloadCountsValid(f) || f.rounds < 1 || f.max_records < 1 || f.rate < 1 ||
      f.latency_seconds < 1 || f.poll_us < 1) {
    Usage("counts must be >= 1");
  }
  if (f.ack != "appended" && f.ack != "processed") Usage("--ack is appended or processed");
  if (f.dir.empty()) f.dir = "/tmp/strata-mbbench-" + std::to_string(getpid());
  return f;
}

[[noreturn]] void Die(const std::string& what, const strata::Status& st) {
  std::fprintf(stderr, "bench_microbatch: %s: %s\n", what.c_str(), st.ToString().c_str());
  std::exit(1);
}

// Polls Stats every `us` and records each rise of `topology`'s processed offsets, summed
// over its partitions, as one batch.
class BatchSampler {
 public:
  BatchSampler(strata::Engine* engine, std::string module, std::string topology, int us)
      : engine_(engine), module_(std::move(module)), topology_(std::move(topology)), us_(us) {
    first_ = last_ = Sample();
    thread_ = std::thread([this] { Run(); });
  }
  ~BatchSampler() { Stop(); }
  void Stop() {
    if (stop_.exchange(true)) return;
    if (thread_.joinable()) thread_.join();
    last_ = Sample();
  }
  // Batches and records between construction and Stop (exact: the batch id and the
  // processed offsets), the polls, and the size of each batch: exact when a poll saw one
  // batch commit, the mean of the batches a poll saw commit together otherwise.
  int64_t batches() const { return last_.batch - first_.batch; }
  int64_t records() const { return last_.processed - first_.processed; }
  int64_t polls() const { return polls_; }
  int64_t merged_polls() const { return merged_polls_; }
  const std::vector<int64_t>& sizes() const { return sizes_; }
  // Whether Stats listed the topology (ModuleStats::microbatches).
  bool listed() const { return listed_; }

 private:
  struct Point {
    int64_t batch = 0;
    int64_t processed = 0;
  };
  Point Sample() {
    strata::StatsOptions options;
    options.failures_limit = 0;
    auto stats = engine_->Stats(module_, options);
    if (!stats.ok()) return last_;
    Point p;
    for (const strata::TopologyPartitionStats& t : stats->topologies) {
      if (t.topology == topology_) p.processed += t.processed_offset;
    }
    for (const strata::ModuleStats::Microbatch& mb : stats->microbatches) {
      if (mb.topology == topology_) {
        p.batch = mb.batch;
        listed_ = true;
      }
    }
    return p;
  }
  void Run() {
    // The engine publishes a batch's id before its processed offsets, so a poll can see a
    // batch before (all of) its records: the batches wait for their records, and records
    // seen later count with the next batch.
    int64_t batches = 0, records = 0;
    while (!stop_.load()) {
      std::this_thread::sleep_for(std::chrono::microseconds(us_));
      const Point now = Sample();
      ++polls_;
      batches += now.batch - last_.batch;
      records += now.processed - last_.processed;
      last_ = now;
      if (batches <= 0 || records <= 0) continue;
      if (batches > 1) ++merged_polls_;
      for (int64_t i = 0; i < batches; ++i) sizes_.push_back(records / batches);
      batches = records = 0;
    }
  }

  strata::Engine* engine_;
  std::string module_, topology_;
  int us_;
  Point first_, last_;
  int64_t polls_ = 0;
  int64_t merged_polls_ = 0;
  bool listed_ = false;
  std::vector<int64_t> sizes_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

struct BatchFigures {
  bool listed = false;
  int64_t batches = 0;
  int64_t polls = 0;
  int64_t merged_polls = 0;
  double mean = 0;
  int64_t p50 = 0, p99 = 0, max = 0;
};

BatchFigures Summarize(const BatchSampler& s) {
  BatchFigures b;
  b.listed = s.listed();
  b.batches = s.batches();
  b.polls = s.polls();
  b.merged_polls = s.merged_polls();
  b.mean = b.batches > 0 ? static_cast<double>(s.records()) / static_cast<double>(b.batches) : 0;
  b.p50 = Percentile(s.sizes(), 0.5);
  b.p99 = Percentile(s.sizes(), 0.99);
  b.max = Percentile(s.sizes(), 1.0);
  return b;
}

std::string BatchLine(const BatchFigures& b) {
  if (!b.listed) return "batch sizes unknown (Stats lists no such microbatch topology)";
  char line[256];
  std::snprintf(line, sizeof line,
                "%lld batches, records per batch mean %.1f, p50 %lld, p99 %lld, max %lld (%lld "
                "polls, %lld saw several batches)",
                static_cast<long long>(b.batches), b.mean, static_cast<long long>(b.p50),
                static_cast<long long>(b.p99), static_cast<long long>(b.max),
                static_cast<long long>(b.polls), static_cast<long long>(b.merged_polls));
  return line;
}

// One engine on a fresh data directory with one module deployed.
struct Run {
  std::unique_ptr<strata::Engine> engine;
  std::string module;
  std::string dir;
};

Run OpenRun(const Flags& f, const std::string& so_path, const std::string& dir) {
  strata::EngineOptions options = strata::bench::WorkloadEngineOptions(f, dir);
  options.microbatch_max_records = f.max_records;
  std::filesystem::remove_all(dir);
  auto opened = strata::Engine::Open(options);
  if (!opened.ok()) Die("open " + dir, opened.status());
  Run run;
  run.engine = std::move(opened).value();
  run.dir = dir;
  auto deployed = run.engine->Deploy(so_path, {.partitions = f.partitions});
  if (!deployed.ok()) Die("deploy " + so_path, deployed.status());
  run.module = deployed->name;
  return run;
}

void CloseRun(Run& run, const Flags& f) {
  auto stats = run.engine->Stats(run.module);
  if (!stats.ok()) Die("stats", stats.status());
  if (stats->failures != 0) {
    Die(run.module,
        strata::Status::Internal(std::to_string(stats->failures) + " topology failures"));
  }
  if (auto st = run.engine->Close(); !st.ok()) Die("close", st);
  run.engine.reset();
  if (!f.keep) std::filesystem::remove_all(run.dir);
}

// Checks $$word_counts for a sample of words against `expected` (counts of sentences
// [0, n)); exits on a mismatch.
void CheckCounts(strata::Engine* engine, const std::string& module,
                 const std::vector<std::string>& vocab, const std::vector<int64_t>& expected) {
  strata::bench::CheckWordCounts(engine, module, vocab, expected, 100, "bench_microbatch", module);
}

struct ThroughputResult {
  double seconds = 0;
  double append_seconds = 0;
  double rate = 0;
  BatchFigures batches;
};

ThroughputResult Throughput(const Flags& f, const std::string& so_path, const std::string& dir,
                            bool microbatch, const std::vector<std::string>& vocab,
                            const std::vector<int64_t>& expected) {
  Run run = OpenRun(f, so_path, dir);
  strata::Engine* engine = run.engine.get();
  const strata::AckLevel level =
      f.ack == "processed" ? strata::AckLevel::kProcessed : strata::AckLevel::kAppended;
  std::unique_ptr<BatchSampler> sampler;
  if (microbatch) sampler = std::make_unique<BatchSampler>(engine, run.module, "count", f.poll_us);
  const auto start = Clock::now();
  const strata::bench::AppendFailures failed =
      strata::bench::AppendAll(engine, run.module, kDepot, f, vocab, level);
  const auto appended = Clock::now();
  if (failed.batches > 0) {
    Die(run.module + ": append (" + std::to_string(failed.batches) + " batches failed)",
        strata::Status::Internal(failed.first_error));
  }
  if (auto st = engine->WaitProcessed(run.module); !st.ok()) Die("wait processed", st);
  const auto end = Clock::now();
  ThroughputResult r;
  if (sampler) {
    sampler->Stop();
    r.batches = Summarize(*sampler);
  }
  r.seconds = Seconds(start, end);
  r.append_seconds = Seconds(start, appended);
  r.rate = static_cast<double>(f.records) / r.seconds;
  CheckCounts(engine, run.module, vocab, expected);
  CloseRun(run, f);
  return r;
}

struct LatencyResult {
  int64_t sent = 0;
  int64_t measured = 0;
  double p50 = 0, p99 = 0, p999 = 0, max = 0;
  double late_ms = 0;  // the latest a send left after its scheduled time
  BatchFigures batches;
};

// Open loop: record i is sent at start + i / rate (one record per AppendAsync, kProcessed);
// its latency runs from that scheduled time to its ack.
LatencyResult Latency(const Flags& f, const std::string& so_path, const std::string& dir,
                      bool microbatch, const std::vector<std::string>& vocab) {
  Run run = OpenRun(f, so_path, dir);
  strata::Engine* engine = run.engine.get();
  const int64_t warmup = static_cast<int64_t>(f.rate) * f.warmup_ms / 1000;
  const int64_t total = warmup + static_cast<int64_t>(f.rate) * f.latency_seconds;
  std::vector<double> latency_ms(static_cast<size_t>(total), -1);
  std::atomic<int64_t> done{0};
  std::atomic<int64_t> errors{0};
  std::string first_error;
  std::mutex mu;
  std::condition_variable cv;
  std::unique_ptr<BatchSampler> sampler;
  const auto start = Clock::now() + std::chrono::milliseconds(10);
  const auto period = std::chrono::nanoseconds(1'000'000'000LL / f.rate);
  double late_ms = 0;
  for (int64_t i = 0; i < total; ++i) {
    if (i == warmup && microbatch) {
      sampler = std::make_unique<BatchSampler>(engine, run.module, "count", f.poll_us);
    }
    const auto scheduled = start + period * i;
    std::this_thread::sleep_until(scheduled);
    late_ms = std::max(late_ms,
                       std::chrono::duration<double, std::milli>(Clock::now() - scheduled).count());
    std::vector<Value> one;
    one.emplace_back(Sentence(i, f, vocab));
    engine->AppendAsync(run.module, kDepot, std::move(one), strata::AckLevel::kProcessed,
                        [&, i, scheduled](strata::Result<std::vector<strata::AppendResult>> r) {
                          const auto acked = Clock::now();
                          std::lock_guard lock(mu);
                          if (!r.ok() && errors.fetch_add(1) == 0) {
                            first_error = r.status().ToString();
                          }
                          latency_ms[static_cast<size_t>(i)] =
                              std::chrono::duration<double, std::milli>(acked - scheduled).count();
                          done.fetch_add(1);
                          cv.notify_one();
                        });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done.load() == total; });
  }
  LatencyResult r;
  if (sampler) {
    sampler->Stop();
    r.batches = Summarize(*sampler);
  }
  if (errors.load() > 0) {
    Die(run.module + ": append (" + std::to_string(errors.load()) + " failed)",
        strata::Status::Internal(first_error));
  }
  std::vector<double> measured(latency_ms.begin() + warmup, latency_ms.end());
  r.sent = total;
  r.measured = static_cast<int64_t>(measured.size());
  r.p50 = Percentile(measured, 0.5);
  r.p99 = Percentile(measured, 0.99);
  r.p999 = Percentile(measured, 0.999);
  r.max = Percentile(measured, 1.0);
  r.late_ms = late_ms;
  CheckCounts(engine, run.module, vocab, strata::bench::ExpectedCounts(f, total));
  CloseRun(run, f);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags f = ParseFlags(argc, argv);
  const std::vector<std::string> vocab = strata::bench::MakeVocabulary(f.vocab);
  const std::string load_before = strata::bench::LoadAverage();
  const double sentence_bytes = strata::bench::MeanSentenceBytes(f, vocab);
  std::printf(
      "bench_microbatch: %lld records of %d words (~%.0f bytes; %d distinct words), %d partitions, "
      "task threads %d (%s), cache %lld MB, microbatch_max_records %lld, data %s-*, load %s\n",
      static_cast<long long>(f.records), f.words, sentence_bytes, f.vocab, f.partitions,
      f.task_threads, strata::bench::TaskThreadsText(f).c_str(), static_cast<long long>(f.cache_mb),
      static_cast<long long>(f.max_records), f.dir.c_str(), load_before.c_str());
  std::fflush(stdout);

  std::vector<double> stream_rates, mb_rates, ratios;
  std::vector<BatchFigures> mb_batches;
  if (f.throughput) {
    const std::vector<int64_t> expected = strata::bench::ExpectedCounts(f, f.records);
    std::printf(
        "throughput: %d rounds; %d appenders, batches of %d, %d in flight each, ack %s, "
        "then WaitProcessed\n",
        f.rounds, f.appenders, f.batch, f.window, f.ack.c_str());
    std::fflush(stdout);
    for (int round = 0; round < f.rounds; ++round) {
      ThroughputResult stream, mb;
      // Alternating order, so that neither kind always runs on the warmer machine.
      for (int k = 0; k < 2; ++k) {
        const bool microbatch = (k == 0) == (round % 2 == 1);
        const std::string dir = f.dir + "-" + (microbatch ? "mb" : "stream");
        ThroughputResult r = Throughput(f, microbatch ? f.microbatch_module : f.stream_module, dir,
                                        microbatch, vocab, expected);
        std::printf("  round %d %-10s %9.0f records/s (%.2f s; appends done at %.2f s)%s%s\n",
                    round + 1, microbatch ? "microbatch" : "stream", r.rate, r.seconds,
                    r.append_seconds, microbatch ? "; " : "",
                    microbatch ? BatchLine(r.batches).c_str() : "");
        std::fflush(stdout);
        (microbatch ? mb : stream) = r;
      }
      stream_rates.push_back(stream.rate);
      mb_rates.push_back(mb.rate);
      ratios.push_back(mb.rate / stream.rate);
      mb_batches.push_back(mb.batches);
      std::printf("  round %d microbatch / stream: %.2fx\n", round + 1, mb.rate / stream.rate);
      std::fflush(stdout);
    }
  }

  LatencyResult mb_latency, stream_latency;
  if (f.latency) {
    std::printf(
        "latency: open loop, %d records/s, one record per append (kProcessed), %d ms "
        "warmup, %d s measured\n",
        f.rate, f.warmup_ms, f.latency_seconds);
    std::fflush(stdout);
    mb_latency = Latency(f, f.microbatch_module, f.dir + "-mb-latency", true, vocab);
    std::printf(
        "  microbatch %lld records: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms "
        "(latest send %.2f ms late); %s\n",
        static_cast<long long>(mb_latency.measured), mb_latency.p50, mb_latency.p99,
        mb_latency.p999, mb_latency.max, mb_latency.late_ms, BatchLine(mb_latency.batches).c_str());
    std::fflush(stdout);
    stream_latency = Latency(f, f.stream_module, f.dir + "-stream-latency", false, vocab);
    std::printf(
        "  stream     %lld records: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms "
        "(latest send %.2f ms late)\n",
        static_cast<long long>(stream_latency.measured), stream_latency.p50, stream_latency.p99,
        stream_latency.p999, stream_latency.max, stream_latency.late_ms);
    std::fflush(stdout);
  }
  const std::string load_after = strata::bench::LoadAverage();

  std::printf("\n%-48s %s\n", "measure", "value");
  std::string rates_json = "[";
  if (f.throughput) {
    const double ratio = Median(ratios);
    std::string rounds;
    for (size_t i = 0; i < ratios.size(); ++i) {
      char one[128];
      std::snprintf(one, sizeof one, "%s%.0f / %.0f (%.2fx)", i == 0 ? "" : "; ", mb_rates[i],
                    stream_rates[i], ratios[i]);
      rounds += one;
      std::snprintf(one, sizeof one, "%s{\"stream\":%.0f,\"microbatch\":%.0f,\"ratio\":%.3f}",
                    i == 0 ? "" : ",", stream_rates[i], mb_rates[i], ratios[i]);
      rates_json += one;
    }
    std::printf("%-48s %s\n", "word count records/s, microbatch / stream", rounds.c_str());
    std::printf("%-48s %.2fx (goal >= 2x)\n", "microbatch / stream, median of rounds", ratio);
    std::printf("%-48s %s\n", "batches (throughput, last round)",
                BatchLine(mb_batches.back()).c_str());
  }
  rates_json += "]";
  if (f.latency) {
    std::printf("%-48s p50 %.2f ms, p99 %.2f ms, max %.2f ms (goal p50 <= 20, p99 <= 50)\n",
                "microbatch append -> processed ack", mb_latency.p50, mb_latency.p99,
                mb_latency.max);
    std::printf("%-48s p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", "stream append -> processed ack",
                stream_latency.p50, stream_latency.p99, stream_latency.max);
    std::printf("%-48s %s\n", "batches (latency)", BatchLine(mb_latency.batches).c_str());
  }
  std::printf("%-48s before %s, after %s\n", "load average", load_before.c_str(),
              load_after.c_str());
  const BatchFigures tb = mb_batches.empty() ? BatchFigures{} : mb_batches.back();
  std::printf(
      "{\"bench\":\"microbatch\",\"records\":%lld,\"partitions\":%d,\"task_threads\":%d,"
      "\"hardware_threads\":%u,\"cache_mb\":%lld,\"words_per_record\":%d,\"record_bytes\":%.1f,"
      "\"max_records\":%lld,\"ack\":\"%s\",\"rounds\":%s,\"ratio_median\":%.3f,"
      "\"throughput_batch_mean\":%.1f,\"throughput_batch_max\":%lld,\"rate\":%d,"
      "\"mb_latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
      "\"stream_latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},"
      "\"latency_batch_mean\":%.2f,\"latency_batch_max\":%lld,\"latency_batches\":%lld,"
      "\"loadavg_before\":\"%s\",\"loadavg_after\":\"%s\"}\n",
      static_cast<long long>(f.records), f.partitions, f.task_threads,
      std::thread::hardware_concurrency(), static_cast<long long>(f.cache_mb), f.words,
      sentence_bytes, static_cast<long long>(f.max_records), f.ack.c_str(), rates_json.c_str(),
      Median(ratios), tb.mean, static_cast<long long>(tb.max), f.rate, mb_latency.p50,
      mb_latency.p99, mb_latency.p999, mb_latency.max, stream_latency.p50, stream_latency.p99,
      stream_latency.p999, stream_latency.max, mb_latency.batches.mean,
      static_cast<long long>(mb_latency.batches.max),
      static_cast<long long>(mb_latency.batches.batches), load_before.c_str(), load_after.c_str());
  return 0;
}
