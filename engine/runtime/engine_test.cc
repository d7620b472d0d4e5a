// The embedded engine with a real WiredTiger in a temp dir and the real test plugin
// testdata/rt_test_module.cc (its paths come from compile definitions).
#include "strata/engine.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/testing/engine_fixture.h"
#include "strata/key_codec.h"

namespace strata {
namespace {

using testing::EngineFixture;
using ::testing::HasSubstr;
using testing::kMaxStepAttempts;
using testing::kPartitions;
using testing::KV;
using testing::Must;
using testing::SmallEngineOptions;

class EngineTest : public EngineFixture {};

TEST_F(EngineTest, AckLevelsReportWhatTheyPromise) {
  Open();
  Result<AppendResult> none = engine_->Append("rt_test", "*kv", KV("a", 1), AckLevel::kNone);
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->offset, -1);
  EXPECT_GE(none->partition, 0);
  EXPECT_TRUE(none->ack_returns.empty());

  Result<AppendResult> appended =
      engine_->Append("rt_test", "*kv", KV("b", 2), AckLevel::kAppended);
  ASSERT_TRUE(appended.ok()) << appended.status().ToString();
  EXPECT_GE(appended->offset, 0);
  EXPECT_TRUE(appended->ack_returns.empty());

  Result<AppendResult> processed = engine_->Append("rt_test", "*kv", KV("c", 3));
  ASSERT_TRUE(processed.ok()) << processed.status().ToString();
  EXPECT_GE(processed->offset, 0);
  ASSERT_EQ(processed->ack_returns.size(), 1u);
  EXPECT_EQ(processed->ack_returns[0].first, "kv");
  EXPECT_EQ(processed->ack_returns[0].second, Value::ListOf({processed->partition, 3}));
  EXPECT_TRUE(processed->failure.ok());
  // Read-your-writes right after the processed ack, including the global hop.
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$kv", Path().Key("c"))), Value(3));

  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$kv", Path().Key("a"))), Value(1));
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$totals", Path().Key("records"))), Value(3));
  // The processed ack of the last record comes after its global hop: a fresh record shows.
  ASSERT_TRUE(engine_->Append("rt_test", "*kv", KV("d", 4)).ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$totals", Path().Key("records"))), Value(4));
}

TEST_F(EngineTest, TwoHopTopologyFinishesBeforeProcessedAck) {
  Open();
  std::vector<Value> sentences = {"the cat", "the dog and the cat", "a bird"};
  Result<std::vector<AppendResult>> results =
      engine_->AppendBatch("rt_test", "*sentences", sentences, AckLevel::kProcessed);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  ASSERT_EQ(results->size(), 3u);
  EXPECT_EQ((*results)[1].ack_returns,
            (std::vector<std::pair<std::string, Value>>{{"wordcount", 5}}));
  // Every word sits on the partition of its hash; each select finds it there.
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$word_counts", Path().Key("the"))), Value(3));
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$word_counts", Path().Key("cat"))), Value(2));
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$word_counts", Path().Key("bird"))), Value(1));
}

const ModuleMetrics* FindModule(const EngineMetrics& metrics, const std::string& name) {
  for (const ModuleMetrics& m : metrics.modules) {
    if (m.module == name) return &m;
  }
  return nullptr;
}

TEST_F(EngineTest, MetricsCountAppendsStepsProgressAndFlushes) {
  Open();
  const EngineMetrics before = engine_->Metrics();
  const ModuleMetrics* idle = FindModule(before, "rt_test");
  ASSERT_NE(idle, nullptr);
  EXPECT_TRUE(idle->load_error.empty());
  EXPECT_GT(before.cache_bytes, 0);
  EXPECT_GE(before.cache_dirty_bytes, 0);
  EXPECT_GE(before.checkpoints, 0);
  EXPECT_EQ(before.max_in_flight_records, SmallEngineOptions(data_dir()).max_in_flight_records);

  const std::vector<Value> sentences = {"the cat", "the dog and the cat", "a bird"};
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*sentences", sentences).ok());
  const EngineMetrics after = engine_->Metrics();
  const ModuleMetrics* m = FindModule(after, "rt_test");
  ASSERT_NE(m, nullptr);
  const auto depot = std::find_if(m->depots.begin(), m->depots.end(),
                                  [](const DepotMetrics& d) { return d.depot == "*sentences"; });
  ASSERT_NE(depot, m->depots.end());
  EXPECT_EQ(depot->appends, 3);
  EXPECT_EQ(depot->records, 3);
  // Each record is its encoded value: at least its characters.
  EXPECT_GE(depot->append_bytes, int64_t{7 + 19 + 6});
  const auto topology =
      std::find_if(m->topologies.begin(), m->topologies.end(),
                   [](const TopologyMetrics& t) { return t.topology == "wordcount"; });
  ASSERT_NE(topology, m->topologies.end());
  EXPECT_EQ(topology->kind, "stream");
  // Three sentence events, then one per word hop (9 words).
  EXPECT_GE(topology->steps.count(), 3u + 9u);
  int64_t processed = 0;
  for (const TopologyPartitionStats& p : topology->partitions) {
    EXPECT_EQ(p.depot, "*sentences");
    EXPECT_EQ(p.lag, 0) << p.partition;
    processed += p.processed_offset;
  }
  EXPECT_EQ(processed, 3);
  EXPECT_EQ(topology->partitions.size(), static_cast<size_t>(kPartitions));
  EXPECT_EQ(after.in_flight_records, 0);
  // The processed acks waited for durability: the flusher fsync'd at least once.
  EXPECT_GT(after.log_flushes.count(), before.log_flushes.count());
  // One append call (three records): one observation of each phase, processing included.
  using Phase = HistogramSnapshot EngineMetrics::AppendPhases::*;
  for (Phase phase :
       {&EngineMetrics::AppendPhases::queued, &EngineMetrics::AppendPhases::appended,
        &EngineMetrics::AppendPhases::flush_wait, &EngineMetrics::AppendPhases::processing}) {
    EXPECT_EQ((after.append_phases.*phase).count(), (before.append_phases.*phase).count() + 1);
  }
  // An append acknowledged when durable has no processing phase.
  ASSERT_TRUE(
      engine_->AppendBatch("rt_test", "*sentences", {Value("x")}, AckLevel::kAppended).ok());
  const EngineMetrics appended = engine_->Metrics();
  EXPECT_EQ(appended.append_phases.flush_wait.count(), after.append_phases.flush_wait.count() + 1);
  EXPECT_EQ(appended.append_phases.processing.count(), after.append_phases.processing.count());
}

TEST_F(EngineTest, ConcurrentProducersKeepPerPartitionOrder) {
  Open();
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 600;
  std::vector<std::thread> producers;
  std::atomic<int> errors{0};
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      const std::string producer = "producer" + std::to_string(p);
      int next = 0;
      while (next < kPerProducer) {
        // Mixed batch sizes and ack levels; nothing waits between batches.
        const int n = std::min(1 + next % 7, kPerProducer - next);
        std::vector<Value> batch;
        for (int i = 0; i < n; ++i) {
          batch.push_back(Value::MapOf({{"producer", producer}, {"seq", next + i}}));
        }
        next += n;
        engine_->AppendAsync("rt_test", "*seq", std::move(batch),
                             next % 2 ? AckLevel::kNone : AckLevel::kAppended,
                             [&](Result<std::vector<AppendResult>> r) {
                               if (!r.ok()) errors.fetch_add(1);
                             });
      }
    });
  }
  for (auto& t : producers) t.join();
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(errors.load(), 0);
  for (int p = 0; p < kProducers; ++p) {
    const std::string producer = "producer" + std::to_string(p);
    std::vector<Value> seqs =
        Must(engine_->Select("rt_test", "$$sequences", Path().Key(producer).All()));
    ASSERT_EQ(seqs.size(), static_cast<size_t>(kPerProducer)) << producer;
    for (int i = 0; i < kPerProducer; ++i) ASSERT_EQ(seqs[i], Value(i)) << producer << " at " << i;
  }
}

TEST_F(EngineTest, FailingStepIsRetriedRecordedAndReported) {
  Open();
  std::vector<Value> records;
  for (int n = 1; n <= 12; ++n) records.push_back(n);
  Result<std::vector<AppendResult>> results = engine_->AppendBatch("rt_test", "*flaky", records);
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  for (int n = 1; n <= 12; ++n) {
    const AppendResult& r = (*results)[n - 1];
    if (n % 5 == 0) {
      EXPECT_EQ(r.failure.code(), StatusCode::kUserError) << n;
      EXPECT_THAT(r.failure.message(), HasSubstr("topology flaky"));
      EXPECT_THAT(r.failure.message(), HasSubstr("is a multiple of 5"));
      EXPECT_EQ(FlakyAttempts(n), kMaxStepAttempts) << n;
    } else {
      EXPECT_TRUE(r.failure.ok()) << n << ": " << r.failure.ToString();
      // A record whose event shared a transaction with a failing one ran again alone after
      // the rollback (docs/runtime.md, "Event groups"): its code ran twice, its effect once.
      EXPECT_GE(FlakyAttempts(n), 1) << n;
      EXPECT_LE(FlakyAttempts(n), 2) << n;
      EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$flaky_ok", Path().Key(n), Value(n))),
                Value(1));
    }
  }
  // The blocking single append returns the failure as its error; later records go on.
  Result<AppendResult> fifteen = engine_->Append("rt_test", "*flaky", 15);
  EXPECT_EQ(fifteen.status().code(), StatusCode::kUserError);
  ASSERT_TRUE(engine_->Append("rt_test", "*flaky", 16).ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$flaky_ok", Path().Key(16), Value(16))), Value(1));

  ModuleStats stats = Must(engine_->Stats("rt_test"));
  EXPECT_EQ(stats.failures, 3);
  ASSERT_EQ(stats.failure_page.size(), 3u);
  for (const TopologyFailure& f : stats.failure_page) {
    EXPECT_EQ(f.topology, "flaky");
    EXPECT_EQ(f.depot, "*flaky");
    EXPECT_THAT(f.message, HasSubstr("is a multiple of 5"));
    Result<std::vector<DepotEntry>> entry =
        engine_->ReadDepot("rt_test", "*flaky", f.partition, f.offset, f.offset + 1, 1);
    ASSERT_TRUE(entry.ok() && entry->size() == 1);
    EXPECT_EQ((*entry)[0].record.as_int() % 5, 0);
  }
  for (const TopologyPartitionStats& t : stats.topologies) EXPECT_EQ(t.lag, 0) << t.topology;
}

// A step that fails rolls back the event group it ran in: the group's earlier members run
// again alone, so their code runs twice while their effects are applied once. A batch of 40
// records over the partitions puts successes before failures (multiples of 5) in one group;
// a group can be cut short by a pause of 1 ms, so up to 3 batches are tried.
TEST_F(EngineTest, AFailingStepRerunsTheOtherMembersOfItsGroupWithEffectsOnce) {
  Open();
  int reruns = 0;
  for (int round = 0; round < 3 && reruns == 0; ++round) {
    std::vector<Value> records;
    for (int n = 1; n <= 40; ++n) records.push_back(1000 * round + n);
    Result<std::vector<AppendResult>> results = engine_->AppendBatch("rt_test", "*flaky", records);
    ASSERT_TRUE(results.ok()) << results.status().ToString();
    for (const Value& record : records) {
      const int64_t n = record.as_int();
      if (n % 5 == 0) continue;
      const int attempts = FlakyAttempts(n);
      EXPECT_TRUE(attempts == 1 || attempts == 2) << n << " ran " << attempts << " times";
      if (attempts == 2) ++reruns;
      EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$flaky_ok", Path().Key(n), record)), Value(1))
          << n;
    }
  }
  EXPECT_GT(reruns, 0) << "no record shared an event group with a failing one";
}

// Every branch of a fanned-out record fails: one failure per (topology, record), in the
// count and in the failure page alike, with the first branch's message; still so after a
// restart.
TEST_F(EngineTest, FailingBranchesOfOneRecordAreOneFailure) {
  static_assert(kPartitions > 1);
  Open();
  Result<std::vector<AppendResult>> results =
      engine_->AppendBatch("rt_test", "*fanout", {Value("a"), Value("b")});
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  for (const AppendResult& r : *results) {
    EXPECT_EQ(r.failure.code(), StatusCode::kUserError);
    EXPECT_THAT(r.failure.message(), HasSubstr("topology fanout_fail"));
  }
  auto check = [&](const std::string& when) {
    ModuleStats stats = Must(engine_->Stats("rt_test"));
    EXPECT_EQ(stats.failures, 2) << when;
    ASSERT_EQ(stats.failure_page.size(), 2u) << when;
    std::set<std::pair<int, int64_t>> records;
    for (const TopologyFailure& f : stats.failure_page) {
      EXPECT_EQ(f.topology, "fanout_fail") << when;
      EXPECT_EQ(f.depot, "*fanout") << when;
      EXPECT_THAT(f.message, HasSubstr("refuses")) << when;
      records.insert({f.partition, f.offset});
    }
    EXPECT_EQ(records.size(), 2u) << when;
    for (const TopologyPartitionStats& t : stats.topologies) EXPECT_EQ(t.lag, 0) << when;
  };
  check("after processing");
  Reopen();
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  check("after a restart");
}

// The records in a depot, over its partitions.
int64_t RecordsIn(Engine& engine, const std::string& depot) {
  int64_t records = 0;
  for (const DepotPartitionStats& d : Must(engine.Stats("rt_test")).depots) {
    if (d.depot == depot) records += d.end_offset - d.start_offset;
  }
  return records;
}

// A failing step's message quotes its whole 1 MB record; the recorded failure keeps about
// 1 KB of it, and so do the appender's error and every stats answer, also after a restart.
TEST_F(EngineTest, FailureMessagesOfHugeRecordsAreCut) {
  Open();
  const std::string huge(1 << 20, 'x');
  Result<std::vector<AppendResult>> results =
      engine_->AppendBatch("rt_test", "*fanout", {Value(huge), Value(huge + "y")});
  ASSERT_TRUE(results.ok()) << results.status().ToString();
  for (const AppendResult& r : *results) {
    EXPECT_EQ(r.failure.code(), StatusCode::kUserError);
    EXPECT_LT(r.failure.message().size(), kMaxFailureMessageBytes + 200)
        << r.failure.message().size();
    EXPECT_THAT(r.failure.message(), HasSubstr("refuses \"xxx"));
  }
  auto check = [&](const std::string& when) {
    ModuleStats stats = Must(engine_->Stats("rt_test"));
    EXPECT_EQ(stats.failures, 2) << when;
    ASSERT_EQ(stats.failure_page.size(), 2u) << when;
    for (const TopologyFailure& f : stats.failure_page) {
      EXPECT_LE(f.message.size(), kMaxFailureMessageBytes) << when;
      EXPECT_THAT(f.message, HasSubstr("refuses \"xxx")) << when;
      EXPECT_THAT(f.message, ::testing::EndsWith(" bytes more)")) << when;
      EXPECT_THAT(f.message, HasSubstr(" (104")) << when;  // 1 MB and a little, cut
      // The record itself is where the failure says.
      std::vector<DepotEntry> entry =
          Must(engine_->ReadDepot("rt_test", "*fanout", f.partition, f.offset, f.offset + 1, 1));
      ASSERT_EQ(entry.size(), 1u) << when;
      EXPECT_TRUE(entry[0].record.as_string().starts_with(huge)) << when;
    }
  };
  check("after processing");
  Reopen();
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  check("after a restart");
}

// Stats lists the failures at [from, from + limit) in (topology, depot, partition, offset)
// order and always counts them all.
TEST_F(EngineTest, StatsPagesFailures) {
  Open();
  std::vector<Value> records;
  for (int n = 1; n <= 60; ++n) records.push_back(5 * n);  // every one fails
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*flaky", records).ok());
  ModuleStats all =
      Must(engine_->Stats("rt_test", StatsOptions{0, StatsOptions::kMaxFailuresLimit}));
  EXPECT_EQ(all.failures, 60);
  ASSERT_EQ(all.failure_page.size(), 60u);
  auto order = [](const TopologyFailure& f) {
    return std::make_tuple(f.topology, f.depot, f.partition, f.offset);
  };
  for (size_t i = 1; i < all.failure_page.size(); ++i) {
    EXPECT_LT(order(all.failure_page[i - 1]), order(all.failure_page[i])) << i;
  }
  EXPECT_EQ(Must(engine_->Stats("rt_test")).failure_page.size(), 60u);  // default limit 100

  std::vector<TopologyFailure> paged;
  for (int64_t from = 0; from < 70; from += 25) {
    ModuleStats page = Must(engine_->Stats("rt_test", StatsOptions{from, 25}));
    EXPECT_EQ(page.failures, 60) << from;
    EXPECT_EQ(page.failure_page.size(), static_cast<size_t>(std::clamp<int64_t>(60 - from, 0, 25)))
        << from;
    paged.insert(paged.end(), page.failure_page.begin(), page.failure_page.end());
  }
  ASSERT_EQ(paged.size(), all.failure_page.size());
  for (size_t i = 0; i < paged.size(); ++i)
    EXPECT_EQ(order(paged[i]), order(all.failure_page[i])) << i;

  ModuleStats count_only = Must(engine_->Stats("rt_test", StatsOptions{0, 0}));
  EXPECT_EQ(count_only.failures, 60);
  EXPECT_TRUE(count_only.failure_page.empty());
  EXPECT_EQ(engine_->Stats("rt_test", StatsOptions{-1, 10}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Stats("rt_test", StatsOptions{0, StatsOptions::kMaxFailuresLimit + 1})
                .status()
                .code(),
            StatusCode::kInvalidArgument);

  Reopen();
  ModuleStats after = Must(engine_->Stats("rt_test", StatsOptions{50, 25}));
  EXPECT_EQ(after.failures, 60);
  ASSERT_EQ(after.failure_page.size(), 10u);
  EXPECT_EQ(order(after.failure_page[0]), order(all.failure_page[50]));
}

// A depot's record schema refuses a batch with one mistyped record as a whole, before the
// log, naming the record, the path in it, the expected type and the value.
TEST_F(EngineTest, RecordSchemaRefusesABadBatchBeforeTheLog) {
  Open();
  auto typed = [](const std::string& k, Value n) {
    return Value::MapOf({{"k", k}, {"n", std::move(n)}});
  };
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*typed", {typed("a", 1), typed("b", 2)}).ok());
  EXPECT_EQ(RecordsIn(*engine_, "*typed"), 2);

  Result<std::vector<AppendResult>> bad =
      engine_->AppendBatch("rt_test", "*typed", {typed("c", 3), typed("d", "ten"), typed("e", 5)});
  ASSERT_EQ(bad.status().code(), StatusCode::kSchemaViolation) << bad.status().ToString();
  EXPECT_THAT(bad.status().message(), HasSubstr("record 1 of the batch of 3"));
  EXPECT_THAT(bad.status().message(), HasSubstr("no record of the batch was appended"));
  EXPECT_THAT(bad.status().message(), HasSubstr("*typed.n: expected int64, got string \"ten\""));

  for (AckLevel level : {AckLevel::kNone, AckLevel::kAppended, AckLevel::kProcessed}) {
    Result<AppendResult> nested = engine_->Append(
        "rt_test", "*typed",
        Value::MapOf({{"k", "f"}, {"n", 6}, {"tags", Value::ListOf({"ok", 7})}}), level);
    EXPECT_EQ(nested.status().code(), StatusCode::kSchemaViolation);
    EXPECT_THAT(nested.status().message(), HasSubstr("*typed.tags[1]: expected string, got int 7"));
  }
  Result<AppendResult> unknown =
      engine_->Append("rt_test", "*typed", Value::MapOf({{"k", "g"}, {"n", 1}, {"x", 1}}));
  EXPECT_EQ(unknown.status().code(), StatusCode::kSchemaViolation);
  EXPECT_THAT(unknown.status().message(), HasSubstr("*typed: unknown field \"x\""));
  Result<AppendResult> not_a_map = engine_->Append("rt_test", "*typed", Value(12));
  EXPECT_EQ(not_a_map.status().code(), StatusCode::kSchemaViolation);
  EXPECT_THAT(not_a_map.status().message(), HasSubstr("*typed: expected record{"));

  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(RecordsIn(*engine_, "*typed"), 2);
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$typed", Path().Key("c"))), Value());
  EXPECT_EQ(Must(engine_->Stats("rt_test")).failures, 0);
  // A good record still goes in, with a list of strings.
  ASSERT_TRUE(engine_
                  ->Append("rt_test", "*typed",
                           Value::MapOf({{"k", "h"}, {"n", 8}, {"tags", Value::ListOf({"x"})}}))
                  .ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$typed", Path().Key("h"))), Value(8));

  ModuleInfo info = Must(engine_->Describe("rt_test"));
  for (const DepotInfo& d : info.depots) {
    if (d.name == "*typed") {
      EXPECT_EQ(d.record_schema.ToString(), "record{k: string, n: int64, tags: list<string>}");
    } else {
      EXPECT_EQ(d.record_schema.kind(), Schema::Kind::kAny) << d.name;
    }
  }
}

TEST_F(EngineTest, GlobalPStateIsWrittenOnlyFromPartitionZero) {
  Open();
  bool saw_zero = false, saw_other = false;
  for (int i = 0; i < 40 && !(saw_zero && saw_other); ++i) {
    Result<std::vector<AppendResult>> r = engine_->AppendBatch("rt_test", "*gw", {Value(i)});
    ASSERT_TRUE(r.ok());
    const AppendResult& result = (*r)[0];
    if (result.partition == 0) {
      saw_zero = true;
      EXPECT_TRUE(result.failure.ok()) << result.failure.ToString();
    } else {
      saw_other = true;
      EXPECT_EQ(result.failure.code(), StatusCode::kUserError);
      EXPECT_THAT(result.failure.message(), HasSubstr("route with Global() first"));
    }
  }
  EXPECT_TRUE(saw_zero && saw_other);
  // A global PState is read without a partition key.
  EXPECT_TRUE(engine_->Select("rt_test", "$$totals", Path().All()).ok());
}

TEST_F(EngineTest, ReadsAndNameErrors) {
  Open();
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*kv", {KV("x", 1), KV("x", 2)}).ok());
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  int total = 0;
  for (const DepotPartitionStats& d : stats.depots) {
    if (d.depot != "*kv") continue;
    std::vector<DepotEntry> entries =
        Must(engine_->ReadDepot("rt_test", "*kv", d.partition, 0, INT64_MAX, 100));
    ASSERT_EQ(static_cast<int64_t>(entries.size()), d.end_offset);
    for (const DepotEntry& e : entries) EXPECT_EQ(*e.record.Find("key"), Value("x"));
    total += static_cast<int>(entries.size());
  }
  EXPECT_EQ(total, 2);
  EXPECT_EQ(engine_->Select("rt_test", "$$kv", Path().All()).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(Must(engine_->Select("rt_test", "$$kv", Path().MapVals(), Value("x"))),
            std::vector<Value>{2});
  EXPECT_EQ(engine_->Select("nope", "$$kv", Path().Key("x")).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->Select("rt_test", "$$nope", Path().Key("x")).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(engine_->Append("rt_test", "*nope", 1).status().code(), StatusCode::kNotFound);
  Result<AppendResult> derived = engine_->Append("rt_test", "*derived", 1);
  EXPECT_EQ(derived.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(derived.status().message(), HasSubstr("*derived"));
  EXPECT_EQ(engine_->ReadDepot("rt_test", "*kv", kPartitions, 0, 1, 1).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(EngineTest, RestartKeepsModulesDataProgressAndFailures) {
  Open();
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*sentences", {"one two", "two"}).ok());
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*flaky", {Value(5), Value(6)}).ok());
  Reopen();
  std::vector<ModuleInfo> modules = Must(engine_->Modules());
  ASSERT_EQ(modules.size(), 1u);
  EXPECT_EQ(modules[0].name, "rt_test");
  EXPECT_EQ(modules[0].partitions, kPartitions);
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  // Nothing was replayed twice: counts are exact after a clean close.
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$word_counts", Path().Key("two"))), Value(2));
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  EXPECT_EQ(stats.failures, 1);
  for (const TopologyPartitionStats& t : stats.topologies) EXPECT_EQ(t.lag, 0);
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*sentences", {"two"}).ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$word_counts", Path().Key("two"))), Value(3));
}

// A deployed module whose copy cannot be reloaded does not fail Open: it is reported as
// failed, naming its file, and its requests fail naming it (module_failure_test.cc has the
// other cases).
TEST_F(EngineTest, OpenReportsAModuleThatCannotBeReloaded) {
  Open();
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*sentences", {"one two"}).ok());
  engine_.reset();
  ASSERT_TRUE(std::filesystem::remove(dir_.Sub("data/modules/rt_test.so")));
  Result<std::unique_ptr<Engine>> engine = Engine::Open(testing::SmallEngineOptions(data_dir()));
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  ModuleInfo info = Must((*engine)->Describe("rt_test"));
  EXPECT_THAT(info.load_error,
              HasSubstr("no module file at " + dir_.Sub("data/modules/rt_test.so")));
  Status append = (*engine)->AppendBatch("rt_test", "*sentences", {"three"}).status();
  EXPECT_EQ(append.code(), StatusCode::kNotFound);
  EXPECT_THAT(append.message(), HasSubstr("module rt_test is deployed but failed to load"));
}

// Appends queued while their partition's owner is busy are appended together, but in
// bounded transactions, and never while the thread has an event group open: 60 separate
// 1 MiB appends queued behind a held step, after a record of another partition whose event
// opens a group, all succeed with a 64 MiB cache. (Appending them in one transaction on a
// second session while the group's transaction was open hung the thread in WiredTiger's
// eviction, which can only roll back the oldest transaction — the group's.)
TEST_F(EngineTest, ManyLargeAppendsQueuedForABusyPartitionAllSucceed) {
  EngineOptions options = testing::SmallEngineOptions(data_dir());
  options.task_threads = 1;
  OpenWith(options);
  const int k_partition = Must(engine_->Append("rt_test", "*kv", KV("k", 0))).partition;
  std::string other;
  for (char c = 'a'; c <= 'z' && other.empty(); ++c) {
    const std::string key(1, c);
    if (Must(engine_->Append("rt_test", "*kv", KV(key, 0))).partition != k_partition) other = key;
  }
  ASSERT_FALSE(other.empty());
  SetGate(false);
  std::promise<void> gate_done;
  engine_->AppendAsync("rt_test", "*gate", {Value(1)}, AckLevel::kProcessed,
                       [&](Result<std::vector<AppendResult>>) { gate_done.set_value(); });
  ASSERT_TRUE(WaitForGateWaiters(1)) << "the gate step never started";  // it holds the thread
  constexpr int kAppends = 60;
  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  std::vector<std::string> errors;
  auto done = [&](Result<std::vector<AppendResult>> r) {
    std::lock_guard lock(mu);
    if (!r.ok()) errors.push_back(r.status().ToString());
    ++finished;
    cv.notify_all();
  };
  engine_->AppendAsync("rt_test", "*kv", {KV(other, 1)}, AckLevel::kAppended, done);
  const std::string big(1 << 20, 'x');
  for (int i = 0; i < kAppends; ++i) {
    engine_->AppendAsync("rt_test", "*kv", {KV("k", Value(big + std::to_string(i)))},
                         AckLevel::kAppended, done);
  }
  SetGate(true);
  gate_done.get_future().wait();
  std::unique_lock lock(mu);
  if (!cv.wait_for(lock, std::chrono::seconds(60), [&] { return finished == kAppends + 1; })) {
    // The engine is wedged: its destructor would wait for ever.
    ADD_FAILURE() << finished << " of " << kAppends + 1 << " appends finished in 60 s";
    std::fflush(nullptr);
    std::_Exit(1);
  }
  EXPECT_TRUE(errors.empty()) << errors.size() << " failed, first: " << errors.front();
  lock.unlock();
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$kv", Path().Key("k"))),
            Value(big + std::to_string(kAppends - 1)));
}

// At the in-flight limit AppendAsync still returns at once (stratad calls it on network
// threads); the batch is admitted, in call order, when records complete.
TEST_F(EngineTest, AppendAsyncNeverBlocksAtTheInFlightLimit) {
  EngineOptions options = testing::SmallEngineOptions(data_dir());
  options.max_in_flight_records = 2;
  OpenWith(options);
  SetGate(false);
  std::promise<Result<std::vector<AppendResult>>> held;
  engine_->AppendAsync("rt_test", "*gate", {Value(1), Value(2)}, AckLevel::kProcessed,
                       [&](Result<std::vector<AppendResult>> r) { held.set_value(std::move(r)); });
  std::promise<Result<std::vector<AppendResult>>> waiting;
  std::future<void> call = std::async(std::launch::async, [&] {
    engine_->AppendAsync(
        "rt_test", "*kv", {KV("k", 1)}, AckLevel::kNone,
        [&](Result<std::vector<AppendResult>> r) { waiting.set_value(std::move(r)); });
  });
  // A correct AppendAsync returns at once; one that blocks would wait for the gate, which
  // opens only below, so the bound is only how long a broken build takes to fail.
  const bool returned = call.wait_for(std::chrono::seconds(60)) == std::future_status::ready;
  std::future<Result<std::vector<AppendResult>>> admitted = waiting.get_future();
  // Not admitted while the limit is held, not even with kNone.
  EXPECT_EQ(admitted.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  SetGate(true);
  EXPECT_TRUE(returned) << "AppendAsync blocked its caller at the in-flight limit";
  call.wait();
  Result<std::vector<AppendResult>> first = held.get_future().get();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  Result<std::vector<AppendResult>> second = admitted.get();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$kv", Path().Key("k"))), Value(1));
}

// kNone answers at admission, but only after its records are queued: a WaitProcessed that
// starts while `done` is still running already covers them. (`done` holds the admitting
// thread here so that the other thread's WaitProcessed runs inside that window.)
TEST_F(EngineTest, WaitProcessedAfterAnAckNoneCoversItsRecords) {
  Open();
  std::promise<void> answered;
  std::future<Value> seen = std::async(std::launch::async, [&] {
    answered.get_future().wait();
    Status waited = engine_->WaitProcessed("rt_test");
    EXPECT_TRUE(waited.ok()) << waited.ToString();
    return Must(engine_->SelectOne("rt_test", "$$kv", Path().Key("quick")));
  });
  engine_->AppendAsync("rt_test", "*kv", {KV("quick", 7)}, AckLevel::kNone,
                       [&](Result<std::vector<AppendResult>> r) {
                         EXPECT_TRUE(r.ok()) << r.status().ToString();
                         answered.set_value();
                         std::this_thread::sleep_for(std::chrono::milliseconds(300));
                       });
  EXPECT_EQ(seen.get(), Value(7));
}

TEST_F(EngineTest, DeployErrors) {
  Open();
  Result<ModuleInfo> missing = engine_->Deploy(dir_.Sub("missing.so"), {});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("missing.so"));

  Result<ModuleInfo> mismatched = engine_->Deploy(STRATA_MISMATCHED_ABI_MODULE, {});
  ASSERT_FALSE(mismatched.ok());
  EXPECT_THAT(mismatched.status().message(), HasSubstr("strata-sdk/999"));
  EXPECT_THAT(mismatched.status().message(), HasSubstr("strata-sdk/5 "));

  EXPECT_EQ(engine_->Deploy(STRATA_RT_TEST_MODULE, {}).status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(engine_->Deploy(STRATA_RT_TEST_MODULE, {.partitions = 0}).status().code(),
            StatusCode::kInvalidArgument);
  // Failed deploys leave no file behind: only the deployed module's copy.
  std::vector<std::string> files;
  for (const auto& e : std::filesystem::directory_iterator(dir_.Sub("data/modules"))) {
    files.push_back(e.path().filename().string());
  }
  EXPECT_EQ(files, std::vector<std::string>{"rt_test.so"});
}

TEST_F(EngineTest, DestroyRemovesTheModuleAndItsData) {
  Open();
  ASSERT_TRUE(engine_->Append("rt_test", "*kv", KV("k", 7)).ok());
  ASSERT_TRUE(engine_->Append("rt_test", "*flaky", 5).status().code() == StatusCode::kUserError);
  ASSERT_TRUE(engine_->Destroy("rt_test").ok());
  EXPECT_TRUE(Must(engine_->Modules()).empty());
  EXPECT_EQ(engine_->Describe("rt_test").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(engine_->Append("rt_test", "*kv", KV("k", 8)).status().code(), StatusCode::kNotFound);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("data/modules/rt_test.so")));
  EXPECT_EQ(engine_->Destroy("rt_test").code(), StatusCode::kNotFound);

  // A new deployment starts empty, also after a restart.
  ASSERT_TRUE(engine_->Deploy(STRATA_RT_TEST_MODULE, {.partitions = kPartitions}).ok());
  Reopen();
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$kv", Path().Key("k"))), Value());
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  EXPECT_EQ(stats.failures, 0);
  for (const DepotPartitionStats& d : stats.depots) EXPECT_EQ(d.end_offset, 0);
}

TEST_F(EngineTest, TopologyAppendsAreProcessedBeforeTheSourceIsProcessed) {
  Open();
  ASSERT_TRUE(engine_->Append("rt_test", "*crash", Value::MapOf({{"k", "a"}, {"n", 1}})).ok());
  // The derived record's topology ran before the source record's processed ack.
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$derived_sets", Path().Key("a"))),
            Value::SetOf({1}));
}

// Fairness: a record whose fan-out queues a long backlog on one partition of a task thread
// does not hold back another partition's work until the backlog is through. The check is
// a work count: when the other append is processed, the big record is still unfinished
// (with one FIFO queue per thread the append waited for the whole backlog: lag 0).
TEST_F(EngineTest, AHugeFanOutOnOnePartitionDoesNotHoldBackAnotherPartition) {
  EngineOptions options = testing::SmallEngineOptions(data_dir());
  options.task_threads = 1;  // every partition on one thread
  ASSERT_NO_FATAL_FAILURE(OpenWith(options));
  // 60,000 distinct words that all hash to partition 0.
  std::string sentence;
  std::string first_word;
  for (int i = 0, n = 0; n < 60'000; ++i) {
    std::string word = "w";  // appended: g++ 12 warns falsely (-Wrestrict) on "w" + ...
    word += std::to_string(i);
    if (HashKey(Value(word)) % kPartitions != 0) continue;
    if (first_word.empty()) first_word = word;
    sentence += word + " ";
    ++n;
  }
  Must(engine_->Append("rt_test", "*sentences", Value(sentence), AckLevel::kAppended));
  // The split has run and its hops are queued once the first word is counted.
  while (!Must(engine_->Select("rt_test", "$$word_counts", Path().Key(first_word))).size() ||
         Must(engine_->Select("rt_test", "$$word_counts", Path().Key(first_word)))[0].is_nil()) {
    std::this_thread::yield();
  }
  std::string other_key = "p";  // a producer of the `order` topology on another partition
  while (HashKey(Value(other_key)) % kPartitions == 0) other_key += "p";
  Must(engine_->Append("rt_test", "*seq", Value::MapOf({{"producer", other_key}, {"seq", 1}})));
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  int64_t lag = 0;
  for (const TopologyPartitionStats& t : stats.topologies) {
    if (t.topology == "wordcount") lag += t.lag;
  }
  EXPECT_EQ(lag, 1) << "the big sentence was fully processed before the other partition's append";
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(Must(engine_->Select("rt_test", "$$word_counts", Path().Key(first_word))),
            std::vector<Value>{Value(1)});
}

// A step that runs longer than step_timeout_ms is rolled back and recorded as a failure at
// once (no retry); a quick one of the same topology succeeds.
TEST_F(EngineTest, AStepOverTheTimeoutIsARecordedFailureWithoutRetry) {
  EngineOptions options = testing::SmallEngineOptions(data_dir());
  options.step_timeout_ms = 100;
  ASSERT_NO_FATAL_FAILURE(OpenWith(options));
  Result<AppendResult> slow = engine_->Append("rt_test", "*slow", Value(300));
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().code(), StatusCode::kUserError);
  EXPECT_THAT(slow.status().message(), HasSubstr("longer than the step timeout of 100 ms"));
  EXPECT_THAT(slow.status().message(), HasSubstr("after 1 attempt "));  // not retried
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  EXPECT_EQ(stats.failures, 1);
  EXPECT_EQ(Must(engine_->Select("rt_test", "$$slow_done", Path().Key(300))),
            std::vector<Value>{Value()});
  Must(engine_->Append("rt_test", "*slow", Value(1)));
  EXPECT_EQ(Must(engine_->Select("rt_test", "$$slow_done", Path().Key(1))),
            std::vector<Value>{Value(true)});
}

}  // namespace
}  // namespace strata
