#include "high_watermark.h"

#include <gtest/gtest.h>

namespace strata::cluster {
namespace {

using namespace std::chrono_literals;
using Clock = HighWatermark::Clock;

TEST(HighWatermarkTest, IsTheSmallestDurableEndOfTheIsrLeaderIncluded) {
  HighWatermark hw("n1", {"n1", "n2", "n3"}, 2);
  EXPECT_EQ(hw.Value(), 0);
  hw.LeaderDurable(10);
  EXPECT_EQ(hw.Value(), 0);  // n2 and n3 have not reported
  hw.FollowerFetched("n2", 7, false, Clock::now());
  hw.FollowerFetched("n3", 9, false, Clock::now());
  EXPECT_EQ(hw.Value(), 7);
  hw.LeaderDurable(5);  // never moves back
  hw.FollowerFetched("n2", 12, true, Clock::now());
  EXPECT_EQ(hw.Value(), 9);
  // A follower outside the ISR does not hold it back.
  hw.SetIsr({"n1", "n2"}, 2);
  EXPECT_EQ(hw.Value(), 10);
}

TEST(HighWatermarkTest, WaitersCompleteInOrderOnceEveryMemberHasTheirEnd) {
  HighWatermark hw("n1", {"n1", "n2"}, 2);
  std::vector<std::pair<int, Status>> done;
  hw.Wait(3, [&](Status st) { done.emplace_back(3, st); });
  hw.Wait(1, [&](Status st) { done.emplace_back(1, st); });
  hw.LeaderDurable(5);
  EXPECT_TRUE(done.empty());
  hw.FollowerFetched("n2", 2, false, Clock::now());
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].first, 1);
  EXPECT_TRUE(done[0].second.ok());
  hw.FollowerFetched("n2", 5, true, Clock::now());
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].first, 3);
  // Already reached: completes at once.
  hw.Wait(4, [&](Status st) { done.emplace_back(4, st); });
  EXPECT_EQ(done.size(), 3u);
}

TEST(HighWatermarkTest, AnIsrBelowMinIsrFailsTheWaiterWhenItsEndIsReached) {
  HighWatermark hw("n1", {"n1", "n2"}, 2);
  Status result = Status::Internal("not called");
  hw.Wait(4, [&](Status st) { result = st; });
  hw.LeaderDurable(4);
  hw.SetIsr({"n1"}, 2);  // n2 dropped: the leader alone has it
  EXPECT_EQ(result.code(), StatusCode::kNotEnoughReplicas) << result.ToString();
}

TEST(HighWatermarkTest, FailAllFailsWaitersAndLaterWaits) {
  HighWatermark hw("n1", {"n1", "n2"}, 1);
  std::vector<Status> done;
  hw.Wait(1, [&](Status st) { done.push_back(st); });
  hw.FailAll(Status::Aborted("moved"));
  hw.Wait(0, [&](Status st) { done.push_back(st); });
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].code(), StatusCode::kAborted);
  EXPECT_EQ(done[1].code(), StatusCode::kAborted);
}

TEST(HighWatermarkTest, WantedIsrDropsLaggingMembersAndAddsCaughtUpReplicas) {
  HighWatermark hw("n1", {"n1", "n2"}, 1);
  const auto t0 = Clock::now();
  // Right after the leader started: nothing to change.
  EXPECT_TRUE(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0).empty());
  // n2 keeps up; n3 (not in the ISR) caught up: it joins.
  hw.FollowerFetched("n2", 0, true, t0);
  hw.FollowerFetched("n3", 0, true, t0);
  EXPECT_EQ(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0),
            (std::vector<std::string>{"n1", "n2", "n3"}));
  hw.SetIsr({"n1", "n2", "n3"}, 1);
  // n2 falls behind for longer than the lag: it leaves.
  hw.FollowerFetched("n2", 0, false, t0 + 100ms);
  hw.FollowerFetched("n3", 0, true, t0 + 1500ms);
  EXPECT_TRUE(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0 + 900ms).empty());
  EXPECT_EQ(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0 + 1500ms),
            (std::vector<std::string>{"n1", "n3"}));
}

TEST(HighWatermarkTest, AMemberThatNeverFetchesLeavesAfterTheLag) {
  const auto t0 = Clock::now();
  HighWatermark hw("n1", {"n1", "n2"}, 1);
  EXPECT_TRUE(hw.WantedIsr({"n1", "n2"}, 1000ms, t0 + 500ms).empty());
  EXPECT_EQ(hw.WantedIsr({"n1", "n2"}, 1000ms, t0 + 1500ms), (std::vector<std::string>{"n1"}));
}

TEST(HighWatermarkTest, AReplicaJoinsTheIsrOnlyWithEveryEntryBelowTheHighWatermarkDurably) {
  const auto t0 = Clock::now();
  HighWatermark hw("n1", {"n1", "n2"}, 1);
  hw.LeaderDurable(10);
  hw.FollowerFetched("n2", 10, true, t0);
  ASSERT_EQ(hw.Value(), 10);
  // n3 has the whole log but only 4 entries durably: were it to join and be promoted after
  // a crash of its own, it could lose acknowledged entries.
  hw.FollowerFetched("n3", 4, true, t0);
  EXPECT_TRUE(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0).empty());
  hw.FollowerFetched("n3", 10, true, t0);
  EXPECT_EQ(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0),
            (std::vector<std::string>{"n1", "n2", "n3"}));
}

TEST(HighWatermarkTest, AMemberTheLeaderAskedToAddHoldsTheHighWatermarkBeforeTheControllerAnswers) {
  // The controller may add n3 and promote it before this leader hears of the change: from
  // the request on, what this leader acknowledges must be on n3 too (Kafka's maximal ISR).
  const auto t0 = Clock::now();
  HighWatermark hw("n1", {"n1", "n2"}, 1);
  hw.LeaderDurable(10);
  hw.FollowerFetched("n2", 10, true, t0);
  hw.FollowerFetched("n3", 10, true, t0);
  const std::vector<std::string> wanted = hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0);
  ASSERT_EQ(wanted, (std::vector<std::string>{"n1", "n2", "n3"}));
  hw.IsrRequested(wanted);
  std::vector<Status> done;
  hw.Wait(20, [&](Status st) { done.push_back(st); });
  hw.LeaderDurable(20);
  hw.FollowerFetched("n2", 20, true, t0);
  EXPECT_EQ(hw.Value(), 10);
  EXPECT_TRUE(done.empty());
  hw.FollowerFetched("n3", 20, true, t0);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0].ok()) << done[0].ToString();
  hw.SetIsr({"n1", "n2", "n3"}, 1);  // the controller applied it
  EXPECT_EQ(hw.Value(), 20);
}

TEST(HighWatermarkTest, AMemberAskedForThatStopsFetchingNoLongerHoldsTheHighWatermark) {
  const auto t0 = Clock::now();
  HighWatermark hw("n1", {"n1", "n2"}, 1);
  hw.LeaderDurable(10);
  hw.FollowerFetched("n2", 10, true, t0);
  hw.FollowerFetched("n3", 10, true, t0);
  hw.IsrRequested(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0));
  hw.LeaderDurable(20);
  hw.FollowerFetched("n2", 20, true, t0 + 1500ms);
  EXPECT_EQ(hw.Value(), 10);
  // n3 died before the controller added it (the controller then leaves the ISR as it is):
  // once it has not fetched for the lag, it is neither wanted nor waited for.
  EXPECT_TRUE(hw.WantedIsr({"n1", "n2", "n3"}, 1000ms, t0 + 1500ms).empty());
  EXPECT_EQ(hw.Value(), 20);
}

}  // namespace
}  // namespace strata::cluster
