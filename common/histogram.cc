#include "strata/histogram.h"

#include <algorithm>
#include <cassert>

namespace strata {

void HistogramSnapshot::Add(const HistogramSnapshot& other) {
  assert(other.bounds == bounds);
  for (size_t i = 0; i < counts.size() && i < other.counts.size(); ++i)
    counts[i] += other.counts[i];
  sum += other.sum;
}

void DurationHistogram::Observe(std::chrono::nanoseconds elapsed) {
  const int64_t ns = std::max<int64_t>(elapsed.count(), 0);
  // The first bound at or above ns: buckets are "less than or equal" (Prometheus `le`).
  const size_t bucket =
      std::lower_bound(kBoundsNs.begin(), kBoundsNs.end(), ns) - kBoundsNs.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(ns, std::memory_order_relaxed);
}

HistogramSnapshot DurationHistogram::Empty() {
  HistogramSnapshot snapshot;
  snapshot.bounds.reserve(kBoundsNs.size());
  for (int64_t bound : kBoundsNs) snapshot.bounds.push_back(static_cast<double>(bound) / 1e9);
  snapshot.counts.assign(kBoundsNs.size() + 1, 0);
  return snapshot;
}

HistogramSnapshot DurationHistogram::Snapshot() const {
  HistogramSnapshot snapshot = Empty();
  for (size_t i = 0; i < counts_.size(); ++i) {
    snapshot.counts[i] = counts_[i].load(std::memory_order_relaxed);
  }
  snapshot.sum = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return snapshot;
}

}  // namespace strata
