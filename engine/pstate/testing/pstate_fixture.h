// A Storage in a temp dir with one Session, for PState tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "pstate/pstate.h"
#include "storage/storage.h"
#include "storage/testing/temp_dir.h"

namespace strata::testing {

class TestStore {
 public:
  TestStore() { Reopen(); }

  // Closes and reopens the storage (the data stays).
  void Reopen() {
    session_.reset();
    storage_.reset();
    StorageOptions options;
    options.path = dir_.path();
    options.cache_size_bytes = 64ull << 20;
    options.log_file_max_bytes = 1ull << 20;
    options.checkpoint_interval_s = 60;
    options.max_sessions = 20;
    auto storage = Storage::Open(options);
    if (!storage.ok()) ADD_FAILURE() << storage.status().ToString();
    storage_ = std::move(storage).value();
    auto session = storage_->OpenSession();
    if (!session.ok()) ADD_FAILURE() << session.status().ToString();
    session_ = std::move(session).value();
  }

  std::unique_ptr<PState> Open(std::string_view name, const PStateSchema& schema,
                               int partitions = 1, const PStateOpenOptions& options = {}) {
    auto ps = PState::Open(storage_.get(), "test", name, schema, partitions, options);
    if (!ps.ok()) ADD_FAILURE() << ps.status().ToString();
    return ps.ok() ? std::move(ps).value() : nullptr;
  }

  Storage& storage() { return *storage_; }
  Session& session() { return *session_; }
  const std::string& path() const { return dir_.path(); }

 private:
  TempDir dir_;
  std::unique_ptr<Storage> storage_;
  std::unique_ptr<Session> session_;
};

}  // namespace strata::testing
