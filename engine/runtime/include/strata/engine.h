// The embedded engine: a whole Strata database in the calling process — open a data
// directory, deploy modules, append, select, wait for processing, stats, close. stratad
// serves it over the network; module authors use it directly to unit-test modules.
// See docs/modules.md.
//
// Threading: every method is thread-safe. Callbacks run on engine threads: they must be
// quick and must not block on the engine (no synchronous Engine calls inside them).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "strata/path.h"
#include "strata/schema.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata {

struct EngineOptions {
  std::string data_dir = "./strata-data";
  int task_threads = 0;                      // 0: one per core
  uint64_t cache_size_bytes = 512ull << 20;  // WiredTiger cache; bounds the memory used
  // Checkpoints run every checkpoint_interval_s and after checkpoint_log_bytes of log (0: by
  // time only); restart after a crash replays the log since the last one (StorageOptions).
  int checkpoint_interval_s = 60;
  uint64_t checkpoint_log_bytes = 16ull << 20;
  int max_step_attempts = 3;  // a failing topology step is tried this often, then recorded
  uint64_t log_file_max_bytes = 16ull << 20;  // WiredTiger preallocates log files this big
  // Appended client records not yet fully processed, over all modules. A batch that does
  // not fit waits (in call order) until records complete; AppendAsync itself never blocks.
  int max_in_flight_records = 1 << 16;
  // Storage failures (docs/storage.md). accept_log_loss: open even when the WiredTiger log
  // has a damaged record with valid records after it, which recovery drops (without it,
  // Open fails with kCorruption saying where and how much log follows).
  bool accept_log_loss = false;
  // Called once when the storage fails for good (a WiredTiger panic: disk full, out of file
  // descriptors, a page that fails its checksum), with the cause (naming the table when
  // WiredTiger did); every later storage operation fails. It runs on the failing thread,
  // possibly inside the storage: it must not call the Engine, and may end the process
  // (stratad logs the cause and exits). Unset: the cause is printed to stderr.
  std::function<void(const Status&)> on_fatal_storage_error;
  // Storage events an operator should see, from Open: an accepted log loss, a damaged last
  // log record, tables an older build created without block checksums. Unset: stderr.
  std::function<void(const std::string&)> on_storage_warning;
};

// How far an append has gone before it is acknowledged (DESIGN.md §2, promise 1).
enum class AckLevel : uint8_t {
  kNone,       // accepted; nothing waited for
  kAppended,   // durable (fsync'd) in its depot partition
  kProcessed,  // durable, and every stream topology consuming the depot finished with it
};

// The outcome of one appended record.
struct AppendResult {
  int partition = -1;
  int64_t offset = -1;  // -1 with kNone (not known when acknowledged)
  // kProcessed only: each consuming topology's ack return (nil when it set none), by
  // topology name, in declaration order.
  std::vector<std::pair<std::string, Value>> ack_returns;
  // kProcessed only: not OK when a topology gave up on this record (kUserError naming the
  // topology and the message).
  Status failure;
};

struct DeployOptions {
  int partitions = 8;
};

struct DepotInfo {
  std::string name;
  std::string partitioning;  // "hash(<path>)", "random", "no client appends"
};
struct PStateInfo {
  std::string name;
  PStateSchema schema;
};
struct TopologyInfo {
  std::string name;
  std::vector<std::string> sources;
};
struct ModuleInfo {
  std::string name;
  int partitions = 0;
  std::vector<DepotInfo> depots;
  std::vector<PStateInfo> pstates;
  std::vector<TopologyInfo> topologies;
};

// One record read back from a depot (named apart from engine/depot's internal DepotRecord,
// which holds the encoded bytes).
struct DepotEntry {
  int64_t offset = -1;
  Value record;
};

// A record a topology gave up on after max_step_attempts (DESIGN.md §2, promise 5). One
// per (topology, record): when several branches of one record fail (a fan-out), or a
// replay fails again, the first failure is kept, with its message (naming the partition
// and op it failed on), and counted once.
struct TopologyFailure {
  std::string topology;
  std::string depot;
  int partition = -1;
  int64_t offset = -1;
  std::string message;
};

struct DepotPartitionStats {
  std::string depot;
  int partition = -1;
  int64_t start_offset = 0;
  int64_t end_offset = 0;
};
struct TopologyPartitionStats {
  std::string topology;
  std::string depot;
  int partition = -1;
  int64_t processed_offset = 0;  // every record below it is fully processed
  int64_t lag = 0;               // end_offset - processed_offset
};
struct ModuleStats {
  std::string module;
  std::vector<DepotPartitionStats> depots;
  std::vector<TopologyPartitionStats> topologies;
  int64_t failures = 0;  // distinct (topology, record) failures since deploy
  std::vector<TopologyFailure> recent_failures;  // newest last, at most 100, one per failure
};

class Engine {
 public:
  // Opens (creating) the data directory, reloads every deployed module and resumes each
  // topology from its recorded progress. kBusy when another process has it open.
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  // Stops accepting work, drains queued work, flushes, closes.
  virtual ~Engine() = default;

  // Loads the plugin at `so_path` (the engine keeps a copy in the data directory),
  // checks its ABI stamp and declarations, creates its tables, starts its topologies.
  // kAlreadyExists when a module of that name is deployed.
  virtual Result<ModuleInfo> Deploy(const std::string& so_path, const DeployOptions& options) = 0;
  virtual Result<std::vector<ModuleInfo>> Modules() = 0;
  virtual Result<ModuleInfo> Describe(const std::string& module) = 0;
  // Stops the module's topologies and deletes its data and its copy of the plugin.
  // Crash-safe: it first deletes the module's metadata durably (after a crash from then on
  // the module is gone), then its tables and file; what a crash or error leaves of those
  // is dropped by the next Open or Deploy of the name, never reused.
  virtual Status Destroy(const std::string& module) = 0;

  // Appends records (each to the partition its depot's partitioning chooses; records of
  // one partition keep their batch order) and calls `done` once `level` is reached for
  // all of them, with one AppendResult per record in order. The batch fails as a whole
  // for unknown names and a depot without client appends.
  // Never blocks: when the engine already holds max_in_flight_records unprocessed records,
  // the batch waits for room before it is appended (kNone's `done` too runs only then).
  // A caller bounds its own memory by bounding the calls whose `done` has not run yet.
  using AppendCallback = std::function<void(Result<std::vector<AppendResult>>)>;
  virtual void AppendAsync(const std::string& module, const std::string& depot,
                           std::vector<Value> records, AckLevel level, AppendCallback done) = 0;
  // Blocking forms. Append returns a record's failure as its error.
  Result<AppendResult> Append(const std::string& module, const std::string& depot, Value record,
                              AckLevel level = AckLevel::kProcessed);
  Result<std::vector<AppendResult>> AppendBatch(const std::string& module,
                                                const std::string& depot,
                                                std::vector<Value> records,
                                                AckLevel level = AckLevel::kProcessed);

  // Reads committed data of one PState partition: the one given by `partition_key`
  // (HashKey(key) % P) when set, else by the path's first key(k) navigator; a global
  // PState has only partition 0. kInvalidArgument when neither gives a partition.
  virtual Result<std::vector<Value>> Select(const std::string& module, const std::string& pstate,
                                            const Path& path,
                                            std::optional<Value> partition_key = std::nullopt) = 0;
  virtual Result<Value> SelectOne(const std::string& module, const std::string& pstate,
                                  const Path& path,
                                  std::optional<Value> partition_key = std::nullopt) = 0;

  // Records of depot partition `partition` in [from, to), at most `limit`.
  virtual Result<std::vector<DepotEntry>> ReadDepot(const std::string& module,
                                                     const std::string& depot, int partition,
                                                     int64_t from, int64_t to, int64_t limit) = 0;

  // Blocks until every record of the module (client appends and topology appends) that was
  // admitted before the call is processed by every topology (or recorded as failed). A
  // batch whose `done` ran, whatever its level, or whose blocking Append returned before
  // the call is covered; one still waiting for room under max_in_flight_records is not.
  virtual Status WaitProcessed(const std::string& module) = 0;

  virtual Result<ModuleStats> Stats(const std::string& module) = 0;
};

}  // namespace strata
