// A test fixture for runtime tests: an Engine on a temp dir with the rt_test module
// (testdata/rt_test_module.cc) deployed. Include from tests only.
#pragma once

#include <dlfcn.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "storage/testing/temp_dir.h"
#include "strata/engine.h"

namespace strata::testing {

inline constexpr int kPartitions = 4;
inline constexpr int kMaxStepAttempts = 3;

inline EngineOptions SmallEngineOptions(const std::string& data_dir) {
  EngineOptions options;
  options.data_dir = data_dir;
  options.task_threads = 3;
  options.cache_size_bytes = 64ull << 20;
  options.log_file_max_bytes = 4ull << 20;
  options.checkpoint_interval_s = 1;
  options.max_step_attempts = kMaxStepAttempts;
  return options;
}

template <typename T>
T Must(Result<T> result) {
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  if (!result.ok()) return T();
  return std::move(result).value();
}

inline Value KV(const std::string& key, Value value) {
  return Value::MapOf({{"key", key}, {"value", std::move(value)}});
}

class EngineFixture : public ::testing::Test {
 protected:
  std::string data_dir() const { return dir_.Sub("data"); }

  // Opens the engine and deploys rt_test unless it is deployed.
  void Open() { OpenWith(SmallEngineOptions(data_dir())); }
  void OpenWith(const EngineOptions& options) {
    Result<std::unique_ptr<Engine>> engine = Engine::Open(options);
    ASSERT_TRUE(engine.ok()) << engine.status().ToString();
    engine_ = std::move(engine).value();
    if (engine_->Describe("rt_test").ok()) return;
    Result<ModuleInfo> info = engine_->Deploy(STRATA_RT_TEST_MODULE, {.partitions = kPartitions});
    ASSERT_TRUE(info.ok()) << info.status().ToString();
  }
  void Reopen() {
    engine_.reset();
    Open();
  }

  // Calls of the flaky step for record n, counted inside the engine's copy of the plugin.
  int FlakyAttempts(int64_t n) {
    const std::string path = data_dir() + "/modules/rt_test.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    EXPECT_NE(handle, nullptr) << "the engine has not loaded " << path;
    if (handle == nullptr) return -1;
    auto fn = reinterpret_cast<int (*)(int64_t)>(dlsym(handle, "rt_test_flaky_attempts"));
    const int attempts = fn ? fn(n) : -1;
    dlclose(handle);
    return attempts;
  }

  // Opens or closes the gate of the "gate" step in the engine's copy of the plugin.
  void SetGate(bool open) {
    const std::string path = data_dir() + "/modules/rt_test.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    ASSERT_NE(handle, nullptr) << "the engine has not loaded " << path;
    auto fn = reinterpret_cast<void (*)(bool)>(dlsym(handle, "rt_test_set_gate"));
    EXPECT_NE(fn, nullptr);
    if (fn != nullptr) fn(open);
    dlclose(handle);
  }

  // Waits up to 30 s until `steps` steps wait at the closed gate; false if they never do.
  bool WaitForGateWaiters(int steps) {
    const std::string path = data_dir() + "/modules/rt_test.so";
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    EXPECT_NE(handle, nullptr) << "the engine has not loaded " << path;
    if (handle == nullptr) return false;
    auto fn = reinterpret_cast<int (*)()>(dlsym(handle, "rt_test_gate_waiting"));
    EXPECT_NE(fn, nullptr);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    bool reached = false;
    while (fn != nullptr && !(reached = fn() >= steps) &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    dlclose(handle);
    return reached;
  }

  TempDir dir_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace strata::testing
