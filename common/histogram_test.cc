// DurationHistogram: bucket boundaries (le semantics), the overflow bucket, sums, and
// observations from several threads all counted.
#include "strata/histogram.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace strata {
namespace {

using std::chrono::nanoseconds;

TEST(DurationHistogramTest, AnObservationOnABoundCountsInThatBucket) {
  DurationHistogram h;
  h.Observe(nanoseconds(1'000));  // exactly 1 µs: the first bucket (le="1e-06")
  h.Observe(nanoseconds(1'001));  // just above: the second
  h.Observe(nanoseconds(0));
  h.Observe(nanoseconds(-5));  // a clock step back counts as 0
  const HistogramSnapshot s = h.Snapshot();
  ASSERT_EQ(s.bounds.size(), DurationHistogram::kBoundsNs.size());
  ASSERT_EQ(s.counts.size(), s.bounds.size() + 1);
  EXPECT_DOUBLE_EQ(s.bounds[0], 1e-6);
  EXPECT_DOUBLE_EQ(s.bounds.back(), 10.0);
  EXPECT_EQ(s.counts[0], 3u);
  EXPECT_EQ(s.counts[1], 1u);
  EXPECT_EQ(s.count(), 4u);
  EXPECT_DOUBLE_EQ(s.sum, 2'001e-9);
}

TEST(DurationHistogramTest, ObservationsAboveEveryBoundGoToTheLastBucket) {
  DurationHistogram h;
  h.Observe(std::chrono::seconds(10));  // on the last bound
  h.Observe(std::chrono::seconds(11));
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.counts[s.bounds.size() - 1], 1u);
  EXPECT_EQ(s.counts.back(), 1u);
  EXPECT_DOUBLE_EQ(s.sum, 21.0);
}

TEST(DurationHistogramTest, SnapshotsAdd) {
  DurationHistogram a;
  DurationHistogram b;
  a.Observe(std::chrono::milliseconds(3));
  b.Observe(std::chrono::milliseconds(3));
  b.Observe(std::chrono::seconds(1));
  HistogramSnapshot sum = DurationHistogram::Empty();
  sum.Add(a.Snapshot());
  sum.Add(b.Snapshot());
  EXPECT_EQ(sum.count(), 3u);
  EXPECT_DOUBLE_EQ(sum.sum, 1.006);
  EXPECT_EQ(sum.counts[11], 2u);  // (2.5 ms, 5 ms]
}

TEST(DurationHistogramTest, EveryObservationOfConcurrentThreadsIsCounted) {
  DurationHistogram h;
  constexpr int kThreads = 4;
  constexpr int kEach = 20'000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kEach; ++i) h.Observe(nanoseconds((t + 1) * 1'000'000));
    });
  }
  for (std::thread& thread : threads) thread.join();
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.count(), uint64_t{kThreads} * kEach);
  EXPECT_DOUBLE_EQ(s.sum, kEach * (1 + 2 + 3 + 4) * 1e-3);
}

}  // namespace
}  // namespace strata
