// The embedded engine: module table, append path, topology execution, ack tree, progress
// and recovery. docs/runtime.md is the design; comments here explain the choices.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iterator>
#include <latch>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <shared_mutex>
#include <span>

#include "module/record_check.h"
#include "runtime/outbox.h"
#include "runtime/runtime.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata {
namespace runtime {
namespace {

namespace fs = std::filesystem;

constexpr const char* kModulesTable = "meta.modules";
constexpr const char* kProgressTable = "meta.progress";
constexpr const char* kFailuresTable = "meta.failures";
constexpr size_t kReplayChunk = 256;

// "*sentences" -> "sentences": depot and PState tables are named without the sigil.
std::string_view Bare(std::string_view name) {
  while (!name.empty() && (name.front() == '*' || name.front() == '$')) name.remove_prefix(1);
  return name;
}

std::string ProgressKey(const std::string& module, const std::string& topology,
                        const std::string& depot, int partition) {
  std::string key;
  AppendKey(Value(module), &key);
  AppendKey(Value(topology), &key);
  AppendKey(Value(depot), &key);
  AppendKey(Value(partition), &key);
  return key;
}

std::string FailureKey(const std::string& module, const TopologyFailure& f) {
  std::string key = ProgressKey(module, f.topology, f.depot, f.partition);
  AppendKey(Value(f.offset), &key);
  return key;
}

// Cuts `message` to at most kMaxFailureMessageBytes, the marker that says how much was cut
// included (so cutting twice changes nothing), at a UTF-8 character boundary: a step's
// error often quotes its whole record, which may be megabytes, and every failure travels
// in stats responses.
std::string ShortFailureMessage(std::string message) {
  if (message.size() <= kMaxFailureMessageBytes) return message;
  constexpr size_t kMarkerRoom = 40;  // " … (N bytes more)" with N up to 20 digits
  size_t cut = kMaxFailureMessageBytes - kMarkerRoom;
  while (cut > 0 && (static_cast<unsigned char>(message[cut]) & 0xC0) == 0x80) --cut;
  const size_t more = message.size() - cut;
  message.resize(cut);
  message += " \u2026 (" + std::to_string(more) + " bytes more)";
  return message;
}

Value FailureToValue(const TopologyFailure& f) {
  return Value::MapOf({{"topology", f.topology},
                       {"depot", f.depot},
                       {"partition", f.partition},
                       {"offset", f.offset},
                       {"message", f.message}});
}

std::optional<TopologyFailure> FailureFromValue(const Value& v) {
  if (!v.is_map()) return std::nullopt;
  const Value* topology = v.Find("topology");
  const Value* depot = v.Find("depot");
  const Value* partition = v.Find("partition");
  const Value* offset = v.Find("offset");
  const Value* message = v.Find("message");
  if (!topology || !depot || !partition || !offset || !message || !topology->is_string() ||
      !depot->is_string() || !partition->is_int() || !offset->is_int() || !message->is_string()) {
    return std::nullopt;
  }
  // Rows recorded before messages were cut may hold a whole record: cut when read.
  return TopologyFailure{topology->as_string(), depot->as_string(),
                         static_cast<int>(partition->as_int()), offset->as_int(),
                         ShortFailureMessage(message->as_string())};
}

int RandomPartition(int partitions) {
  thread_local std::minstd_rand rng(std::random_device{}());
  return static_cast<int>(rng() % static_cast<uint32_t>(partitions));
}

int HashPartition(const Value& key, int partitions) {
  return static_cast<int>(HashKey(key) % static_cast<uint64_t>(partitions));
}

std::string PartitioningName(const DepotPartitioning& p) {
  switch (p.kind) {
    case DepotPartitioning::Kind::kHash: return "hash(" + p.key_path.ToString() + ")";
    case DepotPartitioning::Kind::kRandom: return "random";
    case DepotPartitioning::Kind::kNoClientAppends: return "no client appends";
  }
  return "unknown";
}

// The depot partition a record goes to (client appends and TopologyContext::Append).
Result<int> ChoosePartition(const DepotDef& depot, const Value& record, int partitions,
                            int current_partition) {
  switch (depot.partitioning.kind) {
    case DepotPartitioning::Kind::kHash: {
      if (depot.partitioning.key_path.navigators().empty()) return HashPartition(record, partitions);
      Result<Value> key = SelectOne(record, depot.partitioning.key_path);
      if (!key.ok()) {
        return Status::InvalidArgument("depot " + depot.name + " partitions by " +
                                       depot.partitioning.key_path.ToString() +
                                       ", which does not select one value from record " +
                                       record.ToString() + ": " + key.status().message());
      }
      return HashPartition(*key, partitions);
    }
    case DepotPartitioning::Kind::kRandom: return RandomPartition(partitions);
    case DepotPartitioning::Kind::kNoClientAppends: return current_partition;
  }
  return Status::Internal("unknown partitioning of depot " + depot.name);
}

}  // namespace

class EngineImpl;

// The TopologyContext of one attempt of one event. Everything it would send elsewhere
// (hops, depot appends, the ack return) is buffered and released only after the step's
// transaction commits, so a retried attempt never duplicates them.
class StepContext final : public TopologyContext {
 public:
  struct Hop {
    int partition;
    int op;
    Value value;
  };
  struct PendingAppend {
    int depot;
    int partition;
    AppendItem item;
  };

  // `grouped`: the step joins its task thread's event group, whose transaction the first
  // step that touches a PState begins and the group's settling commits.
  StepContext(ModuleRuntime& module, Outbox& outbox, Session& session, int partition,
              RecordId source, bool grouped)
      : module_(module),
        outbox_(outbox),
        session_(session),
        partition_(partition),
        source_(source),
        grouped_(grouped) {}

  int partition() const override { return partition_; }
  int num_partitions() const override { return module_.partitions; }
  RecordId source() const override { return source_; }

  Result<std::vector<Value>> Select(const PStateRef& ref, const Path& path) override {
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    STRATA_RETURN_IF_ERROR(BeginOnce());
    return pstate->Select(session_, PartitionOf(*pstate), path);
  }
  Result<Value> SelectOne(const PStateRef& ref, const Path& path) override {
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    STRATA_RETURN_IF_ERROR(BeginOnce());
    return pstate->SelectOne(session_, PartitionOf(*pstate), path);
  }
  Result<int64_t> Transform(const PStateRef& ref, const Path& path) override {
    STRATA_ASSIGN_OR_RETURN(const PState* pstate, Resolve(ref));
    if (pstate->schema().global && partition_ != 0) {
      return Status::InvalidArgument(ref.name + " is a global PState: only partition 0 may write it, "
                                     "and this step runs on partition " +
                                     std::to_string(partition_) + " (route with Global() first)");
    }
    STRATA_RETURN_IF_ERROR(BeginOnce());
    return pstate->Transform(session_, PartitionOf(*pstate), path);
  }
  Status Append(const DepotRef& ref, Value record) override {
    const std::vector<DepotDef>& depots = module_.def->depots;
    if (ref.index < 0 || ref.index >= static_cast<int>(depots.size()) ||
        depots[ref.index].name != ref.name) {
      return Status::InvalidArgument("module " + module_.name + " has no depot " + ref.name);
    }
    STRATA_RETURN_IF_ERROR(CheckRecord(depots[ref.index], record));
    STRATA_ASSIGN_OR_RETURN(int partition,
                            ChoosePartition(depots[ref.index], record, module_.partitions, partition_));
    STRATA_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeValueChecked(record));
    AppendItem item;
    item.bytes.assign(bytes.begin(), bytes.end());
    // The record commits with the step (outbox.h); it is appended after that commit.
    STRATA_RETURN_IF_ERROR(BeginOnce());
    STRATA_ASSIGN_OR_RETURN(item.outbox_key,
                            outbox_.Put(session_, module_.name, ref.name, partition, item.bytes));
    item.record = std::move(record);
    appends_.push_back({ref.index, partition, std::move(item)});
    return Status::Ok();
  }
  void Emit(Value value) override {
    if (emitted_ != nullptr) emitted_->push_back(std::move(value));
  }
  void SetAckReturn(Value value) override { ack_return_ = std::move(value); }

  void set_emitted(std::vector<Value>* emitted) { emitted_ = emitted; }
  void AddHop(int partition, int op, Value value) { hops_.push_back({partition, op, std::move(value)}); }
  std::vector<Hop>& hops() { return hops_; }
  std::vector<PendingAppend>& appends() { return appends_; }
  std::optional<Value>& ack_return() { return ack_return_; }
  bool began() const { return began_; }
  ModuleRuntime& module() const { return module_; }

 private:
  // The step's transaction starts at its first PState access: a step that only routes,
  // emits or appends (the first step of word count) costs no storage transaction.
  Status BeginOnce() {
    if (began_) return Status::Ok();
    began_ = true;
    if (grouped_ && session_.in_transaction()) return Status::Ok();  // an earlier member's
    return session_.Begin();  // fails loudly if a transaction was left open on the session
  }

  Result<const PState*> Resolve(const PStateRef& ref) const {
    const std::vector<PStateDef>& defs = module_.def->pstates;
    if (ref.index < 0 || ref.index >= static_cast<int>(defs.size()) || defs[ref.index].name != ref.name) {
      return Status::InvalidArgument("module " + module_.name + " has no PState " + ref.name);
    }
    return module_.pstates[ref.index].get();
  }
  int PartitionOf(const PState& pstate) const { return pstate.schema().global ? 0 : partition_; }

  ModuleRuntime& module_;
  Outbox& outbox_;
  Session& session_;
  const int partition_;
  const RecordId source_;
  std::vector<Value>* emitted_ = nullptr;
  std::vector<Hop> hops_;
  std::vector<PendingAppend> appends_;
  std::optional<Value> ack_return_;
  const bool grouped_;
  bool began_ = false;
};

// Consecutive topology events of one task thread that share one transaction
// (docs/runtime.md, "Event groups"). Each member ran successfully inside the group's open
// transaction; its hops, appends, ack return and completion wait for the group's commit.
// Touched only by the owning task thread.
struct EventGroup {
  struct Member {
    std::unique_ptr<StepContext> ctx;  // knows the module and partition
    Event event;  // its input is kept for a rerun alone if the group is rolled back
  };
  std::vector<Member> members;
  std::chrono::steady_clock::time_point opened;
};

// A group is settled (committed) once it holds this many events or this long has passed since
// its first event started, which bounds the steps per transaction and the delay a group
// adds to its first event's completion.
constexpr size_t kMaxGroupEvents = 64;
constexpr std::chrono::microseconds kMaxGroupAge{1000};

// The most records and bytes of a depot partition's append queue appended in one
// transaction.
constexpr size_t kMaxDrainRecords = 1024;
constexpr size_t kMaxDrainBytes = 4 << 20;

// How often AppendAsync reads the data directory's free space.
constexpr std::chrono::milliseconds kDiskCheckInterval{100};

class EngineImpl final : public Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  ~EngineImpl() override;
  Status Close() override;

  Result<ModuleInfo> Deploy(const std::string& so_path, const DeployOptions& options) override;
  Result<std::vector<ModuleInfo>> Modules() override;
  Result<ModuleInfo> Describe(const std::string& module) override;
  Status Destroy(const std::string& module) override;
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
  void StartReplay(const std::shared_ptr<ModuleRuntime>& m);
  void ReplayChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                   int partition, int64_t next);
  void FinishReplay(TaskThread& thread, ModuleRuntime& m, int partition);
  // Posts the appends of the outbox rows a crash left (steps committed, records not yet
  // appended). Rows of a module that is not loaded stay until it is destroyed.
  Status RecoverOutbox();

  // The loaded module; kNotFound for an unknown module and for a failed one (naming its
  // load error).
  Result<std::shared_ptr<ModuleRuntime>> Find(const std::string& module);
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
                  std::vector<AppendItem> items);
  void RunAppend(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                 int partition, std::vector<AppendItem>& items);
  void StartRecord(TaskThread& thread, const std::shared_ptr<RecordNode>& node,
                   const std::vector<int>& topologies, const Value& record);

  // Topology execution (owner thread of `partition`).
  void RunEvent(TaskThread& thread, ModuleRuntime& m, int partition, Event event);
  void RunEventAlone(TaskThread& thread, ModuleRuntime& m, int partition, Event event,
                     int attempts, Status error);
  void SettleGroup(TaskThread& thread);
  void RerunAlone(TaskThread& thread, std::vector<EventGroup::Member>& members);
  // The error of a step that started at `started` and ran longer than step_timeout_ms; such
  // a step is rolled back and recorded as failed without a retry.
  Status StepOverTime(std::chrono::steady_clock::time_point started) const;
  Status RunOps(StepContext& ctx, ModuleRuntime& m, const TopologyDef& topology, int first_op,
                const Value& input);
  void Dispatch(StepContext& ctx, const std::shared_ptr<ModuleRuntime>& m,
                const std::shared_ptr<TopologyRun>& run);
  void RecordFailure(TaskThread& thread, ModuleRuntime& m, const TopologyRun& run, int partition,
                     int op, const Status& error);

  // Ack tree.
  void CompleteEvent(const std::shared_ptr<TopologyRun>& run);
  void CompleteRun(const std::shared_ptr<TopologyRun>& run);
  void CompleteNodePart(const std::shared_ptr<RecordNode>& node);

  // Runs `fn` once on every task thread after everything queued before it, and waits.
  void Barrier();
  Result<std::unique_ptr<Session>> TakeSession();
  void ReturnSession(std::unique_ptr<Session> session);

  const EngineOptions options_;
  std::unique_ptr<Storage> storage_;
  TableId modules_table_ = 0;
  TableId progress_table_ = 0;
  TableId failures_table_ = 0;
  std::unique_ptr<Outbox> outbox_;
  std::vector<std::unique_ptr<TaskThread>> threads_;
  std::vector<EventGroup> groups_;  // by task thread index; each touched only by its thread
  InFlightLimit limit_;
  std::atomic<bool> closing_{false};
  bool closed_ = false;  // Close() ran (the destructor's thread or Close's caller only)

  std::mutex admin_mu_;  // serializes Deploy and Destroy
  std::shared_mutex modules_mu_;
  std::map<std::string, std::shared_ptr<ModuleRuntime>> modules_;  // GUARDED_BY(modules_mu_)
  // Deployed modules that failed to load at Open; never also in modules_.
  std::map<std::string, FailedModule> failed_;  // GUARDED_BY(modules_mu_)

  // Record nodes not complete yet and replays not finished (the destructor drains them).
  std::mutex live_mu_;
  std::condition_variable live_cv_;
  int64_t live_nodes_ = 0;      // GUARDED_BY(live_mu_)
  int64_t live_replays_ = 0;    // GUARDED_BY(live_mu_): (depot, partition) replays running

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<Session>> pool_;  // GUARDED_BY(pool_mu_)
  std::atomic<uint64_t> deploy_counter_{0};
  // DiskRoomForAppends: the available bytes last read, and when (steady clock, ns).
  std::atomic<uint64_t> disk_available_{UINT64_MAX};
  std::atomic<int64_t> disk_checked_ns_{0};  // 0: never
};

namespace {

// The one translation of the engine's settings (their defaults are EngineOptions') into the
// storage's.
StorageOptions StorageOptionsFor(const EngineOptions& options, int task_threads) {
  StorageOptions so;
  so.path = options.data_dir;
  so.cache_size_bytes = options.cache_size_bytes;
  so.checkpoint_interval_s = options.checkpoint_interval_s;
  so.checkpoint_log_bytes = options.checkpoint_log_bytes;
  so.log_file_max_bytes = options.log_file_max_bytes;
  so.max_sessions = task_threads + 100;  // task threads, module loading and readers' pool
  so.accept_log_loss = options.accept_log_loss;
  so.on_fatal_error = options.on_fatal_storage_error;
  so.on_warning = options.on_storage_warning;
  return so;
}

// RAII for a session of the pool: reads on callers' threads (sessions are single-threaded).
class PooledSession {
 public:
  PooledSession(std::unique_ptr<Session> session, std::function<void(std::unique_ptr<Session>)> back)
      : session_(std::move(session)), back_(std::move(back)) {}
  ~PooledSession() {
    if (session_) back_(std::move(session_));
  }
  Session* get() { return session_.get(); }

 private:
  std::unique_ptr<Session> session_;
  std::function<void(std::unique_ptr<Session>)> back_;
};

}  // namespace

EngineImpl::EngineImpl(const EngineOptions& options)
    : options_(options), limit_(std::max(1, options.max_in_flight_records)) {}

Result<std::unique_ptr<Engine>> EngineImpl::Open(const EngineOptions& options) {
  if (options.max_step_attempts < 1) {
    return Status::InvalidArgument("max_step_attempts must be at least 1, not " +
                                   std::to_string(options.max_step_attempts));
  }
  std::unique_ptr<EngineImpl> engine(new EngineImpl(options));
  // The task threads run from OpenStorage on: replays start while later modules load, and
  // the destructor, which drains through them, works when a later step fails.
  STRATA_RETURN_IF_ERROR(engine->OpenStorage());
  STRATA_RETURN_IF_ERROR(engine->LoadDeployedModules());
  STRATA_RETURN_IF_ERROR(engine->RecoverOutbox());
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
  STRATA_ASSIGN_OR_RETURN(storage_, Storage::Open(StorageOptionsFor(options_, threads)));
  STRATA_ASSIGN_OR_RETURN(modules_table_, storage_->OpenTable(kModulesTable, TableKind::kBytes));
  STRATA_ASSIGN_OR_RETURN(progress_table_, storage_->OpenTable(kProgressTable, TableKind::kBytes));
  STRATA_ASSIGN_OR_RETURN(failures_table_, storage_->OpenTable(kFailuresTable, TableKind::kBytes));
  {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
    STRATA_ASSIGN_OR_RETURN(outbox_, Outbox::Open(*storage_, *session));
  }
  groups_.resize(threads);
  for (int i = 0; i < threads; ++i) {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
    threads_.push_back(std::make_unique<TaskThread>(
        i, std::move(session), progress_table_, [this](TaskThread& t) { SettleGroup(t); }));
    threads_.back()->Start();
  }
  return Status::Ok();
}

EngineImpl::~EngineImpl() {
  if (closed_) return;
  Status st = Close();
  if (!st.ok()) std::fprintf(stderr, "strata: %s\n", st.ToString().c_str());
}

Status EngineImpl::Close() {
  closed_ = true;
  closing_.store(true);
  {
    // Every queued append and event finishes; replays finish too (they hold nodes).
    std::unique_lock lock(live_mu_);
    live_cv_.wait(lock, [&] { return live_nodes_ == 0 && live_replays_ == 0; });
  }
  Barrier();  // the last progress markers are written after their completions
  for (auto& thread : threads_) thread->Stop();
  threads_.clear();  // joins; closes the task threads' sessions
  Status flushed;
  if (storage_) {
    Status st = storage_->WaitDurable();
    if (!st.ok()) flushed = Status(st.code(), "final flush failed: " + st.message());
  }
  {
    std::unique_lock lock(modules_mu_);
    modules_.clear();
  }
  {
    std::lock_guard lock(pool_mu_);
    pool_.clear();
  }
  storage_.reset();
  return flushed;
}

// ---- Modules -------------------------------------------------------------------------------

Result<std::shared_ptr<ModuleRuntime>> EngineImpl::OpenModuleRuntime(
    std::unique_ptr<LoadedModule> loaded, int partitions) {
  auto m = std::make_shared<ModuleRuntime>();
  m->def = &loaded->def();
  m->loaded = std::move(loaded);
  m->name = m->def->name;
  m->partitions = partitions;
  const ModuleDef& def = *m->def;
  m->depots.resize(def.depots.size());
  m->pstates.resize(def.pstates.size());
  // Depots and PStates with tables on disk are opened (their stored schemas checked) before
  // any missing one is created: a module refused for a schema mismatch at Open creates no
  // table.
  for (const bool existing : {true, false}) {
    for (size_t i = 0; i < def.depots.size(); ++i) {
      const std::string_view bare = Bare(def.depots[i].name);
      STRATA_ASSIGN_OR_RETURN(
          std::vector<std::string> tables,
          storage_->ListTables("depot." + m->name + "." + std::string(bare) + "."));
      if (tables.empty() == existing) continue;
      STRATA_ASSIGN_OR_RETURN(m->depots[i], Depot::Open(storage_.get(), m->name, bare, partitions));
    }
    for (size_t i = 0; i < def.pstates.size(); ++i) {
      const PStateDef& pstate = def.pstates[i];
      STRATA_ASSIGN_OR_RETURN(
          std::vector<std::string> tables,
          storage_->ListTables("pstate." + m->name + "." + std::string(Bare(pstate.name)) + "."));
      if (tables.empty() == existing) continue;
      STRATA_ASSIGN_OR_RETURN(m->pstates[i], PState::Open(storage_.get(), m->name, pstate.name,
                                                          pstate.schema, partitions));
    }
  }
  m->consumers.assign(def.depots.size(), {});
  m->trackers.assign(def.topologies.size(), {});
  for (size_t t = 0; t < def.topologies.size(); ++t) {
    m->trackers[t].resize(def.depots.size());
    for (int d : def.topologies[t].sources) {
      if (!m->trackers[t][d].empty()) continue;  // a depot named twice as source counts once
      m->consumers[d].push_back(static_cast<int>(t));
      for (int p = 0; p < partitions; ++p) {
        m->trackers[t][d].push_back(std::make_shared<ProgressTracker>(
            ProgressKey(m->name, def.topologies[t].name, def.depots[d].name, p), 0));
      }
    }
  }
  for (auto& consumers : m->consumers) std::sort(consumers.begin(), consumers.end());
  m->parts.resize(partitions);
  m->append_queues.resize(def.depots.size());
  for (auto& queues : m->append_queues) {
    for (int p = 0; p < partitions; ++p) queues.push_back(std::make_unique<AppendQueue>());
  }
  const uint64_t seed = HashKey(Value(m->name));
  for (int p = 0; p < partitions; ++p) {
    m->parts[p].owner = threads_[(seed + p) % threads_.size()].get();
  }
  return m;
}

Status EngineImpl::LoadProgressAndFailures(ModuleRuntime& m) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  for (auto& by_depot : m.trackers) {
    for (auto& by_partition : by_depot) {
      for (auto& tracker : by_partition) {
        std::string bytes;
        STRATA_ASSIGN_OR_RETURN(bool found, session->Get(progress_table_, tracker->key(), &bytes));
        if (!found) continue;
        Result<Value> offset = DecodeValue(bytes);
        if (!offset.ok() || !offset->is_int()) {
          return Status::Corruption("progress marker of module " + m.name + " does not decode");
        }
        tracker = std::make_shared<ProgressTracker>(tracker->key(), offset->as_int());
      }
    }
  }
  // Counts the failures, and rewrites the rows an older version stored with a whole record
  // in the message (FailureFromValue cut them as they were read).
  const std::string prefix = EncodeKey(Value(m.name));
  Status decode_error;
  std::vector<std::pair<std::string, std::string>> cut_rows;
  STRATA_RETURN_IF_ERROR(session->Scan(
      failures_table_, prefix, PrefixEnd(prefix), false, [&](std::string_view k, std::string_view v) {
        Result<Value> value = DecodeValue(v);
        std::optional<TopologyFailure> failure;
        if (value.ok()) failure = FailureFromValue(*value);
        if (!failure) {
          decode_error = Status::Corruption("a failure record of module " + m.name + " does not decode");
          return false;
        }
        ++m.failure_count;
        if (failure->message != value->Find("message")->as_string()) {
          std::string row;
          AppendValue(FailureToValue(*failure), &row);
          cut_rows.emplace_back(std::string(k), std::move(row));
        }
        return true;
      }));
  STRATA_RETURN_IF_ERROR(decode_error);
  for (const auto& [key, row] : cut_rows) {
    STRATA_RETURN_IF_ERROR(session->Put(failures_table_, key, row));
  }
  return Status::Ok();
}

Status EngineImpl::LoadDeployedModules() {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  std::vector<std::pair<std::string, Value>> rows;
  Status decode_error;
  STRATA_RETURN_IF_ERROR(session->Scan(modules_table_, "", "", false,
                                       [&](std::string_view key, std::string_view value) {
                                         Result<Value> name = DecodeKey(key);
                                         Result<Value> info = DecodeValue(value);
                                         if (!name.ok() || !info.ok() || !name->is_string() ||
                                             !info->is_map()) {
                                           decode_error = Status::Corruption(
                                               "a row of table meta.modules does not decode");
                                           return false;
                                         }
                                         rows.emplace_back(name->as_string(), std::move(*info));
                                         return true;
                                       }));
  STRATA_RETURN_IF_ERROR(decode_error);
  session.reset();
  std::set<std::string> deployed;
  for (const auto& row : rows) deployed.insert(row.first);
  // A failed module is in `deployed` too: its tables and file are not orphans.
  STRATA_RETURN_IF_ERROR(DropOrphans(deployed));
  // Each module loads on its own: one that cannot is kept as failed and the others serve.
  for (auto& [name, info] : rows) {
    Status st = LoadDeployedModule(name, info);
    if (st.ok()) continue;
    FailedModule failed;
    const Value* partitions = info.Find("partitions");
    if (partitions != nullptr && partitions->is_int()) {
      failed.partitions = static_cast<int>(partitions->as_int());
    }
    failed.error = st.message();
    std::unique_lock lock(modules_mu_);
    failed_[name] = std::move(failed);
  }
  return Status::Ok();
}

Status EngineImpl::LoadDeployedModule(const std::string& name, const Value& info) {
  const Value* partitions = info.Find("partitions");
  const Value* file = info.Find("file");
  const Value* checksum = info.Find("checksum");
  if (!partitions || !file || !partitions->is_int() || !file->is_string() ||
      partitions->as_int() < 1 || partitions->as_int() > Depot::kMaxPartitions ||
      (checksum != nullptr && !checksum->is_string())) {
    return Status::Corruption("the metadata of module " + name +
                              " is malformed: " + info.ToString());
  }
  const std::string path = (fs::path(options_.data_dir) / file->as_string()).string();
  // A row without a checksum was written before checksums were recorded: its file is
  // loaded unchecked this once, and its checksum recorded below.
  std::string legacy_checksum;
  if (checksum == nullptr) {
    STRATA_ASSIGN_OR_RETURN(legacy_checksum, ModuleFileChecksum(path));
  }
  STRATA_ASSIGN_OR_RETURN(
      std::unique_ptr<LoadedModule> loaded,
      LoadedModule::Load(path, checksum != nullptr ? checksum->as_string() : ""));
  if (loaded->def().name != name) {
    return Status::Corruption("the deployed copy " + path + " defines module " +
                              loaded->def().name + ", not " + name);
  }
  STRATA_ASSIGN_OR_RETURN(
      auto m, OpenModuleRuntime(std::move(loaded), static_cast<int>(partitions->as_int())));
  STRATA_RETURN_IF_ERROR(LoadProgressAndFailures(*m));
  if (checksum == nullptr) {
    STRATA_RETURN_IF_ERROR(RecordChecksum(name, info, legacy_checksum));
    std::fprintf(stderr,
                 "strata: module %s was deployed without a file checksum (by an older version); "
                 "loaded %s unchecked and recorded its checksum %s\n",
                 name.c_str(), path.c_str(), legacy_checksum.c_str());
  }
  StartReplay(m);
  std::unique_lock lock(modules_mu_);
  modules_[name] = std::move(m);
  return Status::Ok();
}

Status EngineImpl::RecordChecksum(const std::string& name, const Value& info,
                                  const std::string& checksum) {
  Value::Map fields = info.as_map();
  fields.emplace_back(Value("checksum"), Value(checksum));
  std::string row;
  AppendValue(Value::MapOf(std::move(fields)), &row);
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  return session->Put(modules_table_, EncodeKey(Value(name)), row);
}

Result<ModuleInfo> EngineImpl::Deploy(const std::string& so_path, const DeployOptions& options) {
  if (closing_.load()) return Status::Aborted("the engine is closing");
  if (options.partitions < 1 || options.partitions > Depot::kMaxPartitions) {
    return Status::InvalidArgument("a module needs 1 to " + std::to_string(Depot::kMaxPartitions) +
                                   " partitions, not " + std::to_string(options.partitions));
  }
  std::error_code ec;
  if (!fs::is_regular_file(so_path, ec)) {
    return Status::NotFound("module file " + so_path + " does not exist");
  }
  std::lock_guard admin(admin_mu_);
  // Load the engine's own copy, so that the code running is the file kept for restarts.
  const fs::path dir = fs::path(options_.data_dir) / "modules";
  const fs::path staged = dir / (".deploy-" + std::to_string(getpid()) + "-" +
                                 std::to_string(deploy_counter_.fetch_add(1)) + ".so");
  fs::copy_file(so_path, staged, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::IOError("copying " + so_path + " to " + staged.string() + ": " + ec.message());
  // The checksum of the bytes about to be loaded: each Open checks the kept copy against it.
  Result<std::string> checksum = ModuleFileChecksum(staged.string());
  Result<std::unique_ptr<LoadedModule>> loaded =
      checksum.ok() ? LoadedModule::Load(staged.string())
                    : Result<std::unique_ptr<LoadedModule>>(checksum.status());
  if (!loaded.ok()) {
    fs::remove(staged, ec);
    return Status(loaded.status().code(), "deploying " + so_path + ": " + loaded.status().message());
  }
  const std::string name = (*loaded)->def().name;
  {
    std::shared_lock lock(modules_mu_);
    if (modules_.count(name) != 0) {
      loaded->reset();
      fs::remove(staged, ec);
      return Status::AlreadyExists("module " + name + " is already deployed (destroy it first)");
    }
    if (auto it = failed_.find(name); it != failed_.end()) {
      loaded->reset();
      fs::remove(staged, ec);
      return Status::AlreadyExists("module " + name + " is deployed but failed to load (" +
                                   it->second.error + "): destroy it first");
    }
  }
  // Data of an earlier module of this name that a crash or failure left behind (without a
  // row, or with a row that Destroy could not delete) must not leak into the new one.
  Status cleared = ForgetModule(name);
  if (cleared.ok()) cleared = DropModuleData(name);
  if (!cleared.ok()) {
    loaded->reset();
    fs::remove(staged, ec);
    return Status(cleared.code(), "clearing leftovers of module " + name + ": " + cleared.message());
  }
  const std::string file = "modules/" + name + ".so";
  fs::rename(staged, fs::path(options_.data_dir) / file, ec);
  if (ec) {
    loaded->reset();
    fs::remove(staged, ec);
    return Status::IOError("installing module file " + file + ": " + ec.message());
  }
  STRATA_ASSIGN_OR_RETURN(auto m, OpenModuleRuntime(std::move(loaded).value(), options.partitions));
  // The row comes after the tables: a crash in between leaves tables without a row, which
  // the next Open (or Deploy of the name) drops.
  {
    STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
    std::string row;
    AppendValue(
        Value::MapOf({{"partitions", options.partitions}, {"file", file}, {"checksum", *checksum}}),
        &row);
    STRATA_RETURN_IF_ERROR(session->Put(modules_table_, EncodeKey(Value(name)), row));
  }
  STRATA_RETURN_IF_ERROR(storage_->WaitDurable());
  ModuleInfo info = DescribeModule(*m);
  std::unique_lock lock(modules_mu_);
  modules_[name] = std::move(m);
  return info;
}

Status EngineImpl::Destroy(const std::string& module) {
  std::lock_guard admin(admin_mu_);
  bool failed = false;
  {
    std::shared_lock lock(modules_mu_);
    failed = failed_.count(module) != 0;
  }
  if (failed) {
    // Nothing of it runs: its rows go first, durably, then its tables and file, as below.
    STRATA_RETURN_IF_ERROR(ForgetModule(module));
    {
      std::unique_lock lock(modules_mu_);
      failed_.erase(module);
    }
    return DropModuleData(module);
  }
  STRATA_ASSIGN_OR_RETURN(std::shared_ptr<ModuleRuntime> m, Find(module));
  m->closed.store(true);
  STRATA_RETURN_IF_ERROR(WaitProcessed(module));
  Barrier();  // no task of the module is queued any more
  {
    std::unique_lock lock(modules_mu_);
    modules_.erase(module);
  }
  for (auto& by_depot : m->trackers) {
    for (auto& by_partition : by_depot) {
      for (auto& tracker : by_partition) tracker->dropped.store(true);
    }
  }
  Barrier();  // progress markers queued before `dropped` was set are written by now
  // Rows first, tables second: a crash in between leaves tables without a module, which
  // Open and the next Deploy of the name drop. The reverse order could reload the module
  // with empty depots under surviving progress markers, which then never advance.
  STRATA_RETURN_IF_ERROR(ForgetModule(module));
  // Readers and flusher callbacks that still hold the module finish quickly; the Depot and
  // PState objects (and the plugin) must be gone before their tables are dropped.
  while (m.use_count() > 1) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  m.reset();
  return DropModuleData(module);
}

Status EngineImpl::ForgetModule(const std::string& module) {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  STRATA_RETURN_IF_ERROR(session->Begin());
  const std::string prefix = EncodeKey(Value(module));
  std::vector<std::string> keys;
  bool removed_any = false;
  for (TableId table : {progress_table_, failures_table_, outbox_->table()}) {
    keys.clear();
    Status st = session->Scan(table, prefix, PrefixEnd(prefix), false,
                              [&](std::string_view key, std::string_view) {
                                keys.emplace_back(key);
                                return true;
                              });
    for (size_t i = 0; st.ok() && i < keys.size(); ++i) st = session->Remove(table, keys[i]).status();
    if (!st.ok()) {
      session->Rollback();
      return st;
    }
    removed_any = removed_any || !keys.empty();
  }
  Result<bool> removed_row = session->Remove(modules_table_, prefix);
  if (!removed_row.ok()) {
    session->Rollback();
    return removed_row.status();
  }
  STRATA_RETURN_IF_ERROR(session->Commit());
  if (!removed_any && !*removed_row) return Status::Ok();
  return storage_->WaitDurable();
}

Status EngineImpl::DropModuleData(const std::string& module) {
  // Module names cannot contain '.', so these prefixes match this module's tables only.
  for (const std::string kind : {"depot.", "pstate."}) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables, storage_->ListTables(kind + module + "."));
    for (const std::string& table : tables) STRATA_RETURN_IF_ERROR(storage_->DropTable(table));
  }
  const fs::path file = fs::path(options_.data_dir) / "modules" / (module + ".so");
  std::error_code ec;
  fs::remove(file, ec);
  if (ec) return Status::IOError("removing " + file.string() + ": " + ec.message());
  return Status::Ok();
}

Status EngineImpl::DropOrphans(const std::set<std::string>& deployed) {
  std::map<std::string, int> dropped;  // by module
  for (const std::string kind : {"depot.", "pstate."}) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables, storage_->ListTables(kind));
    for (const std::string& table : tables) {
      const std::string_view rest = std::string_view(table).substr(kind.size());
      const std::string owner(rest.substr(0, rest.find('.')));
      if (deployed.count(owner) != 0) continue;
      STRATA_RETURN_IF_ERROR(storage_->DropTable(table));
      ++dropped[owner];
    }
  }
  for (const auto& [module, tables] : dropped) {
    std::fprintf(stderr, "strata: dropped %d tables of module %s, which is not deployed (a crash "
                 "interrupted its Deploy or Destroy)\n", tables, module.c_str());
  }
  // Plugin copies of undeployed modules and staged copies of interrupted deploys.
  const fs::path dir = fs::path(options_.data_dir) / "modules";
  std::error_code ec;
  std::vector<fs::path> stale;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool kept = name.ends_with(".so") && deployed.count(name.substr(0, name.size() - 3)) != 0;
    if (!kept) stale.push_back(it->path());
  }
  if (ec) return Status::IOError("listing " + dir.string() + ": " + ec.message());
  for (const fs::path& path : stale) {
    fs::remove(path, ec);
    if (ec) return Status::IOError("removing " + path.string() + ": " + ec.message());
  }
  return Status::Ok();
}

Result<std::shared_ptr<ModuleRuntime>> EngineImpl::Find(const std::string& module) {
  std::shared_lock lock(modules_mu_);
  auto it = modules_.find(module);
  if (it != modules_.end()) return it->second;
  // kNotFound: nothing the client sends can reach the module until an operator destroys it
  // or restores its file and restarts the server, so retrying is pointless.
  if (auto failed = failed_.find(module); failed != failed_.end()) {
    return Status::NotFound(
        "module " + module + " is deployed but failed to load, so it serves no requests: " +
        failed->second.error + " (destroy it, or restore its file and restart)");
  }
  return Status::NotFound("no module " + module + " is deployed");
}

Result<int> EngineImpl::FindDepot(const ModuleRuntime& m, const std::string& depot) const {
  for (size_t i = 0; i < m.def->depots.size(); ++i) {
    if (m.def->depots[i].name == depot) return static_cast<int>(i);
  }
  return Status::NotFound("module " + m.name + " has no depot " + depot);
}

Result<int> EngineImpl::FindPState(const ModuleRuntime& m, const std::string& pstate) const {
  for (size_t i = 0; i < m.def->pstates.size(); ++i) {
    if (m.def->pstates[i].name == pstate) return static_cast<int>(i);
  }
  return Status::NotFound("module " + m.name + " has no PState " + pstate);
}

ModuleInfo EngineImpl::DescribeModule(const ModuleRuntime& m) {
  ModuleInfo info;
  info.name = m.name;
  info.partitions = m.partitions;
  for (const DepotDef& d : m.def->depots) {
    info.depots.push_back({d.name, PartitioningName(d.partitioning), d.record_schema});
  }
  for (const PStateDef& p : m.def->pstates) info.pstates.push_back({p.name, p.schema});
  for (const TopologyDef& t : m.def->topologies) {
    TopologyInfo topology{t.name, {}};
    for (int d : t.sources) topology.sources.push_back(m.def->depots[d].name);
    info.topologies.push_back(std::move(topology));
  }
  return info;
}

ModuleInfo EngineImpl::DescribeFailed(const std::string& name, const FailedModule& failed) {
  ModuleInfo info;
  info.name = name;
  info.partitions = failed.partitions;
  info.load_error = failed.error;
  return info;
}

Result<std::vector<ModuleInfo>> EngineImpl::Modules() {
  std::shared_lock lock(modules_mu_);
  std::map<std::string, ModuleInfo> by_name;  // loaded and failed modules, by name
  for (const auto& [name, m] : modules_) by_name.emplace(name, DescribeModule(*m));
  for (const auto& [name, failed] : failed_) by_name.emplace(name, DescribeFailed(name, failed));
  std::vector<ModuleInfo> out;
  for (auto& [name, info] : by_name) out.push_back(std::move(info));
  return out;
}

Result<ModuleInfo> EngineImpl::Describe(const std::string& module) {
  {
    std::shared_lock lock(modules_mu_);
    if (auto it = failed_.find(module); it != failed_.end()) {
      return DescribeFailed(module, it->second);
    }
  }
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  return DescribeModule(*m);
}

// ---- Append ----------------------------------------------------------------------------------

void EngineImpl::AppendAsync(const std::string& module, const std::string& depot,
                             std::vector<Value> records, AckLevel level, AppendCallback done) {
  if (closing_.load()) return done(Status::Aborted("the engine is closing"));
  Result<std::shared_ptr<ModuleRuntime>> found = Find(module);
  if (!found.ok()) return done(found.status());
  std::shared_ptr<ModuleRuntime> m = std::move(found).value();
  if (m->closed.load()) return done(Status::NotFound("module " + module + " is being destroyed"));
  Result<int> d = FindDepot(*m, depot);
  if (!d.ok()) return done(d.status());
  const DepotDef& def = m->def->depots[*d];
  if (def.partitioning.kind == DepotPartitioning::Kind::kNoClientAppends) {
    return done(Status::InvalidArgument("depot " + depot + " of module " + module +
                                        " takes no client appends (only its topologies append)"));
  }
  if (records.empty()) return done(std::vector<AppendResult>{});
  if (Status room = DiskRoomForAppends(); !room.ok()) return done(room);
  // Every record is checked before any is queued: a refused batch leaves nothing in the log.
  for (size_t i = 0; i < records.size(); ++i) {
    if (Status st = CheckRecord(def, records[i]); !st.ok()) {
      return done(Status::SchemaViolation(
          "record " + std::to_string(i) + " of the batch of " + std::to_string(records.size()) +
          " does not match the record schema " + def.record_schema.ToString() + " of depot " +
          def.name + " (module " + module + "), so no record of the batch was appended: " +
          st.message()));
    }
  }
  auto batch = std::make_shared<ClientBatch>();
  batch->level = level;
  batch->done = std::move(done);
  batch->results.resize(records.size());
  batch->remaining.store(static_cast<int64_t>(records.size()));
  std::vector<std::vector<AppendItem>> by_partition(m->partitions);
  for (size_t i = 0; i < records.size(); ++i) {
    Result<int> p = ChoosePartition(def, records[i], m->partitions, 0);
    if (!p.ok()) return batch->Fail(p.status());
    Result<std::vector<uint8_t>> bytes = EncodeValueChecked(records[i]);
    if (!bytes.ok()) return batch->Fail(bytes.status());
    batch->results[i].partition = *p;
    AppendItem item;
    item.bytes.assign(bytes->begin(), bytes->end());
    item.record = std::move(records[i]);
    item.batch = batch;
    item.batch_index = i;
    by_partition[*p].push_back(std::move(item));
  }
  // Never blocks the caller (a server network thread must not wait for task threads): a
  // batch that does not fit under the in-flight limit waits for admission, in call order.
  auto parts = std::make_shared<std::vector<std::vector<AppendItem>>>(std::move(by_partition));
  limit_.Acquire(static_cast<int64_t>(records.size()),
                 [this, m, depot_index = *d, batch, parts](int64_t permits) {
                   batch->permits = permits;
                   // kNone answers at admission with the partitions only, but after the
                   // records are queued, so a WaitProcessed after its `done` covers them.
                   // The copy is taken before they are posted (their completions write the
                   // slots); `finished` keeps those completions from answering again.
                   std::vector<AppendResult> admitted;
                   if (batch->level == AckLevel::kNone) {
                     admitted = batch->results;
                     batch->finished.store(true);
                   }
                   for (int p = 0; p < m->partitions; ++p) {
                     if (!(*parts)[p].empty()) PostAppend(m, depot_index, p, std::move((*parts)[p]));
                   }
                   if (batch->level == AckLevel::kNone) batch->done(std::move(admitted));
                 });
}

Status EngineImpl::DiskRoomForAppends() {
  if (options_.min_free_disk_bytes == 0) return Status::Ok();
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  int64_t checked = disk_checked_ns_.load(std::memory_order_relaxed);
  if ((checked == 0 || now - checked >= std::chrono::nanoseconds(kDiskCheckInterval).count()) &&
      disk_checked_ns_.compare_exchange_strong(checked, now)) {  // one caller reads it
    std::error_code ec;
    const fs::space_info space = fs::space(options_.data_dir, ec);
    if (!ec) disk_available_.store(space.available, std::memory_order_relaxed);
  }
  const uint64_t available = disk_available_.load(std::memory_order_relaxed);
  if (available >= options_.min_free_disk_bytes) return Status::Ok();
  return Status::IOError("the disk of data directory " + options_.data_dir + " has " +
                         std::to_string(available >> 20) + " MiB available, below the " +
                         std::to_string(options_.min_free_disk_bytes >> 20) +
                         " MiB that appends need (min_free_disk_bytes): appends are refused "
                         "until space is freed; reads and processing go on");
}

// Appends to one depot partition queue up while its owner is busy: the first items into an
// empty queue post the task that drains it, so what is queued until that task runs is
// appended together — in transactions of at most kMaxDrainRecords / kMaxDrainBytes, each
// with one wait for durability. The task is posted under the queue's lock and takes the
// whole queue, so once this returns, a queued drain task will append `items`
// (WaitProcessed's barrier relies on it).
void EngineImpl::PostAppend(const std::shared_ptr<ModuleRuntime>& m, int depot, int partition,
                            std::vector<AppendItem> items) {
  {
    std::lock_guard lock(live_mu_);
    live_nodes_ += static_cast<int64_t>(items.size());  // released as each node completes
  }
  AppendQueue& queue = *m->append_queues[depot][partition];
  std::lock_guard lock(queue.mu);
  const bool was_empty = queue.items.empty();
  std::move(items.begin(), items.end(), std::back_inserter(queue.items));
  if (!was_empty) return;
  m->parts[partition].Post([this, m, depot, partition](TaskThread& thread) {
    auto drained = std::make_shared<std::deque<AppendItem>>();
    {
      AppendQueue& queue = *m->append_queues[depot][partition];
      std::lock_guard lock(queue.mu);
      drained->swap(queue.items);
    }
    PartitionRuntime& part = m->parts[partition];
    if (part.replays_pending > 0) {
      part.deferred.push_back([this, m, depot, partition, drained](TaskThread& t) {
        AppendDrained(t, m, depot, partition, *drained);
      });
      return;
    }
    AppendDrained(thread, m, depot, partition, *drained);
  });
}

void EngineImpl::AppendDrained(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m,
                               int depot, int partition, std::deque<AppendItem>& drained) {
  std::vector<AppendItem> chunk;
  while (!drained.empty()) {
    chunk.clear();
    size_t bytes = 0;
    do {  // at least one record, however big: a client request is at most one frame
      bytes += drained.front().bytes.size();
      chunk.push_back(std::move(drained.front()));
      drained.pop_front();
    } while (!drained.empty() && chunk.size() < kMaxDrainRecords &&
             bytes + drained.front().bytes.size() <= kMaxDrainBytes);
    RunAppend(thread, m, depot, partition, chunk);
  }
}

void EngineImpl::RunAppend(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                           int partition, std::vector<AppendItem>& items) {
  Result<int64_t> first = Status::NotFound("module " + m->name + " is being destroyed");
  if (!m->closed.load()) {
    std::vector<std::string_view> views;
    views.reserve(items.size());
    bool from_outbox = false;
    for (const AppendItem& item : items) {
      views.push_back(item.bytes);
      from_outbox = from_outbox || !item.outbox_key.empty();
    }
    // Topology appends leave the outbox in the transaction that appends them.
    std::function<Status(Session&)> remove_outbox_rows;
    if (from_outbox) {
      remove_outbox_rows = [&](Session& session) {
        for (const AppendItem& item : items) {
          if (!item.outbox_key.empty()) STRATA_RETURN_IF_ERROR(outbox_->Remove(session, item.outbox_key));
        }
        return Status::Ok();
      };
    }
    first = m->depots[depot]->AppendBatch(thread.session(), partition, views, remove_outbox_rows);
  }
  if (!first.ok()) {
    const Status error(first.status().code(), "appending to depot " + m->def->depots[depot].name +
                                                  " partition " + std::to_string(partition) + ": " +
                                                  first.status().message());
    for (AppendItem& item : items) {
      if (item.batch) {
        item.batch->Fail(error);
        if (static_cast<int64_t>(item.batch_index) < item.batch->permits) limit_.Release(1);
      }
      if (item.parent) {
        {
          std::lock_guard lock(item.parent->record->mu);
          if (item.parent->record->failure.ok()) item.parent->record->failure = error;
        }
        CompleteEvent(item.parent);
      }
    }
    std::lock_guard lock(live_mu_);
    live_nodes_ -= static_cast<int64_t>(items.size());
    live_cv_.notify_all();
    return;
  }
  const std::vector<int>& consumers = m->consumers[depot];
  std::vector<std::shared_ptr<RecordNode>> nodes;
  nodes.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    auto node = std::make_shared<RecordNode>();
    node->module = m;
    node->id = RecordId{depot, partition, *first + static_cast<int64_t>(i)};
    node->pending.store(static_cast<int64_t>(consumers.size()) + 1);  // +1: durability
    node->batch = std::move(items[i].batch);
    node->batch_index = items[i].batch_index;
    node->parent = std::move(items[i].parent);
    node->ack_returns.reserve(consumers.size());
    for (int t : consumers) node->ack_returns.emplace_back(m->def->topologies[t].name, Value());
    if (node->batch) node->batch->results[node->batch_index].offset = node->id.offset;
    nodes.push_back(std::move(node));
  }
  storage_->WhenDurable([this, nodes](Status st) {
    for (const std::shared_ptr<RecordNode>& node : nodes) {
      if (node->batch) {
        if (!st.ok()) {
          node->batch->Fail(Status(st.code(), "flushing the log failed: " + st.message()));
        } else if (node->batch->level == AckLevel::kAppended) {
          node->batch->RecordReached();
        }
      }
      CompleteNodePart(node);
    }
  });
  for (size_t i = 0; i < items.size(); ++i) StartRecord(thread, nodes[i], consumers, items[i].record);
}

void EngineImpl::StartRecord(TaskThread& thread, const std::shared_ptr<RecordNode>& node,
                             const std::vector<int>& topologies, const Value& record) {
  ModuleRuntime& m = *node->module;
  const RecordId& id = node->id;
  for (size_t slot = 0; slot < topologies.size(); ++slot) {
    auto run = std::make_shared<TopologyRun>();
    run->record = node;
    run->topology = topologies[slot];
    run->slot = static_cast<int>(slot);
    run->tracker = m.trackers[run->topology][id.depot][id.partition];
    RunEvent(thread, m, id.partition, Event{std::move(run), 0, record});
  }
}

// ---- Topology execution ------------------------------------------------------------------------

// Runs the event inside the thread's event group: its effects commit with the group's, and
// it completes when the group settles. A step that fails rolls the group back: the members
// before it run again alone (their first run left no effect), then it runs alone with the
// attempts it has left.
void EngineImpl::RunEvent(TaskThread& thread, ModuleRuntime& m, int partition, Event event) {
  EventGroup& group = groups_[thread.index()];
  const std::shared_ptr<TopologyRun>& run = event.run;
  auto ctx = std::make_unique<StepContext>(m, *outbox_, thread.group_session(), partition, run->record->id,
                                           /*grouped=*/true);
  const auto started = std::chrono::steady_clock::now();
  Status error = RunOps(*ctx, m, m.def->topologies[run->topology], event.op, event.input);
  const bool overtime = error.ok() && !(error = StepOverTime(started)).ok();
  if (!error.ok()) {
    std::vector<EventGroup::Member> members = std::move(group.members);
    group.members.clear();
    Session& session = thread.group_session();
    if (session.in_transaction()) session.Rollback();
    thread.SettleGroup();  // closes the (now empty) group
    RerunAlone(thread, members);
    RunEventAlone(thread, m, partition, std::move(event),
                  overtime ? 0 : options_.max_step_attempts - 1, error);
    return;
  }
  if (group.members.empty()) {
    if (!ctx->began()) {  // nothing to commit and nothing queued before it: release at once
      Dispatch(*ctx, run->record->module, run);
      CompleteEvent(run);
      return;
    }
    group.opened = started;
    thread.GroupOpened();
  }
  group.members.push_back({std::move(ctx), std::move(event)});
  // The age counts from the start of the first member, so a long step commits at once.
  if (group.members.size() >= kMaxGroupEvents ||
      std::chrono::steady_clock::now() - group.opened >= kMaxGroupAge) {
    thread.SettleGroup();
  }
}

Status EngineImpl::StepOverTime(std::chrono::steady_clock::time_point started) const {
  if (options_.step_timeout_ms <= 0) return Status::Ok();
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  if (elapsed.count() <= options_.step_timeout_ms) return Status::Ok();
  return Status::UserError("the step ran for " + std::to_string(elapsed.count()) +
                           " ms, longer than the step timeout of " +
                           std::to_string(options_.step_timeout_ms) +
                           " ms (EngineOptions::step_timeout_ms); its effects were rolled back");
}

// Commits the thread's event group and releases its members' effects in event order, so
// hops leave a partition in the order its events produced them. A failed commit lost every
// member's writes: each runs again alone.
void EngineImpl::SettleGroup(TaskThread& thread) {
  EventGroup& group = groups_[thread.index()];
  std::vector<EventGroup::Member> members = std::move(group.members);
  group.members.clear();
  Session& session = thread.group_session();
  Status committed = session.in_transaction() ? session.Commit() : Status::Ok();
  if (!committed.ok()) return RerunAlone(thread, members);
  for (EventGroup::Member& member : members) {
    const std::shared_ptr<TopologyRun>& run = member.event.run;
    Dispatch(*member.ctx, run->record->module, run);
    CompleteEvent(run);
  }
}

// Members of a group whose writes were rolled back run again, in order, each alone with
// all its attempts.
void EngineImpl::RerunAlone(TaskThread& thread, std::vector<EventGroup::Member>& members) {
  for (EventGroup::Member& member : members) {
    RunEventAlone(thread, member.ctx->module(), member.ctx->partition(), std::move(member.event),
                  options_.max_step_attempts, Status::Ok());
  }
}

// Runs the event in a transaction of its own, up to `attempts` times; then records the
// failure (`error`, or the last attempt's).
void EngineImpl::RunEventAlone(TaskThread& thread, ModuleRuntime& m, int partition, Event event,
                               int attempts, Status error) {
  const std::shared_ptr<TopologyRun>& run = event.run;
  const TopologyDef& topology = m.def->topologies[run->topology];
  Session& session = thread.session();
  for (int attempt = 0; attempt < attempts; ++attempt) {
    StepContext ctx(m, *outbox_, session, partition, run->record->id, /*grouped=*/false);
    const auto started = std::chrono::steady_clock::now();
    error = RunOps(ctx, m, topology, event.op, event.input);
    const bool overtime = error.ok() && !(error = StepOverTime(started)).ok();
    if (error.ok()) {
      if (ctx.began()) error = session.Commit();
    } else if (session.in_transaction()) {
      session.Rollback();
    }
    if (overtime) break;  // not retried: it would hold the thread as long again
    if (error.ok()) {
      Dispatch(ctx, run->record->module, run);
      CompleteEvent(run);
      return;
    }
  }
  RecordFailure(thread, m, *run, partition, event.op, error);
  CompleteEvent(run);
}

Status EngineImpl::RunOps(StepContext& ctx, ModuleRuntime& m, const TopologyDef& topology,
                          int first_op, const Value& input) {
  // The frontier starts as the borrowed input (the caller keeps it for a rerun); values the
  // ops emit are owned and move on into hops.
  std::vector<Value> owned;
  std::span<const Value> frontier(&input, 1);
  const int n = static_cast<int>(topology.ops.size());
  for (int i = first_op; i < n && !frontier.empty(); ++i) {
    const TopologyOp& op = topology.ops[i];
    if (op.kind == TopologyOp::Kind::kEach) {
      std::vector<Value> next;
      ctx.set_emitted(&next);
      for (const Value& value : frontier) {
        Status st = op.fn(ctx, value);
        if (!st.ok()) {
          ctx.set_emitted(nullptr);
          return Status(st.code(), "op " + std::to_string(i) + ": " + st.message());
        }
      }
      ctx.set_emitted(nullptr);
      owned = std::move(next);
      frontier = owned;
      continue;
    }
    // A partitioner ends the local segment; a partitioner at the end of the chain has no
    // step to send to.
    if (i + 1 == n) return Status::Ok();
    for (size_t j = 0; j < frontier.size(); ++j) {
      Value value = frontier.data() == &input ? input : std::move(owned[j]);
      switch (op.kind) {
        case TopologyOp::Kind::kHashPartition: {
          if (op.key_fn) {
            Result<Value> key = op.key_fn(value);
            if (!key.ok()) {
              return Status(key.status().code(),
                            "op " + std::to_string(i) + " (hash key): " + key.status().message());
            }
            ctx.AddHop(HashPartition(*key, m.partitions), i + 1, std::move(value));
          } else {
            const int p = HashPartition(value, m.partitions);
            ctx.AddHop(p, i + 1, std::move(value));
          }
          break;
        }
        case TopologyOp::Kind::kAllPartitions:
          for (int p = 0; p < m.partitions; ++p) ctx.AddHop(p, i + 1, value);
          break;
        case TopologyOp::Kind::kGlobal: ctx.AddHop(0, i + 1, std::move(value)); break;
        case TopologyOp::Kind::kShuffle:
          ctx.AddHop(RandomPartition(m.partitions), i + 1, std::move(value));
          break;
        case TopologyOp::Kind::kDirect: {
          Result<int64_t> p = op.partition_fn(value);
          if (!p.ok()) {
            return Status(p.status().code(),
                          "op " + std::to_string(i) + " (direct): " + p.status().message());
          }
          if (*p < 0 || *p >= m.partitions) {
            return Status::InvalidArgument("op " + std::to_string(i) + " (direct) chose partition " +
                                           std::to_string(*p) + ", outside [0, " +
                                           std::to_string(m.partitions) + ")");
          }
          ctx.AddHop(static_cast<int>(*p), i + 1, std::move(value));
          break;
        }
        case TopologyOp::Kind::kEach: break;
      }
    }
    return Status::Ok();
  }
  return Status::Ok();
}

// Runs after the commit: children are added to the run before the event completes, so the
// run cannot reach zero while a branch is still to come.
void EngineImpl::Dispatch(StepContext& ctx, const std::shared_ptr<ModuleRuntime>& m,
                          const std::shared_ptr<TopologyRun>& run) {
  if (ctx.ack_return()) {
    std::lock_guard lock(run->record->mu);
    run->record->ack_returns[run->slot].second = std::move(*ctx.ack_return());
  }
  const int64_t children = static_cast<int64_t>(ctx.hops().size() + ctx.appends().size());
  if (children == 0) return;
  run->pending.fetch_add(children, std::memory_order_relaxed);
  for (StepContext::Hop& hop : ctx.hops()) {
    const int target = hop.partition;
    m->parts[target].PostEvent(
        [this, m, target, event = Event{run, hop.op, std::move(hop.value)}](TaskThread& t) mutable {
          RunEvent(t, *m, target, std::move(event));
        });
  }
  for (StepContext::PendingAppend& append : ctx.appends()) {
    append.item.parent = run;
    std::vector<AppendItem> items;
    items.push_back(std::move(append.item));
    PostAppend(m, append.depot, append.partition, std::move(items));
  }
}

void EngineImpl::RecordFailure(TaskThread& thread, ModuleRuntime& m, const TopologyRun& run,
                               int partition, int op, const Status& error) {
  const TopologyDef& topology = m.def->topologies[run.topology];
  const RecordId& id = run.record->id;
  TopologyFailure failure{topology.name, m.def->depots[id.depot].name, id.partition, id.offset,
                          ShortFailureMessage("on partition " + std::to_string(partition) +
                                              " after " + std::to_string(options_.max_step_attempts) +
                                              " attempts (from op " + std::to_string(op) +
                                              "): " + error.ToString())};
  // One row per (topology, record), the first failure's: a second failing branch of the
  // record, or a replay that fails again, finds the row and leaves it and the count as
  // they are. failures_mu is held from the lookup to the insertion so
  // that two branches failing at once on two task threads record one row. The row is
  // durable with the next flush.
  Session& session = thread.session();
  const std::string key = FailureKey(m.name, failure);
  std::unique_lock failures_lock(m.failures_mu);
  std::string existing;
  Result<bool> found = session.Get(failures_table_, key, &existing);
  const bool first = !(found.ok() && *found);
  if (first) {
    std::string row;
    AppendValue(FailureToValue(failure), &row);
    Status st = session.Put(failures_table_, key, row);
    if (!st.ok()) {
      std::fprintf(stderr, "strata: recording a failure of topology %s failed: %s\n",
                   topology.name.c_str(), st.ToString().c_str());
    }
    ++m.failure_count;
  }
  failures_lock.unlock();
  {
    std::lock_guard lock(run.record->mu);
    if (run.record->failure.ok()) {
      run.record->failure = Status::UserError("topology " + topology.name + " gave up on " +
                                              failure.depot + " partition " +
                                              std::to_string(id.partition) + " offset " +
                                              std::to_string(id.offset) + " " + failure.message);
    }
  }
}

// ---- Ack tree ------------------------------------------------------------------------------------

void EngineImpl::CompleteEvent(const std::shared_ptr<TopologyRun>& run) {
  if (run->pending.fetch_sub(1, std::memory_order_acq_rel) == 1) CompleteRun(run);
}

void EngineImpl::CompleteRun(const std::shared_ptr<TopologyRun>& run) {
  const std::shared_ptr<RecordNode>& node = run->record;
  ModuleRuntime& m = *node->module;
  if (run->tracker->Complete(node->id.offset)) {
    if (!run->tracker->dirty.exchange(true)) {
      m.parts[node->id.partition].owner->MarkDirty(run->tracker);
    }
    if (m.progress_waiters.load() > 0) {
      std::lock_guard lock(m.progress_mu);
      m.progress_cv.notify_all();
    }
  }
  CompleteNodePart(node);
}

void EngineImpl::CompleteNodePart(const std::shared_ptr<RecordNode>& node) {
  if (node->pending.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  if (node->batch) {
    ClientBatch& batch = *node->batch;
    if (batch.level == AckLevel::kProcessed) {
      AppendResult& result = batch.results[node->batch_index];
      std::lock_guard lock(node->mu);
      result.ack_returns = std::move(node->ack_returns);
      result.failure = node->failure;
    }
    if (batch.level == AckLevel::kProcessed) batch.RecordReached();
    if (static_cast<int64_t>(node->batch_index) < batch.permits) limit_.Release(1);
  }
  if (node->parent) {
    {
      std::lock_guard lock(node->mu);
      if (!node->failure.ok()) {
        std::lock_guard parent_lock(node->parent->record->mu);
        if (node->parent->record->failure.ok()) node->parent->record->failure = node->failure;
      }
    }
    CompleteEvent(node->parent);
  }
  std::lock_guard lock(live_mu_);
  if (--live_nodes_ == 0) live_cv_.notify_all();
}

// ---- Recovery ------------------------------------------------------------------------------

Status EngineImpl::RecoverOutbox() {
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage_->OpenSession());
  return outbox_->ForEach(*session, [&](Outbox::Entry entry) -> Status {
    Result<std::shared_ptr<ModuleRuntime>> m = Find(entry.module);
    if (!m.ok()) return Status::Ok();
    Result<int> depot = FindDepot(**m, entry.depot);
    if (!depot.ok() || entry.partition < 0 || entry.partition >= (*m)->partitions) {
      return Status::Corruption("meta.outbox holds a record for " + entry.module + " " + entry.depot +
                                " partition " + std::to_string(entry.partition) +
                                ", which the module does not have");
    }
    STRATA_ASSIGN_OR_RETURN(Value record, DecodeValue(entry.record));
    std::vector<AppendItem> items(1);
    items[0].record = std::move(record);
    items[0].bytes = std::move(entry.record);
    items[0].outbox_key = std::move(entry.key);
    PostAppend(*m, *depot, entry.partition, std::move(items));
    return Status::Ok();
  });
}

void EngineImpl::StartReplay(const std::shared_ptr<ModuleRuntime>& m) {
  // Every count is set before the first post publishes the module to a task thread (a
  // replay finishing early must not see a partition's count still growing).
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    if (m->consumers[d].empty()) continue;
    for (int p = 0; p < m->partitions; ++p) ++m->parts[p].replays_pending;
    std::lock_guard lock(live_mu_);
    live_replays_ += m->partitions;
  }
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    if (m->consumers[d].empty()) continue;
    for (int p = 0; p < m->partitions; ++p) {
      int64_t from = INT64_MAX;
      for (int t : m->consumers[d]) from = std::min(from, m->trackers[t][d][p]->processed());
      m->parts[p].Post([this, m, d, p, from](TaskThread& thread) {
        ReplayChunk(thread, m, d, p, from);
      });
    }
  }
}

// Replays depot partition records [next, end) through every topology whose progress is at
// or below each record, a chunk per task so that other work of the thread interleaves.
// Replay is paced by the queue (one chunk per pass), not by the in-flight limit: records it
// starts may wait for appends deferred behind another partition's replay, so waiting for
// the limit here could deadlock.
void EngineImpl::ReplayChunk(TaskThread& thread, const std::shared_ptr<ModuleRuntime>& m, int depot,
                             int partition, int64_t next) {
  auto repost = [&](int64_t from) {
    m->parts[partition].Post([this, m, depot, partition, from](TaskThread& t) {
      ReplayChunk(t, m, depot, partition, from);
    });
  };
  Depot& d = *m->depots[depot];
  Result<std::vector<strata::DepotRecord>> records =
      d.Read(thread.session(), partition, next, INT64_MAX, kReplayChunk);
  if (!records.ok()) {
    std::fprintf(stderr, "strata: replaying %s of module %s failed: %s\n",
                 m->def->depots[depot].name.c_str(), m->name.c_str(), records.status().ToString().c_str());
    FinishReplay(thread, *m, partition);
    return;
  }
  const std::vector<int>& consumers = m->consumers[depot];
  for (const strata::DepotRecord& record : *records) {
    std::vector<int> topologies;
    for (int t : consumers) {
      if (m->trackers[t][depot][partition]->processed() <= record.offset) topologies.push_back(t);
    }
    if (topologies.empty()) continue;
    auto node = std::make_shared<RecordNode>();
    node->module = m;
    node->id = RecordId{depot, partition, record.offset};
    node->pending.store(static_cast<int64_t>(topologies.size()));
    for (int t : topologies) node->ack_returns.emplace_back(m->def->topologies[t].name, Value());
    {
      std::lock_guard lock(live_mu_);
      ++live_nodes_;
    }
    Result<Value> value = DecodeValue(record.data);
    if (!value.ok()) {
      for (size_t slot = 0; slot < topologies.size(); ++slot) {
        auto run = std::make_shared<TopologyRun>();
        run->record = node;
        run->topology = topologies[slot];
        run->slot = static_cast<int>(slot);
        run->tracker = m->trackers[run->topology][depot][partition];
        RecordFailure(thread, *m, *run, partition, 0, value.status());
        CompleteEvent(run);
      }
      continue;
    }
    StartRecord(thread, node, topologies, *value);
  }
  // Only the owner thread appends to the partition, so the end cannot move while it
  // replays: appends wait in `deferred` until FinishReplay.
  if (records->size() == kReplayChunk) {
    repost(records->back().offset + 1);
  } else {
    FinishReplay(thread, *m, partition);
  }
}

void EngineImpl::FinishReplay(TaskThread& thread, ModuleRuntime& m, int partition) {
  PartitionRuntime& part = m.parts[partition];
  if (--part.replays_pending == 0) {
    std::deque<Task> deferred;
    deferred.swap(part.deferred);
    for (Task& task : deferred) task(thread);
  }
  std::lock_guard lock(live_mu_);
  if (--live_replays_ == 0) live_cv_.notify_all();
}

// ---- Reads, waits, stats ---------------------------------------------------------------------

// A storage error (a failed WiredTiger connection, the session limit) keeps its own code:
// readers must not be told to retry a storage that is gone.
Result<std::unique_ptr<Session>> EngineImpl::TakeSession() {
  {
    std::lock_guard lock(pool_mu_);
    if (!pool_.empty()) {
      std::unique_ptr<Session> session = std::move(pool_.back());
      pool_.pop_back();
      return session;
    }
  }
  return storage_->OpenSession();
}

void EngineImpl::ReturnSession(std::unique_ptr<Session> session) {
  std::lock_guard lock(pool_mu_);
  pool_.push_back(std::move(session));
}

Result<std::vector<Value>> EngineImpl::Select(const std::string& module, const std::string& pstate,
                                              const Path& path, std::optional<Value> partition_key) {
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  STRATA_ASSIGN_OR_RETURN(int index, FindPState(*m, pstate));
  const PState& ps = *m->pstates[index];
  int partition = 0;
  if (!ps.schema().global) {
    if (partition_key) {
      partition = HashPartition(*partition_key, m->partitions);
    } else if (!path.navigators().empty() &&
               (path.navigators()[0].kind == Navigator::Kind::kKey ||
                path.navigators()[0].kind == Navigator::Kind::kMust)) {
      partition = HashPartition(path.navigators()[0].keys[0], m->partitions);
    } else {
      return Status::InvalidArgument("selecting " + path.ToString() + " from " + pstate +
                                     " needs a partition: give a partition key or start the path "
                                     "with key(...)");
    }
  }
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken), [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  return ps.Select(*session.get(), partition, path);
}

Result<Value> EngineImpl::SelectOne(const std::string& module, const std::string& pstate,
                                    const Path& path, std::optional<Value> partition_key) {
  STRATA_ASSIGN_OR_RETURN(std::vector<Value> values, Select(module, pstate, path, std::move(partition_key)));
  if (values.size() == 1) return std::move(values[0]);
  if (values.empty()) return Status::NotFound(path.ToString() + " selects nothing in " + pstate);
  return Status::InvalidArgument(path.ToString() + " selects " + std::to_string(values.size()) +
                                 " values in " + pstate + ", not one");
}

Result<std::vector<DepotEntry>> EngineImpl::ReadDepot(const std::string& module,
                                                      const std::string& depot, int partition,
                                                      int64_t from, int64_t to, int64_t limit) {
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  STRATA_ASSIGN_OR_RETURN(int index, FindDepot(*m, depot));
  if (partition < 0 || partition >= m->partitions) {
    return Status::InvalidArgument("depot " + depot + " has partitions 0 to " +
                                   std::to_string(m->partitions - 1) + ", not " + std::to_string(partition));
  }
  if (limit <= 0) return Status::InvalidArgument("read limit must be positive, not " + std::to_string(limit));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken), [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  STRATA_ASSIGN_OR_RETURN(auto records, m->depots[index]->Read(*session.get(), partition, from, to,
                                                               static_cast<size_t>(limit)));
  std::vector<DepotEntry> out;
  out.reserve(records.size());
  for (strata::DepotRecord& record : records) {
    Result<Value> value = DecodeValue(record.data);
    if (!value.ok()) {
      return Status::Corruption("record " + std::to_string(record.offset) + " of depot " + depot +
                                " partition " + std::to_string(partition) + ": " + value.status().message());
    }
    out.push_back({record.offset, std::move(value).value()});
  }
  return out;
}

void EngineImpl::Barrier() {
  std::latch latch(static_cast<std::ptrdiff_t>(threads_.size()));
  for (auto& thread : threads_) thread->PostBarrier([&latch](TaskThread&) { latch.count_down(); });
  latch.wait();
}

Status EngineImpl::WaitProcessed(const std::string& module) {
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  {
    // Appends that arrived during the replays of Open wait in `deferred` lists, out of the
    // task queues, until their partition's replay ends: the Barrier alone would miss them.
    std::unique_lock lock(live_mu_);
    live_cv_.wait(lock, [&] { return live_replays_ == 0; });
  }
  Barrier();  // every append queued before the call has been appended and started
  struct Target {
    ProgressTracker* tracker;
    int64_t end;
  };
  std::vector<Target> targets;
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    for (int p = 0; p < m->partitions; ++p) {
      STRATA_ASSIGN_OR_RETURN(int64_t end, m->depots[d]->EndOffset(p));
      for (int t : m->consumers[d]) targets.push_back({m->trackers[t][d][p].get(), end});
    }
  }
  m->progress_waiters.fetch_add(1);
  {
    std::unique_lock lock(m->progress_mu);
    for (const Target& target : targets) {
      while (target.tracker->processed() < target.end) {
        m->progress_cv.wait_for(lock, std::chrono::milliseconds(20));
      }
    }
  }
  m->progress_waiters.fetch_sub(1);
  return Status::Ok();
}

Result<ModuleStats> EngineImpl::Stats(const std::string& module, const StatsOptions& options) {
  if (options.failures_from < 0) {
    return Status::InvalidArgument("failures_from must be >= 0, not " +
                                   std::to_string(options.failures_from));
  }
  if (options.failures_limit < 0 || options.failures_limit > StatsOptions::kMaxFailuresLimit) {
    return Status::InvalidArgument("failures_limit must be 0 to " +
                                   std::to_string(StatsOptions::kMaxFailuresLimit) + ", not " +
                                   std::to_string(options.failures_limit));
  }
  {
    std::shared_lock lock(modules_mu_);
    if (auto it = failed_.find(module); it != failed_.end()) {
      ModuleStats stats;
      stats.module = module;
      stats.load_error = it->second.error;
      return stats;
    }
  }
  STRATA_ASSIGN_OR_RETURN(auto m, Find(module));
  ModuleStats stats;
  stats.module = m->name;
  for (int d = 0; d < static_cast<int>(m->depots.size()); ++d) {
    const std::string& depot = m->def->depots[d].name;
    for (int p = 0; p < m->partitions; ++p) {
      STRATA_ASSIGN_OR_RETURN(int64_t start, m->depots[d]->StartOffset(p));
      STRATA_ASSIGN_OR_RETURN(int64_t end, m->depots[d]->EndOffset(p));
      stats.depots.push_back({depot, p, start, end});
      for (int t : m->consumers[d]) {
        const int64_t processed = m->trackers[t][d][p]->processed();
        stats.topologies.push_back({m->def->topologies[t].name, depot, p, processed, end - processed});
      }
    }
  }
  {
    std::lock_guard lock(m->failures_mu);
    stats.failures = m->failure_count;
  }
  if (options.failures_limit == 0) return stats;
  // The page is read from the failures table (key order: topology, depot, partition,
  // offset), so a failure costs memory only while it is listed.
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> taken, TakeSession());
  PooledSession session(std::move(taken), [this](std::unique_ptr<Session> s) { ReturnSession(std::move(s)); });
  const std::string prefix = EncodeKey(Value(m->name));
  int64_t skip = options.failures_from;
  Status decode_error;
  STRATA_RETURN_IF_ERROR(session.get()->Scan(
      failures_table_, prefix, PrefixEnd(prefix), false, [&](std::string_view, std::string_view v) {
        if (skip > 0) {
          --skip;
          return true;
        }
        Result<Value> value = DecodeValue(v);
        std::optional<TopologyFailure> failure;
        if (value.ok()) failure = FailureFromValue(*value);
        if (!failure) {
          decode_error = Status::Corruption("a failure record of module " + m->name + " does not decode");
          return false;
        }
        stats.failure_page.push_back(std::move(*failure));
        return static_cast<int64_t>(stats.failure_page.size()) < options.failures_limit;
      }));
  STRATA_RETURN_IF_ERROR(decode_error);
  return stats;
}

}  // namespace runtime

Result<std::unique_ptr<Engine>> Engine::Open(const EngineOptions& options) {
  return runtime::EngineImpl::Open(options);
}

}  // namespace strata
