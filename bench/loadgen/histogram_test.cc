#include "histogram.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

namespace strata::bench {
namespace {

// The exact q-quantile of a sorted sample with the same rank rule as Histogram.
uint64_t ExactPercentile(const std::vector<uint64_t>& sorted, double q) {
  const size_t rank = std::max<size_t>(1, static_cast<size_t>(std::ceil(q * sorted.size())));
  return sorted[rank - 1];
}

TEST(HistogramTest, EmptyReportsZero) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.min(), 0u);
}

TEST(HistogramTest, SmallValuesAreExact) {
  Histogram h;
  for (uint64_t v = 0; v < 64; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(0.5), 31u);
  EXPECT_EQ(h.Percentile(1.0), 63u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_DOUBLE_EQ(h.mean(), 31.5);
}

TEST(HistogramTest, PercentilesWithinRelativeErrorOfSortedSample) {
  std::mt19937_64 rng(7);
  // Log-normal latencies from ~1 µs to ~1 s in nanoseconds, like a real run.
  std::lognormal_distribution<double> dist(std::log(200000.0), 1.5);
  std::vector<uint64_t> sample;
  Histogram h;
  for (int i = 0; i < 200000; ++i) {
    const uint64_t v = static_cast<uint64_t>(dist(rng));
    sample.push_back(v);
    h.Record(v);
  }
  std::sort(sample.begin(), sample.end());
  for (double q : {0.0, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0}) {
    const double exact = static_cast<double>(ExactPercentile(sample, q));
    const double got = static_cast<double>(h.Percentile(q));
    EXPECT_GE(got, exact) << "q=" << q;  // an upper bound of the bucket holding the rank
    EXPECT_LE(got, exact * (1.0 + 1.0 / Histogram::kSubBuckets) + 1) << "q=" << q;
  }
  EXPECT_EQ(h.max(), sample.back());
  EXPECT_EQ(h.min(), sample.front());
  EXPECT_EQ(h.Percentile(1.0), sample.back());
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  for (uint64_t v = 1; v < 100000; v += 7) {
    (v % 2 ? a : b).Record(v * 13);
    all.Record(v * 13);
  }
  a.Merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.max(), all.max());
  EXPECT_EQ(a.min(), all.min());
  for (double q : {0.5, 0.99, 0.999}) EXPECT_EQ(a.Percentile(q), all.Percentile(q));
}

TEST(HistogramTest, HugeValuesDoNotOverflowBuckets) {
  Histogram h;
  h.Record(UINT64_MAX);
  h.Record(uint64_t{1} << 63);
  EXPECT_EQ(h.Percentile(1.0), UINT64_MAX);
  EXPECT_GE(h.Percentile(0.5), uint64_t{1} << 63);
}

}  // namespace
}  // namespace strata::bench
