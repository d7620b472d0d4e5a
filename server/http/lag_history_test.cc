// LagHistory over a real Engine (WiredTiger in a temp dir) with the test plugin rt_test
// (engine/runtime/testdata/rt_test_module.cc), whose "gate" topology holds records in flight
// while its gate is closed, so that a lag can be made and observed without timing.
#include "lag_history.h"

#include <dlfcn.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "strata/engine.h"
#include "strata/json.h"

namespace strata::server::http {
namespace {

constexpr int kPartitions = 4;

class LagHistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-lag-history-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    EngineOptions options;
    options.data_dir = dir_ + "/data";
    options.task_threads = 2;
    options.cache_size_bytes = 64ull << 20;
    options.log_file_max_bytes = 4ull << 20;
    Result<std::unique_ptr<Engine>> engine = Engine::Open(options);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    Result<ModuleInfo> info = engine_->Deploy(STRATA_RT_TEST_MODULE, {.partitions = kPartitions});
    ASSERT_TRUE(info.ok()) << info.status().ToString();
  }
  void TearDown() override {
    if (gate_closed_) SetGate(true);
    engine_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Calls `name` in the engine's copy of the plugin (loaded with RTLD_LOCAL, so found by
  // path with RTLD_NOLOAD).
  template <typename Fn>
  Fn* PluginFunction(const char* name) {
    const std::string path = dir_ + "/data/modules/rt_test.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    EXPECT_NE(handle, nullptr) << "the engine has not loaded " << path;
    if (handle == nullptr) return nullptr;
    auto* fn = reinterpret_cast<Fn*>(dlsym(handle, name));
    dlclose(handle);  // the engine keeps its own reference
    EXPECT_NE(fn, nullptr) << name;
    return fn;
  }
  void SetGate(bool open) {
    gate_closed_ = !open;
    if (auto* fn = PluginFunction<void(bool)>("rt_test_set_gate")) fn(open);
  }
  bool WaitForGateWaiter() {
    auto* fn = PluginFunction<int()>("rt_test_gate_waiting");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (fn != nullptr && std::chrono::steady_clock::now() < deadline) {
      if (fn() >= 1) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return false;
  }

  // Polls history.Of(module) until `done` holds of its "topologies" (30 s at most).
  template <typename Pred>
  Value WaitForTopologies(const LagHistory& history, const std::string& module, Pred done) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    Value of = history.Of(module);
    while (!done(*of.Find("topologies")) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      of = history.Of(module);
    }
    EXPECT_TRUE(done(*of.Find("topologies"))) << ToJson(of);
    return of;
  }

  std::string dir_;
  std::unique_ptr<Engine> engine_;
  bool gate_closed_ = false;
};

// The points of `topology` in an Of() answer's "topologies" map ({} when absent).
Value::List Series(const Value& topologies, const std::string& topology) {
  const Value* series = topologies.Find(topology);
  return series == nullptr ? Value::List{} : series->as_list();
}

TEST_F(LagHistoryTest, FirstSampleIsTakenAtConstruction) {
  // An interval of an hour: every point seen here comes from the constructor, and the
  // destructor must not wait the hour out (the test would hit its ctest timeout).
  LagHistory history(*engine_, std::chrono::hours(1), 10);
  const Value of = history.Of("rt_test");
  EXPECT_EQ(*of.Find("interval_ms"), Value(int64_t{3'600'000}));
  const Value& topologies = *of.Find("topologies");
  Result<ModuleInfo> info = engine_->Describe("rt_test");
  ASSERT_TRUE(info.ok());
  ASSERT_EQ(topologies.size(), info->topologies.size()) << ToJson(of);
  for (const TopologyInfo& topology : info->topologies) {
    Value::List points = Series(topologies, topology.name);
    ASSERT_EQ(points.size(), 1u) << topology.name << ": " << ToJson(of);
    EXPECT_GT(points[0].as_list()[0].as_int(), 1'600'000'000'000) << "unix ms";
    EXPECT_EQ(points[0].as_list()[1], Value(0)) << "nothing appended yet";
  }
}

TEST_F(LagHistoryTest, UnknownModuleHasNoTopologies) {
  LagHistory history(*engine_, std::chrono::hours(1), 10);
  EXPECT_EQ(history.Of("no_such_module"),
            Value::MapOf({{"interval_ms", int64_t{3'600'000}}, {"topologies", Value::EmptyMap()}}));
}

TEST_F(LagHistoryTest, ChartsTheEnginesLagAndKeepsTheLastSamples) {
  SetGate(false);
  // Identical records hash to one partition: appended in one batch (a later append to the
  // partition would wait for its task thread, which the first record holds at the gate),
  // they are all unprocessed while the gate is closed.
  constexpr int kRecords = 5;
  std::promise<void> appended;
  engine_->AppendAsync("rt_test", "*gate", std::vector<Value>(kRecords, Value("same")),
                       AckLevel::kAppended,
                       [&](Result<std::vector<AppendResult>>) { appended.set_value(); });
  ASSERT_TRUE(WaitForGateWaiter());
  appended.get_future().wait();
  // What the history must show: the engine's lag of the topology, summed over partitions.
  Result<ModuleStats> stats = engine_->Stats("rt_test");
  ASSERT_TRUE(stats.ok());
  int64_t gate_lag = 0;
  for (const TopologyPartitionStats& t : stats->topologies) {
    if (t.topology == "gate") gate_lag += t.lag;
  }
  ASSERT_EQ(gate_lag, kRecords);

  constexpr size_t kSamples = 4;
  LagHistory history(*engine_, std::chrono::milliseconds(10), kSamples);
  // The history fills up to kSamples points, each showing the whole lag, and stays there.
  Value of = WaitForTopologies(history, "rt_test", [&](const Value& topologies) {
    Value::List points = Series(topologies, "gate");
    return points.size() == kSamples && points.front().as_list()[1] == Value(kRecords);
  });
  Value::List points = Series(*of.Find("topologies"), "gate");
  for (size_t i = 0; i < points.size(); ++i) {
    EXPECT_EQ(points[i].as_list()[1], Value(kRecords)) << ToJson(of);
    if (i > 0) {
      EXPECT_LE(points[i - 1].as_list()[0].as_int(), points[i].as_list()[0].as_int())
          << "oldest first: " << ToJson(of);
    }
  }
  // Other topologies are charted at 0 beside it.
  EXPECT_EQ(Series(*of.Find("topologies"), "wordcount").back().as_list()[1], Value(0));

  SetGate(true);
  ASSERT_TRUE(engine_->WaitProcessed("rt_test").ok());
  WaitForTopologies(history, "rt_test", [&](const Value& topologies) {
    Value::List now = Series(topologies, "gate");
    return now.size() == kSamples && now.back().as_list()[1] == Value(0);
  });
}

TEST_F(LagHistoryTest, DestroyedModuleIsDropped) {
  LagHistory history(*engine_, std::chrono::milliseconds(10), 10);
  ASSERT_GT(history.Of("rt_test").Find("topologies")->size(), 0u);
  ASSERT_TRUE(engine_->Destroy("rt_test").ok());
  WaitForTopologies(history, "rt_test",
                    [](const Value& topologies) { return topologies.size() == 0; });
}

}  // namespace
}  // namespace strata::server::http
