// EngineImpl: the embedded engine behind strata/engine.h (docs/runtime.md). Its definitions
// are split by concern:
//   engine_impl.cc      opening the storage and task threads, closing
//   module_registry.cc  deploy, load at Open, failed modules, orphans, destroy, describe
//   append_path.cc      AppendAsync, the in-flight limit, append queues, drains, disk room
//   stream_executor.cc  stream topology events (StreamExecutor, a peer of future executors)
//   ack_tree.cc         completion of events, runs and records; progress trackers
//   recovery.cc         replay from recorded progress, outbox recovery at Open
//   reads.cc            select, read depot, stats, metrics, WaitProcessed, the session pool
//   mirror.cc           module dependencies: mirror depots, dependency checks
//   subscriptions.cc    live subscriptions (SubscriptionHub; Subscribe is in reads.cc)
// and uses the pieces declared beside it: task_thread.h, module_runtime.h, ack_tree.h,
// append_path.h, outbox.h, meta_tables.h, partitioning.h, metrics_registry.h.
//
// Threading: every public method is thread-safe (strata/engine.h). The private methods say
// which thread runs them; fields say which mutex guards them or which thread owns them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/ack_tree.h"
#include "runtime/append_path.h"
#include "runtime/meta_tables.h"
#include "runtime/module_runtime.h"
#include "runtime/outbox.h"
#include "runtime/pooled_session.h"
#include "runtime/subscriptions.h"
#include "runtime/task_thread.h"
#include "runtime/update_plan.h"
#include "storage/storage.h"
#include "strata/engine.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

class StreamExecutor;
class MicrobatchExecutor;
class QueryExecutor;
class BatchRun;
class Ticker;
class ReplicationImpl;

class EngineImpl final : public Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  // As Open, with `commit_hook` installed on the engine's Storage from its opening on
  // (StorageOptions::commit_hook: the replication log, docs/cluster.md).
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options,
                                              std::shared_ptr<CommitHook> commit_hook);
  ~EngineImpl() override;

  // The engine's Storage, for what runs beside the engine on the same data (the replication
  // log's shipping, tests). Valid until the engine is destroyed.
  Storage& storage() { return *storage_; }
  Status Close() override;
  // The replicated engine's (EngineOptions::replicated), else null.
  Replication* replication() override;

  // ---- For the replicated engine (replication_impl.h); any thread, no engine lock held.
  // Starts module `name` from its meta.modules row as Open starts a deployed module
  // (recovery, replays, ticks), unless it runs already or has no row (OK then). One that
  // cannot start is kept as failed, with the error returned.
  Status StartLedModule(const std::string& name);
  // Stops module `name`'s runtime, if it runs, without touching its data: appends waiting
  // for their acknowledgement fail with kAborted, what was accepted finishes, and once it
  // returns no code of the module runs and nothing of it is written. Forgets it as failed.
  Status StopModule(const std::string& name);
  bool Running(const std::string& name);
  // Runs `fn` while no deploy, update, rescale, recompute swap or destroy runs on this node
  // (they hold admin_mu_ from before a module's row changes until the tables it no longer
  // names are dropped): what `fn` reads of a module's row and tables is one version of it
  // (ReplicationImpl::ReadSnapshot). kAborted, without waiting, while one runs (a rescale
  // may take minutes). `fn` must not start or stop a module.
  Status WithModulesSteady(const std::function<Status()>& fn) {
    if (!admin_mu_.TryLock()) {
      return Status::Aborted(
          "a deploy, update, rescale, recompute or destroy is running on "
          "this node: ask again");
    }
    Status st = fn();
    admin_mu_.Unlock();
    return st;
  }
  // The module's meta.modules row; nullopt when it has none.
  Result<std::optional<ModuleRow>> ReadModuleRow(const std::string& name);
  // Deletes the module's meta rows (not logged: this node's copy only), then its tables and
  // (unless `keep_files`) its plugin files. It must not run.
  Status DropLocalCopy(const std::string& name, bool keep_files = false);
  // Makes the file at `from` durable (fsync), renames it to `to` and makes the rename durable
  // (fsync of the directory): a module row that names `to`, committed after this returned,
  // never outlives the file after a power loss. kIOError naming the file.
  static Status InstallFileDurably(const std::string& from, const std::string& to);
  // fn(Session&) (a Status or Result) with a session of the engine's pool, returned after:
  // replication's calls come many times a second, and opening a session (and its cursors)
  // for each was a visible part of a follower's CPU.
  template <typename F>
  auto WithPooledSession(F fn) -> decltype(fn(std::declval<Session&>())) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
    PooledSession session(std::move(taken),
                          [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
    return fn(*session.get());
  }
  const EngineOptions& options() const { return options_; }

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
  Result<uint64_t> Subscribe(const std::string& module, const std::string& pstate, const Path& path,
                             const SubscribeOptions& options,
                             SubscriptionCallback callback) override;
  void Unsubscribe(uint64_t id) override;
  Result<SelectPageResult> SelectPage(const std::string& module, const std::string& pstate,
                                      const Path& path, const std::string& token,
                                      int64_t limit) override;
  Result<Value> Invoke(const std::string& module, const std::string& query, std::vector<Value> args,
                       const InvokeOptions& options) override;
  Status WaitProcessed(const std::string& module) override;
  Result<ModuleStats> Stats(const std::string& module, const StatsOptions& options) override;
  EngineMetrics Metrics() override;

 private:
  friend class StreamExecutor;      // its events append (PostAppend) and complete (CompleteEvent)
  friend class MicrobatchExecutor;  // likewise its batches
  friend class BatchRun;
  friend class Ticker;         // reads modules_, appends ticks (PostAppend)
  friend class QueryExecutor;  // finds modules, borrows sessions of the pool

  explicit EngineImpl(const EngineOptions& options);

  // A plugin copied into the modules directory (staged under a temporary name) and loaded.
  struct StagedModule {
    std::string path;
    std::string checksum;
    std::shared_ptr<LoadedModule> loaded;
  };
  // A deployed module that could not be loaded at Open (ModuleInfo::load_error). Its rows,
  // tables and file stay as they are until Destroy deletes them.
  struct FailedModule {
    int partitions = 0;  // from its row; 0 when the row does not say
    std::string error;   // why it could not be loaded
  };

  // Opening and loading.
  Status OpenStorage();
  Status LoadDeployedModules();
  // Loading one module of meta.modules (`info` is its row): its plugin first (for all
  // modules, so that they start in the order of their dependencies), then its runtime; on
  // failure nothing of the module's data has been changed.
  struct PluginLoad {
    ModuleRow row;
    std::unique_ptr<LoadedModule> loaded;
    bool legacy = false;  // its row had no checksum (recorded once the module starts)
  };
  Result<PluginLoad> LoadDeployedPlugin(const std::string& name, const Value& info);
  Status StartDeployedModule(const std::string& name, PluginLoad& plugin);
  // A replica creates a depot partition's table at its first replicated write: before the
  // module starts on it (StartLedModule), the tables of the partitions of its depots that
  // were never written are created (empty), as Depot::Open expects partitions [0, P).
  Status CreateUnwrittenPartitions(const ModuleDef& def, const ModuleRow& row);
  // What a new runtime of a module shares with the previous one (Update, a rebuild's
  // shadow and swap): the depots, the PStates not named in `fresh_pstates` (nor changed in
  // schema or generation), and with `trackers` the progress trackers of the (topology,
  // depot) pairs it keeps. The PStates named in `placeholders` are shared too, whatever
  // their schema, for the caller to replace after its commit: opening them would rewrite
  // their stored schema (or bind the new plugin's migration) before the switch.
  struct Reuse {
    const ModuleRuntime* previous = nullptr;
    std::set<std::string> fresh_pstates;
    bool trackers = true;
    std::set<std::string> placeholders;
  };
  // Builds the runtime of a module from its row: opens its depots and PStates (creating
  // missing ones) and makes its progress trackers (at 0; LoadProgressAndFailures reads the
  // recorded ones), sharing what `reuse` says instead.
  Result<std::shared_ptr<ModuleRuntime>> OpenModuleRuntime(std::shared_ptr<LoadedModule> loaded,
                                                           const ModuleRow& row,
                                                           const Reuse& reuse);
  Result<std::shared_ptr<PState>> OpenPState(const std::string& module, const PStateDef& pstate,
                                             int partitions, int generation);
  // The trackers of (topology, depot) by partition in `m`, or nullptr.
  static const std::shared_ptr<ProgressTracker>* FindTrackers(const ModuleRuntime& m,
                                                              const std::string& topology,
                                                              const std::string& depot);
  Status LoadProgressAndFailures(ModuleRuntime& m);
  // Counts the module's rows in meta.failures (into m.failure_count).
  Status LoadFailureCount(ModuleRuntime& m);

  // Update (lifecycle.cc). Quiesce closes the module's update gate (AppendAsync calls are
  // held), stops its catch-up cursors and waits until nothing of it is queued or in
  // flight. Resume undoes it (an update that failed before its commit).
  // `also` (a rebuild's shadow) is waited for too.
  void Quiesce(ModuleRuntime& m, ModuleRuntime* also = nullptr) EXCLUDES(live_mu_);
  void Resume(const std::shared_ptr<ModuleRuntime>& m);
  // Installs `next` in place of the quiesced `old`: the calls `old` held go to `next`
  // first, in order, then those that found `next` meanwhile, then every later one
  // (AppendToRuntime forwards what still finds `old`).
  void Publish(const std::shared_ptr<ModuleRuntime>& old,
               const std::shared_ptr<ModuleRuntime>& next);
  // Releases the calls held at `from`'s gate into `to` in order, with no lock held while
  // they run; when none is left, opens the gate (from == to) or makes `to` the successor.
  void DrainHeld(ModuleRuntime& from, const std::shared_ptr<ModuleRuntime>& to);
  // An update committed but its version could not be opened: the module is failed with
  // `error` until a restart, and the calls held (and later ones) get kNotFound.
  void Abandon(const std::shared_ptr<ModuleRuntime>& old, const std::string& error);
  // The row that describes `m` as it runs.
  static ModuleRow RowOf(const ModuleRuntime& m);
  // Reads the subscriptions of `m`'s PStates named in `pstates` (all when empty) again after
  // their tables or code changed (a recompute's swap, an update), pushing what changed.
  void RefreshSubscriptions(const ModuleRuntime& m, const std::set<std::string>& pstates);
  // Ends the subscriptions an update from `old` to `next` breaks (a PState dropped, the
  // partition count changed) and refreshes the others.
  void CarrySubscriptions(const ModuleRuntime& old, const ModuleRuntime& next);
  // Waits until nothing but the caller holds `m` (readers finish quickly), then releases it.
  static void ReleaseWhenUnused(std::shared_ptr<ModuleRuntime>& m);

  // Migrations (migration.cc). LoadMigrations reads how far each declared migration's pass
  // got (finishing those done everywhere); StartMigrations runs the unfinished passes, a
  // batch per task on each partition's owner thread.
  Status LoadMigrations(ModuleRuntime& m);
  void StartMigrations(const std::shared_ptr<ModuleRuntime>& m);
  void MigrateChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int pstate,
                    int partition);
  static std::vector<RebuildProgress> MigrationProgress(const ModuleRuntime& m);

  // Runs `writes` in one transaction and waits until it is durable (an update's switch).
  Status CommitDurably(const std::function<Status(Session&)>& writes);
  // Removes every row of `table` whose key starts with `prefix`, in the session's
  // transaction.
  static Status RemovePrefix(Session& session, TableId table, const std::string& prefix);
  // The end of an update once `next` is published: releases `old` (waiting for its
  // readers), drops the tables and plugin copy only it used, and describes the result.
  UpdateResult FinishUpdate(std::shared_ptr<ModuleRuntime> old, const ModuleRuntime& next,
                            const UpdatePlan& plan, std::chrono::microseconds pause);
  // Rescale (rescale.cc): Update's path when the partition count changes. `old` is the
  // running version (the caller's only reference), `staged` the new build installed at
  // row.file, `row` the new version's row before its partitions and generations are set.
  Result<UpdateResult> Rescale(std::shared_ptr<ModuleRuntime> old, StagedModule& staged,
                               const UpdatePlan& plan, ModuleRow row, int partitions);
  // Copies depot `old_index` of `old` into generation `generation` of depot `def` with
  // `partitions` partitions, and its offset map; adds the records copied to `copied`.
  Status CopyDepot(const ModuleRuntime& old, int old_index, const DepotDef& def, int partitions,
                   int generation, int64_t* copied);
  static std::string RescaleMapTable(const std::string& module, const std::string& depot,
                                     int generation);
  // Writes a done marker for every declared migration of `m` (its PStates were rebuilt).
  Status MarkMigrationsDone(Session& session, const ModuleRuntime& m);

  // Rebuilds (rebuild.cc). The shadow of `m` that rebuilds every PState into the generation
  // `row` names, every topology catching up from offset 0; `targets` (by index) are the
  // PStates it swaps in at the end.
  Result<std::shared_ptr<ModuleRuntime>> OpenShadow(const ModuleRuntime& m, const ModuleRow& row,
                                                    const std::vector<bool>& targets);
  // Waits (on its own thread) until the shadow `s` of `module` has caught up, then swaps its
  // PStates in. Returns early when the engine closes or the rebuild is cancelled.
  void FinishRecompute(const std::string& module, std::shared_ptr<ModuleRuntime> s);
  // `m`: the caller's only reference (released here before the old tables are dropped).
  Status SwapRecomputed(std::shared_ptr<ModuleRuntime> m, const std::shared_ptr<ModuleRuntime>& s);
  // Detaches and stops `m`'s rebuild, if one runs (Destroy, a failed swap).
  void CancelRebuild(ModuleRuntime& m);
  static bool CaughtUp(const ModuleRuntime& s);
  // Whether the microbatch topologies of the shadow `s` replayed every batch of the live
  // `module` (true when it is gone).
  bool ReplayedLive(const std::string& module, const ModuleRuntime& s);
  // Marks `s` a shadow that swaps in the PStates `swap_in` (by index): trackers not
  // persisted, every one backfilling from its start.
  static void MakeShadow(ModuleRuntime& s, std::vector<bool> swap_in);
  // Waits until none of `r`'s record nodes is in flight.
  static void WaitNoLiveNodes(ModuleRuntime& r);
  // The names of the PStates a shadow swaps in, comma-separated.
  static std::string SwapInNames(const ModuleRuntime& s);
  std::vector<RebuildProgress> RecomputeProgress(const ModuleRuntime& m);
  // Lists every backfilling tracker's (topology, depot) in its partition's catching_up
  // (before the module is published).
  static void MarkCatchingUp(ModuleRuntime& m);
  // Drops the module's depot and PState tables that its version does not use (declared by
  // no depot or PState, or of another generation): what an update, recompute or rescale
  // left when it replaced them or a crash interrupted it.
  // Returns how many it dropped.
  Result<int> DropStrayTables(const ModuleRuntime& m);
  Status WriteModuleRow(const std::string& name, const ModuleRow& row);

  // `verb` starts the error message ("deploying", "updating").
  Result<StagedModule> StageModule(const std::string& so_path, const std::string& verb);
  void DiscardStaged(StagedModule& staged);
  // Renames the staged copy to `file` (relative to the data directory), durably
  // (InstallFileDurably).
  Status InstallStaged(StagedModule& staged, const std::string& file);
  // Posts the module's left-over outbox appends, then replays its depot partitions from their
  // recorded progress. Appends to a replaying partition (those included) wait until its
  // replay ends. Fails, having started nothing, when the outbox rows do not decode.
  Status StartReplay(const std::shared_ptr<ModuleRuntime>& m);
  void ReplayChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                   int partition, int64_t next);
  // Reads [next, next + kReplayChunk) record by record after the chunk failed to read,
  // passing each record (or its read error) to `start`; the offset to go on from, or -1 at
  // the end.
  using StoredRecordVisitor =
      std::function<void(int64_t offset, std::string_view data, const Status& read_error)>;
  int64_t ReplayRecordByRecord(TaskThread& thread, ModuleRuntime& m, int depot, int partition,
                               int64_t next, const StoredRecordVisitor& start);
  // Starts one replayed record (`data`, or unreadable with `read_error`) through the
  // topologies whose progress is at or below it; one that does not decode or could not be
  // read is recorded as their failure.
  void ReplayRecord(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                    int partition, int64_t offset, std::string_view data, const Status& read_error);
  // Starts a record read from the depot (`data`, or unreadable with `read_error`) through
  // `topologies`; one that does not decode or could not be read is recorded as their
  // failure.
  void StartStoredRecord(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                         int partition, int64_t offset, std::string_view data,
                         const Status& read_error, const std::vector<int>& topologies);
  void FinishReplay(TaskThread& thread, ModuleRuntime& m, int partition) EXCLUDES(live_mu_);
  // The node of a record already in the depot, started through `topologies` (no client,
  // no durability part), counted live until they finish it.
  std::shared_ptr<AckNode> NewNode(const std::shared_ptr<ModuleRuntime>& m, RecordId id,
                                   const std::vector<int>& topologies);

  // Backfill (backfill.cc): a cursor per backfilling tracker reads its depot partition from
  // the tracker's progress and starts each record through its topology alone, a chunk per
  // task, parked while it runs too far ahead of the topology's progress; at the end of the
  // depot it joins live processing. Started by StartReplay (and Update, Recompute).
  void StartBackfills(const std::shared_ptr<ModuleRuntime>& m);
  void BackfillChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int topology,
                     int depot, int partition);
  // A run of `m` completed and moved its tracker: wakes the tracker's parked cursor.
  void WakeBackfill(const std::shared_ptr<ModuleRuntime>& m, const TopologyRun& run);
  // Adds the records of depot partition (depot, partition) of `m` to progress's total, and
  // those below the tracker's progress to its done.
  static void AddProgress(const ModuleRuntime& m, int depot, int partition,
                          const ProgressTracker& tracker, RebuildProgress* progress);
  // Module dependencies (mirror.cc; docs/runtime.md, "Mirror depots"). CheckDependencies:
  // kInvalidArgument naming every module, depot, PState and query `def` uses that is not
  // deployed and loaded, and a partition count that differs from that of a module whose
  // depot it mirrors.
  Status CheckDependencies(const ModuleDef& def, int partitions) EXCLUDES(modules_mu_);
  // The loaded modules other than `module` that depend on it, by name.
  std::vector<std::string> DependentsOf(const std::string& module) REQUIRES_SHARED(modules_mu_);
  // kInvalidArgument naming the dependents of `module` when it is destroyed (`next` null),
  // updated to a build `next` that lacks what one of them uses, or (`rescale`) given
  // another partition count while one of them mirrors its depots.
  Status CheckDependents(const std::string& module, const ModuleDef* next, bool rescale)
      EXCLUDES(modules_mu_);
  // kInvalidArgument when `def` (the next build of module def.name) depends, directly or
  // through other deployed modules, on module def.name itself (the modules could not load).
  Status CheckNoCycle(const ModuleDef& def) EXCLUDES(modules_mu_);
  // OpenModuleRuntime's part: the other modules' Depot objects and taps for m's mirror
  // depots (kNotFound / kInvalidArgument when a module or depot is missing, or the
  // partition counts differ).
  Status OpenMirrorDepots(ModuleRuntime& m) EXCLUDES(modules_mu_);
  // Makes the cursors and taps of m's topologies over mirror depots and adds them to the
  // depots' taps (the cursors do not run until StartMirrors).
  void MakeMirrorTaps(const std::shared_ptr<ModuleRuntime>& m);
  // Starts (or, after Resume, restarts) every mirror cursor of `m` from its progress.
  // Called by StartBackfills.
  void StartMirrors(const std::shared_ptr<ModuleRuntime>& m);
  void MirrorChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int topology,
                   int depot, int partition);
  // A run over a mirror depot completed: wakes its cursor when it parked too far ahead.
  void WakeMirror(const std::shared_ptr<ModuleRuntime>& m, const TopologyRun& run);
  // Recompute: the shadow's mirror cursors follow the live module's.
  static void FollowLeaders(ModuleRuntime& s, const ModuleRuntime& m);
  // The swap of a recompute, the live module quiesced: waits until the shadow's mirror
  // cursors have processed up to where the live ones stopped.
  void WaitMirrorsAligned(ModuleRuntime& s);
  // The backfills running in `m`, for Stats.
  std::vector<RebuildProgress> BackfillProgress(const ModuleRuntime& m);
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
  // `logged` false: the deletes are not written to a replication log (DropLocalCopy).
  Status ForgetModule(const std::string& module, bool logged = true);
  Status DropModuleData(const std::string& module, bool keep_files = false);
  // At Open: drops tables of modules without a row, and removes every file in modules/
  // that no row names. `deployed`: module -> the file its row names.
  Status DropOrphans(const std::map<std::string, std::string>& deployed);

  // kIOError while the data directory's file system has less than min_free_disk_bytes
  // available (the figure is read at most every kDiskCheckInterval). Any thread.
  Status DiskRoomForAppends();

  // AppendAsync's wrappers of its callback. GateAcks: a successful result passes
  // EngineOptions::ack_gate first (which may fail it). AbortWhenSteppedDown (a replicated
  // engine): a result that arrives once Follow stopped `m` is kAborted. The ack gate lives
  // as long as the engine; so must the callbacks' runs.
  AppendCallback GateAcks(const std::string& module, AppendCallback done);
  static AppendCallback AbortWhenSteppedDown(const ModuleRuntime& m, AppendCallback done);

  // AppendAsync after Find: the update gate, then the checks and the queues. Any thread.
  // `bypass_gate`: a held call being released (DrainHeld), admitted although the gate is
  // still closed for newer calls.
  void AppendToRuntime(std::shared_ptr<ModuleRuntime> m, const std::string& depot,
                       std::vector<Value> records, AckLevel level, AppendCallback done,
                       bool bypass_gate = false);

  // Append path (owner thread of the partition).
  void AppendDrained(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                     int partition, std::deque<AppendItem>& drained);
  void PostAppend(const std::shared_ptr<ModuleRuntime>& m, int depot, int partition,
                  std::vector<AppendItem> items) EXCLUDES(live_mu_);
  void RunAppend(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                 int partition, std::vector<AppendItem>& items);
  void StartRecord(TaskThread& thread, const std::shared_ptr<AckNode>& node,
                   const std::vector<int>& topologies, const Value& record);

  // Record nodes in flight, counted per module (Update waits for its module's) and in all
  // (the destructor drains them).
  void AddLiveNodes(ModuleRuntime& m, int64_t n) EXCLUDES(live_mu_);
  void ReleaseLiveNodes(ModuleRuntime& m, int64_t n) EXCLUDES(live_mu_);

  // Ack tree.
  void CompleteEvent(const std::shared_ptr<TopologyRun>& run);
  void CompleteRun(const std::shared_ptr<TopologyRun>& run);
  void CompleteNodePart(const std::shared_ptr<AckNode>& node) EXCLUDES(live_mu_);

  // WaitProcessed for the module's runtime found now (not a recompute's swap): kReplaced
  // when that runtime was replaced meanwhile, kBatchesMoved when a microbatch committed a
  // batch during the pass (look again for the records it appended).
  enum class Pass { kDone, kReplaced, kBatchesMoved };
  static constexpr int kMaxBatchPasses = 16;
  Result<Pass> WaitProcessedOnce(const std::string& module);
  // Runs `fn` once on every task thread after everything queued before it, and waits.
  void Barrier();
  Result<std::unique_ptr<Session>> TakeSession() EXCLUDES(pool_mu_);
  void ReturnSession(std::unique_ptr<Session> session) EXCLUDES(pool_mu_);

  const EngineOptions options_;
  const std::shared_ptr<Logger> logger_;     // options_.logger, or StderrLogger()
  std::shared_ptr<CommitHook> commit_hook_;  // installed on storage_ (Open); may be null
  // EngineOptions::replicated: the engine's replication, over the LogWriter in commit_hook_.
  std::unique_ptr<ReplicationImpl> replication_;
  std::unique_ptr<Storage> storage_;
  TableId modules_table_ = 0;
  TableId progress_table_ = 0;
  TableId failures_table_ = 0;
  std::unique_ptr<Outbox> outbox_;
  std::vector<std::unique_ptr<TaskThread>> threads_;
  std::unique_ptr<StreamExecutor> executor_;  // created before the task threads start
  std::unique_ptr<MicrobatchExecutor> batcher_;
  std::unique_ptr<QueryExecutor> queries_;
  std::unique_ptr<SubscriptionHub> subscriptions_;  // live subscriptions (subscriptions.h)
  std::unique_ptr<Ticker> ticker_;                  // started once the deployed modules are loaded
  InFlightLimit limit_;
  AppendPhaseHistograms append_phases_;  // client appends' times (EngineMetrics::append_phases)
  MetricsRegistry metrics_;
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
  Mutex rebuild_threads_mu_;
  std::vector<std::thread> rebuild_threads_ GUARDED_BY(rebuild_threads_mu_);  // joined by Close
  // DiskRoomForAppends: the available bytes last read, and when (steady clock, ns).
  std::atomic<uint64_t> disk_available_{UINT64_MAX};
  std::atomic<int64_t> disk_checked_ns_{0};  // 0: never
};

}  // namespace strata::runtime
