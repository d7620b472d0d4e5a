// The module lifecycle, measured on an in-process Engine with the examples' wordcount
// (docs/performance.md, "Module lifecycle"). Four phases on one data directory:
//
//   stream     deploy wordcount.so, append --records sentences (kAppended, asynchronous
//              batches), WaitProcessed: the rate at which the stream topology processes them;
//   recompute  Recompute($$word_counts), WaitProcessed: the rebuild rate over the same log;
//   backfill   Update to wordcount_v2.so (new topology "lengths" -> $$word_lengths, from
//              offset 0), WaitProcessed: the backfill rate;
//   pause      --updates updates (alternately back to wordcount.so, dropping "lengths" and
//              $$word_lengths, and to wordcount_v2.so with new_topologies_from_end) while
//              --load-threads closed-loop appenders (kProcessed) run: UpdateResult::pause_us
//              and the longest gap between consecutive acks of an appender during each.
//
// The views are checked against counts computed here (every length, a sample of words)
// after each of the first three phases. Prints a table, then one JSON line. Not a test.
// The data directory is deleted at the end (unless --keep); on an error it is kept for
// inspection.
// Usage: bench_lifecycle [--records=N] [--partitions=P] [--task-threads=T] ... (--help)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
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
using strata::bench::Percentile;
using strata::bench::Seconds;
using strata::bench::Sentence;

constexpr char kModule[] = "wordcount";
constexpr char kDepot[] = "*sentences";

// records: 200,000 by default; dir: the data directory (default /tmp/strata-lifecycle-<pid>).
struct Flags : strata::bench::WorkloadFlags {
  int updates = 10;        // pause phase
  int load_threads = 2;    // pause phase: closed-loop appenders
  int load_batch = 1;      // pause phase: records per blocking AppendBatch (kProcessed)
  int interval_ms = 1000;  // pause phase: steady load before the first and after each update
  int sample_ms = 5000;    // stats samples of rebuild progress
  std::string v1 = STRATA_WORDCOUNT_V1;
  std::string v2 = STRATA_WORDCOUNT_V2;
};

[[noreturn]] void Usage(const char* error) {
  if (error != nullptr) std::fprintf(stderr, "bench_lifecycle: %s\n", error);
  std::fprintf(stderr,
               "usage: bench_lifecycle [--records=N] [--partitions=P] [--task-threads=T]\n"
               "  [--cache-mb=MB] [--appenders=A] [--batch=B] [--window=W] [--words=K]\n"
               "  [--vocab=V] [--updates=U] [--load-threads=L] [--load-batch=B]\n"
               "  [--interval-ms=MS] [--sample-ms=MS] [--dir=PATH] [--keep]\n"
               "  [--v1=wordcount.so] [--v2=wordcount_v2.so]\n");
  std::exit(2);
}

Flags ParseFlags(int argc, char** argv) {
  Flags f;
  strata::bench::ParseWorkloadFlags(
      argc, argv, f, Usage,
      [&](const std::string&, const std::string& name, const std::string& value, auto number) {
        if (name == "updates")
          f.updates = static_cast<int>(number());
        else if (name == "load-threads")
          f.load_threads = static_cast<int>(number());
        else if (name == "load-batch")
          f.load_batch = static_cast<int>(number());
        else if (name == "interval-ms")
          f.interval_ms = static_cast<int>(number());
        else if (name == "sample-ms")
          f.sample_ms = static_cast<int>(number());
        else if (name == "v1")
          f.v1 = value;
        else if (name == "v2")
          f.v2 = value;
        else
          return false;
        return true;
      });
  if (!strata::bench::WorkloadCountsValid(f) || f.load_threads < 1 || f.load_batch < 1) {
    Usage("counts must be >= 1");
  }
  if (f.dir.empty()) f.dir = "/tmp/strata-lifecycle-" + std::to_string(getpid());
  return f;
}

uint64_t DirectoryBytes(const std::string& dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) bytes += it->file_size(ec);
  }
  return bytes;
}

[[noreturn]] void Die(const std::string& what, const strata::Status& st) {
  std::fprintf(stderr, "bench_lifecycle: %s: %s\n", what.c_str(), st.ToString().c_str());
  std::exit(1);
}

// Samples ModuleStats::rebuilds every `ms` until stopped; prints each sample.
class RebuildSampler {
 public:
  RebuildSampler(strata::Engine* engine, int ms) : engine_(engine), ms_(ms) {
    start_ = Clock::now();
    thread_ = std::thread([this] { Run(); });
  }
  ~RebuildSampler() { Stop(); }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  int samples() const { return samples_; }

 private:
  void Run() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(ms_), [this] { return stop_; })) {
      lock.unlock();
      auto stats = engine_->Stats(kModule);
      lock.lock();
      if (!stats.ok()) continue;
      for (const strata::RebuildProgress& r : stats->rebuilds) {
        std::string names;
        for (const std::string& n : r.names) names += (names.empty() ? "" : ",") + n;
        std::printf("  %7.1f s  %-9s %-14s %12lld / %-12lld (%5.1f%%)\n",
                    Seconds(start_, Clock::now()), r.kind.c_str(), names.c_str(),
                    static_cast<long long>(r.records_done), static_cast<long long>(r.records_total),
                    r.records_total > 0 ? 100.0 * r.records_done / r.records_total : 0.0);
        std::fflush(stdout);
        ++samples_;
      }
    }
  }

  strata::Engine* engine_;
  int ms_;
  Clock::time_point start_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  int samples_ = 0;
  std::thread thread_;
};

// Checks $$word_counts for `sample` words and $$word_lengths (when `lengths`) for every
// length against the expected counts; exits on a mismatch.
void CheckViews(strata::Engine* engine, const std::vector<std::string>& vocab,
                const std::vector<int64_t>& expected, bool lengths, const char* phase) {
  strata::bench::CheckWordCounts(engine, kModule, vocab, expected, 50, "bench_lifecycle", phase);
  if (!lengths) return;
  std::map<int64_t, int64_t> by_length;
  for (size_t i = 0; i < vocab.size(); ++i) by_length[vocab[i].size()] += expected[i];
  for (const auto& [length, count] : by_length) {
    auto got = engine->SelectOne(kModule, "$$word_lengths", strata::Path().Key(Value(length)));
    if (!got.ok()) Die(std::string(phase) + ": select $$word_lengths", got.status());
    const int64_t have = got->is_nil() ? 0 : got->as_int();
    if (have != count) {
      std::fprintf(stderr, "bench_lifecycle: %s: $$word_lengths[%lld] = %lld, expected %lld\n",
                   phase, static_cast<long long>(length), static_cast<long long>(have),
                   static_cast<long long>(count));
      std::exit(1);
    }
  }
}

// One closed-loop appender of the pause phase: the times its acks arrived.
struct LoadThread {
  std::vector<Clock::time_point> acks;
  std::vector<double> latency_ms;
  int64_t errors = 0;
  std::string first_error;
};

// The longest gap between consecutive acks that overlaps [from, to], in ms.
double LongestGap(const std::vector<Clock::time_point>& acks, Clock::time_point from,
                  Clock::time_point to) {
  double longest = 0;
  for (size_t i = 1; i < acks.size(); ++i) {
    if (acks[i] < from || acks[i - 1] > to) continue;
    longest =
        std::max(longest, std::chrono::duration<double, std::milli>(acks[i] - acks[i - 1]).count());
  }
  return longest;
}

}  // namespace

int main(int argc, char** argv) {
  const Flags f = ParseFlags(argc, argv);
  const std::vector<std::string> vocab = strata::bench::MakeVocabulary(f.vocab);
  const std::string load_before = strata::bench::LoadAverage();

  const strata::EngineOptions options = strata::bench::WorkloadEngineOptions(f, f.dir);
  std::filesystem::remove_all(f.dir);
  auto opened = strata::Engine::Open(options);
  if (!opened.ok()) Die("open " + f.dir, opened.status());
  std::unique_ptr<strata::Engine> engine = std::move(opened).value();
  auto deployed = engine->Deploy(f.v1, {.partitions = f.partitions});
  if (!deployed.ok()) Die("deploy " + f.v1, deployed.status());

  const double sentence_bytes = strata::bench::MeanSentenceBytes(f, vocab);
  std::printf(
      "bench_lifecycle: %lld records of %d words (~%.0f bytes; %d distinct words), "
      "%d partitions, task threads %d (%s), cache %lld MB, data %s, load %s\n",
      static_cast<long long>(f.records), f.words, sentence_bytes, f.vocab, f.partitions,
      f.task_threads, strata::bench::TaskThreadsText(f).c_str(), static_cast<long long>(f.cache_mb),
      f.dir.c_str(), load_before.c_str());
  std::fflush(stdout);

  // Expected counts: the appenders own disjoint ranges of sentences.
  const std::vector<int64_t> expected = strata::bench::ExpectedCounts(f, f.records);

  // 1. Stream: appends (kAppended, asynchronous batches), then WaitProcessed.
  std::printf("stream: appending %lld records (%d appenders, batches of %d, %d in flight each)\n",
              static_cast<long long>(f.records), f.appenders, f.batch, f.window);
  std::fflush(stdout);
  const auto stream_start = Clock::now();
  const strata::bench::AppendFailures failed = strata::bench::AppendAll(
      engine.get(), kModule, kDepot, f, vocab, strata::AckLevel::kAppended);
  const auto appended = Clock::now();
  if (failed.batches > 0) {
    Die("append (" + std::to_string(failed.batches) + " batches failed)",
        strata::Status::Internal(failed.first_error));
  }
  if (auto st = engine->WaitProcessed(kModule); !st.ok()) Die("wait processed (stream)", st);
  const auto stream_end = Clock::now();
  const double append_s = Seconds(stream_start, appended);
  const double stream_s = Seconds(stream_start, stream_end);
  const double stream_rate = f.records / stream_s;
  CheckViews(engine.get(), vocab, expected, false, "after stream");
  std::printf("stream: appended in %.1f s (%.0f records/s), processed in %.1f s: %.0f records/s\n",
              append_s, f.records / append_s, stream_s, stream_rate);
  std::fflush(stdout);

  // 2. Recompute $$word_counts over the same log.
  std::printf("recompute $$word_counts (progress every %d ms):\n", f.sample_ms);
  std::fflush(stdout);
  const auto recompute_start = Clock::now();
  int recompute_samples = 0;
  {
    if (auto st = engine->Recompute(kModule, {"$$word_counts"}); !st.ok()) Die("recompute", st);
    RebuildSampler sampler(engine.get(), f.sample_ms);
    if (auto st = engine->WaitProcessed(kModule); !st.ok()) Die("wait processed (recompute)", st);
    sampler.Stop();
    recompute_samples = sampler.samples();
  }
  const double recompute_s = Seconds(recompute_start, Clock::now());
  const double recompute_rate = f.records / recompute_s;
  CheckViews(engine.get(), vocab, expected, false, "after recompute");
  std::printf("recompute: %.1f s: %.0f records/s (%.2fx the stream rate)\n", recompute_s,
              recompute_rate, recompute_rate / stream_rate);
  std::fflush(stdout);

  // 3. Backfill: update to v2, whose new topology "lengths" starts at offset 0.
  std::printf("update to %s, backfill of \"lengths\" (progress every %d ms):\n", f.v2.c_str(),
              f.sample_ms);
  std::fflush(stdout);
  const auto backfill_start = Clock::now();
  int64_t backfill_pause_us = 0;
  int backfill_samples = 0;
  {
    auto updated = engine->Update(f.v2, {});
    if (!updated.ok()) Die("update to " + f.v2, updated.status());
    backfill_pause_us = updated->pause_us;
    if (updated->backfilling != std::vector<std::string>{"lengths"}) {
      Die("update to " + f.v2, strata::Status::Internal("expected a backfill of \"lengths\""));
    }
    RebuildSampler sampler(engine.get(), f.sample_ms);
    if (auto st = engine->WaitProcessed(kModule); !st.ok()) Die("wait processed (backfill)", st);
    sampler.Stop();
    backfill_samples = sampler.samples();
  }
  const double backfill_s = Seconds(backfill_start, Clock::now());
  const double backfill_rate = f.records / backfill_s;
  CheckViews(engine.get(), vocab, expected, true, "after backfill");
  std::printf("backfill: %.1f s: %.0f records/s (update pause %.1f ms)\n", backfill_s,
              backfill_rate, backfill_pause_us / 1000.0);
  std::fflush(stdout);
  const uint64_t data_bytes = DirectoryBytes(f.dir);

  // 4. Pause: updates under a steady closed-loop load.
  std::printf("pause: %d updates under %d closed-loop appenders (batches of %d, kProcessed)\n",
              f.updates, f.load_threads, f.load_batch);
  std::fflush(stdout);
  std::atomic<bool> stop_load{false};
  std::vector<LoadThread> load(f.load_threads);
  std::vector<std::thread> load_threads;
  for (int t = 0; t < f.load_threads; ++t) {
    load_threads.emplace_back([&, t] {
      LoadThread& me = load[t];
      int64_t n = f.records + 1'000'000'000LL * (t + 1);
      while (!stop_load.load()) {
        std::vector<Value> sentences;
        for (int j = 0; j < f.load_batch; ++j) sentences.emplace_back(Sentence(n++, f, vocab));
        const auto sent = Clock::now();
        auto r = engine->AppendBatch(kModule, kDepot, std::move(sentences),
                                     strata::AckLevel::kProcessed);
        const auto acked = Clock::now();
        if (!r.ok()) {
          if (me.errors++ == 0) me.first_error = r.status().ToString();
          continue;
        }
        me.acks.push_back(acked);
        me.latency_ms.push_back(std::chrono::duration<double, std::milli>(acked - sent).count());
      }
    });
  }
  struct UpdateRun {
    std::string kind;
    Clock::time_point start, end;
    int64_t pause_us = 0;
  };
  std::vector<UpdateRun> runs;
  std::this_thread::sleep_for(std::chrono::milliseconds(f.interval_ms));
  for (int u = 0; u < f.updates; ++u) {
    // The module runs v2 now: even updates go back to v1, odd ones to v2 again.
    const bool to_v1 = u % 2 == 0;
    strata::UpdateOptions update;
    if (to_v1) {
      update.drop = {"lengths", "$$word_lengths"};
    } else {
      update.new_topologies_from_end = true;
    }
    UpdateRun run;
    run.kind = to_v1 ? "v2->v1 (drop lengths)" : "v1->v2 (add lengths, from end)";
    run.start = Clock::now();
    auto updated = engine->Update(to_v1 ? f.v1 : f.v2, update);
    run.end = Clock::now();
    if (!updated.ok()) Die("update " + std::to_string(u), updated.status());
    run.pause_us = updated->pause_us;
    runs.push_back(run);
    std::this_thread::sleep_for(std::chrono::milliseconds(f.interval_ms));
  }
  stop_load.store(true);
  for (auto& t : load_threads) t.join();
  if (auto st = engine->WaitProcessed(kModule); !st.ok()) Die("wait processed (pause)", st);
  int64_t load_errors = 0;
  std::string load_error;
  int64_t load_acks = 0;
  std::vector<double> latencies;
  for (const LoadThread& t : load) {
    load_errors += t.errors;
    if (load_error.empty()) load_error = t.first_error;
    load_acks += static_cast<int64_t>(t.acks.size());
    latencies.insert(latencies.end(), t.latency_ms.begin(), t.latency_ms.end());
  }
  std::printf("  %-32s %12s %14s %14s\n", "update", "pause_us", "call ms", "ack gap ms");
  std::vector<double> pauses_ms, gaps_ms, calls_ms;
  for (const UpdateRun& run : runs) {
    double gap = 0;
    for (const LoadThread& t : load) gap = std::max(gap, LongestGap(t.acks, run.start, run.end));
    const double call_ms = std::chrono::duration<double, std::milli>(run.end - run.start).count();
    pauses_ms.push_back(run.pause_us / 1000.0);
    gaps_ms.push_back(gap);
    calls_ms.push_back(call_ms);
    std::printf("  %-32s %12lld %14.1f %14.1f\n", run.kind.c_str(),
                static_cast<long long>(run.pause_us), call_ms, gap);
  }
  // Gaps away from any update (more than 100 ms from one): the load's own jitter.
  double baseline_gap = 0;
  for (const LoadThread& t : load) {
    for (size_t i = 1; i < t.acks.size(); ++i) {
      bool near = false;
      for (const UpdateRun& run : runs) {
        near = near || (t.acks[i] >= run.start - std::chrono::milliseconds(100) &&
                        t.acks[i - 1] <= run.end + std::chrono::milliseconds(100));
      }
      if (near) continue;
      baseline_gap =
          std::max(baseline_gap,
                   std::chrono::duration<double, std::milli>(t.acks[i] - t.acks[i - 1]).count());
    }
  }
  const std::string load_after = strata::bench::LoadAverage();
  std::printf(
      "  load: %lld acks, %lld errors%s%s; ack latency p50 %.2f ms, p99 %.2f ms; longest "
      "gap away from updates %.1f ms\n",
      static_cast<long long>(load_acks), static_cast<long long>(load_errors),
      load_error.empty() ? "" : " (first: ", load_error.empty() ? "" : (load_error + ")").c_str(),
      Percentile(latencies, 0.5), Percentile(latencies, 0.99), baseline_gap);

  auto stats = engine->Stats(kModule);
  if (!stats.ok()) Die("stats", stats.status());
  const int64_t failures = stats->failures;
  if (auto st = engine->Close(); !st.ok()) Die("close", st);
  engine.reset();
  if (!f.keep) std::filesystem::remove_all(f.dir);

  const double pause_p50 = Percentile(pauses_ms, 0.5), pause_max = Percentile(pauses_ms, 1.0);
  const double gap_p50 = Percentile(gaps_ms, 0.5), gap_max = Percentile(gaps_ms, 1.0);
  std::printf("\n%-44s %s\n", "measure", "value");
  std::printf("%-44s %.0f records/s (%.1f s)\n", "stream topology (appends + WaitProcessed)",
              stream_rate, stream_s);
  std::printf("%-44s %.0f records/s (%.1f s, %.2fx stream)\n", "recompute $$word_counts",
              recompute_rate, recompute_s, recompute_rate / stream_rate);
  std::printf("%-44s %.0f records/s (%.1f s, pause %.1f ms)\n",
              "backfill \"lengths\" (update to v2)", backfill_rate, backfill_s,
              backfill_pause_us / 1000.0);
  std::printf("%-44s p50 %.1f ms, max %.1f ms (%zu updates)\n", "update pause (pause_us)",
              pause_p50, pause_max, pauses_ms.size());
  std::printf("%-44s p50 %.1f ms, max %.1f ms (away from updates: %.1f ms)\n",
              "longest ack gap of an appender per update", gap_p50, gap_max, baseline_gap);
  std::printf("%-44s %.1f MB\n", "data directory after backfill", data_bytes / 1e6);
  std::printf("%-44s %lld\n", "topology failures", static_cast<long long>(failures));
  std::printf("%-44s before %s, after %s\n", "load average", load_before.c_str(),
              load_after.c_str());
  std::printf(
      "{\"bench\":\"lifecycle\",\"records\":%lld,\"partitions\":%d,\"task_threads\":%d,"
      "\"hardware_threads\":%u,\"cache_mb\":%lld,\"words_per_record\":%d,\"record_bytes\":%.1f,"
      "\"stream_s\":%.2f,\"stream_rate\":%.0f,\"append_s\":%.2f,\"recompute_s\":%.2f,"
      "\"recompute_rate\":%.0f,\"recompute_vs_stream\":%.3f,\"recompute_samples\":%d,"
      "\"backfill_s\":%.2f,\"backfill_rate\":%.0f,\"backfill_pause_us\":%lld,"
      "\"backfill_samples\":%d,\"updates\":%zu,\"pause_ms_p50\":%.2f,\"pause_ms_max\":%.2f,"
      "\"gap_ms_p50\":%.2f,\"gap_ms_max\":%.2f,\"baseline_gap_ms\":%.2f,"
      "\"load_latency_ms_p50\":%.3f,\"load_acks\":%lld,\"load_errors\":%lld,\"failures\":%lld,"
      "\"data_mb\":%.1f,\"loadavg_before\":\"%s\",\"loadavg_after\":\"%s\"}\n",
      static_cast<long long>(f.records), f.partitions, f.task_threads,
      std::thread::hardware_concurrency(), static_cast<long long>(f.cache_mb), f.words,
      sentence_bytes, stream_s, stream_rate, append_s, recompute_s, recompute_rate,
      recompute_rate / stream_rate, recompute_samples, backfill_s, backfill_rate,
      static_cast<long long>(backfill_pause_us), backfill_samples, pauses_ms.size(), pause_p50,
      pause_max, gap_p50, gap_max, baseline_gap, Percentile(latencies, 0.5),
      static_cast<long long>(load_acks), static_cast<long long>(load_errors),
      static_cast<long long>(failures), data_bytes / 1e6, load_before.c_str(), load_after.c_str());
  return failures == 0 && load_errors == 0 ? 0 : 1;
}
