// Queries (docs/modules.md, "Queries"), paged selects over all partitions and
// snapshot selects, against a real engine with testdata/query_test_module.cc ("qtest").
#include <algorithm>
#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/testing/engine_fixture.h"
#include "strata/testing/test_seed.h"

namespace strata {
namespace {

using ::testing::HasSubstr;
using testing::Must;
using testing::SmallEngineOptions;

constexpr int kPartitions = 4;
const char* const kModule = "qtest";

class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<std::unique_ptr<Engine>> engine = Engine::Open(SmallEngineOptions(dir_.Sub("data")));
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    Result<ModuleInfo> info =
        engine_->Deploy(STRATA_QUERY_TEST_MODULE, {.partitions = kPartitions});
    ASSERT_TRUE(info.ok()) << info.status().ToString();
  }
  void Put(const std::string& key, int64_t value, AckLevel ack = AckLevel::kProcessed) {
    Must(engine_->Append(kModule, "*items", Value::MapOf({{"key", key}, {"value", value}}), ack));
  }
  Value Invoke(const std::string& query, std::vector<Value> args = {}) {
    return Must(engine_->Invoke(kModule, query, std::move(args)));
  }
  Status InvokeError(const std::string& query, std::vector<Value> args = {},
                     InvokeOptions options = {}) {
    Result<Value> r = engine_->Invoke(kModule, query, std::move(args), options);
    EXPECT_FALSE(r.ok()) << query << " answered " << (r.ok() ? r->ToString() : "");
    return r.ok() ? Status::Ok() : r.status();
  }

  strata::testing::TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(QueryTest, AnswersEqualTheOracle) {
  std::mt19937_64 rng(strata::testing::TestSeed(20261207));
  std::map<std::string, int64_t> oracle;
  for (int i = 0; i < 400; ++i) {
    const std::string key = "k" + std::to_string(rng() % 150);
    const int64_t value = static_cast<int64_t>(rng() % 1000);
    Put(key, value, AckLevel::kAppended);
    oracle[key] = value;
  }
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());

  int64_t sum = 0;
  for (const auto& [k, v] : oracle) sum += v;
  EXPECT_EQ(Invoke("sum"), Value(sum));
  EXPECT_EQ(Invoke("sum-twice"), Value(2 * sum));
  EXPECT_EQ(Invoke("count"), Value(400));
  for (const auto& [k, v] : oracle) ASSERT_EQ(Invoke("get", {Value(k)}), Value(v)) << k;
  EXPECT_EQ(Invoke("get", {Value("absent")}), Value());

  std::vector<std::pair<int64_t, std::string>> ranked;
  for (const auto& [k, v] : oracle) ranked.emplace_back(-v, k);
  std::sort(ranked.begin(), ranked.end());
  Value::List top;
  for (int i = 0; i < 10; ++i) top.push_back(Value::ListOf({ranked[i].second, -ranked[i].first}));
  EXPECT_EQ(Invoke("top", {Value(10)}), Value(top));

  std::set<std::string> over;
  for (const auto& [k, v] : oracle) {
    if (v > 500) over.insert(k);
  }
  Value keys = Invoke("keys-over", {Value(500)});
  ASSERT_TRUE(keys.is_list());
  std::set<std::string> got;
  for (const Value& k : keys.as_list()) got.insert(k.as_string());
  EXPECT_EQ(got, over);
  EXPECT_EQ(keys.as_list().size(), over.size());  // each key once
}

TEST_F(QueryTest, NothingToCombineGivesTheCombinersZero) {
  EXPECT_EQ(Invoke("sum"), Value(0));
  EXPECT_EQ(Invoke("top", {Value(5)}), Value(Value::List{}));
  EXPECT_EQ(Invoke("keys-over", {Value(0)}), Value(Value::List{}));
}

TEST_F(QueryTest, ErrorsNameTheQuery) {
  Status st = InvokeError("nope");
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_THAT(st.message(), HasSubstr("no query nope"));
  EXPECT_THAT(st.message(), HasSubstr("sum-twice"));  // lists the module's queries

  st = InvokeError("get");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("query qtest/get takes 1 argument (key), not 0"));

  st = InvokeError("get", {Value(7)});
  EXPECT_EQ(st.code(), StatusCode::kSchemaViolation);
  EXPECT_THAT(st.message(),
              HasSubstr("query qtest/get: argument 1 (key, string): expected string, got int 7"));

  st = InvokeError("throws");
  EXPECT_EQ(st.code(), StatusCode::kUserError);
  EXPECT_THAT(st.message(), HasSubstr("query qtest/throws"));
  EXPECT_THAT(st.message(), HasSubstr("no answer today"));

  st = InvokeError("writes");
  EXPECT_EQ(st.code(), StatusCode::kUserError);
  EXPECT_THAT(st.message(), HasSubstr("read-only"));

  st = InvokeError("at-origin");
  EXPECT_EQ(st.code(), StatusCode::kUserError);
  EXPECT_THAT(st.message(), HasSubstr("at the origin"));

  st = InvokeError("forever");
  EXPECT_THAT(st.message(), HasSubstr("nest deeper than"));
  // Named once, by the innermost query, not once per level.
  EXPECT_EQ(st.message().find("query qtest/forever"), st.message().rfind("query qtest/forever"))
      << st.message();

  st = InvokeError("slow", {Value(30)}, {.timeout_ms = 50});
  EXPECT_EQ(st.code(), StatusCode::kTimeout);
  EXPECT_THAT(st.message(), HasSubstr("query qtest/slow did not finish within its timeout"));

  st = InvokeError("sum", {}, {.timeout_ms = 0});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);

  Result<Value> other = engine_->Invoke("no-such-module", "sum", {});
  EXPECT_EQ(other.status().code(), StatusCode::kNotFound);
  // The engine still answers after every error.
  EXPECT_EQ(Invoke("sum"), Value(0));
}

TEST_F(QueryTest, DescribeListsQueriesWithTheirParameters) {
  ModuleInfo info = Must(engine_->Describe(kModule));
  std::map<std::string, std::vector<std::string>> params;
  for (const QueryInfo& q : info.queries) {
    for (const auto& [name, schema] : q.params)
      params[q.name].push_back(name + ":" + schema.ToString());
  }
  EXPECT_EQ(info.queries.size(), 11u);
  EXPECT_EQ(params["top"], std::vector<std::string>{"n:int64"});
  EXPECT_EQ(params["get"], std::vector<std::string>{"key:string"});
}

// A processed append's effects are seen by every query that starts after it returns, and
// a query sees one snapshot of all partitions: the global counter never runs ahead of the
// values the stream wrote before it (the counter is written after the value).
TEST_F(QueryTest, ConcurrentAppendsAndQueries) {
  std::atomic<bool> stop{false};
  std::atomic<int64_t> wrong{0};
  std::atomic<int64_t> asked{0};
  std::thread reader([&] {
    while (!stop.load()) {
      Result<Value> sum = engine_->Invoke(kModule, "sum", {});
      Result<Value> count = engine_->Invoke(kModule, "count", {});
      if (!sum.ok() || !count.ok()) {
        ++wrong;
        continue;
      }
      ++asked;
    }
  });
  // Every key gets value 1 once: after n processed appends, sum() >= n.
  for (int i = 0; i < 1500; ++i) {
    Put("key" + std::to_string(i), 1);
    const int64_t sum = Must(engine_->Invoke(kModule, "sum", {})).as_int();
    if (sum < i + 1) ++wrong;
  }
  stop = true;
  reader.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(asked.load(), 0);
  EXPECT_EQ(Invoke("sum"), Value(1500));
}

TEST_F(QueryTest, SelectPageWalksEveryPartitionInKeyOrder) {
  constexpr int kKeys = 2000;
  std::vector<Value> records;
  for (int i = 0; i < kKeys; ++i) {
    records.push_back(Value::MapOf({{"key", "k" + std::to_string(i)}, {"value", i}}));
  }
  ASSERT_TRUE(engine_->AppendBatch(kModule, "*items", records, AckLevel::kProcessed).ok());

  std::map<std::string, int64_t> seen;
  std::string token;
  int pages = 0;
  std::string previous;
  do {
    SelectPageResult page =
        Must(engine_->SelectPage(kModule, "$$values", Path().All(), token, 150));
    ++pages;
    for (const Value& entry : page.values) {
      const std::string key = entry.as_list()[0].as_string();
      EXPECT_TRUE(seen.emplace(key, entry.as_list()[1].as_int()).second) << key << " twice";
    }
    ASSERT_LE(page.values.size(), 150u);
    ASSERT_FALSE(page.values.empty()) << "page " << pages << ": a token led to an empty page";
    token = page.next_token;
    ASSERT_LT(pages, 100) << "no end";
  } while (!token.empty());
  EXPECT_EQ(seen.size(), static_cast<size_t>(kKeys));
  for (const auto& [k, v] : seen) EXPECT_EQ("k" + std::to_string(v), k);

  // map_keys and an empty path (the page's view itself, one map per partition part).
  SelectPageResult keys = Must(engine_->SelectPage(kModule, "$$values", Path().MapKeys(), "", 10));
  ASSERT_EQ(keys.values.size(), 10u);
  EXPECT_TRUE(std::is_sorted(keys.values.begin(), keys.values.end()));
  SelectPageResult view = Must(engine_->SelectPage(kModule, "$$values", Path(), "", 10));
  ASSERT_EQ(view.values.size(), 1u);
  EXPECT_EQ(view.values[0].size(), 10u);

  // A global PState has one partition.
  SelectPageResult global = Must(engine_->SelectPage(kModule, "$$count", Path().All(), "", 10));
  EXPECT_EQ(global.values, std::vector<Value>{Value::ListOf({"items", kKeys})});
  EXPECT_TRUE(global.next_token.empty());
}

// Pages that end exactly where partitions end: the last page has no token, and a token
// always leads to a page with entries.
TEST_F(QueryTest, SelectPageEndsWithoutAnEmptyPage) {
  for (int i = 0; i < 7; ++i) Put("k" + std::to_string(i), i);
  for (int64_t limit : {1, 2, 7, 8}) {
    std::string token;
    size_t seen = 0;
    int pages = 0;
    do {
      SelectPageResult page =
          Must(engine_->SelectPage(kModule, "$$values", Path().MapKeys(), token, limit));
      ASSERT_FALSE(page.values.empty()) << "limit " << limit << ", page " << pages;
      seen += page.values.size();
      token = page.next_token;
      ASSERT_LT(++pages, 20);
    } while (!token.empty());
    EXPECT_EQ(seen, 7u) << "limit " << limit;
    EXPECT_EQ(pages, (7 + limit - 1) / limit) << "limit " << limit;
  }
  // A global PState: one partition, one page.
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  SelectPageResult global = Must(engine_->SelectPage(kModule, "$$count", Path().All(), "", 1));
  EXPECT_EQ(global.values, std::vector<Value>{Value::ListOf({"items", 7})});
  EXPECT_TRUE(global.next_token.empty());
}

TEST_F(QueryTest, SelectPageRefusesBadInput) {
  EXPECT_EQ(engine_->SelectPage(kModule, "$$values", Path().All(), "", 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->SelectPage(kModule, "$$values", Path().All(), "", 10001).status().code(),
            StatusCode::kInvalidArgument);
  Status bad = engine_->SelectPage(kModule, "$$values", Path().All(), "garbage", 10).status();
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("page token"));
  EXPECT_EQ(engine_->SelectPage(kModule, "$$values", Path().All().Set(1), "", 10).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->SelectPage(kModule, "$$nope", Path().All(), "", 10).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace strata
