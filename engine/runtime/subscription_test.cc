// Engine::Subscribe over the rt_test module: the first value, diffs after commits (checked
// by applying them and comparing with a select), the partition and key filters, the end
// of a subscription (unsubscribe, destroy, close), the cap and the errors.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>

#include <gtest/gtest.h>

#include "runtime/testing/engine_fixture.h"
#include "strata/diff.h"
#include "strata/engine.h"

namespace strata::testing {
namespace {

using Kind = SubscriptionEvent::Kind;

// Collects a subscription's events; Value() applies every diff to the first value.
class Watcher {
 public:
  SubscriptionCallback Callback() {
    return [this](const SubscriptionEvent& event) {
      std::lock_guard lock(mu_);
      if (event.kind == Kind::kStarted) {
        value_ = *event.value;
      } else if (event.kind == Kind::kChanged) {
        for (const Diff& d : event.diffs) {
          Status st = ApplyDiff(&value_, d);
          if (!st.ok()) errors_.push_back(st.ToString());
          ++diffs_[d.op];
        }
        if (value_ != *event.value)
          errors_.push_back("diffs give " + value_.ToString() + ", the event says " +
                            event.value->ToString());
      } else {
        ended_ = event.ended;
      }
      events_.push_back(event.kind);
      cv_.notify_all();
    };
  }
  // Waits (5 s at most) until the value equals `want`.
  bool WaitFor(const Value& want) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return value_ == want; });
  }
  bool WaitEnded() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(5), [&] { return ended_.has_value(); });
  }
  Value value() {
    std::lock_guard lock(mu_);
    return value_;
  }
  std::vector<Kind> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::vector<std::string> errors() {
    std::lock_guard lock(mu_);
    return errors_;
  }
  std::optional<Status> ended() {
    std::lock_guard lock(mu_);
    return ended_;
  }
  int diffs(Diff::Op op) {
    std::lock_guard lock(mu_);
    return diffs_[op];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  Value value_;
  std::vector<Kind> events_;
  std::vector<std::string> errors_;
  std::optional<Status> ended_;
  std::map<Diff::Op, int> diffs_;
};

class SubscriptionTest : public EngineFixture {
 protected:
  void SetUp() override { Open(); }
  // The engine ends what is still subscribed while the watchers (members, destroyed after
  // this) are alive.
  void TearDown() override { engine_.reset(); }
  Watcher& NewWatcher() { return watchers_.emplace_back(); }
  void Put(const std::string& key, Value value) {
    ASSERT_TRUE(engine_->Append("rt_test", "*kv", KV(key, std::move(value))).ok());
  }

  std::deque<Watcher> watchers_;
};

TEST_F(SubscriptionTest, AKeyStartsNilThenFollowsItsCommits) {
  Watcher& w = NewWatcher();
  Result<uint64_t> id =
      engine_->Subscribe("rt_test", "$$kv", Path().Key("alice"),
                         {.partition_key = std::nullopt, .one = true}, w.Callback());
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(w.events(), std::vector<Kind>{Kind::kStarted});  // delivered before Subscribe returns
  EXPECT_EQ(w.value(), Value());
  Put("alice", 1);
  ASSERT_TRUE(w.WaitFor(Value(1)));
  Put("alice", Value::MapOf({{"bio", "hi"}}));
  ASSERT_TRUE(w.WaitFor(Value::MapOf({{"bio", "hi"}})));
  Put("alice", Value::MapOf({{"bio", "hi"}, {"age", 30}}));
  ASSERT_TRUE(w.WaitFor(Value::MapOf({{"bio", "hi"}, {"age", 30}})));
  EXPECT_EQ(w.diffs(Diff::Op::kKeySet), 1);  // "age" was set inside the map
  // Another key of the same partition changes nothing here.
  const size_t events = w.events().size();
  Put("bob", 5);
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(w.events().size(), events);
  engine_->Unsubscribe(*id);
  Put("alice", 2);
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(w.events().size(), events);
  EXPECT_EQ(w.value(), Value::MapOf({{"bio", "hi"}, {"age", 30}}));
  EXPECT_TRUE(w.errors().empty()) << w.errors()[0];
}

// A whole partition of $$kv and the global $$totals follow 2,000 random appends; the diffs
// applied to the first values equal selects afterwards.
TEST_F(SubscriptionTest, DiffsAppliedToTheFirstValueEqualASelectAfterRandomAppends) {
  const Value key0("k0");  // the partition "k0" hashes to
  Watcher& whole = NewWatcher();
  Watcher& total = NewWatcher();
  ASSERT_TRUE(engine_
                  ->Subscribe("rt_test", "$$kv", Path(), {.partition_key = key0, .one = false},
                              whole.Callback())
                  .ok());
  ASSERT_TRUE(engine_
                  ->Subscribe("rt_test", "$$totals", Path().Key("records"),
                              {.partition_key = std::nullopt, .one = true}, total.Callback())
                  .ok());
  std::mt19937_64 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string key = "k";  // appended: `"k" + std::string` trips g++ 12's false -Wrestrict
    key += std::to_string(rng() % 50);
    Value value = rng() % 3 == 0 ? Value(static_cast<int64_t>(rng() % 100))
                                 : Value::ListOf({static_cast<int64_t>(rng() % 5), "x"});
    Put(key, std::move(value));
  }
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  std::vector<Value> now = Must(engine_->Select("rt_test", "$$kv", Path(), key0));
  ASSERT_TRUE(whole.WaitFor(Value(now)));
  ASSERT_TRUE(total.WaitFor(Value(2000)));
  EXPECT_TRUE(whole.errors().empty()) << whole.errors()[0];
  EXPECT_GT(whole.diffs(Diff::Op::kKeySet), 0);
}

TEST_F(SubscriptionTest, DestroyEndsSubscriptionsWithTheReason) {
  Watcher& w = NewWatcher();
  ASSERT_TRUE(engine_
                  ->Subscribe("rt_test", "$$kv", Path().Key("a"),
                              {.partition_key = std::nullopt, .one = true}, w.Callback())
                  .ok());
  ASSERT_TRUE(engine_->Destroy("rt_test").ok());
  ASSERT_TRUE(w.WaitEnded());
  EXPECT_EQ(w.ended()->code(), StatusCode::kNotFound);
  EXPECT_NE(w.ended()->message().find("destroyed"), std::string::npos) << w.ended()->ToString();
  EXPECT_EQ(engine_->Metrics().subscriptions, 0);
}

TEST_F(SubscriptionTest, ClosingTheEngineEndsSubscriptions) {
  Watcher& w = NewWatcher();
  ASSERT_TRUE(engine_
                  ->Subscribe("rt_test", "$$kv", Path().Key("a"),
                              {.partition_key = std::nullopt, .one = true}, w.Callback())
                  .ok());
  engine_.reset();
  ASSERT_TRUE(w.ended().has_value());
}

TEST_F(SubscriptionTest, BadSubscriptionsAreRefused) {
  Watcher& w = NewWatcher();
  EXPECT_EQ(
      engine_->Subscribe("rt_test", "$$nope", Path().Key("a"), {}, w.Callback()).status().code(),
      StatusCode::kNotFound);
  EXPECT_EQ(engine_->Subscribe("nope", "$$kv", Path().Key("a"), {}, w.Callback()).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->Subscribe("rt_test", "$$kv", Path().Key("a").Inc(), {}, w.Callback())
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Subscribe("rt_test", "$$kv", Path().All(), {}, w.Callback()).status().code(),
            StatusCode::kInvalidArgument);  // no partition
  Put("a", 1);
  Put("b", 2);
  // one = true over a path that selects two values of one partition.
  const Value key("a");
  Result<uint64_t> many = engine_->Subscribe("rt_test", "$$kv", Path().All(),
                                             {.partition_key = key, .one = true}, w.Callback());
  const int64_t selected = Must(engine_->Select("rt_test", "$$kv", Path().All(), key)).size();
  if (selected > 1) {
    EXPECT_EQ(many.status().code(), StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(w.events().empty() || selected <= 1);
}

// An update keeps the subscriptions of the PStates it keeps (the new code's changes are
// pushed), ends those of a PState it drops, and a rescale ends them all; a recompute's swap
// pushes the recomputed value.
TEST_F(SubscriptionTest, UpdatesRecomputesAndRescalesCarryOrEndSubscriptions) {
  ASSERT_TRUE(engine_->Deploy(STRATA_EVOLVE_V1, {.partitions = kPartitions}).ok());
  auto event = [&](int64_t n) {
    ASSERT_TRUE(engine_->Append("evolve", "*events", Value::MapOf({{"k", "k1"}, {"n", n}})).ok());
  };
  Watcher& totals = NewWatcher();
  Watcher& extra = NewWatcher();
  ASSERT_TRUE(engine_
                  ->Subscribe("evolve", "$$totals", Path().Key("k1"),
                              {.partition_key = std::nullopt, .one = true}, totals.Callback())
                  .ok());
  ASSERT_TRUE(engine_
                  ->Subscribe("evolve", "$$extra_seen", Path().Key(5),
                              {.partition_key = std::nullopt, .one = true}, extra.Callback())
                  .ok());
  event(1);
  ASSERT_TRUE(totals.WaitFor(Value(1)));
  ASSERT_TRUE(engine_->Update(STRATA_EVOLVE_V2, {}).ok());  // "totals" now adds 2n
  event(1);
  ASSERT_TRUE(totals.WaitFor(Value(3)));
  EXPECT_FALSE(extra.ended().has_value());
  ASSERT_TRUE(
      engine_->Update(STRATA_EVOLVE_V3, {.drop = {"*extra", "extra", "$$extra_seen"}}).ok());
  ASSERT_TRUE(extra.WaitEnded());
  EXPECT_EQ(extra.ended()->code(), StatusCode::kNotFound);
  EXPECT_NE(extra.ended()->message().find("dropped"), std::string::npos)
      << extra.ended()->ToString();
  EXPECT_FALSE(totals.ended().has_value());
  // Recomputed with the current code, both events add 2n.
  ASSERT_TRUE(engine_->Recompute("evolve", {"$$totals"}).ok());
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ASSERT_TRUE(totals.WaitFor(Value(4)));
  ASSERT_TRUE(engine_->Update(STRATA_EVOLVE_V3, {.drop = {}, .partitions = 2}).ok());
  ASSERT_TRUE(totals.WaitEnded());
  EXPECT_NE(totals.ended()->message().find("partitions"), std::string::npos)
      << totals.ended()->ToString();
  EXPECT_TRUE(totals.errors().empty()) << totals.errors()[0];
}

// A microbatch topology's batch commits notify too: an Aggregate's count, and a global
// top-3 list whose changes are list diffs.
TEST_F(SubscriptionTest, MicrobatchCommitsArePushed) {
  ASSERT_TRUE(engine_->Deploy(STRATA_MB_TEST_MODULE, {.partitions = kPartitions}).ok());
  Watcher& apple = NewWatcher();
  Watcher& top = NewWatcher();
  ASSERT_TRUE(engine_
                  ->Subscribe("mbtest", "$$counts", Path().Key("apple"),
                              {.partition_key = std::nullopt, .one = true}, apple.Callback())
                  .ok());
  ASSERT_TRUE(engine_
                  ->Subscribe("mbtest", "$$top", Path().Key("all"),
                              {.partition_key = std::nullopt, .one = true}, top.Callback())
                  .ok());
  std::mt19937_64 rng(11);
  const std::vector<std::string> words = {"apple", "pear", "fig", "kiwi", "plum"};
  int64_t apples = 0;
  for (int round = 0; round < 20; ++round) {
    std::vector<Value> batch;
    for (int i = 0; i < 10; ++i) {
      const std::string& w = words[rng() % words.size()];
      apples += w == "apple";
      batch.push_back(Value(w));
    }
    ASSERT_TRUE(engine_->AppendBatch("mbtest", "*words", std::move(batch)).ok());
  }
  ASSERT_TRUE(apple.WaitFor(Value(apples)));
  const Value now = Must(engine_->SelectOne("mbtest", "$$top", Path().Key("all")));
  ASSERT_TRUE(top.WaitFor(now));
  EXPECT_TRUE(top.errors().empty()) << top.errors()[0];
}

TEST_F(SubscriptionTest, TheEngineCapsSubscriptions) {
  EngineOptions options = SmallEngineOptions(data_dir());
  options.max_subscriptions = 2;
  engine_.reset();
  OpenWith(options);
  Watcher& w = NewWatcher();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 2; ++i) {
    ids.push_back(Must(engine_->Subscribe("rt_test", "$$kv", Path().Key("a"), {}, w.Callback())));
  }
  Result<uint64_t> third = engine_->Subscribe("rt_test", "$$kv", Path().Key("a"), {}, w.Callback());
  EXPECT_EQ(third.status().code(), StatusCode::kBusy) << third.status().ToString();
  engine_->Unsubscribe(ids[0]);
  EXPECT_TRUE(engine_->Subscribe("rt_test", "$$kv", Path().Key("a"), {}, w.Callback()).ok());
  EXPECT_EQ(engine_->Metrics().subscriptions, 2);
}

}  // namespace
}  // namespace strata::testing
