// The social example (examples/social): followers, timelines newest first with paging,
// the timeline cap and replays into full timelines, a fan-out to many followers (paged
// and grouped by partition), the oracle, and the query timeline (the newest posts of a
// timeline joined with their texts) against the follows and posts of the depots.
#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
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

Value Post(const std::string& author, int64_t id, const std::string& text) {
  return Value::MapOf({{"author", author}, {"id", id}, {"text", text}});
}

class SocialTest : public ExampleTest {
 protected:
  SocialTest() : ExampleTest("social") {}

  Value Timeline(const std::string& user, int64_t n) {
    return Invoke("timeline", {Value(user), Value(n)});
  }

  // Every user's timeline, recomputed from the depots' records, when all follows were
  // processed before any post: the posts of the authors the user follows in the end
  // ({author, id, text}), newest first (id descending, then author), at most the cap.
  std::map<Value, std::vector<Value>> TimelinesFromDepots() {
    std::map<Value, std::set<Value>> following;    // user -> authors
    std::map<Value, std::vector<Value>> posts_by;  // author -> posts
    auto follows = ReadWholeDepot(*engine_, "social", "*follows");
    auto posts = ReadWholeDepot(*engine_, "social", "*posts");
    EXPECT_TRUE(follows.ok() && posts.ok());
    if (!follows.ok() || !posts.ok()) return {};
    // One (from, to) pair's records are all on to's partition, in offset order.
    for (const auto& partition : *follows) {
      for (const DepotEntry& e : partition) {
        if (Field(e.record, "op") == Value("unfollow")) {
          following[Field(e.record, "from")].erase(Field(e.record, "to"));
        } else {
          following[Field(e.record, "from")].insert(Field(e.record, "to"));
        }
      }
    }
    for (const auto& partition : *posts) {
      for (const DepotEntry& e : partition) {
        const Value& r = e.record;
        posts_by[Field(r, "author")].push_back(Post(
            Field(r, "author").as_string(), Field(r, "id").as_int(), Field(r, "text").as_string()));
      }
    }
    std::map<Value, std::vector<Value>> timelines;
    for (const auto& [user, authors] : following) {
      std::vector<Value>& timeline = timelines[user];
      for (const Value& author : authors) {
        for (const Value& post : posts_by[author]) timeline.push_back(post);
      }
      auto newest_first = [](const Value& a, const Value& b) {
        return std::make_tuple(-Field(a, "id").as_int(), Field(a, "author")) <
               std::make_tuple(-Field(b, "id").as_int(), Field(b, "author"));
      };
      std::sort(timeline.begin(), timeline.end(), newest_first);
      // Replays of a post (same author and id) fan out once.
      timeline.erase(std::unique(timeline.begin(), timeline.end()), timeline.end());
      if (timeline.size() > 800) timeline.resize(800);
    }
    return timelines;
  }
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

TEST_F(SocialTest, TimelineQueryJoinsTheNewestPostsWithTheirTexts) {
  EX_ASSERT_OK(engine_->AppendBatch(
      "social", "*follows", {FollowRecord("alice", "bob"), FollowRecord("alice", "carol")}));
  EX_ASSERT_OK(
      engine_->AppendBatch("social", "*posts",
                           {Value::MapOf({{"author", "bob"}, {"id", 10}, {"text", "first"}}),
                            Value::MapOf({{"author", "carol"}, {"id", 10}, {"text", "same time"}}),
                            Value::MapOf({{"author", "carol"}, {"id", 15}, {"text", "newest"}})}));
  EXPECT_EQ(Timeline("alice", 2),
            Value::ListOf({Post("carol", 15, "newest"), Post("bob", 10, "first")}));
  EXPECT_EQ(Timeline("alice", 800),
            Value::ListOf({Post("carol", 15, "newest"), Post("bob", 10, "first"),
                           Post("carol", 10, "same time")}));
  EXPECT_EQ(Timeline("nobody", 5), Value(Value::List{}));
}

TEST_F(SocialTest, TimelineQueryRefusesBadArgumentsNamingTheQuery) {
  ExpectInvokeError("timeline", {Value("alice")}, StatusCode::kInvalidArgument,
                    "takes 2 arguments (user, n), not 1");
  ExpectInvokeError("timeline", {Value(5), Value(5)}, StatusCode::kSchemaViolation,
                    "argument 1 (user, string): expected string, got int 5");
  ExpectInvokeError("timeline", {Value("alice"), Value(2.5)}, StatusCode::kSchemaViolation,
                    "argument 2 (n, int64): expected int64, got double 2.5");
  ExpectInvokeError("timeline", {Value("alice"), Value(0)}, StatusCode::kUserError,
                    "n must be 1 to 800 (a timeline's cap), not 0");
  ExpectInvokeError("timeline", {Value("alice"), Value(801)}, StatusCode::kUserError,
                    "n must be 1 to 800 (a timeline's cap), not 801");
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

  // The query against the timelines recomputed from the depots' records, and again after
  // an in-place recompute of every view.
  const std::map<Value, std::vector<Value>> oracle = TimelinesFromDepots();
  ASSERT_FALSE(oracle.empty());
  std::map<std::pair<std::string, int64_t>, Value> answers;
  for (int u = 0; u < kUsers; ++u) {
    const std::string name = Cat("u", u);
    auto expected = oracle.find(Value(name));
    std::vector<Value> full = expected == oracle.end() ? std::vector<Value>{} : expected->second;
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{800}}) {
      std::vector<Value> top(full.begin(), full.begin() + std::min<size_t>(full.size(), n));
      const Value answer = Timeline(name, n);
      answers[{name, n}] = answer;
      EXPECT_EQ(answer, Value(top)) << "timeline(" << name << ", " << n << ")";
    }
  }
  PrintInvokeTime(*engine_, "social", "timeline", {Value("u1"), Value(10)}, 200);
  ASSERT_TRUE(RecomputedInPlaceEqual(*engine_, "social"));
  for (const auto& [args, answer] : answers) {
    EXPECT_EQ(Timeline(args.first, args.second), answer)
        << "after the recompute: timeline(" << args.first << ", " << args.second << ")";
  }
}

}  // namespace
}  // namespace strata::examples_test
