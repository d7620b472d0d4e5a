// A small Storage for unit tests: one per test, in a TempDir. Include from tests only (it
// reports failures through GoogleTest).
#pragma once

#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "storage/storage.h"

namespace strata::testing {

// A 32 MiB cache, 1 MiB log files (WiredTiger preallocates each log file at full size, so
// the default 100 MiB would cost every test that much disk) and 20 sessions.
inline StorageOptions SmallStorageOptions(const std::string& path) {
  StorageOptions options;
  options.path = path;
  options.cache_size_bytes = 32ull << 20;
  options.log_file_max_bytes = 1ull << 20;
  options.checkpoint_interval_s = 60;
  options.checkpoint_log_bytes = 16ull << 20;
  options.max_sessions = 20;
  return options;
}

// Opens a Storage with SmallStorageOptions(path); on failure records a test failure that
// names the reason and returns null.
inline std::unique_ptr<Storage> OpenSmallStorage(const std::string& path) {
  auto storage = Storage::Open(SmallStorageOptions(path));
  if (!storage.ok()) {
    ADD_FAILURE() << "opening a test Storage in '" << path << "': " << storage.status().ToString();
    return nullptr;
  }
  return std::move(storage).value();
}

}  // namespace strata::testing
