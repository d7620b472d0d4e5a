// The profiles example (examples/profiles): unique ids, "taken", retries by request id,
// concurrent registrations of overlapping names, and the oracle.
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "example_harness.h"
#include "strata/key_codec.h"

namespace strata::examples_test {
namespace {

Value Registration(const std::string& username, const std::string& request_id = "",
                   const std::string& display_name = "") {
  Value r = Value::MapOf({{"username", username}});
  if (!request_id.empty()) r.Insert("request_id", request_id);
  if (!display_name.empty()) r.Insert("display_name", display_name);
  return r;
}

class ProfilesTest : public ExampleTest {
 protected:
  ProfilesTest() : ExampleTest("profiles") {}

  // The ack return of a processed registration (nil after a test failure).
  Value Register(const Value& record) {
    auto r = engine_->Append("profiles", "*registrations", record);
    EXPECT_TRUE(r.ok()) << record.ToString() << ": " << r.status().ToString();
    return r.ok() ? AckReturn(*r, "register") : Value();
  }
};

Value Registered(int64_t id) { return Value::MapOf({{"status", "registered"}, {"id", id}}); }
Value Taken(int64_t id) { return Value::MapOf({{"status", "taken"}, {"id", id}}); }

TEST_F(ProfilesTest, AssignsDistinctIdsAndStoresProfilesSelectableById) {
  std::set<int64_t> ids;
  for (const char* name : {"alice", "bob", "carol", "dave", "erin"}) {
    Value ack = Register(Registration(name, "", std::string("The ") + name));
    ASSERT_EQ(Field(ack, "status"), Value("registered")) << ack.ToString();
    int64_t id = Field(ack, "id").as_int();
    EXPECT_TRUE(ids.insert(id).second) << "id " << id << " assigned twice";
    // The id encodes the partition that assigned it: the username's.
    EXPECT_EQ(id % kPartitions, static_cast<int64_t>(HashKey(Value(name)) % kPartitions)) << name;
    EXPECT_EQ(SelectOne("$$users_by_name", Path().Key(name)), Value(id));
    EXPECT_EQ(SelectOne("$$profiles", Path().Key(id)),
              Value::MapOf({{"username", name}, {"display_name", std::string("The ") + name}}));
  }
}

TEST_F(ProfilesTest, ATakenNameReportsItsHolder) {
  Value first = Register(Registration("alice", "", "First"));
  ASSERT_EQ(Field(first, "status"), Value("registered")) << first.ToString();
  int64_t id = Field(first, "id").as_int();
  EXPECT_EQ(Register(Registration("alice", "", "Second")), Taken(id));
  EXPECT_EQ(SelectOne("$$profiles", Path().Key(id, "display_name")), Value("First"));
  EXPECT_EQ(SelectOne("$$users_by_name", Path().Key("alice")), Value(id));
}

TEST_F(ProfilesTest, ARetryWithTheClaimsRequestIdGetsTheSameId) {
  Value first = Register(Registration("dave", "req-1"));
  ASSERT_EQ(Field(first, "status"), Value("registered")) << first.ToString();
  int64_t id = Field(first, "id").as_int();
  EXPECT_EQ(Register(Registration("dave", "req-1")), Registered(id));
  EXPECT_EQ(Register(Registration("dave", "req-2")), Taken(id));
  EXPECT_EQ(Register(Registration("dave")), Taken(id));
  EX_ASSIGN_OR_FAIL(auto next, CollectIntMap(*engine_, "profiles", "$$next_id"));
  int64_t assigned = 0;
  for (const auto& [partition, n] : next) assigned += n;
  EXPECT_EQ(assigned, 1);
}

TEST_F(ProfilesTest, MalformedRegistrationsAreFailuresOrRefused) {
  auto empty = engine_->Append("profiles", "*registrations", Value::MapOf({{"username", ""}}));
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), StatusCode::kUserError) << empty.status().ToString();
  // The record schema refuses mistyped records before the log.
  for (const Value& record :
       {Value::MapOf({{"username", 7}}), Value::MapOf({{"username", "x"}, {"request_id", 1}}),
        Value("just a string")}) {
    auto r = engine_->Append("profiles", "*registrations", record);
    ASSERT_FALSE(r.ok()) << record.ToString();
    EXPECT_EQ(r.status().code(), StatusCode::kSchemaViolation) << r.status().ToString();
  }
  EXPECT_EQ(Field(Register(Registration("x")), "status"), Value("registered"));
}

TEST_F(ProfilesTest, ConcurrentRegistrationsGiveEachNameExactlyOneId) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  constexpr int kNames = 60;
  const uint64_t seed = TestSeed(7005);
  std::mutex mu;
  std::map<std::string, std::vector<Value>> acks;  // GUARDED_BY(mu)
  std::vector<std::string> errors;                 // GUARDED_BY(mu)
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      for (int i = 0; i < kPerThread; ++i) {
        std::string name = Cat("user", rng() % kNames);
        auto r = engine_->Append("profiles", "*registrations", Registration(name));
        std::lock_guard<std::mutex> lock(mu);
        if (!r.ok()) {
          errors.push_back(r.status().ToString());
        } else {
          acks[name].push_back(AckReturn(*r, "register"));
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.front();

  std::set<int64_t> ids;
  for (const auto& [name, name_acks] : acks) {
    Value holder = SelectOne("$$users_by_name", Path().Key(name));
    ASSERT_TRUE(holder.is_int()) << name << ": " << holder.ToString();
    EXPECT_TRUE(ids.insert(holder.as_int()).second) << "id " << holder.as_int() << " given twice";
    int registered = 0;
    for (const Value& ack : name_acks) {
      EXPECT_EQ(Field(ack, "id"), holder) << name << ": " << ack.ToString();
      if (Field(ack, "status") == Value("registered")) ++registered;
    }
    EXPECT_EQ(registered, 1) << name;
    EXPECT_EQ(SelectOne("$$profiles", Path().Key(holder, "username")), Value(name));
  }
}

TEST_F(ProfilesTest, OracleRecomputedViewsEqualLiveViews) {
  std::mt19937_64 rng(TestSeed(7006));
  std::vector<Value> records;
  for (int i = 0; i < 400; ++i) {
    std::string name = Cat("n", rng() % 150);
    std::string request = rng() % 3 == 0 ? "" : Cat("req", rng() % 500);
    records.push_back(Registration(name, request, rng() % 2 == 0 ? "" : Cat("D", i)));
  }
  for (size_t begin = 0; begin < records.size(); begin += 100) {
    EX_ASSERT_OK(engine_->AppendBatch(
        "profiles", "*registrations",
        std::vector<Value>(records.begin() + begin, records.begin() + begin + 100)));
  }
  ExpectRecomputationEqual({"*registrations"});
}

}  // namespace
}  // namespace strata::examples_test
