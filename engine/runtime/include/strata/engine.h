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

#include "strata/diff.h"
#include "strata/histogram.h"
#include "strata/logger.h"
#include "strata/path.h"
#include "strata/replication.h"
#include "strata/schema.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata {

// The engine's settings and their defaults, which are also stratad's: stratad's options
// embed these, and each setting below (all but the two callbacks) is a stratad flag and a
// config file key (docs/operations.md).
struct EngineOptions {
  std::string data_dir = "./strata-data";
  int task_threads = 0;                      // 0: one per core
  uint64_t cache_size_bytes = 512ull << 20;  // WiredTiger cache; bounds the memory used
  // Checkpoints run every checkpoint_interval_s and after checkpoint_log_bytes of log (0: by
  // time only); restart after a crash replays the log since the last one (StorageOptions).
  int checkpoint_interval_s = 60;
  uint64_t checkpoint_log_bytes = 16ull << 20;
  int max_step_attempts = 3;  // a failing topology step is tried this often (>= 1), then recorded
  uint64_t log_file_max_bytes = 16ull << 20;  // WiredTiger preallocates log files this big
  // Appended client records not yet fully processed, over all modules (>= 1). A batch that does
  // not fit waits (in call order) until records complete; AppendAsync itself never blocks.
  int max_in_flight_records = 1 << 16;
  // A topology step (the ops of one event up to the next partitioner) that runs longer is
  // rolled back and recorded as a failure, without a retry (0: no limit). The step is not
  // interrupted: this bounds how often a slow step holds its task thread, not how long.
  int64_t step_timeout_ms = 10'000;
  // A microbatch batch reads at most this many records and this many bytes of its source
  // depots, shared evenly by their partitions (each gives at least one record when it has
  // one): a batch commits in one transaction, which must fit the cache.
  int64_t microbatch_max_records = 32768;
  uint64_t microbatch_max_bytes = 16ull << 20;
  // Client appends are refused (kIOError, saying how much is free) while the file system of
  // data_dir has less than this available, so that a disk filling up is answered with an
  // error before the storage runs out of space and fails for good (0: no check). Reads,
  // and the processing of records already appended, go on.
  uint64_t min_free_disk_bytes = 64ull << 20;
  // Storage failures (docs/storage.md). accept_log_loss: open even when the WiredTiger log
  // has a damaged record with valid records after it, which recovery drops (without it,
  // Open fails with kCorruption saying where and how much log follows).
  bool accept_log_loss = false;
  // Live subscriptions open at once over the whole engine (Engine::Subscribe); more are
  // refused with kBusy.
  int64_t max_subscriptions = 100'000;
  // Called once when the storage fails for good (a WiredTiger panic: disk full, out of file
  // descriptors, a page that fails its checksum), with the cause (naming the table when
  // WiredTiger did); every later storage operation fails. It runs on the failing thread,
  // possibly inside the storage: it must not call the Engine, and may end the process
  // (stratad logs the cause and exits). Unset: the cause goes to `logger` as an error.
  std::function<void(const Status&)> on_fatal_storage_error;
  // Storage events an operator should see, from Open: an accepted log loss, a damaged last
  // log record, tables an older build created without block checksums. Unset: `logger`.
  std::function<void(const std::string&)> on_storage_warning;
  // Where the engine reports what no caller receives (strata/logger.h): errors it could not
  // return, warnings, the storage's messages — and the storage's fatal error and warnings
  // when the two hooks above are unset. Shared: it may outlive the engine. Null: StderrLogger().
  std::shared_ptr<Logger> logger;
  // Cluster mode (stratad --cluster; strata/replication.h, docs/cluster.md "Replication"):
  // every transaction also writes an entry of the replication log of each replica group it
  // writes to; Open starts no module (nor drops tables it finds without a module row: they
  // may be a follower's copy of a deploy in progress), and a module runs only while this
  // node leads all of its groups (Replication::Lead). Update, Recompute and the rescale
  // are refused (kInvalidArgument) on a replicated engine.
  bool replicated = false;
  // Set: every append at kAppended or above, once it reached its level on this node, is
  // passed to the gate before its callback runs; the callback runs when the gate calls
  // `release` — with the append's results when `release` gets OK, else failed with that
  // Status. stratad's cluster layer waits there until the in-sync replicas have it.
  // `release` may be called on any thread, at once or later, exactly once.
  std::function<void(const std::string& module, std::function<void(Status)> release)> ack_gate;
};

// How far an append has gone before it is acknowledged (docs/architecture.md, promise 1).
enum class AckLevel : uint8_t {
  kNone,              // accepted; nothing waited for
  kAppended,          // durable (fsync'd) in its depot partition
  kProcessed,         // durable, and every topology consuming the depot finished with it (for a
                      // microbatch topology: the batch holding the record committed and is durable)
  kProcessedStreams,  // as kProcessed, but not waiting for microbatch topologies
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
  std::string partitioning;  // "hash(<path>)", "random", "no client appends", "ticks every N ms"
  Schema record_schema;      // what its records must match (Any: every value)
};
struct PStateInfo {
  std::string name;
  PStateSchema schema;
};
struct TopologyInfo {
  std::string name;
  std::vector<std::string> sources;  // a mirror depot as "module/*depot"
  std::string kind;                  // "stream" or "microbatch"
};
struct QueryInfo {
  std::string name;
  std::vector<std::pair<std::string, Schema>> params;  // name and schema, in order
};
struct ModuleInfo {
  std::string name;
  int partitions = 0;
  int version = 0;  // 1 at deploy, +1 per update
  std::vector<DepotInfo> depots;
  std::vector<PStateInfo> pstates;
  std::vector<TopologyInfo> topologies;
  std::vector<QueryInfo> queries;
  // The deployed modules whose depots, PStates or queries this one uses (MirrorDepot,
  // MirrorPState, MirrorQuery), and those that use this one's.
  std::vector<std::string> depends_on;
  std::vector<std::string> dependents;
  // Empty for a module that is loaded and serving. Otherwise the module is *failed*: it is
  // deployed but could not be loaded when the engine opened (its file is missing or damaged,
  // its ABI stamp or declarations are refused, its define function failed, or a PState
  // schema differs from the stored one), and this says why. A failed module has no depots,
  // PStates or topologies listed (its declarations are unknown), serves no requests, and
  // keeps its data untouched until Destroy.
  std::string load_error;
};

// Update: how a new build of a deployed module replaces the running one (docs/modules.md,
// "Changing a deployed module").
struct UpdateOptions {
  // Depots, PStates and topologies (by their declared names, e.g. "*clicks", "$$counts",
  // "count") that the running version declares and the new build does not: each must be
  // named here, and its data (records, values, progress, failures) is deleted. An update
  // that leaves out a name the new build no longer declares is refused, listing them all.
  std::vector<std::string> drop;
  // 0: keep the partition count. Otherwise rescale: every depot record moves to the
  // partition its depot's partitioning chooses among `partitions` and every PState is
  // recomputed from the moved records before the new version takes over.
  int partitions = 0;
  // A topology the running version does not have starts at offset 0 of each of its
  // sources and catches up (backfill); with this set it starts at their current ends.
  bool new_topologies_from_end = false;
};

// What an update did.
struct UpdateResult {
  ModuleInfo info;                       // the module as it now runs
  int version = 0;                       // 1 at deploy, +1 per update
  std::vector<std::string> created;      // new depots and PStates
  std::vector<std::string> dropped;      // depots, PStates and topologies deleted
  std::vector<std::string> widened;      // PStates whose schema was widened in place
  std::vector<std::string> migrated;     // PStates with a new migration (strata/module.h)
  std::vector<std::string> backfilling;  // new topologies catching up from offset 0
  int64_t pause_us = 0;  // how long appends to the module waited (processing paused)
};

// Work that rebuilds views in the background: a new topology's backfill after an update, a
// Recompute of PStates, or the rewrite of a PState's stored values by a migration. For a
// backfill and a recompute, records_done / records_total count depot records over all
// the sources and partitions (the total as of now; appends keep adding); for a migration
// they count partitions rewritten / partitions.
struct RebuildProgress {
  std::string kind;                // "backfill", "recompute" or "migration"
  std::vector<std::string> names;  // the topology (backfill), the PStates (the others)
  int64_t records_done = 0;
  int64_t records_total = 0;
};

// Engine::Invoke's settings.
struct InvokeOptions {
  // The query fails with kTimeout when it has not finished by then: it is checked before
  // each step call, which is not interrupted. 1 ms to one hour.
  int64_t timeout_ms = 10'000;
};

// A page of Engine::SelectPage.
struct SelectPageResult {
  std::vector<Value> values;
  // Pass it to SelectPage for the next page; empty when this is the last one.
  std::string next_token;
};

// One record read back from a depot (named apart from engine/depot's internal DepotRecord,
// which holds the encoded bytes).
struct DepotEntry {
  int64_t offset = -1;
  Value record;
};

// A record a topology gave up on after max_step_attempts (docs/architecture.md, promise 5). One
// per (topology, record): when several branches of one record fail (a fan-out), or a
// replay fails again, the first failure is kept, with its message (naming the partition
// and op it failed on), and counted once. The message is at most kMaxFailureMessageBytes,
// ending with " … (N bytes more)" when it was cut: the record itself is found by depot,
// partition and offset (ReadDepot), not in the message.
inline constexpr size_t kMaxFailureMessageBytes = 1024;
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
  // The failures StatsOptions asked for: ordered by (topology, depot, partition, offset),
  // those at positions [failures_from, failures_from + failures_limit) of that order.
  std::vector<TopologyFailure> failure_page;
  // As ModuleInfo::load_error: set for a failed module, whose stats have nothing else (its
  // depots and topologies are unknown while it is not loaded).
  std::string load_error;
  // Backfills and recomputes running now (empty when none is).
  std::vector<RebuildProgress> rebuilds;
  // One per microbatch topology: its last committed batch and, when its last batch could
  // not commit (it is retried with a growing pause), why.
  struct Microbatch {
    std::string topology;
    int64_t batch = 0;
    std::string stalled;
  };
  std::vector<Microbatch> microbatches;
};

// Which failures Stats lists (ModuleStats::failure_page); the count is always reported.
struct StatsOptions {
  static constexpr int64_t kMaxFailuresLimit = 1000;
  int64_t failures_from = 0;     // >= 0
  int64_t failures_limit = 100;  // 0 to kMaxFailuresLimit
};

// A snapshot of the engine's counters for monitoring (Engine::Metrics; stratad serves them
// as Prometheus metrics, docs/metrics.md). "Since Open" counters start at 0 at each Open.
struct DepotMetrics {
  std::string depot;
  int64_t appends = 0;       // records appended since Open (client and topology appends)
  int64_t append_bytes = 0;  // their encoded size
  int64_t records = 0;       // records held now: end - start offset, over the partitions
};
struct TopologyMetrics {
  std::string topology;
  std::string kind;  // "stream" or "microbatch"
  // The processed offset of every (source depot, partition), with its lag (as in Stats).
  std::vector<TopologyPartitionStats> partitions;
  // How long its steps took since Open. A stream topology: one event's ops (a record's
  // ops up to the next partitioner, or a hop's), each attempt, without the commit of the
  // event group that holds it. A microbatch topology: one batch, from the start of its
  // transaction to its commit (retries of failing steps included).
  HistogramSnapshot steps;
};
struct ModuleMetrics {
  std::string module;
  std::string load_error;            // as ModuleInfo::load_error; a failed module has nothing else
  std::vector<DepotMetrics> depots;  // its own depots (not the mirrors of other modules')
  std::vector<TopologyMetrics> topologies;
  int64_t failures = 0;  // as ModuleStats::failures: failures recorded now
};
struct EngineMetrics {
  std::vector<ModuleMetrics> modules;  // by name
  // Client records admitted and not yet fully processed, and the cap on them
  // (EngineOptions::max_in_flight_records).
  int64_t in_flight_records = 0;
  int64_t max_in_flight_records = 0;
  // Live subscriptions open now, and the events (start, change, end) delivered to them
  // since Open.
  int64_t subscriptions = 0;
  int64_t subscription_events = 0;
  // WiredTiger's cache (-1 when its statistics could not be read).
  int64_t cache_bytes = -1;
  int64_t cache_dirty_bytes = -1;
  uint64_t cache_max_bytes = 0;  // EngineOptions::cache_size_bytes
  // Checkpoints completed since Open (-1 when unknown) and their durations (WiredTiger
  // measures them in whole milliseconds).
  int64_t checkpoints = -1;
  double checkpoint_seconds = 0;
  double last_checkpoint_seconds = 0;
  // The group commit's log flushes (one fsync each) since Open.
  HistogramSnapshot log_flushes;
  // Where client appends that reached their ack level spent their time, one observation per
  // AppendAsync call (a batch spread over partitions: its first record to get there).
  struct AppendPhases {
    HistogramSnapshot queued;      // admitted -> its depot append starts on the owner thread
    HistogramSnapshot appended;    // the depot append's transaction, start -> commit
    HistogramSnapshot flush_wait;  // commit -> durable: waiting for the group commit's fsync
    // durable -> every consuming topology done, its event groups committed and durable
    // (ack processed only)
    HistogramSnapshot processing;
  } append_phases;
};

// Engine::Subscribe's settings.
struct SubscribeOptions {
  // As Select's: the partition is the one `partition_key` hashes to when set, else the one
  // the path's first key(k) navigator names; a global PState has only partition 0.
  std::optional<Value> partition_key;
  // As SelectOne: the subscribed value is the one value the path selects (nil while it
  // selects none; the subscription ends with kInvalidArgument if it selects several).
  // Otherwise it is the list of every value the path selects, as Select returns them.
  bool one = false;
  // A change that would take more diffs than this is pushed as one kResync.
  size_t max_diffs = 256;
};

// What a subscription's callback receives (docs/subscriptions.md).
struct SubscriptionEvent {
  enum class Kind : uint8_t {
    kStarted,  // first, once: `value` is the current value
    kChanged,  // a commit changed the value: `diffs` turn the previous value into `value`
    kEnded,    // last, once: `ended` says why (the module was destroyed, ...)
  };
  Kind kind = Kind::kStarted;
  uint64_t subscription = 0;  // the id Subscribe returns (kStarted comes before it returns)
  int partition = 0;          // the PState partition subscribed to
  std::vector<Diff> diffs;
  // kStarted, kChanged: the whole value as of this event (shared, never changed).
  std::shared_ptr<const Value> value;
  Status ended;
};
using SubscriptionCallback = std::function<void(const SubscriptionEvent&)>;

class Engine {
 public:
  // Opens (creating) the data directory, reloads every deployed module and resumes each
  // topology from its recorded progress. kBusy when another process has it open. Each module
  // loads on its own: one that cannot (see ModuleInfo::load_error) is kept as failed, its
  // data untouched, and the others serve. A module's file is checked against the checksum
  // recorded at Deploy before it is loaded; a module deployed before checksums were recorded
  // is loaded unchecked once, and its checksum recorded then (with a warning on stderr).
  static Result<std::unique_ptr<Engine>> Open(const EngineOptions& options);
  // Stops accepting work, drains queued work, flushes, closes: Close() unless it was called.
  virtual ~Engine() = default;
  // Stops accepting work, drains queued work, makes everything committed durable (the final
  // flush) and closes the storage. Returns the final flush's error, if any: what was
  // committed since the last successful flush may then be lost. Call it once, from one
  // thread; afterwards only the destructor may be called.
  virtual Status Close() = 0;

  // The engine's replication (strata/replication.h) when opened with
  // EngineOptions::replicated; null otherwise. Lives as long as the engine.
  virtual Replication* replication() = 0;

  // Loads the plugin at `so_path` (the engine keeps a copy in the data directory and records
  // its checksum), checks its ABI stamp and declarations, creates its tables, starts its
  // topologies. kAlreadyExists when a module of that name is deployed, failed or not.
  virtual Result<ModuleInfo> Deploy(const std::string& so_path, const DeployOptions& options) = 0;
  // Replaces the code of the deployed module that the plugin at `so_path` names, in place,
  // while clients keep reading (docs/modules.md, "Changing a deployed module"): same-named
  // depots keep their records and offsets, same-named PStates their data, same-named
  // topologies resume from their progress running the new code; new depots and PStates are
  // created; new topologies backfill from offset 0 (UpdateOptions). Refused, changing
  // nothing: kNotFound when no module of that name is deployed (or it failed to load:
  // destroy and deploy it); kInvalidArgument when the build does not load, declares
  // nothing new or drops names not listed in options.drop, changes a PState schema other
  // than by widening it, or changes a depot's partitioning. Appends that arrive while the
  // new version is installed wait (at most max_in_flight_records of them; more are refused
  // with kBusy) and are then processed by the new code in order. Crash-safe: after a crash
  // at any point the data directory opens with the old version or the new one, whole.
  virtual Result<UpdateResult> Update(const std::string& so_path, const UpdateOptions& options) = 0;
  // Rebuilds the named PStates (e.g. "$$word_counts") of a module from offset 0 of the
  // depots its topologies consume, into new tables, while the live ones keep serving
  // reads and live processing; once the rebuild has caught up with the log it replaces the
  // live PStates in one step. Returns when the rebuild has started: its progress is in
  // Stats (ModuleStats::rebuilds) and WaitProcessed waits for it to finish. Every topology
  // of the module runs over the log for the rebuild, writing every PState into tables of
  // its own (so a step reading another PState sees the same log prefix), of which only the
  // named ones replace the live PStates; its depot appends are discarded (the log already
  // holds those records). kAlreadyExists while another rebuild of the module runs. A crash
  // before the swap discards the rebuild (the live PStates stay); after it, the new ones
  // serve.
  virtual Status Recompute(const std::string& module, const std::vector<std::string>& pstates) = 0;
  // Modules, Describe and Stats report failed modules too (with load_error set). Every other
  // call naming a failed module (appends, selects, depot reads, WaitProcessed) fails with
  // kNotFound, naming the module and its load error.
  virtual Result<std::vector<ModuleInfo>> Modules() = 0;
  virtual Result<ModuleInfo> Describe(const std::string& module) = 0;
  // Stops the module's topologies and deletes its data and its copy of the plugin; works on
  // a failed module too. Crash-safe: it first deletes the module's metadata durably (after a crash
  // from then on the module is gone), then its tables and file; what a crash or error leaves of
  // those is dropped by the next Open or Deploy of the name, never reused.
  virtual Status Destroy(const std::string& module) = 0;

  // Appends records (each to the partition its depot's partitioning chooses; records of
  // one partition keep their batch order) and calls `done` once `level` is reached for
  // all of them, with one AppendResult per record in order. The batch fails as a whole
  // for unknown names, a depot without client appends, and a record that does not match
  // the depot's record schema (kSchemaViolation naming the record's index, the path in it,
  // the expected type and the value): then no record of the batch enters the log.
  // Never blocks: when the engine already holds max_in_flight_records unprocessed records,
  // the batch waits for room before it is appended (kNone's `done` too runs only then).
  // A caller bounds its own memory by bounding the calls whose `done` has not run yet.
  using AppendCallback = std::function<void(Result<std::vector<AppendResult>>)>;
  virtual void AppendAsync(const std::string& module, const std::string& depot,
                           std::vector<Value> records, AckLevel level, AppendCallback done) = 0;
  // Blocking forms. Append returns a record's failure as its error.
  Result<AppendResult> Append(const std::string& module, const std::string& depot, Value record,
                              AckLevel level = AckLevel::kProcessed);
  Result<std::vector<AppendResult>> AppendBatch(const std::string& module, const std::string& depot,
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

  // Browses a PState over all its partitions, a page at a time, without building it in
  // memory: a page holds the next top-level entries of the root map or set, at most
  // `limit` (1 to 10,000) of them, in key order, partition after partition; `path` applies
  // to each partition's part of them as one sorted view (as to a `range` of the root: "all"
  // gives [key, value] pairs, "map_keys" the keys, an empty path the view itself, one per
  // partition part). A page that is not the last has entries and a token; the last has
  // no token. `token` is empty for the
  // first page, else the next_token of the previous page. Each partition's part is read
  // in one snapshot. kInvalidArgument for a bad token or limit, or a root that is not a
  // map or set.
  virtual Result<SelectPageResult> SelectPage(const std::string& module, const std::string& pstate,
                                              const Path& path, const std::string& token,
                                              int64_t limit) = 0;

  // Runs query `query` of `module` with `args` (one per declared parameter) and returns
  // its result (docs/modules.md, "Queries"). The whole invocation, every partition it
  // visits, reads one snapshot of committed data; an append acknowledged at kProcessed
  // before the call is seen. Errors name the query: kNotFound for an unknown module or query;
  // kInvalidArgument for a wrong number of arguments (or a bad timeout);
  // kSchemaViolation for an argument that does not match its parameter's schema;
  // kTimeout past options.timeout_ms; kUserError when the query's code failed (threw,
  // returned an error, or tried to write); the storage's errors otherwise.
  virtual Result<Value> Invoke(const std::string& module, const std::string& query,
                               std::vector<Value> args, const InvokeOptions& options) = 0;
  Result<Value> Invoke(const std::string& module, const std::string& query,
                       std::vector<Value> args) {
    return Invoke(module, query, std::move(args), InvokeOptions{});
  }

  // A live subscription to what `path` selects in one partition of a PState: `callback`
  // gets kStarted with the current value, then kChanged after each commit that changed it
  // (diffs derived from the locations the commit's transforms touched; several commits may
  // be folded into one event, never one split), in commit order; kEnded last (after which
  // it is never called again): when the module is destroyed, when an update drops the
  // PState or changes its partition count, when the engine closes, or on an error reading
  // the value. Only committed data is pushed: what a Select would return at that moment.
  // Returns the subscription's id once kStarted has been delivered. The callback runs on
  // engine threads (one event at a time per subscription): it must be quick, must not
  // block, and must not call Subscribe or Unsubscribe. Errors, with no callback: kNotFound
  // (module, PState), kInvalidArgument (a path with a terminal, no partition),
  // kBusy (EngineOptions::max_subscriptions reached; OVERLOADED on the wire), and a failing
  // first read.
  virtual Result<uint64_t> Subscribe(const std::string& module, const std::string& pstate,
                                     const Path& path, const SubscribeOptions& options,
                                     SubscriptionCallback callback) = 0;
  // Ends a subscription without a kEnded event: once this returns its callback is not
  // running and is never called again. Unknown or ended ids are ignored.
  virtual void Unsubscribe(uint64_t id) = 0;

  // Records of depot partition `partition` in [from, to), at most `limit`.
  virtual Result<std::vector<DepotEntry>> ReadDepot(const std::string& module,
                                                    const std::string& depot, int partition,
                                                    int64_t from, int64_t to, int64_t limit) = 0;

  // Blocks until every record of the module (client appends and topology appends) that was
  // admitted before the call is processed by every topology (or recorded as failed),
  // backfilling topologies included, and until a running Recompute has swapped in. A
  // batch whose `done` ran, whatever its level, or whose blocking Append returned before
  // the call is covered; one still waiting for room under max_in_flight_records is not.
  virtual Status WaitProcessed(const std::string& module) = 0;

  // Depots, topology progress and failures of the module. kInvalidArgument for options out
  // of range.
  virtual Result<ModuleStats> Stats(const std::string& module, const StatsOptions& options) = 0;
  Result<ModuleStats> Stats(const std::string& module) { return Stats(module, StatsOptions{}); }

  // Counters of every module, the in-flight records and the storage, for monitoring. Reads
  // no table: cheap enough to call every second, whatever the data size.
  virtual EngineMetrics Metrics() = 0;
};

}  // namespace strata
