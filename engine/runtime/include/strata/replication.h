// The engine's side of replication by log shipping (docs/cluster.md, "Replication"): what
// stratad's cluster layer calls to lead a module's replica groups, to ship their logs, and
// to follow another node's. Engine::Replication() returns it when the engine was opened
// with EngineOptions::replicated (stratad --cluster), and null otherwise.
//
// A replicated engine writes, in each transaction, an entry of the log of every replica
// group it writes to (a module has one group for now: group 0). It starts no module at
// Open: a module runs — its topologies, ticks, microbatches, appends accepted — only while
// this node leads all of its groups (Lead). A node that follows a group applies the
// leader's shipped entries to its tables and runs no module code.
//
// Threading: every method is thread-safe. Callbacks run on engine threads and must be
// quick. Module names are those of deployed modules; a group is 0 <= group < Groups(module).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "strata/status.h"

namespace strata {

// One entry of a group's log, as shipped from the leader to a follower: the bytes are an
// encoded entry (docs/cluster.md, "Entry encoding"), untrusted on the follower.
struct ReplicaEntry {
  int64_t offset = 0;
  std::string bytes;
};

// The leader's answer to "where does your log of epoch E end" (Kafka KIP-279's
// OffsetsForLeaderEpoch): the largest epoch of its cache <= E (-1 when all are above E) and
// where that epoch ends.
struct EpochEnd {
  int64_t epoch = -1;
  int64_t end_offset = 0;
};

// An epoch of a leader-epoch cache: `epoch` began at log offset `start_offset`.
struct LogEpoch {
  int64_t epoch = 0;
  int64_t start_offset = 0;
};

// Where a snapshot read goes on: after row `key` (byte-keyed tables) or record `record` (log
// tables) of `table`; an empty `table` is the beginning.
struct SnapshotCursor {
  std::string table;
  std::string key;
  int64_t record = -1;
};

// A chunk of a leader's rows for a follower that needs entries the leader compacted away
// (docs/cluster.md, "Log compaction and snapshots").
struct SnapshotChunk {
  int64_t epoch = 0;  // the epoch the leader led in the snapshot the rows were read at
  std::string rows;   // an encoded entry (docs/cluster.md, "Entry encoding") whose ops put them
  int64_t row_count = 0;
  SnapshotCursor next;           // where the next chunk starts
  bool done = false;             // no rows after these
  int64_t log_end = 0;           // the leader's log end in the snapshot the rows were read at
  std::vector<LogEpoch> epochs;  // the leader's epoch cache at that snapshot
};

// A group's log on this node.
struct ReplicaGroupStatus {
  bool leading = false;
  int64_t epoch = -1;       // the epoch led (leading), else the log's latest epoch (-1: none)
  int64_t log_start = 0;    // entries below it were compacted away
  bool rebuilding = false;  // a snapshot is being loaded: the tables are incomplete
  // The last entry applied that changed a module's row (an update, recompute or rescale on
  // the leader), whose tables the copy may still hold until it is reloaded; -1: none.
  int64_t switched_at = -1;
  // The tables may hold effects of entries below it (the last snapshot's fuzzy end): while
  // log_end is below it, they are not a state of the group.
  int64_t fuzzy_end = 0;
  int64_t log_end = 0;      // every offset in [log_start, log_end) holds an entry
  int64_t applied_end = 0;  // the effects of every entry below it are in the tables
  int64_t durable_end = 0;  // every entry below it is durable (fsync'd) on this node
};

class Replication {
 public:
  virtual ~Replication() = default;

  // The number of replica groups of a module (1 for now).
  virtual int Groups(const std::string& module) const = 0;

  // ---- Leading ----

  // This node leads `group` of `module` at `epoch` from now on: it applies its whole log
  // first (the tables then hold the effects of every entry it has), records that `epoch`
  // starts at its log end, and stamps the entries it writes with it. `epoch` must be above
  // every epoch the log has (kInvalidArgument); leading again at the same epoch is a no-op.
  // Once this node leads every group of a module that is deployed here (its meta.modules
  // row is in the tables, e.g. replicated from the previous leader), the module starts as
  // Engine::Open starts modules (recovery, replays, ticks). A module not deployed yet can
  // be led before Engine::Deploy, which is how a deploy runs in a cluster.
  virtual Status Lead(const std::string& module, int group, int64_t epoch) = 0;

  // This node stops leading `group` (no-op when it does not lead it): the module stops
  // first — no module code runs and nothing of the module is written once it returns;
  // appends waiting for their acknowledgement fail with kAborted — then the log is marked
  // applied to its end. Its data stays; a later Lead starts it again.
  virtual Status Follow(const std::string& module, int group) = 0;

  // Entries of the group's log from offset `from`, up to `max_bytes` of entry bytes (at least
  // one entry when there is one), and only entries below `below` (INT64_MAX: every committed
  // entry — safe when a restarted leader always leads at a new epoch and the high watermark
  // counts the leader's own durable end, as in stratad; a leader's durable end: only what
  // it made durable). Empty when from >= min(below, end).
  virtual Result<std::vector<ReplicaEntry>> Read(const std::string& module, int group, int64_t from,
                                                 int64_t below, int64_t max_bytes) = 0;

  // Leader: the offset of the last entry at or after `from` that writes the module's row
  // in meta.modules (a deploy, or the switch of an update, rescale or recompute);
  // kNotFound when there is none.
  virtual Result<int64_t> FindModuleRowEntry(const std::string& module, int group,
                                             int64_t from) = 0;

  // The leader's EpochEnd for a follower whose latest epoch is `epoch`.
  virtual Result<EpochEnd> EndOffsetFor(const std::string& module, int group, int64_t epoch) = 0;

  // Calls `fn` once, on an engine thread, when the group's log end exceeds `end` (at once
  // when it already does) or the group stops being led here. For a leader's long polls.
  virtual void WhenLogPasses(const std::string& module, int group, int64_t end,
                             std::function<void()> fn) = 0;

  // ---- Following ----

  // Writes shipped entries into the group's log at their offsets, in one transaction (all or
  // nothing); re-sent entries with the same bytes are skipped. kCorruption: an entry
  // differs from the one at its offset (truncate first), does not decode, or has an epoch
  // below the log's latest; kInvalidArgument: a gap, or this node leads the group.
  virtual Status Append(const std::string& module, int group,
                        std::span<const ReplicaEntry> entries) = 0;

  // Applies the effects of the entries below `high_watermark` not applied yet.
  virtual Status ApplyUpTo(const std::string& module, int group, int64_t high_watermark) = 0;

  // Where this follower must cut its log before fetching from a new leader (KIP-101 with
  // KIP-279): `ask` is the leader's EndOffsetFor across the network.
  virtual Result<int64_t> TruncationPoint(
      const std::string& module, int group,
      const std::function<Result<EpochEnd>(int64_t epoch)>& ask) = 0;

  // Cuts the group's log to end at `offset`. Returns false, changing nothing, when this
  // node's tables hold effects of entries at or beyond `offset` (it led and wrote them):
  // it must then rebuild its tables: from its own log (RebuildFromLog) when that starts at
  // 0, else from a snapshot of the leader's rows.
  virtual Result<bool> TruncateTo(const std::string& module, int group, int64_t offset) = 0;

  // After TruncateTo returned false: clears this node's tables of `module` (its rows, not
  // its logs nor its plugin file) and cuts the group's log at `offset`, recording that
  // nothing is applied; ApplyUpTo (or Lead) then rebuilds the tables from the log this node
  // keeps. The log below `offset` is never dropped, so a node rebuilding its tables still
  // holds every entry it acknowledged as an in-sync replica. Not while leading or running.
  virtual strata::Status RebuildFromLog(const std::string& module, int group, int64_t offset) = 0;

  // Deletes everything this node holds of `module` — tables, group logs and their state,
  // its meta rows, its module file — without touching ZooKeeper or other nodes: a follower
  // of a destroyed module, or a replica that must be rebuilt. The module must not be
  // running (kInvalidArgument while this node leads any of its groups).
  virtual Status DropReplica(const std::string& module) = 0;

  // ---- Compaction and snapshots (docs/cluster.md, "Log compaction and snapshots") ----
  // Deletes the group's entries below min(`below`, the applied end), moving its start;
  // returns the start.
  virtual Result<int64_t> Compact(const std::string& module, int group, int64_t below) = 0;
  // Leader: the group's rows after `after` (each table's rows in order, tables by name, the
  // module's rows of the shared meta tables included), read at one storage snapshot, with
  // the log end of that snapshot: as many as fit in `max_bytes` of encoded rows (about),
  // and at least one.
  virtual Result<SnapshotChunk> ReadSnapshot(const std::string& module, int group,
                                             const SnapshotCursor& after, int64_t max_bytes) = 0;
  // Follower: starts loading a snapshot whose first chunk was read at log end `offset`:
  // records that the tables are being rebuilt, empties the log (it starts and ends at
  // `offset` now, with the leader's epoch cache `epochs`) and clears the module's tables
  // (not its plugin file). Not while leading or running. A crash until FinishSnapshot
  // leaves GroupStatus().rebuilding set: the snapshot must be loaded again.
  virtual Status BeginSnapshot(const std::string& module, int group, int64_t offset,
                               std::span<const LogEpoch> epochs) = 0;
  // Writes a chunk's rows (SnapshotChunk::rows), in one transaction.
  virtual Status LoadSnapshot(const std::string& module, int group, const std::string& rows) = 0;
  // Every chunk is loaded; `fuzzy_end` is the largest log end of the chunks. The tables
  // are a state of the group once the entries below it are applied (the follower fetches
  // them from the offset the snapshot began at); this node cannot lead the group before.
  virtual Status FinishSnapshot(const std::string& module, int group, int64_t fuzzy_end) = 0;

  // ---- Both ----
  // The modules this node keeps a group log of (led, followed, or left on disk), by name.
  virtual Result<std::vector<std::string>> LocalModules() = 0;

  // kNotFound when the group has no log on this node.
  virtual Result<ReplicaGroupStatus> GroupStatus(const std::string& module, int group) = 0;

  // From now on calls `fn(module, group, durable_end)` each time a group's durable end
  // moves (null: none), on the engine thread that learnt it (the storage's flusher), with no
  // lock of this object held; `fn` must be quick. Once this returns, a previous `fn` is
  // not running and is never called again.
  virtual void OnDurableEnd(
      std::function<void(const std::string& module, int group, int64_t durable_end)> fn) = 0;

  // Calls `done` once every entry committed before the call is durable on this node (the
  // storage's group commit; a leader's own durability, a follower's before it reports).
  virtual void WhenDurable(std::function<void(strata::Status)> done) = 0;

  // The module's plugin file as this node keeps it, for a follower that lacks it. kNotFound
  // when the module has no row here (e.g. the leader has not deployed it yet).
  virtual Result<std::string> ModuleFile(const std::string& module) = 0;
  // A follower's installation of the file, where Deploy keeps it (modules/<module>.so).
  // When the module's row is here, the bytes must match the checksum it records
  // (kInvalidArgument); before the row is replicated they are installed as they are, and
  // the module's start checks them against the row (as every start does).
  virtual strata::Status InstallModuleFile(const std::string& module, const std::string& bytes) = 0;
  // True when this node has no file for the module, or (its row being here) a file that
  // differs from the row's checksum. A follower fetches the file before it reports any
  // progress, so that every in-sync replica can start the module when promoted.
  virtual bool NeedsModuleFile(const std::string& module) = 0;

  // The name of the module a plugin file defines (loading it, as Deploy does: an error for
  // a file that Deploy would refuse to load). A cluster deploy names its spec with it.
  virtual Result<std::string> ModuleName(const std::string& so_path) = 0;
  // A digest of every replicated row of the group (each table's name, keys and values in
  // order, the module's meta rows included; docs/cluster.md "Replication log") read at one
  // snapshot, with the applied end of that snapshot, as JSON:
  // {"digest":"<SHA-256, 64 hex digits>","applied_end":N}. Replicas whose tables hold the
  // same rows have the same digest. For tests and operators comparing replicas; it reads
  // every row of the group. kNotFound when the group has no log here.
  virtual Result<std::string> Digest(const std::string& module, int group) = 0;
};

}  // namespace strata
