#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace strata::bench {

int Histogram::BucketOf(uint64_t value) {
  if (value < kSubBuckets) return static_cast<int>(value);
  const int e = 63 - std::countl_zero(value);  // 2^e <= value < 2^(e+1), e >= kSubBucketBits
  const int shift = e - kSubBucketBits;
  const int sub = static_cast<int>((value >> shift) - kSubBuckets);  // 0..kSubBuckets-1
  return (shift + 1) * kSubBuckets + sub;
}

uint64_t Histogram::BucketUpperBound(int bucket) {
  if (bucket < kSubBuckets) return static_cast<uint64_t>(bucket);
  const int shift = bucket / kSubBuckets - 1;
  const uint64_t sub = static_cast<uint64_t>(bucket % kSubBuckets);
  const uint64_t lower = (kSubBuckets + sub) << shift;
  return lower + ((uint64_t{1} << shift) - 1);
}

void Histogram::Record(uint64_t value) {
  ++counts_[BucketOf(value)];
  ++count_;
  sum_ += value;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::Merge(const Histogram& other) {
  for (int b = 0; b < kBuckets; ++b) counts_[b] += other.counts_[b];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

void Histogram::Clear() { *this = Histogram(); }

uint64_t Histogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  // The rank (1-based) of the value asked for: the smallest r with r >= q * count.
  const uint64_t rank = std::max<uint64_t>(1, static_cast<uint64_t>(std::ceil(q * count_)));
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += counts_[b];
    if (seen >= rank) return std::clamp(BucketUpperBound(b), min(), max_);
  }
  return max_;
}

}  // namespace strata::bench
