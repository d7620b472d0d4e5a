// The auction example (examples/auction): auctions close by themselves on the ticks of the
// module's tick depot, each with its best bid as winner; bids on closed or unknown auctions
// are refused; a malformed bid is a failure that blocks nothing; and the views equal their
// recomputation. The test reads the clock only to choose end times: the module never does.
#include <chrono>
#include <map>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"
#include "recompute_in_place.h"

namespace strata {
// gtest prints a Value in a failed expectation as its text.
void PrintTo(const Value& v, std::ostream* os) { *os << v.ToString(); }
}  // namespace strata

namespace strata::examples_test {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Value AuctionRecord(const std::string& id, int64_t ends_at_ms) {
  return Value::MapOf({{"id", id}, {"ends_at_ms", ends_at_ms}, {"seller", "sam"}});
}

Value BidRecord(const std::string& auction, const std::string& bidder, int64_t amount) {
  return Value::MapOf({{"auction", auction}, {"bidder", bidder}, {"amount", amount}});
}

class AuctionTest : public ExampleTest {
 protected:
  AuctionTest() : ExampleTest("auction") {}

  // Waits (at most a minute: ticks come every 100 ms) until every auction of `ids` has a
  // winner; fails the test otherwise.
  void WaitForWinners(const std::vector<std::string>& ids) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    for (const std::string& id : ids) {
      for (;;) {
        EX_ASSIGN_OR_FAIL(Value winner, engine_->SelectOne("auction", "$$winners", Path().Key(id)));
        if (!winner.is_nil()) break;
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << id << " never closed";
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }
  int64_t Refused(const std::string& id) {
    Value n = SelectOne("$$refused_bids", Path().Key(id));
    return n.is_int() ? n.as_int() : 0;
  }
};

TEST_F(AuctionTest, AuctionsCloseOnTicksWithTheirBestBid) {
  std::mt19937_64 rng(TestSeed(7301));
  constexpr int kAuctions = 10;  // the last one gets no bid
  const int64_t now = NowMs();
  std::vector<std::string> ids;
  std::map<std::string, int64_t> ends_at;
  std::vector<Value> auctions;
  for (int i = 0; i < kAuctions; ++i) {
    ids.push_back(Cat("a", i));
    ends_at[ids.back()] = now + 1500 + 150 * i;
    auctions.push_back(AuctionRecord(ids.back(), ends_at[ids.back()]));
  }
  EX_ASSERT_OK(engine_->AppendBatch("auction", "*auctions", std::move(auctions)));

  // Per auction, its bids in append order, which is their order in their depot partition.
  std::map<std::string, std::vector<Value>> bids_of;
  int64_t ghost_bids = 0;
  for (int chunk = 0; chunk < 6; ++chunk) {
    std::vector<Value> bids;
    for (int i = 0; i < 50; ++i) {
      std::string id = rng() % 25 == 0 ? "ghost" : ids[rng() % (kAuctions - 1)];
      Value bid = BidRecord(id, Cat("b", rng() % 20), 1 + static_cast<int64_t>(rng() % 200));
      if (id == "ghost") {
        ++ghost_bids;
      } else {
        bids_of[id].push_back(bid);
      }
      bids.push_back(std::move(bid));
    }
    EX_ASSERT_OK(engine_->AppendBatch("auction", "*bids", std::move(bids), AckLevel::kAppended));
  }
  EX_ASSERT_OK(engine_->WaitProcessed("auction"));
  WaitForWinners(ids);
  if (HasFatalFailure()) return;

  for (const std::string& id : ids) {
    // A bid counts when it came before the close; those after it are refused.
    const std::vector<Value>& bids = bids_of[id];
    const int64_t refused = Refused(id);
    ASSERT_LE(refused, static_cast<int64_t>(bids.size())) << id;
    const Value* best = nullptr;
    for (size_t i = 0; i < bids.size() - static_cast<size_t>(refused); ++i) {
      if (best == nullptr || Field(bids[i], "amount").as_int() > Field(*best, "amount").as_int()) {
        best = &bids[i];
      }
    }
    Value winner = SelectOne("$$winners", Path().Key(id));
    ASSERT_TRUE(winner.is_map()) << id << ": " << winner.ToString();
    const Value closed_at = Field(winner, "closed_at_ms");
    ASSERT_TRUE(closed_at.is_int()) << winner.ToString();
    EXPECT_GE(closed_at.as_int(), ends_at[id]) << id;
    if (best == nullptr) {
      EXPECT_EQ(winner, Value::MapOf({{"closed_at_ms", closed_at}})) << id;
    } else {
      EXPECT_EQ(winner, Value::MapOf({{"bidder", Field(*best, "bidder")},
                                      {"amount", Field(*best, "amount")},
                                      {"closed_at_ms", closed_at}}))
          << id;
    }
    EXPECT_EQ(SelectOne("$$auctions", Path().Key(id, "status")), Value("closed")) << id;
  }
  EXPECT_EQ(Refused("ghost"), ghost_bids);

  // A bid after the close is refused and changes no winner.
  const Value winner0 = SelectOne("$$winners", Path().Key("a0"));
  const int64_t refused0 = Refused("a0");
  EX_ASSERT_OK(engine_->Append("auction", "*bids", BidRecord("a0", "late", 1'000'000)));
  EXPECT_EQ(Refused("a0"), refused0 + 1);
  EXPECT_EQ(SelectOne("$$winners", Path().Key("a0")), winner0);

  EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("auction"));
  EXPECT_EQ(stats.failures, 0);
  EXPECT_TRUE(RecomputedInPlaceEqual(*engine_, "auction"));
}

TEST_F(AuctionTest, TheTickDepotTicksAndTakesNoClientAppends) {
  auto refused = engine_->Append("auction", "*ticks", Value(NowMs()));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument) << refused.status().ToString();

  // Ticks arrive without any client: a few, increasing, on partition 0 only.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (;;) {
    EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("auction"));
    int64_t ticks = 0;
    for (const DepotPartitionStats& d : stats.depots) {
      if (d.depot != "*ticks") continue;
      if (d.partition != 0) {
        EXPECT_EQ(d.end_offset, 0) << "ticks on partition " << d.partition;
      }
      ticks += d.end_offset;
    }
    if (ticks >= 3) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "fewer than 3 ticks in a minute";
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EX_ASSIGN_OR_FAIL(std::vector<DepotEntry> ticks,
                    engine_->ReadDepot("auction", "*ticks", 0, 0, 3, 3));
  ASSERT_EQ(ticks.size(), 3u);
  EXPECT_LT(ticks[0].record.as_int(), ticks[1].record.as_int());
  EXPECT_LT(ticks[1].record.as_int(), ticks[2].record.as_int());
}

TEST_F(AuctionTest, AMalformedBidIsAFailureAndBlocksNothing) {
  EX_ASSERT_OK(engine_->Append("auction", "*auctions", AuctionRecord("a", NowMs() + 600'000)));
  EX_ASSIGN_OR_FAIL(std::vector<AppendResult> results,
                    engine_->AppendBatch("auction", "*bids",
                                         {BidRecord("a", "ann", 0), BidRecord("a", "bob", 7)}));
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].failure.code(), StatusCode::kUserError) << results[0].failure.ToString();
  EXPECT_TRUE(results[1].failure.ok()) << results[1].failure.ToString();
  EXPECT_EQ(SelectOne("$$best_bids", Path().Key("a")),
            Value::ListOf({7, -results[1].offset, "bob"}));
  EX_ASSIGN_OR_FAIL(ModuleStats stats, engine_->Stats("auction"));
  EXPECT_EQ(stats.failures, 1);
  ASSERT_EQ(stats.failure_page.size(), 1u);
  EXPECT_EQ(stats.failure_page[0].topology, "auction");
  EXPECT_EQ(stats.failure_page[0].offset, results[0].offset);
}

}  // namespace
}  // namespace strata::examples_test
