// Module dependencies (docs/modules.md, "Module dependencies"): a module consuming another
// module's depot through a mirror sees every record of it (the oracle is the other module's
// depot, read back), with progress of its own that survives a close and a kill -9; reads
// and queries of the other module; the refusals that keep dependencies whole; the order in
// which modules load. Modules: testdata/deps_module.cc.
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/testing/engine_fixture.h"
#include "strata/key_codec.h"
#include "strata/testing/test_seed.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using testing::kPartitions;
using testing::Must;
using testing::SmallEngineOptions;
using testing::TempDir;

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << part << "\"";
}

class DependencyTest : public ::testing::Test {
 protected:
  std::string data_dir() const { return dir_.Sub("data"); }
  void Open() {
    Result<std::unique_ptr<Engine>> engine = Engine::Open(SmallEngineOptions(data_dir()));
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
  }
  void Reopen() {
    engine_.reset();
    Open();
  }
  void DeployBoth() {
    ASSERT_TRUE(engine_->Deploy(STRATA_UPSTREAM_MODULE, {.partitions = kPartitions}).ok());
    Result<ModuleInfo> info =
        engine_->Deploy(STRATA_DOWNSTREAM_MODULE, {.partitions = kPartitions});
    ASSERT_TRUE(info.ok()) << info.status().ToString();
  }
  // Appends `n` events "<prefix><i>" (i from `from`) to upstream, in batches, processed.
  void AppendEvents(const std::string& prefix, int from, int n) {
    std::vector<Value> batch;
    for (int i = from; i < from + n; ++i) {
      batch.push_back(Value(prefix + std::to_string(i)));
      if (batch.size() == 50 || i + 1 == from + n) {
        Result<std::vector<AppendResult>> r =
            engine_->AppendBatch("upstream", "*events", std::move(batch));
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        batch.clear();
      }
    }
  }
  // The oracle: every event of upstream's *events, read back, with its occurrences.
  std::map<std::string, int64_t> LoggedEvents() {
    std::map<std::string, int64_t> events;
    for (int p = 0; p < kPartitions; ++p) {
      for (const DepotEntry& e :
           Must(engine_->ReadDepot("upstream", "*events", p, 0, INT64_MAX, 1 << 30))) {
        ++events[e.record.as_string()];
      }
    }
    return events;
  }
  // A PState of downstream mapping strings to counts, merged over its partitions.
  std::map<std::string, int64_t> Downstream(const std::string& pstate) {
    std::map<std::string, int64_t> out;
    for (const Value& key : PartitionKeys()) {
      for (const Value& entry : Must(engine_->Select("downstream", pstate, Path().All(), key))) {
        out[entry.as_list().at(0).as_string()] += entry.as_list().at(1).as_int();
      }
    }
    return out;
  }
  // One key per partition (Select reads the partition its partition key hashes to).
  std::vector<Value> PartitionKeys() {
    std::vector<Value> keys(kPartitions);
    std::vector<bool> found(kPartitions, false);
    int left = kPartitions;
    for (int i = 0; left > 0; ++i) {
      Value key("k" + std::to_string(i));
      const int p = static_cast<int>(HashKey(key) % kPartitions);
      if (found[p]) continue;
      found[p] = true;
      keys[p] = key;
      --left;
    }
    return keys;
  }
  // The first entries where two maps differ (empty when they are equal).
  static std::string Differences(const std::map<std::string, int64_t>& view,
                                 const std::map<std::string, int64_t>& oracle) {
    std::string out;
    int shown = 0;
    std::set<std::string> keys;
    for (const auto& [k, n] : view) keys.insert(k);
    for (const auto& [k, n] : oracle) keys.insert(k);
    for (const std::string& k : keys) {
      auto v = view.find(k);
      auto o = oracle.find(k);
      const int64_t has = v == view.end() ? 0 : v->second;
      const int64_t want = o == oracle.end() ? 0 : o->second;
      if (has == want) continue;
      if (++shown > 10) return out + " ...";
      out += " " + k + ": " + std::to_string(has) + " (the log says " + std::to_string(want) + ")";
    }
    return out;
  }
  static std::map<std::string, int64_t> ByFirstLetter(
      const std::map<std::string, int64_t>& events) {
    std::map<std::string, int64_t> out;
    for (const auto& [event, n] : events) out[event.substr(0, 1)] += n;
    return out;
  }
  // Every logged event seen exactly once by stream "seen", and counted exactly by the
  // microbatch "batched".
  void ExpectSeenExactlyOnce() {
    ASSERT_TRUE(engine_->WaitProcessed("downstream").ok());
    const std::map<std::string, int64_t> logged = LoggedEvents();
    EXPECT_EQ(Differences(Downstream("$$seen"), logged), "") << "in $$seen";
    EXPECT_EQ(Differences(Downstream("$$batched"), ByFirstLetter(logged)), "") << "in $$batched";
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(DependencyTest, MirrorConsumesEveryRecordFromOffsetZeroWithProgressOfItsOwn) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_TRUE(engine_->Deploy(STRATA_UPSTREAM_MODULE, {.partitions = kPartitions}).ok());
  ASSERT_NO_FATAL_FAILURE(AppendEvents("a", 0, 300));  // before downstream exists
  ASSERT_TRUE(engine_->Deploy(STRATA_DOWNSTREAM_MODULE, {.partitions = kPartitions}).ok());
  ASSERT_NO_FATAL_FAILURE(AppendEvents("b", 0, 300));
  // Upstream's processed acks answer for upstream's topologies only.
  Result<std::vector<AppendResult>> acked =
      engine_->AppendBatch("upstream", "*events", {Value("c0"), Value("c1")});
  ASSERT_TRUE(acked.ok()) << acked.status().ToString();
  for (const AppendResult& result : *acked) {
    ASSERT_EQ(result.ack_returns.size(), 1u);
    EXPECT_EQ(result.ack_returns[0].first, "count");
  }
  ASSERT_NO_FATAL_FAILURE(ExpectSeenExactlyOnce());
  EXPECT_EQ(LoggedEvents().size(), 602u);

  // Its progress rows are its own, at the end of upstream's partitions; upstream's list
  // only its own topology.
  ModuleStats down = Must(engine_->Stats("downstream"));
  ModuleStats up = Must(engine_->Stats("upstream"));
  int rows = 0;
  for (const TopologyPartitionStats& t : down.topologies) {
    EXPECT_EQ(t.depot, "*events");
    EXPECT_EQ(t.lag, 0) << t.topology << " partition " << t.partition;
    ++rows;
  }
  EXPECT_EQ(rows, 2 * kPartitions);  // "seen" and "batched"
  for (const TopologyPartitionStats& t : up.topologies) EXPECT_EQ(t.topology, "count");
  EXPECT_EQ(down.failures, 0);

  // Reads of upstream's PState and its query, from downstream's query.
  Value both = Must(engine_->Invoke("downstream", "both", {Value("a7")}));
  EXPECT_EQ(both, Value::ListOf({Value::ListOf({1, 1, Value::ListOf({1})})})) << both.ToString();
}

TEST_F(DependencyTest, AMirrorReadAtTheDeepestAllowedInvocationIsNoInvocation) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  ASSERT_NO_FATAL_FAILURE(AppendEvents("d", 0, 1));
  ASSERT_TRUE(engine_->WaitProcessed("upstream").ok());
  // deep(16) runs at nesting depth 16, the deepest allowed; its read of a mirror PState is
  // a read, not a 17th invocation.
  Result<Value> deepest = engine_->Invoke("downstream", "deep", {Value(16), Value("d0")});
  ASSERT_TRUE(deepest.ok()) << deepest.status().ToString();
  EXPECT_EQ(*deepest, Value(1));
  Result<Value> deeper = engine_->Invoke("downstream", "deep", {Value(17), Value("d0")});
  ASSERT_FALSE(deeper.ok());
  EXPECT_NE(deeper.status().message().find("nest deeper than 16"), std::string::npos)
      << deeper.status().ToString();
}

TEST_F(DependencyTest, DescribeNamesDependenciesBothWays) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  ModuleInfo up = Must(engine_->Describe("upstream"));
  ModuleInfo down = Must(engine_->Describe("downstream"));
  EXPECT_EQ(up.depends_on, std::vector<std::string>{});
  EXPECT_EQ(up.dependents, std::vector<std::string>{"downstream"});
  EXPECT_EQ(down.depends_on, std::vector<std::string>{"upstream"});
  EXPECT_EQ(down.dependents, std::vector<std::string>{});
  ASSERT_EQ(down.depots.size(), 1u);
  EXPECT_EQ(down.depots[0].partitioning, "mirror of upstream/*events");
  ASSERT_FALSE(down.topologies.empty());
  EXPECT_EQ(down.topologies[0].sources, std::vector<std::string>{"upstream/*events"});
  for (const ModuleInfo& info : Must(engine_->Modules())) {
    if (info.name == "upstream") {
      EXPECT_EQ(info.dependents, std::vector<std::string>{"downstream"});
    }
  }
}

TEST_F(DependencyTest, ResumesAfterCloseAndOpenLoadsUpstreamFirst) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  ASSERT_NO_FATAL_FAILURE(AppendEvents("a", 0, 200));
  ASSERT_TRUE(engine_->WaitProcessed("downstream").ok());
  // "downstream" sorts before "upstream": it must still load after it.
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(Must(engine_->Describe("downstream")).load_error, "");
  ASSERT_NO_FATAL_FAILURE(AppendEvents("b", 0, 200));
  ASSERT_NO_FATAL_FAILURE(ExpectSeenExactlyOnce());
}

// A forked child deploys both modules and appends with processed acks (which do not wait
// for downstream), then dies with downstream behind; the reopened engine resumes
// downstream from its own progress: every event seen at least once (at-least-once), the
// microbatch exactly.
TEST_F(DependencyTest, ResumesAfterKill9) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    Result<std::unique_ptr<Engine>> engine = Engine::Open(SmallEngineOptions(data_dir()));
    if (!engine.ok()) _exit(10);
    if (!(*engine)->Deploy(STRATA_UPSTREAM_MODULE, {.partitions = kPartitions}).ok()) _exit(11);
    if (!(*engine)->Deploy(STRATA_DOWNSTREAM_MODULE, {.partitions = kPartitions}).ok()) _exit(12);
    for (int b = 0; b < 40; ++b) {
      std::vector<Value> batch;
      for (int i = 0; i < 50; ++i) batch.push_back(Value("e" + std::to_string(b * 50 + i)));
      if (!(*engine)->AppendBatch("upstream", "*events", std::move(batch)).ok()) _exit(13);
    }
    // A last burst that nobody waits for, so that downstream is most likely behind.
    for (int b = 40; b < 80; ++b) {
      std::vector<Value> batch;
      for (int i = 0; i < 50; ++i) batch.push_back(Value("e" + std::to_string(b * 50 + i)));
      if (!(*engine)->AppendBatch("upstream", "*events", std::move(batch), AckLevel::kNone).ok()) {
        _exit(14);
      }
    }
    Result<ModuleStats> stats = (*engine)->Stats("downstream");
    int64_t lag = 0;
    if (stats.ok()) {
      for (const TopologyPartitionStats& t : stats->topologies) lag += t.lag;
    }
    _exit(lag > 0 ? 0 : 1);  // no Close: as a kill -9
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) <= 1) << status;
  std::cout << "[ crash    ] downstream was " << (WEXITSTATUS(status) == 0 ? "" : "not ")
            << "behind upstream when the process died" << std::endl;
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_TRUE(engine_->WaitProcessed("downstream").ok());
  const std::map<std::string, int64_t> logged = LoggedEvents();
  EXPECT_GE(logged.size(), 2000u);  // the acknowledged ones, and what of the burst survived
  const std::map<std::string, int64_t> seen = Downstream("$$seen");
  EXPECT_EQ(seen.size(), logged.size());
  for (const auto& [event, n] : logged) {
    auto it = seen.find(event);
    ASSERT_NE(it, seen.end()) << event << " was never seen";
    EXPECT_GE(it->second, n) << event;
  }
  EXPECT_EQ(Downstream("$$batched"), ByFirstLetter(logged));
}

TEST_F(DependencyTest, UpdateAndRecomputeOfDownstreamLoseAndRepeatNothing) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  std::mt19937_64 rng(testing::TestSeed(1701));
  ASSERT_NO_FATAL_FAILURE(AppendEvents("a", 0, 300));
  // Upstream keeps appending (batches acknowledged once durable, so that downstream falls
  // behind) while downstream is updated and recomputed.
  std::atomic<bool> stop{false};
  std::atomic<int> appended{0};
  std::thread appender([&] {
    for (int i = 0; !stop.load(); ++i) {
      std::vector<Value> batch;
      for (int j = 0; j < 20; ++j) batch.push_back(Value("c" + std::to_string(i * 20 + j)));
      if (!engine_->AppendBatch("upstream", "*events", std::move(batch), AckLevel::kAppended)
               .ok()) {
        return;
      }
      appended.fetch_add(20);
    }
  });
  while (appended.load() < 50) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Result<UpdateResult> updated = engine_->Update(STRATA_DOWNSTREAM_MODULE, {});
  ASSERT_TRUE(updated.ok()) << updated.status().ToString();
  ASSERT_TRUE(engine_->Recompute("downstream", {"$$seen"}).ok());
  for (;;) {  // the recompute swaps in once it has caught up
    ModuleStats stats = Must(engine_->Stats("downstream"));
    bool running = false;
    for (const RebuildProgress& r : stats.rebuilds) running = running || r.kind == "recompute";
    if (!running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5 + rng() % 5));
  }
  const int before = appended.load();
  while (appended.load() < before + 200) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  stop.store(true);
  appender.join();
  ASSERT_NO_FATAL_FAILURE(ExpectSeenExactlyOnce());
}

TEST_F(DependencyTest, DeployWithMissingDependenciesIsRefusedNamingThem) {
  ASSERT_NO_FATAL_FAILURE(Open());
  Result<ModuleInfo> alone = engine_->Deploy(STRATA_DOWNSTREAM_MODULE, {.partitions = kPartitions});
  ASSERT_FALSE(alone.ok());
  EXPECT_EQ(alone.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(alone.status().message(),
                       "module upstream (for its depot *events, PState $$counts, query count) is "
                       "not deployed"));
  EXPECT_FALSE(engine_->Describe("downstream").ok());

  ASSERT_TRUE(engine_->Deploy(STRATA_UPSTREAM_MODULE, {.partitions = kPartitions}).ok());
  Result<ModuleInfo> missing =
      engine_->Deploy(STRATA_DOWNSTREAM_MISSING_MODULE, {.partitions = kPartitions});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(missing.status().message(),
                       "module absent (for its depot *events) is not deployed"));
  EXPECT_TRUE(Contains(missing.status().message(),
                       "module upstream has no depot *nope, PState $$nope, query nope"));

  Result<ModuleInfo> fewer = engine_->Deploy(STRATA_DOWNSTREAM_MODULE, {.partitions = 2});
  ASSERT_FALSE(fewer.ok());
  EXPECT_EQ(fewer.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(fewer.status().message(),
                       "module downstream would have 2 partitions but module upstream, whose "
                       "depots it mirrors, has 4"));
  // None of the refusals left anything behind.
  ASSERT_TRUE(engine_->Deploy(STRATA_DOWNSTREAM_MODULE, {.partitions = kPartitions}).ok());
}

TEST_F(DependencyTest, DestroyUpdateAndRescaleOfADependencyAreRefusedNamingDependents) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  Status destroy = engine_->Destroy("upstream");
  EXPECT_EQ(destroy.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(destroy.message(),
                       "module downstream uses its depot *events, PState $$counts, query count"));

  Result<UpdateResult> drops_query = engine_->Update(STRATA_UPSTREAM_V2_MODULE, {});
  ASSERT_FALSE(drops_query.ok());
  EXPECT_EQ(drops_query.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(drops_query.status().message(),
                       "module downstream uses its query count, which the new build does not "
                       "declare"));

  Result<UpdateResult> cycle = engine_->Update(STRATA_UPSTREAM_CYCLE_MODULE, {});
  ASSERT_FALSE(cycle.ok());
  EXPECT_EQ(cycle.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(cycle.status().message(),
                       "module upstream would depend on itself through its dependencies "
                       "(upstream -> downstream -> upstream)"));

  Result<UpdateResult> rescale =
      engine_->Update(STRATA_UPSTREAM_MODULE, {.drop = {}, .partitions = 2});
  ASSERT_FALSE(rescale.ok());
  EXPECT_TRUE(Contains(rescale.status().message(),
                       "module downstream consumes its depot *events partition by partition"));

  // Downstream cannot take another partition count while it mirrors upstream's depot.
  Result<UpdateResult> rescale_down =
      engine_->Update(STRATA_DOWNSTREAM_MODULE, {.drop = {}, .partitions = 2});
  ASSERT_FALSE(rescale_down.ok());
  EXPECT_TRUE(Contains(rescale_down.status().message(),
                       "module downstream would have 2 partitions but module upstream, whose "
                       "depots it mirrors, has 4"));

  Status append = engine_->Append("downstream", "*events", Value("x")).status();
  EXPECT_EQ(append.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(append.message(), "is a mirror of module upstream's"));

  // Everything still runs; an update that keeps what downstream uses is accepted.
  ASSERT_NO_FATAL_FAILURE(AppendEvents("a", 0, 100));
  ASSERT_TRUE(engine_->Update(STRATA_UPSTREAM_MODULE, {}).ok());
  ASSERT_NO_FATAL_FAILURE(AppendEvents("b", 0, 100));
  ASSERT_NO_FATAL_FAILURE(ExpectSeenExactlyOnce());

  // Dependents first, then the dependency.
  ASSERT_TRUE(engine_->Destroy("downstream").ok());
  ASSERT_TRUE(engine_->Destroy("upstream").ok());
  EXPECT_TRUE(Must(engine_->Modules()).empty());
}

TEST_F(DependencyTest, ModuleWhoseDependencyFailedToLoadFailsToo) {
  ASSERT_NO_FATAL_FAILURE(Open());
  ASSERT_NO_FATAL_FAILURE(DeployBoth());
  ASSERT_NO_FATAL_FAILURE(AppendEvents("a", 0, 20));
  ASSERT_TRUE(engine_->WaitProcessed("downstream").ok());
  engine_.reset();
  fs::remove(data_dir() + "/modules/upstream.so");
  ASSERT_NO_FATAL_FAILURE(Open());
  ModuleInfo down = Must(engine_->Describe("downstream"));
  EXPECT_TRUE(Contains(down.load_error, "it depends on module upstream, which failed to load"))
      << down.load_error;
  EXPECT_FALSE(engine_->Invoke("downstream", "both", {Value("a1")}).ok());
}

}  // namespace
}  // namespace strata
