// Engine::Update with a real WiredTiger in a temp dir and the real test plugin
// testdata/evolve_module.cc in its versions (STRATA_EVOLVE_V<N> compile definitions).
#include <unistd.h>
#include <atomic>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "runtime/testing/engine_fixture.h"

namespace strata {
namespace {

using ::testing::ElementsAre;
using testing::EngineFixture;
using ::testing::HasSubstr;
using testing::Must;

const char* const kEvolve[] = {"",
                               STRATA_EVOLVE_V1,
                               STRATA_EVOLVE_V2,
                               STRATA_EVOLVE_V3,
                               STRATA_EVOLVE_V4,
                               STRATA_EVOLVE_V5,
                               STRATA_EVOLVE_V6,
                               STRATA_EVOLVE_V7};

Value Event(const std::string& k, int64_t n) { return Value::MapOf({{"k", k}, {"n", n}}); }

std::string KeyOf(int i) { return "k" + std::to_string(i % 7); }

UpdateOptions FromEnd() {
  UpdateOptions options;
  options.new_topologies_from_end = true;
  return options;
}

UpdateOptions Rescaled(int partitions) {
  UpdateOptions options;
  options.partitions = partitions;
  return options;
}

class LifecycleTest : public EngineFixture {
 protected:
  void DeployEvolve() {
    Open();
    Result<ModuleInfo> info = engine_->Deploy(kEvolve[1], {.partitions = testing::kPartitions});
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    EXPECT_EQ(info->version, 1);
  }
  // Appends events i in [from, to): key KeyOf(i), n = i; remembers them for the oracle.
  void AppendEvents(int from, int to, AckLevel level = AckLevel::kProcessed) {
    std::vector<Value> batch;
    for (int i = from; i < to; ++i) {
      batch.push_back(Event(KeyOf(i), i));
      ++count_[KeyOf(i)];
      sum_[KeyOf(i)] += i;
    }
    Result<std::vector<AppendResult>> appended =
        engine_->AppendBatch("evolve", "*events", std::move(batch), level);
    ASSERT_TRUE(appended.ok()) << appended.status().ToString();
  }
  Value Get(const std::string& pstate, const std::string& key) {
    Result<std::vector<Value>> values = engine_->Select("evolve", pstate, Path().Key(key));
    EXPECT_TRUE(values.ok()) << values.status().ToString();
    return values.ok() && values->size() == 1 ? (*values)[0] : Value();
  }
  // $$counts equals its recomputation from every event appended.
  void ExpectCountsComplete() {
    for (const auto& [k, n] : count_) EXPECT_EQ(Get("$$counts", k), Value(n)) << k;
  }
  std::map<std::string, int64_t> count_;
  std::map<std::string, int64_t> sum_;
};

TEST_F(LifecycleTest, UpdateKeepsDataBackfillsNewViewsAndRunsNewCode) {
  DeployEvolve();
  AppendEvents(0, 500);
  for (const auto& [k, sum] : sum_) ASSERT_EQ(Get("$$totals", k), Value(sum));

  Result<UpdateResult> updated = engine_->Update(kEvolve[2], {});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  EXPECT_EQ(updated->version, 2);
  EXPECT_EQ(updated->info.version, 2);
  EXPECT_THAT(updated->created, ElementsAre("*notes", "$$counts"));
  EXPECT_THAT(updated->backfilling, ElementsAre("counts"));
  EXPECT_TRUE(updated->dropped.empty());
  EXPECT_GE(updated->pause_us, 0);

  // Old data is kept; the new view catches up with every record appended before.
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  for (const auto& [k, sum] : sum_) EXPECT_EQ(Get("$$totals", k), Value(sum)) << k;
  ExpectCountsComplete();
  // The depot kept its records and offsets.
  int64_t records = 0;
  for (int p = 0; p < testing::kPartitions; ++p) {
    records += static_cast<int64_t>(
        Must(engine_->ReadDepot("evolve", "*events", p, 0, INT64_MAX, 100000)).size());
  }
  EXPECT_EQ(records, 500);

  // New records run the new code: version 2 adds 2n.
  const std::string k = KeyOf(3);
  const int64_t before = Get("$$totals", k).as_int();
  ASSERT_TRUE(engine_->Append("evolve", "*events", Event(k, 10)).ok());
  EXPECT_EQ(Get("$$totals", k), Value(before + 20));
  EXPECT_EQ(Get("$$counts", k), Value(count_[k] + 1));

  // A restart loads version 2.
  Reopen();
  EXPECT_EQ(Must(engine_->Describe("evolve")).version, 2);
  EXPECT_EQ(Get("$$totals", k), Value(before + 20));
}

TEST_F(LifecycleTest, AppendsDuringAnUpdateAreAllProcessedAndTheBackfillMeetsThem) {
  DeployEvolve();
  AppendEvents(0, 20000, AckLevel::kAppended);
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0};
  std::map<std::string, int64_t> live_count;
  std::thread writer([&] {
    for (int i = 20000; !stop.load() || i < 20200; ++i) {
      Result<AppendResult> r = engine_->Append("evolve", "*events", Event(KeyOf(i), i));
      if (!r.ok()) {
        ++failed;
        ADD_FAILURE() << r.status().ToString();
        continue;
      }
      ++live_count[KeyOf(i)];
    }
  });
  Result<UpdateResult> updated = engine_->Update(kEvolve[2], {});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  stop.store(true);
  writer.join();
  EXPECT_EQ(failed.load(), 0);
  for (const auto& [k, n] : live_count) count_[k] += n;
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ExpectCountsComplete();
  EXPECT_TRUE(Must(engine_->Stats("evolve")).rebuilds.empty());
}

TEST_F(LifecycleTest, ABackfillInterruptedByARestartResumes) {
  DeployEvolve();
  AppendEvents(0, 30000, AckLevel::kAppended);
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ASSERT_TRUE(engine_->Update(kEvolve[2], {}).ok());
  ModuleStats stats = Must(engine_->Stats("evolve"));
  Reopen();  // most likely mid-backfill; either way the view must end complete
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ExpectCountsComplete();
  AppendEvents(30000, 30010);
  ExpectCountsComplete();
}

TEST_F(LifecycleTest, NewTopologiesFromTheEndSkipOldRecords) {
  DeployEvolve();
  AppendEvents(0, 100);
  ASSERT_TRUE(engine_->Update(kEvolve[2], FromEnd()).ok());
  count_.clear();
  AppendEvents(100, 150);
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ExpectCountsComplete();
}

TEST_F(LifecycleTest, RefusedUpdatesChangeNothing) {
  DeployEvolve();
  AppendEvents(0, 50);
  ASSERT_TRUE(engine_->Update(kEvolve[2], {}).ok());
  const auto expect_refused = [&](const char* so, UpdateOptions options, StatusCode code,
                                  std::vector<std::string> parts) {
    Result<UpdateResult> r = engine_->Update(so, options);
    ASSERT_FALSE(r.ok()) << so;
    EXPECT_EQ(r.status().code(), code) << r.status().ToString();
    for (const std::string& part : parts) EXPECT_THAT(r.status().message(), HasSubstr(part));
    EXPECT_EQ(Must(engine_->Describe("evolve")).version, 2);
  };
  // Missing objects must be named.
  expect_refused(kEvolve[3], {}, StatusCode::kInvalidArgument,
                 {"*extra", "$$extra_seen", "extra", "drop"});
  expect_refused(kEvolve[3], {.drop = {"*extra"}}, StatusCode::kInvalidArgument,
                 {"$$extra_seen", "extra"});
  // A drop of something the new build declares, or that does not exist.
  expect_refused(kEvolve[2], {.drop = {"$$totals"}}, StatusCode::kInvalidArgument,
                 {"$$totals", "still declares"});
  expect_refused(kEvolve[2], {.drop = {"$$nope"}}, StatusCode::kInvalidArgument,
                 {"$$nope", "does not have"});
  // A name without its sigil gets a suggestion.
  expect_refused(kEvolve[3], {.drop = {"*extra", "extra_seen", "extra"}},
                 StatusCode::kInvalidArgument, {"did you mean $$extra_seen?"});
  // An incompatible schema change names both schemas.
  expect_refused(kEvolve[4], {}, StatusCode::kInvalidArgument,
                 {"$$totals", "map<string, int64>", "map<string, string>", "migration"});
  // A build that does not load.
  expect_refused(kEvolve[6], {}, StatusCode::kInvalidArgument, {"cannot define itself"});
  // A module that is not deployed.
  Result<UpdateResult> other = engine_->Update(STRATA_LEDGER_MODULE, {});
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(other.status().message(), HasSubstr("deploy it first"));
  // Nothing changed: the module serves and processes as version 2.
  AppendEvents(50, 60);
  ExpectCountsComplete();
  Reopen();
  EXPECT_EQ(Must(engine_->Describe("evolve")).version, 2);
  ExpectCountsComplete();
}

TEST_F(LifecycleTest, DroppedObjectsAndTheirDataAreDeleted) {
  DeployEvolve();
  ASSERT_TRUE(engine_->Append("evolve", "*extra", Value("x")).ok());
  ASSERT_EQ(Get("$$extra_seen", "x"), Value(true));
  ASSERT_TRUE(engine_->Update(kEvolve[2], {}).ok());
  Result<UpdateResult> dropped =
      engine_->Update(kEvolve[3], {.drop = {"*extra", "$$extra_seen", "extra"}});
  ASSERT_TRUE(dropped.ok()) << dropped.status().ToString();
  EXPECT_THAT(dropped->dropped, ElementsAre("*extra", "$$extra_seen", "extra"));
  EXPECT_EQ(dropped->version, 3);
  ModuleInfo info = Must(engine_->Describe("evolve"));
  EXPECT_EQ(info.depots.size(), 2u);
  EXPECT_EQ(engine_->Select("evolve", "$$extra_seen", Path().Key("x")).status().code(),
            StatusCode::kNotFound);
  Reopen();
  EXPECT_EQ(Must(engine_->Describe("evolve")).version, 3);
  // The old plugin copies are gone; only version 3's is kept.
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir() + "/modules")) {
    files.push_back(entry.path().filename().string());
  }
  std::sort(files.begin(), files.end());
  EXPECT_THAT(files, ElementsAre("evolve.v3.so", "rt_test.so"));
}

TEST_F(LifecycleTest, AnUpdateWithTheSameBuildResumesEverything) {
  DeployEvolve();
  AppendEvents(0, 100);
  Result<UpdateResult> same = engine_->Update(kEvolve[1], {});
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_EQ(same->version, 2);
  EXPECT_TRUE(same->created.empty());
  EXPECT_TRUE(same->backfilling.empty());
  AppendEvents(100, 110);
  for (const auto& [k, sum] : sum_) EXPECT_EQ(Get("$$totals", k), Value(sum)) << k;
}

TEST_F(LifecycleTest, WideningASchemaKeepsTheData) {
  DeployEvolve();
  AppendEvents(0, 50);
  ASSERT_TRUE(engine_->Update(kEvolve[2], {}).ok());
  Result<UpdateResult> widened = engine_->Update(kEvolve[5], {});
  ASSERT_TRUE(widened.ok()) << widened.status().ToString();
  EXPECT_THAT(widened->widened, ElementsAre("$$totals"));
  for (const auto& [k, sum] : sum_) EXPECT_EQ(Get("$$totals", k), Value(sum)) << k;
  Reopen();
  EXPECT_EQ(Must(engine_->Describe("evolve")).version, 3);
  for (const auto& [k, sum] : sum_) EXPECT_EQ(Get("$$totals", k), Value(sum)) << k;
}

class RecomputeTest : public EngineFixture {};

// The live view was built by version 1 (n per event) and version 2 (2n per event); a
// recompute runs version 2 over every event, while appends go on.
TEST_F(RecomputeTest, RebuildsAViewFromTheLogWhileAppendsGoOnAndSwapsItIn) {
  Open();
  ASSERT_TRUE(engine_->Deploy(kEvolve[1], {.partitions = testing::kPartitions}).ok());
  std::map<std::string, int64_t> sum;
  std::vector<Value> batch;
  for (int i = 0; i < 3000; ++i) {
    batch.push_back(Event(KeyOf(i), i));
    sum[KeyOf(i)] += i;
  }
  ASSERT_TRUE(engine_->AppendBatch("evolve", "*events", batch, AckLevel::kProcessed).ok());
  ASSERT_TRUE(engine_->Update(kEvolve[2], {}).ok());
  ASSERT_TRUE(engine_->Recompute("evolve", {"$$totals"}).ok());
  for (int i = 3000; i < 3300; ++i) {
    ASSERT_TRUE(engine_->Append("evolve", "*events", Event(KeyOf(i), i)).ok());
    sum[KeyOf(i)] += i;
  }
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  EXPECT_TRUE(Must(engine_->Stats("evolve")).rebuilds.empty());
  for (const auto& [k, s] : sum) {
    EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$totals", Path().Key(k))), Value(2 * s)) << k;
  }
  // The new generation survives a restart, and the old tables are gone.
  Reopen();
  for (const auto& [k, s] : sum) {
    EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$totals", Path().Key(k))), Value(2 * s)) << k;
  }
  // Again: the next generation replaces this one.
  ASSERT_TRUE(engine_->Recompute("evolve", {"$$totals", "$$counts"}).ok());
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  for (const auto& [k, s] : sum) {
    EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$totals", Path().Key(k))), Value(2 * s)) << k;
  }
}

TEST_F(RecomputeTest, ARunningRecomputeRefusesASecondOneAndUpdatesAndADestroyCancelsIt) {
  Open();
  SetGate(false);
  ASSERT_TRUE(engine_->Append("rt_test", "*gate", Value(1), AckLevel::kAppended).ok());
  ASSERT_TRUE(WaitForGateWaiters(1));
  SetGate(true);
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  // The recompute's own run of the gate step now waits at the gate.
  SetGate(false);
  ASSERT_TRUE(engine_->Recompute("rt_test", {"$$gate_passed"}).ok());
  ASSERT_TRUE(WaitForGateWaiters(1));
  Status again = engine_->Recompute("rt_test", {"$$kv"});
  EXPECT_EQ(again.code(), StatusCode::kAlreadyExists) << again.ToString();
  EXPECT_THAT(again.message(), HasSubstr("$$gate_passed"));
  Result<UpdateResult> update = engine_->Update(STRATA_RT_TEST_MODULE, {});
  EXPECT_EQ(update.status().code(), StatusCode::kBusy) << update.status().ToString();
  ModuleStats stats = Must(engine_->Stats("rt_test"));
  ASSERT_EQ(stats.rebuilds.size(), 1u);
  EXPECT_EQ(stats.rebuilds[0].kind, "recompute");
  EXPECT_EQ(stats.rebuilds[0].names, std::vector<std::string>{"$$gate_passed"});
  EXPECT_GE(stats.rebuilds[0].records_total, 1);
  // Unknown names.
  EXPECT_EQ(engine_->Recompute("rt_test", {"$$nope"}).code(), StatusCode::kNotFound);
  EXPECT_EQ(engine_->Recompute("nope", {"$$kv"}).code(), StatusCode::kNotFound);
  Status depot = engine_->Recompute("rt_test", {"*kv"});
  EXPECT_EQ(depot.code(), StatusCode::kNotFound);
  EXPECT_THAT(depot.message(), HasSubstr("*kv is a depot"));
  SetGate(true);
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$gate_passed", Path().Key(1))), Value(true));
  // A restart in the middle of a recompute discards it; the live view stays.
  SetGate(false);
  ASSERT_TRUE(engine_->Recompute("rt_test", {"$$gate_passed"}).ok());
  ASSERT_TRUE(WaitForGateWaiters(1));
  std::thread opener([&] {
    ASSERT_TRUE(WaitForGateWaiters(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    SetGate(true);
  });
  Reopen();
  opener.join();
  EXPECT_TRUE(Must(engine_->Stats("rt_test")).rebuilds.empty());
  EXPECT_EQ(Must(engine_->SelectOne("rt_test", "$$gate_passed", Path().Key(1))), Value(true));
  // Destroy cancels a running recompute.
  SetGate(false);
  ASSERT_TRUE(engine_->Recompute("rt_test", {"$$gate_passed"}).ok());
  ASSERT_TRUE(WaitForGateWaiters(1));
  std::thread opener2([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    SetGate(true);
  });
  EXPECT_TRUE(engine_->Destroy("rt_test").ok());
  opener2.join();
}

class RescaleTest : public EngineFixture {
 protected:
  // Every record of depot `depot`, over all partitions.
  std::vector<Value> AllRecords(const std::string& module, const std::string& depot,
                                int partitions) {
    std::vector<Value> out;
    for (int p = 0; p < partitions; ++p) {
      for (DepotEntry& e : Must(engine_->ReadDepot(module, depot, p, 0, INT64_MAX, 1 << 20))) {
        out.push_back(std::move(e.record));
      }
    }
    return out;
  }
};

TEST_F(RescaleTest, EightToThreeToSixteenKeepsEveryRecordPerKeyOrderAndRecomputesViews) {
  Open();
  ASSERT_TRUE(engine_->Deploy(kEvolve[1], {.partitions = 8}).ok());
  std::map<std::string, int64_t> sum, count;
  std::vector<Value> events;
  for (int i = 0; i < 2000; ++i) {
    events.push_back(Event(KeyOf(i), i));
    sum[KeyOf(i)] += i;
    ++count[KeyOf(i)];
  }
  ASSERT_TRUE(engine_->AppendBatch("evolve", "*events", events, AckLevel::kProcessed).ok());
  // rt_test's *seq: per producer, sequence numbers in order; its "order" topology appends
  // them to $$sequences[producer] in processing order.
  std::vector<Value> seq;
  for (int n = 0; n < 50; ++n) {
    for (int producer = 0; producer < 6; ++producer) {
      seq.push_back(Value::MapOf({{"producer", "p" + std::to_string(producer)}, {"seq", n}}));
    }
  }
  ASSERT_TRUE(engine_->AppendBatch("rt_test", "*seq", seq, AckLevel::kProcessed).ok());

  for (int partitions : {3, 16}) {
    Result<UpdateResult> evolve =
        engine_->Update(kEvolve[partitions == 3 ? 1 : 2], Rescaled(partitions));
    ASSERT_TRUE(evolve.ok()) << evolve.status().ToString();
    EXPECT_EQ(evolve->info.partitions, partitions);
    Result<UpdateResult> rt = engine_->Update(STRATA_RT_TEST_MODULE, Rescaled(partitions));
    ASSERT_TRUE(rt.ok()) << rt.status().ToString();
    // Every record kept, each in the partition its key hashes to, per-key order kept.
    std::vector<Value> all = AllRecords("evolve", "*events", partitions);
    EXPECT_EQ(all.size(), events.size());
    for (int p = 0; p < partitions; ++p) {
      std::map<std::string, int64_t> last;
      for (const DepotEntry& e :
           Must(engine_->ReadDepot("evolve", "*events", p, 0, INT64_MAX, 1 << 20))) {
        const std::string k = e.record.Find("k")->as_string();
        EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$totals", Path().Key(k))).is_int(), true);
        const int64_t n = e.record.Find("n")->as_int();
        if (last.count(k) != 0) {
          EXPECT_LT(last[k], n) << k << " on partition " << p;
        }
        last[k] = n;
      }
    }
    // The views equal their recomputation by the code now deployed.
    const int64_t factor = partitions == 3 ? 1 : 2;
    for (const auto& [k, s] : sum) {
      EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$totals", Path().Key(k))), Value(factor * s));
    }
    for (int producer = 0; producer < 6; ++producer) {
      const std::string name = "p" + std::to_string(producer);
      std::vector<Value> expected;
      for (int n = 0; n < 50; ++n) expected.push_back(n);
      EXPECT_EQ(Must(engine_->Select("rt_test", "$$sequences", Path().Key(name).All())), expected)
          << name << " after rescaling to " << partitions;
    }
  }
  for (const auto& [k, n] : count) {
    EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$counts", Path().Key(k))), Value(n));
  }
  // New appends use the new partitioning; a restart loads it.
  ASSERT_TRUE(engine_->Append("evolve", "*events", Event("k1", 5)).ok());
  EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$totals", Path().Key("k1"))),
            Value(2 * sum["k1"] + 10));
  Reopen();
  EXPECT_EQ(Must(engine_->Describe("evolve")).partitions, 16);
  EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$totals", Path().Key("k1"))),
            Value(2 * sum["k1"] + 10));
  EXPECT_EQ(AllRecords("evolve", "*events", 16).size(), events.size() + 1);
}

TEST_F(RescaleTest, AppendsDuringARescaleWaitAndLandInTheNewPartitions) {
  Open();
  ASSERT_TRUE(engine_->Deploy(kEvolve[2], {.partitions = 4}).ok());
  std::vector<Value> events;
  for (int i = 0; i < 5000; ++i) events.push_back(Event(KeyOf(i), 1));
  ASSERT_TRUE(engine_->AppendBatch("evolve", "*events", events, AckLevel::kAppended).ok());
  std::atomic<int> appended{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load() || appended.load() < 50) {
      Result<AppendResult> r = engine_->Append("evolve", "*events", Event("live", 1));
      if (r.ok()) {
        ++appended;
      } else {
        EXPECT_EQ(r.status().code(), StatusCode::kBusy) << r.status().ToString();
      }
    }
  });
  Result<UpdateResult> rescaled = engine_->Update(kEvolve[2], Rescaled(7));
  ASSERT_TRUE(rescaled.ok()) << rescaled.status().ToString();
  stop.store(true);
  writer.join();
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  EXPECT_EQ(Must(engine_->SelectOne("evolve", "$$counts", Path().Key("live"))),
            Value(appended.load()));
  EXPECT_EQ(AllRecords("evolve", "*events", 7).size(), events.size() + appended.load());
}

// Races of an update, a destroy and a WaitProcessed with backfills and migration passes.
class LifecycleRaceTest : public EngineFixture {
 protected:
  void AppendMany(const std::string& prefix, int n, int keys) {
    std::vector<Value> batch;
    for (int i = 0; i < n; ++i) {
      batch.push_back(Value::MapOf({{"k", prefix + std::to_string(i % keys)}, {"n", 1}}));
      if (batch.size() == 5000 || i + 1 == n) {
        ASSERT_TRUE(engine_->AppendBatch("evolve", "*events", batch, AckLevel::kAppended).ok());
        batch.clear();
      }
    }
  }
  // Runs `fn` on a thread and waits up to 60 s for it; a call that does not return is a
  // deadlock, reported and ended (the process cannot go on safely).
  static void WithinAMinute(const char* what, std::function<void()> fn) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::thread t([fn, done] {
      fn();
      done->store(true);
    });
    for (int i = 0; i < 6000 && !done->load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!done->load()) {
      std::fprintf(stderr, "%s did not return within 60 s (deadlock)\n", what);
      std::fflush(stderr);
      _exit(3);
    }
    t.join();
  }
};

// Destroy stops a backfill (it does not wait for it to reach the end of the log).
TEST_F(LifecycleRaceTest, DestroyDuringABackfillReturns) {
  Open();
  ASSERT_TRUE(engine_->Deploy(kEvolve[1], {.partitions = testing::kPartitions}).ok());
  AppendMany("k", 100000, 7);
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ASSERT_TRUE(engine_->Update(kEvolve[2], {}).ok());
  WithinAMinute("Destroy", [&] { EXPECT_TRUE(engine_->Destroy("evolve").ok()); });
  EXPECT_EQ(engine_->Describe("evolve").status().code(), StatusCode::kNotFound);
}

// A WaitProcessed waiting on a version whose backfilling topology the next update drops
// moves on to the new version instead of holding the old one forever.
TEST_F(LifecycleRaceTest, AnUpdateDroppingABackfillingTopologyReleasesWaitProcessed) {
  Open();
  ASSERT_TRUE(engine_->Deploy(kEvolve[1], {.partitions = testing::kPartitions}).ok());
  AppendMany("k", 100000, 7);
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ASSERT_TRUE(engine_->Update(kEvolve[2], {}).ok());
  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    EXPECT_TRUE(engine_->WaitProcessed("evolve").ok());
    waited.store(true);
  });
  WithinAMinute("Update", [&] {
    Result<UpdateResult> r =
        engine_->Update(kEvolve[1], {.drop = {"*notes", "$$counts", "counts"}});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
  });
  WithinAMinute("WaitProcessed", [&] { waiter.join(); });
  EXPECT_TRUE(waited.load());
}

// An update to a build that keeps a PState's migration while its pass runs: the new
// version applies its own plugin's function (the old plugin is unloaded).
TEST_F(LifecycleRaceTest, AnUpdateDuringAMigrationPassRebindsTheMigration) {
  Open();
  ASSERT_TRUE(engine_->Deploy(kEvolve[1], {.partitions = testing::kPartitions}).ok());
  AppendMany("u", 20000, 20000);
  ASSERT_TRUE(engine_->WaitProcessed("evolve").ok());
  ASSERT_TRUE(engine_->Update(kEvolve[7], {}).ok());
  Result<UpdateResult> again = engine_->Update(kEvolve[7], {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (int i = 0; i < 2000; ++i) {
    Result<std::vector<Value>> v =
        engine_->Select("evolve", "$$totals", Path().Key("u" + std::to_string(i)));
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    ASSERT_EQ(*v, std::vector<Value>{Value(1)});
  }
  // The pass finishes, and stats stop listing it.
  for (int i = 0; i < 3000 && !Must(engine_->Stats("evolve")).rebuilds.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(Must(engine_->Stats("evolve")).rebuilds.empty());
  Reopen();
  EXPECT_TRUE(Must(engine_->Stats("evolve")).rebuilds.empty());
}

}  // namespace
}  // namespace strata
