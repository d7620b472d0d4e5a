// EngineImpl: the embedded engine behind strata/engine.h (docs/runtime.md). Its definitions
// are split by concern:
//   engine_impl.cc      opening the storage and task threads, closing
//   module_registry.cc  deploy, load at Open, failed modules, orphans, destroy, describe
//   append_path.cc      AppendAsync, the in-flight limit, append queues, drains, disk room
//   stream_executor.cc  stream topology events (StreamExecutor, a peer of future executors)
//   ack_tree.cc         completion of events, runs and records; progress trackers
//   recovery.cc         replay from recorded progress, outbox recovery at Open
//   reads.cc            select, read depot, stats, WaitProcessed, the session pool
// and uses the pieces declared beside it: task_thread.h, module_runtime.h, ack_tree.h,
// append_path.h, outbox.h, meta_tables.h, partitioning.h.
//
// Threading: every public method is thread-safe (strata/engine.h). The private methods say
// which thread runs them; fields say which mutex guards them or which thread owns them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "runtime/ack_tree.h"
#include "runtime/append_path.h"
#include "runtime/module_runtime.h"
#include "runtime/outbox.h"
#include "runtime/task_thread.h"
#include "storage/storage.h"
#include "strata/engine.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

class StreamExecutor;

class EngineImpl final : public Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  ~EngineImpl() override;
  Status Close() override;

  Result<ModuleInfo> Deploy(const std::string& so_path, const DeployOptions& options) override;
  Result<std::vector<ModuleInfo>> Modules() override;
  Result<ModuleInfo> Describe(const std::string& module) override;
  Status Destroy(const std::string& module) override;
  Result<UpdateResult> Update(const std::string& so_path, const UpdateOptions& options) override;
  Status Recompute(const std::string& module, const std::vector<std::string>& pstates) override;
  void AppendAsync(const std::string& module, const std::string& depot, std::vector<Value> records,
                   AckLevel level, AppendCallback done) override;
  Result<std::vector<Value>> Select(const std::string& module, const std::string& pstate,
                                    const Path& path, std::optional<Value> partition_key) override;
  Result<Value> SelectOne(const std::string& module, const std::string& pstate, const Path& path,
                          std::optional<Value> partition_key) override;
  Result<std::vector<DepotEntry>> ReadDepot(const std::string& module, const std::string& depot,
                                            int partition, int64_t from, int64_t to,
                                            int64_t limit) override;
  Status WaitProcessed(const std::string& module) override;
  Result<ModuleStats> Stats(const std::string& module, const StatsOptions& options) override;

 private:
  friend class StreamExecutor;  // its events append (PostAppend) and complete (CompleteEvent)

  explicit EngineImpl(const EngineOptions& options);

  // A deployed module that could not be loaded at Open (ModuleInfo::load_error). Its rows,
  // tables and file stay as they are until Destroy deletes them.
  struct FailedModule {
    int partitions = 0;  // from its row; 0 when the row does not say
    std::string error;   // why it could not be loaded
  };

  // Opening and loading.
  Status OpenStorage();
  Status LoadDeployedModules();
  // Loads one module of meta.modules (`info` is its row) and starts it; on failure nothing
  // of the module's data has been changed.
  Status LoadDeployedModule(const std::string& name, const Value& info);
  // Records the checksum of a module deployed before checksums were (its row has none).
  Status RecordChecksum(const std::string& name, const Value& info, const std::string& checksum);
  Result<std::shared_ptr<ModuleRuntime>> OpenModuleRuntime(std::unique_ptr<LoadedModule> loaded,
                                                           int partitions);
  Status LoadProgressAndFailures(ModuleRuntime& m);
  // Posts the module's left-over outbox appends, then replays its depot partitions from their
  // recorded progress. Appends to a replaying partition (those included) wait until its
  // replay ends. Fails, having started nothing, when the outbox rows do not decode.
  Status StartReplay(const std::shared_ptr<ModuleRuntime>& m);
  void ReplayChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                   int partition, int64_t next);
  // Reads [next, next + kReplayChunk) record by record after the chunk failed to read; the
  // offset to go on from, or -1 at the end.
  int64_t ReplayRecordByRecord(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                               int depot, int partition, int64_t next);
  // Starts one replayed record (`data`, or unreadable with `read_error`) through the
  // topologies whose progress is at or below it; one that does not decode or could not be
  // read is recorded as their failure.
  void ReplayRecord(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                    int partition, int64_t offset, std::string_view data, const Status& read_error);
  void FinishReplay(TaskThread& thread, ModuleRuntime& m, int partition) EXCLUDES(live_mu_);
  // The module's outbox rows a crash left (steps committed, records not yet appended), to be
  // appended again; StartReplay posts them. Rows of a module that is not loaded stay until
  // it loads or is destroyed.
  struct LeftOverAppend {
    int depot;
    int partition;
    AppendItem item;
  };
  Result<std::vector<LeftOverAppend>> LeftOverAppends(const ModuleRuntime& m);

  // The loaded module; kNotFound for an unknown module and for a failed one (naming its
  // load error).
  Result<std::shared_ptr<ModuleRuntime>> Find(const std::string& module) EXCLUDES(modules_mu_);
  static ModuleInfo DescribeFailed(const std::string& name, const FailedModule& failed);
  Result<int> FindDepot(const ModuleRuntime& m, const std::string& depot) const;
  Result<int> FindPState(const ModuleRuntime& m, const std::string& pstate) const;
  static ModuleInfo DescribeModule(const ModuleRuntime& m);

  // Destroying in two phases (crash-safe in this order). ForgetModule deletes every
  // metadata row of the module (meta.modules, meta.progress, meta.failures) in one
  // transaction and returns once that is durable; from then on the module does not exist
  // after a restart. DropModuleData drops its depot and PState tables and its plugin copy;
  // the module must have no runtime. Both hold admin_mu_ or run during Open.
  Status ForgetModule(const std::string& module);
  Status DropModuleData(const std::string& module);
  // At Open: drops tables, and removes files in modules/, of modules without a row.
  Status DropOrphans(const std::set<std::string>& deployed);

  // kIOError while the data directory's file system has less than min_free_disk_bytes
  // available (the figure is read at most every kDiskCheckInterval). Any thread.
  Status DiskRoomForAppends();

  // Append path (owner thread of the partition).
  void AppendDrained(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                     int partition, std::deque<AppendItem>& drained);
  void PostAppend(const std::shared_ptr<ModuleRuntime>& m, int depot, int partition,
                  std::vector<AppendItem> items) EXCLUDES(live_mu_);
  void RunAppend(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                 int partition, std::vector<AppendItem>& items);
  void StartRecord(TaskThread& thread, const std::shared_ptr<AckNode>& node,
                   const std::vector<int>& topologies, const Value& record);

  // Ack tree.
  void CompleteEvent(const std::shared_ptr<TopologyRun>& run);
  void CompleteRun(const std::shared_ptr<TopologyRun>& run);
  void CompleteNodePart(const std::shared_ptr<AckNode>& node) EXCLUDES(live_mu_);

  // Runs `fn` once on every task thread after everything queued before it, and waits.
  void Barrier();
  Result<std::unique_ptr<Session>> TakeSession() EXCLUDES(pool_mu_);
  void ReturnSession(std::unique_ptr<Session> session) EXCLUDES(pool_mu_);

  const EngineOptions options_;
  const std::shared_ptr<Logger> logger_;  // options_.logger, or StderrLogger()
  std::unique_ptr<Storage> storage_;
  TableId modules_table_ = 0;
  TableId progress_table_ = 0;
  TableId failures_table_ = 0;
  std::unique_ptr<Outbox> outbox_;
  std::vector<std::unique_ptr<TaskThread>> threads_;
  std::unique_ptr<StreamExecutor> executor_;  // created before the task threads start
  InFlightLimit limit_;
  std::atomic<bool> closing_{false};
  bool closed_ = false;  // Close() ran (the destructor's thread or Close's caller only)

  Mutex admin_mu_;  // serializes Deploy and Destroy
  SharedMutex modules_mu_;
  std::map<std::string, std::shared_ptr<ModuleRuntime>> modules_ GUARDED_BY(modules_mu_);
  // Deployed modules that failed to load at Open; never also in modules_.
  std::map<std::string, FailedModule> failed_ GUARDED_BY(modules_mu_);

  // Record nodes not complete yet and replays not finished (the destructor drains them).
  Mutex live_mu_;
  CondVar live_cv_;  // signalled under live_mu_ when either count reaches zero
  int64_t live_nodes_ GUARDED_BY(live_mu_) = 0;
  int64_t live_replays_ GUARDED_BY(live_mu_) = 0;  // (depot, partition) replays running

  Mutex pool_mu_;
  std::vector<std::unique_ptr<Session>> pool_ GUARDED_BY(pool_mu_);
  std::atomic<uint64_t> deploy_counter_{0};
  // DiskRoomForAppends: the available bytes last read, and when (steady clock, ns).
  std::atomic<uint64_t> disk_available_{UINT64_MAX};
  std::atomic<int64_t> disk_checked_ns_{0};  // 0: never
};

}  // namespace strata::runtime
