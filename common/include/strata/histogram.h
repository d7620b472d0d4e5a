// DurationHistogram: how long something took, counted in fixed buckets that any thread
// records into without a lock, and HistogramSnapshot, a copy of its counts that can be
// passed around and rendered (the Prometheus histogram type: docs/metrics.md).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <vector>

namespace strata {

// The counts of a histogram at one moment. `counts[i]` counts the observations in
// (bounds[i-1], bounds[i]] (not cumulative); the last element counts those above every
// bound, so counts.size() == bounds.size() + 1.
struct HistogramSnapshot {
  std::vector<double> bounds;    // bucket upper bounds in seconds, ascending
  std::vector<uint64_t> counts;  // per bucket, plus one above the last bound
  double sum = 0;                // of every observation, in seconds

  uint64_t count() const {
    uint64_t n = 0;
    for (uint64_t c : counts) n += c;
    return n;
  }
  // Adds `other`'s counts, which must have the same bounds.
  void Add(const HistogramSnapshot& other);
};

// Durations from 1 µs to 10 s in the 1-2.5-5 steps Prometheus client libraries use:
// covers a point read (tens of µs), an fsync (ms) and a checkpoint (s).
// Thread-safe: Observe is a few relaxed atomic additions, no lock; a Snapshot taken while
// others observe may see an observation's bucket without its sum (they are added apart).
class DurationHistogram {
 public:
  static constexpr std::array<int64_t, 22> kBoundsNs = {
      1'000,         2'500,         5'000,         10'000,        25'000,      50'000,
      100'000,       250'000,       500'000,       1'000'000,     2'500'000,   5'000'000,
      10'000'000,    25'000'000,    50'000'000,    100'000'000,   250'000'000, 500'000'000,
      1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

  DurationHistogram() = default;
  DurationHistogram(const DurationHistogram&) = delete;
  DurationHistogram& operator=(const DurationHistogram&) = delete;

  // Counts one duration (a negative one as 0).
  void Observe(std::chrono::nanoseconds elapsed);
  HistogramSnapshot Snapshot() const;
  // An empty snapshot with this histogram's bounds.
  static HistogramSnapshot Empty();

 private:
  std::array<std::atomic<uint64_t>, kBoundsNs.size() + 1> counts_{};
  std::atomic<int64_t> sum_ns_{0};
};

}  // namespace strata
