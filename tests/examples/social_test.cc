// The social example (examples/social): followers, timelines newest first with paging,
// the timeline cap and replays into full timelines, a fan-out to many followers (paged
// and grouped by partition), and the oracle.
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"

namespace strata::examples_test {
namespace {

Value FollowRecord(const std::string& from, const std::string& to, bool unfollow = false) {
  Value r = Value::MapOf({{"from", from}, {"to", to}});
  if (unfollow) r.Insert("op", "unfollow");
  return r;
}

Value PostRecord(const std::string& author, int64_t id) {
  return Value::MapOf({{"author", author}, {"id", id}, {"text", Cat("post ", id)}});
}

Value Entry(const std::string& author, int64_t id) {
  return Value::MapOf({{"author", author}, {"id", id}});
}

class SocialTest : public ExampleTest {
 protected:
  SocialTest() : ExampleTest("social") {}
};

TEST_F(SocialTest, FollowIsIdempotentAndUnfollowRemoves) {
  EX_ASSERT_OK(engine_->AppendBatch("social", "*follows",
                                    {FollowRecord("alice", "bob"), FollowRecord("alice", "bob"),
                                     FollowRecord("carol", "bob"), FollowRecord("bob", "alice")}));
  EXPECT_EQ(Select("$$followers", Path().Key("bob").All()),
            (std::vector<Value>{Value("alice"), Value("carol")}));
  EXPECT_EQ(SelectOne("$$followers", Path().Key("bob").Size()), Value(2));
  EXPECT_EQ(Select("$$followers", Path().Key("alice").All()), (std::vector<Value>{Value("bob")}));

  EX_ASSERT_OK(engine_->Append("social", "*follows", FollowRecord("carol", "bob", true)));
  EXPECT_EQ(Select("$$followers", Path().Key("bob").All()), (std::vector<Value>{Value("alice")}));

  auto bad = engine_->Append("social", "*follows",
                             Value::MapOf({{"from", "x"}, {"to", "y"}, {"op", "block"}}));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kUserError) << bad.status().ToString();
}

TEST_F(SocialTest, TimelineIsNewestFirstAcrossAuthorsAndPages) {
  EX_ASSERT_OK(engine_->AppendBatch(
      "social", "*follows", {FollowRecord("alice", "bob"), FollowRecord("alice", "carol")}));
  EX_ASSERT_OK(
      engine_->AppendBatch("social", "*posts", {PostRecord("bob", 10), PostRecord("carol", 5)}));
  EX_ASSERT_OK(
      engine_->AppendBatch("social", "*posts", {PostRecord("carol", 15), PostRecord("bob", 20)}));

  // First page: a forward range with a limit.
  EXPECT_EQ(Select("$$timelines", Path().Key("alice").Range({.limit = 3}).MapVals()),
            (std::vector<Value>{Entry("bob", 20), Entry("carol", 15), Entry("bob", 10)}));
  // Next page: after the last key of the previous one.
  EXPECT_EQ(
      Select("$$timelines",
             Path()
                 .Key("alice")
                 .Range({.from = Value::ListOf({-10, "bob"}), .from_inclusive = false, .limit = 3})
                 .MapVals()),
      (std::vector<Value>{Entry("carol", 5)}));
  // Nobody follows alice; bob follows nobody.
  EXPECT_EQ(SelectOne("$$timelines", Path().Key("bob").Size()), Value(0));

  EXPECT_EQ(SelectOne("$$posts", Path().Key("bob", 20)), Value::MapOf({{"text", "post 20"}}));
  // An author's own posts newest first: a reverse range.
  EXPECT_EQ(Select("$$posts", Path().Key("carol").Range({.limit = 1, .reverse = true}).MapKeys()),
            (std::vector<Value>{Value(15)}));
}

TEST_F(SocialTest, TimelineKeepsTheNewest800Posts) {
  EX_ASSERT_OK(engine_->AppendBatch("social", "*follows",
                                    {FollowRecord("fan1", "star"), FollowRecord("fan2", "star")}));
  constexpr int kPosts = 805;
  for (int first = 1; first <= kPosts; first += 200) {
    std::vector<Value> posts;
    for (int id = first; id < first + 200 && id <= kPosts; ++id)
      posts.push_back(PostRecord("star", id));
    EX_ASSERT_OK(engine_->AppendBatch("social", "*posts", std::move(posts)));
  }
  for (const char* fan : {"fan1", "fan2"}) {
    SCOPED_TRACE(fan);
    EXPECT_EQ(SelectOne("$$timelines", Path().Key(fan).Size()), Value(800));
    EXPECT_EQ(Select("$$timelines", Path().Key(fan).Range({.limit = 2}).MapVals()),
              (std::vector<Value>{Entry("star", 805), Entry("star", 804)}));
    EXPECT_EQ(Select("$$timelines", Path().Key(fan).Last()),
              (std::vector<Value>{Value::ListOf({Value::ListOf({-6, "star"}), Entry("star", 6)})}));
  }
  EXPECT_EQ(SelectOne("$$posts", Path().Key("star").Size()), Value(kPosts));

  // Replays into full timelines (the same records again) change nothing: a post the
  // timelines hold, and one that was trimmed away.
  EX_ASSERT_OK(
      engine_->AppendBatch("social", "*posts", {PostRecord("star", 805), PostRecord("star", 3)}));
  for (const char* fan : {"fan1", "fan2"}) {
    SCOPED_TRACE(fan);
    EXPECT_EQ(SelectOne("$$timelines", Path().Key(fan).Size()), Value(800));
    EXPECT_EQ(Select("$$timelines", Path().Key(fan).Range({.limit = 1}).MapVals()),
              (std::vector<Value>{Entry("star", 805)}));
    EXPECT_EQ(Select("$$timelines", Path().Key(fan).Last()),
              (std::vector<Value>{Value::ListOf({Value::ListOf({-6, "star"}), Entry("star", 6)})}));
  }
}

// An author with more followers than one page of the fan-out read and, on every
// partition, more than one delivery carries: each follower gets each post exactly once,
// on the partition where Select (HashKey(user) % P) looks for it, by the time the
// processed ack returns; a replayed post adds nothing.
TEST_F(SocialTest, FanOutToManyFollowersReachesEachOnceWhereSelectFindsIt) {
  constexpr int kFans = 20000;  // > 4 partitions x 4096 followers per delivery
  for (int first = 0; first < kFans; first += 2000) {
    std::vector<Value> follows;
    for (int i = first; i < first + 2000; ++i)
      follows.push_back(FollowRecord(Cat("fan", i), "star"));
    EX_ASSERT_OK(engine_->AppendBatch("social", "*follows", std::move(follows)));
  }
  ASSERT_EQ(SelectOne("$$followers", Path().Key("star").Size()), Value(kFans));
  EX_ASSERT_OK(
      engine_->AppendBatch("social", "*posts", {PostRecord("star", 1), PostRecord("star", 2)}));
  EX_ASSERT_OK(engine_->Append("social", "*posts", PostRecord("star", 1)));
  const std::vector<Value> expected = {Entry("star", 2), Entry("star", 1)};
  int wrong = 0;
  for (int i = 0; i < kFans; ++i) {
    const std::string fan = Cat("fan", i);
    if (Select("$$timelines", Path().Key(fan).Range({.limit = 3}).MapVals()) != expected) {
      if (++wrong <= 5) ADD_FAILURE() << fan << "'s timeline lacks or repeats a post";
    }
  }
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(SelectOne("$$timelines", Path().Key("star").Size()), Value(0));
}

// Follows are all processed before any post: a post fans out to the followers its
// author has when it is processed, and records of two depots on one partition have no
// order between them, so the recomputation (depot by depot) sees the same followers only
// when the live run did too.
TEST_F(SocialTest, OracleRecomputedViewsEqualLiveViews) {
  std::mt19937_64 rng(TestSeed(7002));
  constexpr int kUsers = 24;
  auto user = [&] { return Cat("u", rng() % kUsers); };
  std::vector<Value> follows;
  for (int i = 0; i < 300; ++i) follows.push_back(FollowRecord(user(), user(), rng() % 5 == 0));
  EX_ASSERT_OK(engine_->AppendBatch("social", "*follows", std::move(follows)));

  std::map<std::string, int64_t> last_id;
  for (int batch = 0; batch < 4; ++batch) {
    std::vector<Value> posts;
    for (int i = 0; i < 100; ++i) {
      std::string author = user();
      last_id[author] += 1 + static_cast<int64_t>(rng() % 1000);
      posts.push_back(PostRecord(author, last_id[author]));
    }
    EX_ASSERT_OK(engine_->AppendBatch("social", "*posts", std::move(posts)));
  }
  ExpectRecomputationEqual({"*follows", "*posts"});
}

}  // namespace
}  // namespace strata::examples_test
