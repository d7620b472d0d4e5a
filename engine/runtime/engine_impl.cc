// EngineImpl's lifetime: Open (storage, metadata tables, outbox, task threads, then the
// modules and the outbox rows a crash left) and Close. Threading: Open and Close run on the
// caller's thread; Close drains the task threads and then stops them (docs/runtime.md,
// "Shutdown").
#include "runtime/engine_impl.h"
#include "runtime/microbatch_executor.h"
#include "runtime/query_executor.h"
#include "runtime/replication_impl.h"
#include "runtime/ticker.h"

#include <algorithm>
#include <filesystem>

#include "replication/log_writer.h"
#include "runtime/meta_tables.h"
#include "runtime/stream_executor.h"

namespace strata {
namespace runtime {
namespace {

namespace fs = std::filesystem;

// The one translation of the engine's settings (their defaults are EngineOptions') into the
// storage's. The storage reports through the engine's logger unless the options route its
// warnings and fatal error elsewhere.
StorageOptions StorageOptionsFor(const EngineOptions& options, int task_threads,
                                 const std::shared_ptr<Logger>& logger) {
  StorageOptions so;
  so.path = options.data_dir;
  so.cache_size_bytes = options.cache_size_bytes;
  so.checkpoint_interval_s = options.checkpoint_interval_s;
  so.checkpoint_log_bytes = options.checkpoint_log_bytes;
  so.log_file_max_bytes = options.log_file_max_bytes;
  so.max_sessions = task_threads + 200;  // task threads, microbatch workers, loading, readers
  so.accept_log_loss = options.accept_log_loss;
  so.on_fatal_error = options.on_fatal_storage_error;
  if (!so.on_fatal_error) {
    so.on_fatal_error = [logger](const Status& cause) {
      logger->Error("storage failed: " + cause.ToString());
    };
  }
  so.on_warning = options.on_storage_warning;
  if (!so.on_warning) {
    so.on_warning = [logger](const std::string& warning) {
      logger->Warning("storage: " + warning);
    };
  }
  so.on_message = [logger](bool error, const std::string& message) {
    logger->Log(error ? Logger::Level::kError : Logger::Level::kInfo, "storage: " + message);
  };
  return so;
}

}  // namespace

EngineImpl::EngineImpl(const EngineOptions& options)
    : options_(options),
      logger_(options.logger ? options.logger : StderrLogger()),
      limit_(std::max(1, options.max_in_flight_records)) {}

Result<std::unique_ptr<Engine>> EngineImpl::Open(const EngineOptions& options) {
  return Open(options, nullptr);
}

Result<std::unique_ptr<Engine>> EngineImpl::Open(const EngineOptions& options,
                                                 std::shared_ptr<CommitHook> commit_hook) {
  if (options.max_step_attempts < 1) {
    return Status::InvalidArgument("max_step_attempts must be at least 1, not " +
                                   std::to_string(options.max_step_attempts));
  }
  std::unique_ptr<EngineImpl> engine(new EngineImpl(options));
  if (options.replicated) {
    if (commit_hook != nullptr) {
      return Status::InvalidArgument("a replicated engine installs its own commit hook");
    }
    // A group without state is followed, never led at a first epoch: only Lead leads.
    auto writer = std::make_shared<replication::LogWriter>(replication::GroupLayout(1), 0,
                                                           /*lead_new_groups=*/false);
    engine->replication_ = std::make_unique<ReplicationImpl>(*engine, writer);
    commit_hook = std::move(writer);
  }
  engine->commit_hook_ = std::move(commit_hook);
  // The task threads run from OpenStorage on: replays start while later modules load, and
  // the destructor, which drains through them, works when a later step fails.
  STRATA_RETURN_IF_ERROR(engine->OpenStorage());
  if (engine->replication_) STRATA_RETURN_IF_ERROR(engine->replication_->OpenGroups());
  STRATA_RETURN_IF_ERROR(engine->LoadDeployedModules());
  engine->ticker_ = std::make_unique<Ticker>(*engine);
  engine->ticker_->Start();
  return std::unique_ptr<Engine>(std::move(engine));
}

Status EngineImpl::OpenStorage() {
  std::error_code ec;
  fs::create_directories(fs::path(options_.data_dir) / "modules", ec);
  if (ec) {
    // Name the real cause: a data directory that exists but cannot be used is not one
    // that "cannot be created".
    std::error_code status_ec;
    const fs::file_status status = fs::status(options_.data_dir, status_ec);
    if (fs::exists(status) && !fs::is_directory(status)) {
      return Status::IOError("data directory " + options_.data_dir + " is not a directory");
    }
    const std::string verb = fs::is_directory(status) ? "cannot use" : "cannot create";
    return Status::IOError(verb + " data directory " + options_.data_dir + ": " + ec.message());
  }
  int threads = options_.task_threads > 0 ? options_.task_threads
                                          : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(threads, 1);
  StorageOptions storage_options = StorageOptionsFor(options_, threads, logger_);
  storage_options.commit_hook = commit_hook_;
  STRATA_ASSIGN_OR_RETURN(storage_, Storage::Open(storage_options));
  STRATA_ASSIGN_OR_RETURN(modules_table_, storage_->OpenTable(kModulesTable, TableKind::kBytes));
  STRATA_ASSIGN_OR_RETURN(progress_table_, storage_->OpenTable(kProgressTable, TableKind::kBytes));
  STRATA_ASSIGN_OR_RETURN(failures_table_, storage_->OpenTable(kFailuresTable, TableKind::kBytes));
  {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
    STRATA_ASSIGN_OR_RETURN(outbox_, Outbox::Open(*storage_, *session));
  }
  executor_ = std::make_unique<StreamExecutor>(*this, threads);
  batcher_ = std::make_unique<MicrobatchExecutor>(*this);
  queries_ = std::make_unique<QueryExecutor>(*this);
  subscriptions_ = std::make_unique<SubscriptionHub>(options_.max_subscriptions);
  for (int i = 0; i < threads; ++i) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
    threads_.push_back(
        std::make_unique<TaskThread>(i, std::move(session), progress_table_, *logger_,
                                     [this](TaskThread& t) { executor_->SettleGroup(t); }));
    threads_.back()->Start();
  }
  return Status::Ok();
}

Replication* EngineImpl::replication() { return replication_.get(); }

EngineImpl::~EngineImpl() {
  if (closed_) return;
  Status st = Close();
  if (!st.ok()) logger_->Error("closing the engine: " + st.ToString());
}

Status EngineImpl::Close() {
  closed_ = true;
  closing_.store(true);
  if (ticker_) ticker_->Stop();
  {
    // Rebuild threads see closing_ and end (an unfinished rebuild starts over after Open).
    std::vector<std::thread> rebuilds;
    {
      MutexLock lock(&rebuild_threads_mu_);
      rebuilds.swap(rebuild_threads_);
    }
    for (std::thread& thread : rebuilds) thread.join();
  }
  // A running Deploy, Update (a rescale stops early, seeing closing_), Recompute or Destroy
  // finishes first.
  MutexLock admin(&admin_mu_);
  {
    // Every queued append and event finishes; replays finish too (they hold nodes).
    MutexLock lock(&live_mu_);
    while (live_nodes_ != 0 || live_replays_ != 0) live_cv_.Wait(&live_mu_);
  }
  Barrier();  // the last progress markers are written after their completions
  {
    ReaderMutexLock lock(&modules_mu_);
    for (auto& [name, m] : modules_) batcher_->Stop(*m);
  }
  for (auto& thread : threads_) thread->Stop();
  threads_.clear();  // joins; closes the task threads' sessions
  if (subscriptions_) subscriptions_->EndAll(Status::Busy("the engine is closing"));
  if (replication_) replication_->Close();
  Status flushed;
  if (storage_) {
    Status st = storage_->WaitDurable();
    if (!st.ok()) flushed = Status(st.code(), "final flush failed: " + st.message());
  }
  {
    WriterMutexLock lock(&modules_mu_);
    modules_.clear();
  }
  {
    MutexLock lock(&pool_mu_);
    pool_.clear();
  }
  storage_.reset();
  return flushed;
}

}  // namespace runtime

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  return runtime::EngineImpl::Open(options);
}

}  // namespace strata
