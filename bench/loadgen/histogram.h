// A latency histogram with log-spaced buckets (the HdrHistogram layout, simplified):
// values are non-negative integers (the load generator records nanoseconds); each power of
// two [2^e, 2^(e+1)) is split into kSubBuckets equal buckets, so a reported percentile is
// within 1/kSubBuckets (≈ 1.6 %) of the recorded value it stands for. Values below
// kSubBuckets are exact. Memory is fixed (64 × kSubBuckets counters).
//
// Not thread-safe: each thread records into its own Histogram and the owner merges them.
#pragma once

#include <array>
#include <cstdint>

namespace strata::bench {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 6;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;

  void Record(uint64_t value);
  void Merge(const Histogram& other);
  void Clear();

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : static_cast<double>(sum_) / count_; }
  // The smallest bucket upper bound at or above the q-quantile of the recorded values
  // (q in [0, 1]), clamped to [min, max] so that Percentile(1.0) == max() exactly.
  // 0 when nothing was recorded.
  uint64_t Percentile(double q) const;

 private:
  static int BucketOf(uint64_t value);
  static uint64_t BucketUpperBound(int bucket);

  // Bucket b < kSubBuckets holds the value b; above, bucket (e - kSubBucketBits + 1) *
  // kSubBuckets + s holds [2^e + s·2^(e-kSubBucketBits), 2^e + (s+1)·2^(e-kSubBucketBits)).
  static constexpr int kBuckets = (64 - kSubBucketBits + 1) * kSubBuckets;
  std::array<uint64_t, kBuckets> counts_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
};

}  // namespace strata::bench
