// Microbatch topologies (docs/runtime.md, "Microbatch topologies") against a real engine
// with testdata/mb_test_module.cc: exact aggregation, two hops, groups, failures, acks,
// batch appends, ticks, restart, recompute and kill -9 exactly-once.
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "runtime/testing/engine_fixture.h"
#include "strata/testing/test_seed.h"

namespace strata {
namespace {

using testing::Must;
using testing::SmallEngineOptions;

constexpr int kPartitions = 4;
constexpr uint64_t kDefaultSeed = 20261207;
const char* const kModule = "mbtest";

class MicrobatchTest : public ::testing::Test {
 protected:
  std::string data_dir() const { return dir_.Sub("data"); }
  void Open(EngineOptions options) {
    Result<std::unique_ptr<Engine>> engine = Engine::Open(options);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    if (engine_->Describe(kModule).ok()) return;
    ASSERT_TRUE(engine_->Deploy(STRATA_MB_TEST_MODULE, {.partitions = kPartitions}).ok());
  }
  void Open() { Open(SmallEngineOptions(data_dir())); }
  void Reopen() {
    engine_.reset();
    Open();
  }
  void SetGate(bool open) {
    const std::string path = data_dir() + "/modules/mbtest.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    ASSERT_NE(handle, nullptr);
    auto fn = reinterpret_cast<void (*)(bool)>(dlsym(handle, "mb_test_set_gate"));
    ASSERT_NE(fn, nullptr);
    fn(open);
    dlclose(handle);
  }
  int64_t Int(const std::string& pstate, const Value& key) {
    Value v = Must(engine_->SelectOne(kModule, pstate, Path().Key(key)));
    return v.is_nil() ? 0 : v.as_int();
  }
  std::vector<Value> RandomWords(std::mt19937_64& rng, int n) {
    static const char* const kWords[] = {"apple", "avocado", "banana", "berry", "cherry",
                                         "date",  "elder",   "fig",    "grape", "guava"};
    std::vector<Value> out;
    for (int i = 0; i < n; ++i) out.emplace_back(kWords[rng() % 10]);
    return out;
  }
  // Every record of a depot, by partition.
  std::vector<Value> DepotRecords(const std::string& depot) {
    std::vector<Value> out;
    for (int p = 0; p < kPartitions; ++p) {
      for (const DepotEntry& e : Must(engine_->ReadDepot(kModule, depot, p, 0, INT64_MAX, 1 << 30)))
        out.push_back(e.record);
    }
    return out;
  }

  strata::testing::TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(MicrobatchTest, CountsAreExactAndTheProcessedAckSeesTheBatch) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Open();
  std::map<std::string, int64_t> expected;
  for (int round = 0; round < 20; ++round) {
    std::vector<Value> words = RandomWords(rng, 1 + static_cast<int>(rng() % 300));
    for (const Value& w : words) ++expected[w.as_string()];
    Result<std::vector<AppendResult>> r =
        engine_->AppendBatch(kModule, "*words", words, AckLevel::kProcessed);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    // Read-your-writes: the ack came after the batch holding each record committed.
    for (const auto& [w, n] : expected) ASSERT_EQ(Int("$$counts", Value(w)), n) << w;
    for (const AppendResult& a : *r) {
      ASSERT_TRUE(a.failure.ok()) << a.failure.ToString();
      // One nil ack return per microbatch topology consuming *words.
      ASSERT_EQ(a.ack_returns.size(), 2u);
      EXPECT_EQ(a.ack_returns[0].first, "count");
      EXPECT_TRUE(a.ack_returns[0].second.is_nil());
    }
  }
  // The global top 3 by count, ties by word.
  std::vector<std::pair<int64_t, std::string>> ranked;
  for (const auto& [w, n] : expected) ranked.push_back({-n, w});
  std::sort(ranked.begin(), ranked.end());
  Value::List top;
  for (int i = 0; i < 3; ++i) top.push_back(Value::ListOf({ranked[i].second, -ranked[i].first}));
  EXPECT_EQ(Must(engine_->SelectOne(kModule, "$$top", Path().Key("all"))), Value(top));
  // GroupBy: per first letter, the number of words.
  std::map<std::string, int64_t> by_letter;
  for (const auto& [w, n] : expected) by_letter[w.substr(0, 1)] += n;
  for (const auto& [l, n] : by_letter) EXPECT_EQ(Int("$$letters", Value(l)), n) << l;
  // Exact after a restart too (nothing re-applied).
  Reopen();
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  for (const auto& [w, n] : expected) EXPECT_EQ(Int("$$counts", Value(w)), n) << w;
}

TEST_F(MicrobatchTest, ABankOfTwoHopsConservesMoneyAndRecomputesExactly) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Open();
  const int kAccounts = 12;
  auto account = [](int i) {
    std::string a = "acct";  // appended: g++ 12 gives a false -Wrestrict for "acct" + ...
    a += std::to_string(i);
    return a;
  };
  int64_t deposited = 0;
  std::vector<std::future<Result<std::vector<AppendResult>>>> pending;
  for (int i = 0; i < 4000; ++i) {
    Value r;
    if (rng() % 4 == 0) {
      const int64_t amount = static_cast<int64_t>(rng() % 100);
      deposited += amount;
      r = Value::MapOf({{"at", account(static_cast<int>(rng() % kAccounts))}, {"amount", amount}});
    } else {
      r = Value::MapOf({{"at", account(static_cast<int>(rng() % kAccounts))},
                        {"to", account(static_cast<int>(rng() % kAccounts))},
                        {"amount", static_cast<int64_t>(rng() % 60)},
                        {"id", Value(std::to_string(i))}});
    }
    ASSERT_TRUE(engine_->Append(kModule, "*ops", r, AckLevel::kAppended).ok());
  }
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  auto balances = [&] {
    std::map<std::string, int64_t> out;
    for (int i = 0; i < kAccounts; ++i) out[account(i)] = Int("$$balances", Value(account(i)));
    return out;
  };
  std::map<std::string, int64_t> before = balances();
  int64_t total = 0;
  for (const auto& [a, b] : before) {
    EXPECT_GE(b, 0) << a << " is negative";
    total += b;
  }
  EXPECT_EQ(total, deposited) << "money was created or destroyed";
  std::map<std::string, std::string> rejected_before;
  for (const Value& r : DepotRecords("*ops")) {
    if (r.Find(Value("id")) == nullptr) continue;
    const Value id = *r.Find(Value("id"));
    Value v = Must(engine_->SelectOne(kModule, "$$rejected", Path().Key(id)));
    if (!v.is_nil()) rejected_before[id.as_string()] = v.as_string();
  }
  EXPECT_FALSE(rejected_before.empty()) << "the test rejected no transfer";
  // The recompute replays the recorded batches: the same rejections, the same balances.
  ASSERT_TRUE(engine_->Recompute(kModule, {"$$balances", "$$rejected"}).ok());
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  EXPECT_EQ(balances(), before);
  for (const auto& [id, why] : rejected_before) {
    EXPECT_EQ(Must(engine_->SelectOne(kModule, "$$rejected", Path().Key(id))), Value(why)) << id;
  }
  EXPECT_TRUE(Must(engine_->Stats(kModule)).rebuilds.empty());
}

TEST_F(MicrobatchTest, AFailingRecordIsRetriedThenDroppedAndReportedWhileTheBatchCommits) {
  Open();
  Result<std::vector<AppendResult>> r = engine_->AppendBatch(
      kModule, "*words", {Value("fig"), Value("boom"), Value("fig")}, AckLevel::kProcessed);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE((*r)[0].failure.ok());
  EXPECT_FALSE((*r)[1].failure.ok());
  EXPECT_NE((*r)[1].failure.message().find("boom is not a word"), std::string::npos)
      << (*r)[1].failure.ToString();
  EXPECT_EQ(Int("$$counts", Value("fig")), 2);
  EXPECT_EQ(Int("$$counts", Value("boom")), 0);
  // The other topology of the depot took "boom" (its effects are its own).
  EXPECT_EQ(Int("$$letters", Value("b")), 1);
  ModuleStats stats = Must(engine_->Stats(kModule));
  EXPECT_EQ(stats.failures, 1);
  // Later batches go on.
  ASSERT_TRUE(engine_->Append(kModule, "*words", Value("fig")).ok());
  EXPECT_EQ(Int("$$counts", Value("fig")), 3);
}

TEST_F(MicrobatchTest, ProcessedWaitsForTheBatchAndProcessedStreamsDoesNot) {
  Open();
  SetGate(false);
  auto streams = std::async(std::launch::async, [&] {
    return engine_->Append(kModule, "*slow", Value(1), AckLevel::kProcessedStreams);
  });
  ASSERT_EQ(streams.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "a kProcessedStreams append waited for a microbatch";
  ASSERT_TRUE(streams.get().ok());
  // Nor when the microbatch is behind a stream topology's append.
  auto behind_a_hop = std::async(std::launch::async, [&] {
    return engine_->Append(kModule, "*hop", Value(3), AckLevel::kProcessedStreams);
  });
  ASSERT_EQ(behind_a_hop.wait_for(std::chrono::seconds(20)), std::future_status::ready)
      << "a kProcessedStreams append waited for a microbatch behind a stream's append";
  ASSERT_TRUE(behind_a_hop.get().ok());
  auto processed = std::async(std::launch::async, [&] {
    return engine_->Append(kModule, "*slow", Value(2), AckLevel::kProcessed);
  });
  EXPECT_EQ(processed.wait_for(std::chrono::milliseconds(300)), std::future_status::timeout)
      << "a kProcessed append returned before its batch committed";
  EXPECT_EQ(Int("$$slow_count", Value("n")), 0);
  SetGate(true);
  ASSERT_TRUE(processed.get().ok());
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  EXPECT_EQ(Int("$$slow_count", Value("n")), 3);
}

TEST_F(MicrobatchTest, BatchAppendsHappenOnceAndStreamsMayNotWriteItsPStates) {
  Open();
  std::vector<Value> words;
  auto echo = [](int i) {
    std::string w = "echo";  // appended: g++ 12 gives a false -Wrestrict for "echo" + ...
    w += std::to_string(i);
    return w;
  };
  for (int i = 0; i < 50; ++i) words.emplace_back(echo(i % 5));
  ASSERT_TRUE(engine_->AppendBatch(kModule, "*words", words, AckLevel::kAppended).ok());
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  // The appended records are there once each, and the stream topology consumed them.
  EXPECT_EQ(DepotRecords("*echoes").size(), 50u);
  for (const TopologyFailure& f : Must(engine_->Stats(kModule)).failure_page)
    ADD_FAILURE() << f.topology << ": " << f.message;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Int("$$echo_count", Value(echo(i))), 10);
  Result<AppendResult> r = engine_->Append(kModule, "*intruder", Value("fig"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("written by microbatch topology count"), std::string::npos)
      << r.status().ToString();
}

TEST_F(MicrobatchTest, TicksComeEveryIntervalIncreasingAndWithoutABurstAfterARestart) {
  Open();
  auto ticks = [&] {
    std::vector<int64_t> out;
    for (const DepotEntry& e :
         Must(engine_->ReadDepot(kModule, "*ticks", 0, 0, INT64_MAX, 1 << 20)))
      out.push_back(e.record.as_int());
    return out;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (ticks().size() < 5 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::vector<int64_t> seen = ticks();
  ASSERT_GE(seen.size(), 5u);
  for (size_t i = 1; i < seen.size(); ++i) EXPECT_LT(seen[i - 1], seen[i]);
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  EXPECT_GE(Int("$$tick_stats", Value("last")), seen.back());
  // Down for a while: no tick for the time it was down.
  engine_.reset();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const int64_t reopened = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  Open();
  const size_t before = ticks().size();
  while (ticks().size() < before + 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  seen = ticks();
  ASSERT_GE(seen.size(), before + 2);
  EXPECT_GE(seen[before], reopened) << "a tick was made up for the time the engine was down";
  // A module of the same name deployed again ticks from its own (empty) depot.
  ASSERT_TRUE(engine_->Destroy(kModule).ok());
  ASSERT_TRUE(engine_->Deploy(STRATA_MB_TEST_MODULE, {.partitions = kPartitions}).ok());
  while (ticks().size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GE(ticks().size(), 2u) << "no tick after the module was deployed again";
}

TEST_F(MicrobatchTest, AnUpdateDrainsTheBatchesHandsOverAndBackfillsANewMicrobatch) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Open();
  std::map<std::string, int64_t> expected;
  auto append = [&](int n) {
    std::vector<Value> words = RandomWords(rng, n);
    for (const Value& w : words) ++expected[w.as_string()];
    return engine_->AppendBatch(kModule, "*words", std::move(words), AckLevel::kAppended).status();
  };
  ASSERT_TRUE(append(2000).ok());
  // Appends keep coming while the update runs: none is lost or applied twice.
  std::atomic<bool> stop{false};
  std::thread appender([&] {
    while (!stop.load()) {
      if (!append(50).ok()) break;
    }
  });
  Result<UpdateResult> updated = engine_->Update(STRATA_MB_TEST_V2_MODULE, {});
  stop.store(true);
  appender.join();
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->version, 2);
  ASSERT_TRUE(append(500).ok());
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  for (const auto& [w, n] : expected) {
    EXPECT_EQ(Int("$$counts", Value(w)), n) << w;
    EXPECT_EQ(Int("$$counts2", Value(w)), n) << w << " (the new topology's backfill)";
  }
  // A topology cannot change its kind under one name; nor can the partitions change.
  Result<UpdateResult> kind =
      engine_->Update(STRATA_MB_TEST_KIND_MODULE, {.drop = {"count2", "$$counts2"}});
  ASSERT_FALSE(kind.ok());
  EXPECT_NE(kind.status().message().find("topology slow is a microbatch topology in the running "
                                         "version and a stream topology in the new build"),
            std::string::npos)
      << kind.status().ToString();
  UpdateOptions rescaled;
  rescaled.partitions = 2;
  Result<UpdateResult> rescale = engine_->Update(STRATA_MB_TEST_V2_MODULE, rescaled);
  ASSERT_FALSE(rescale.ok());
  EXPECT_NE(rescale.status().message().find("not supported yet"), std::string::npos)
      << rescale.status().ToString();
  // Still running, and exact after a restart.
  ASSERT_TRUE(append(100).ok());
  Reopen();
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  for (const auto& [w, n] : expected) EXPECT_EQ(Int("$$counts2", Value(w)), n) << w;
}

TEST_F(MicrobatchTest, AFailingStepAfterAnAggregateDropsThatKeysGroupAndTheBatchCommits) {
  Open();
  // One record, so one batch: a group's failure reaches no appender, the group is dropped
  // with its fold, and the failure is recorded once, keyed by the batch.
  Result<AppendResult> r = engine_->Append(kModule, "*post", Value("bad"), AckLevel::kProcessed);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(engine_->Append(kModule, "*post", Value("good"), AckLevel::kProcessed).ok());
  EXPECT_EQ(Int("$$post_counts", Value("good")), 1);
  EXPECT_EQ(Int("$$post_counts", Value("bad")), 0);
  ModuleStats stats = Must(engine_->Stats(kModule));
  EXPECT_EQ(stats.failures, 1);
  ASSERT_EQ(stats.failure_page.size(), 1u);
  EXPECT_EQ(stats.failure_page[0].depot, "$batch");
  EXPECT_NE(stats.failure_page[0].message.find("bad key"), std::string::npos);
  ASSERT_TRUE(engine_->Append(kModule, "*post", Value("good")).ok());
  EXPECT_EQ(Int("$$post_counts", Value("good")), 2);
}

TEST_F(MicrobatchTest, RecomputesEqualTheLiveViewAfterAStartFromTheEndAndAnAddedSource) {
  Open();
  ASSERT_TRUE(engine_
                  ->AppendBatch(kModule, "*words", std::vector<Value>(100, Value("fig")),
                                AckLevel::kProcessed)
                  .ok());
  ASSERT_TRUE(
      engine_
          ->AppendBatch(kModule, "*post", std::vector<Value>(10, Value("x")), AckLevel::kProcessed)
          .ok());
  // count2 starts at the end of *words; post gains the source *post2.
  UpdateOptions from_end;
  from_end.new_topologies_from_end = true;
  Result<UpdateResult> updated = engine_->Update(STRATA_MB_TEST_V2_MODULE, from_end);
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  ASSERT_TRUE(engine_
                  ->AppendBatch(kModule, "*words", std::vector<Value>(10, Value("fig")),
                                AckLevel::kProcessed)
                  .ok());
  ASSERT_TRUE(
      engine_
          ->AppendBatch(kModule, "*post2", std::vector<Value>(5, Value("x")), AckLevel::kProcessed)
          .ok());
  EXPECT_EQ(Int("$$counts2", Value("fig")), 10);
  EXPECT_EQ(Int("$$post_counts", Value("x")), 15);
  ASSERT_TRUE(engine_->Recompute(kModule, {"$$counts2", "$$post_counts"}).ok());
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  EXPECT_EQ(Int("$$counts2", Value("fig")), 10);
  EXPECT_EQ(Int("$$post_counts", Value("x")), 15);
}

TEST_F(MicrobatchTest, UpdatesAndRecomputesDuringTwoMicrobatchHopsApplyEachRecordOnce) {
  Open();
  // The relay's batch appends to *relayed while the update quiesces: the consumer must
  // apply it before the switch, once.
  ASSERT_TRUE(engine_->Append(kModule, "*relay_in", Value("x"), AckLevel::kProcessedStreams).ok());
  Result<UpdateResult> updated = engine_->Update(STRATA_MB_TEST_V2_MODULE, {});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(Int("$$relay_count", Value("x")), 1);
  // And while a recompute swaps its PStates in.
  ASSERT_TRUE(engine_->Append(kModule, "*relay_in", Value("y"), AckLevel::kProcessedStreams).ok());
  ASSERT_TRUE(engine_->Recompute(kModule, {"$$relay_count"}).ok());
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  EXPECT_EQ(Int("$$relay_count", Value("x")), 1);
  EXPECT_EQ(Int("$$relay_count", Value("y")), 1);
  EXPECT_EQ(DepotRecords("*relayed").size(), 2u);
}

TEST_F(MicrobatchTest, ABackfillThatCaughtUpStaysCaughtUpAfterARestart) {
  Open();
  ASSERT_TRUE(engine_
                  ->AppendBatch(kModule, "*words", std::vector<Value>(50, Value("fig")),
                                AckLevel::kProcessed)
                  .ok());
  ASSERT_TRUE(engine_->Update(STRATA_MB_TEST_V2_MODULE, {}).ok());
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  Reopen();
  EXPECT_TRUE(Must(engine_->Stats(kModule)).rebuilds.empty());
  // processed acks wait for count2 again.
  for (int i = 0; i < 5; ++i) {
    std::string w = "zz";  // appended: g++ 12 gives a false -Wrestrict for "zz" + ...
    w += std::to_string(i);
    ASSERT_TRUE(engine_->Append(kModule, "*words", Value(w), AckLevel::kProcessed).ok());
    EXPECT_EQ(Int("$$counts2", Value(w)), 1) << w;
  }
}

TEST_F(MicrobatchTest, ADestroyDuringBatchesAndACloseWithRecordsLeftFinish) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  Open();
  // Records the microbatches have not applied when Destroy comes: it waits for them (or
  // they find the module closed) and removes everything.
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(
        engine_->AppendBatch(kModule, "*words", RandomWords(rng, 500), AckLevel::kProcessedStreams)
            .ok());
  }
  ASSERT_TRUE(engine_->Destroy(kModule).ok());
  EXPECT_FALSE(engine_->Describe(kModule).ok());
  ASSERT_TRUE(engine_->Deploy(STRATA_MB_TEST_MODULE, {.partitions = kPartitions}).ok());
  EXPECT_EQ(Int("$$counts", Value("fig")), 0);
  // Close with records not yet applied (their appenders did not wait): the next Open
  // applies them, exactly once.
  std::map<std::string, int64_t> expected;
  for (int i = 0; i < 10; ++i) {
    std::vector<Value> words = RandomWords(rng, 500);
    for (const Value& w : words) ++expected[w.as_string()];
    ASSERT_TRUE(
        engine_->AppendBatch(kModule, "*words", std::move(words), AckLevel::kProcessedStreams)
            .ok());
  }
  Reopen();
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  for (const auto& [w, n] : expected) EXPECT_EQ(Int("$$counts", Value(w)), n) << w;
}

// ---- kill -9: exactly-once ----------------------------------------------------------------

// Runs in the child until killed: appends random words with processed acks forever.
[[noreturn]] void AppendWordsForever(const std::string& dir, uint64_t seed) {
  Result<std::unique_ptr<Engine>> engine = Engine::Open(SmallEngineOptions(dir));
  if (!engine.ok()) _exit(10);
  std::mt19937_64 rng(seed);
  static const char* const kWords[] = {"apple", "banana", "cherry", "date", "echo1", "fig"};
  for (;;) {
    std::vector<Value> words;
    for (int i = 0; i < 64; ++i) words.emplace_back(kWords[rng() % 6]);
    Result<std::vector<AppendResult>> r =
        (*engine)->AppendBatch(kModule, "*words", std::move(words), AckLevel::kProcessed);
    if (!r.ok()) _exit(11);
  }
}

TEST_F(MicrobatchTest, Kill9AtAnyMomentAppliesEveryBatchExactlyOnce) {
  const uint64_t seed = strata::testing::TestSeed(kDefaultSeed);
  SCOPED_TRACE(strata::testing::SeedTrace(seed));
  std::mt19937_64 rng(seed);
  ASSERT_NO_FATAL_FAILURE(Open());
  engine_.reset();
  for (int round = 0; round < 6; ++round) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) AppendWordsForever(data_dir(), seed + round);
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + rng() % 600));
    kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  }
  Open();
  ASSERT_TRUE(engine_->WaitProcessed(kModule).ok());
  // Exactly once: each count equals the word's records in the depot, never more.
  std::map<std::string, int64_t> expected;
  std::map<std::string, int64_t> letters;
  int64_t echoes = 0;
  for (const Value& w : DepotRecords("*words")) {
    ++expected[w.as_string()];
    ++letters[w.as_string().substr(0, 1)];
    if (w.as_string() == "echo1") ++echoes;
  }
  ASSERT_GT(expected.size(), 0u) << "no word was appended before the kills";
  for (const auto& [w, n] : expected) EXPECT_EQ(Int("$$counts", Value(w)), n) << w;
  for (const auto& [l, n] : letters) EXPECT_EQ(Int("$$letters", Value(l)), n) << l;
  EXPECT_EQ(static_cast<int64_t>(DepotRecords("*echoes").size()), echoes)
      << "a batch's appends were lost or made twice";
}

}  // namespace
}  // namespace strata
