// engine/storage: the only part of Strata that talks to WiredTiger (the only place that
// includes wiredtiger.h). Everything above it sees tables of bytes. See docs/storage.md.
//
// Threading: Storage is thread-safe. A Session belongs to one thread at a time (it wraps a
// WiredTiger session and its cached cursors); open one per thread.
//
// Durability: Session::Commit() makes a transaction visible and crash-consistent but NOT
// durable. It becomes durable (survives kill -9 and power loss) when the log is flushed
// with fsync; the flusher thread of Storage does that for all sessions at once (group
// commit). Ask for an acknowledgement with WhenDurable()/WaitDurable().
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "strata/histogram.h"
#include "strata/status.h"

namespace strata {

class CommitHook;

// The sizes and intervals have no defaults here: the engine fills them from EngineOptions
// (strata/engine.h, where the server's defaults live; StorageOptionsFor in the runtime),
// and a test or benchmark that opens a Storage directly states its own. Open refuses a
// value out of range, 0 included, except checkpoint_log_bytes, where 0 is meaningful.
struct StorageOptions {
  std::string path;               // data directory; created when missing
  uint64_t cache_size_bytes = 0;  // WiredTiger cache: bounds the memory used; >= 1 MiB
  // A checkpoint runs every checkpoint_interval_s (>= 1) and also after
  // checkpoint_log_bytes of log (0: by time only). Recovery after a crash replays the log
  // written since the last checkpoint, so the log bound is what bounds restart time under
  // load. WiredTiger raises checkpoint_log_bytes to at least log_file_max_bytes.
  int checkpoint_interval_s = 0;
  uint64_t checkpoint_log_bytes = 0;
  uint64_t log_file_max_bytes = 0;  // log files are preallocated at this size; 100 KiB to 2 GiB
  int max_sessions = 0;             // user sessions (WiredTiger's own are added); >= 1
  // Before recovery, Open scans the WiredTiger log: when a damaged record (not a torn write
  // at the end) has valid log records after it, recovery would stop at it and silently drop
  // every later transaction, so Open fails with kCorruption saying where and how much log
  // follows. true accepts that loss: Open reports it through on_warning and recovers up to
  // the damaged record (docs/storage.md, "Damaged log").
  bool accept_log_loss = false;
  // Called once when WiredTiger panics (disk full, out of file descriptors, a block that
  // fails its checksum...): the connection is dead and every later operation fails. The
  // Status (kIOError, or kCorruption for a checksum failure) names the cause WiredTiger
  // reported just before the panic (with the file, hence the table). It runs on the thread
  // that hit the panic, possibly inside a WiredTiger call: it must not use the Storage; it
  // may end the process (stratad logs and calls _exit). Unset: the cause is printed to
  // stderr. After a panic every storage call fails (WiredTiger answers WT_PANIC: kIOError),
  // FatalError() returns the cause, and the destructor leaves the connection unclosed
  // (closing a panicked connection can hang).
  std::function<void(const Status&)> on_fatal_error;
  // Events an operator should see that are not errors: an accepted log loss, a damaged last
  // log record (recovery ends before it), tables created without checksum=on by an older
  // build. Unset: printed to stderr. Called on the thread of Open.
  std::function<void(const std::string&)> on_warning;
  // What the storage has to report that no caller receives as a Status: WiredTiger's error
  // messages (error = true; the Status of the failing call carries the same cause) and its
  // informational messages (error = false: recovery, salvage), a failed connection or
  // session close, a failed rollback, a failed last flush. Any thread, possibly inside a
  // WiredTiger call: it must not use the Storage. Unset: printed to stderr.
  std::function<void(bool error, const std::string& message)> on_message;
  // Sees every transaction's writes just before it commits (CommitHook below), for the
  // replication log (docs/cluster.md, "Replication log"). Fixed for the life of the
  // Storage. Null: nothing is collected; a write costs two pointer tests more.
  std::shared_ptr<CommitHook> commit_hook;
};

// Tables hold either byte keys (key_format=u: the order-preserving key encoding of
// strata/key_codec.h) or int64 keys (key_format=q: depot offsets). Values are bytes.
enum class TableKind : uint8_t { kBytes, kLog };

// A small dense id for an open table; valid for the life of the Storage.
using TableId = uint32_t;

class Session;
class Storage;

// One write a transaction made, as a commit hook sees it: on the table's name (not its
// TableId, which is local to this Storage), with the table's kind.
enum class WriteOp : uint8_t {
  kPut,        // Put, or an Insert that wrote (byte-keyed table)
  kRemove,     // a Remove that removed a present key (byte-keyed table)
  kPutRecord,  // PutRecord (log table; the key is `record`)
};
struct CapturedWrite {
  std::string table;
  TableKind kind = TableKind::kBytes;
  WriteOp op = WriteOp::kPut;
  std::string key;     // byte-keyed tables
  int64_t record = 0;  // log tables
  std::string value;   // empty for kRemove
};

// Told of each group-commit flush (Storage::SetFlushObserver), on the flusher thread and in
// this order: FlushStarting(n) before flush n (which covers every transaction that committed
// before the call), FlushDone(n, status) after it and before its WhenDurable callbacks run,
// then FlushStarting(n + 1) at the earliest. Both must be quick and must not call back into
// WhenDurable's waits.
class FlushObserver {
 public:
  virtual ~FlushObserver() = default;
  virtual void FlushStarting(uint64_t flush) = 0;
  virtual void FlushDone(uint64_t flush, const Status& status) = 0;
};

// Installed with StorageOptions::commit_hook. While one is installed, a Session collects the
// writes of each transaction (Put, an Insert that wrote, a Remove that removed, PutRecord),
// in the order they were made, and a write outside an explicit transaction runs in a
// transaction of its own (begin, write, hook, commit) instead of auto-committing, so that
// what the hook writes commits with it. Writes the hook itself makes, and writes made
// while the session's capture is suspended (Session::SuspendCapture), are not collected.
// A rolled-back transaction reaches no hook.
class CommitHook {
 public:
  // What BeforeCommit keeps until the commit is over (locks it holds, say).
  class Pending {
   public:
    virtual ~Pending() = default;
    // Called once, on the committing thread, right after the WiredTiger commit returned:
    // `committed` says whether the transaction committed (false: it rolled back).
    virtual void Finished(bool committed) = 0;
  };
  virtual ~CommitHook() = default;
  // Called on the committing thread inside the transaction, after its last write and just
  // before the WiredTiger commit, when the transaction collected at least one write. It may
  // write with `session` (in the same transaction; those writes are not collected) and
  // open tables of `storage`, but not begin or commit (kInvalidArgument) nor roll back (a
  // Rollback is ignored: to roll back, return an error). A non-OK result rolls
  // the transaction back and is what Commit (or the auto-committed write) returns. The
  // returned Pending, if any, is told how the commit ended.
  virtual Result<std::unique_ptr<Pending>> BeforeCommit(Storage& storage, Session& session,
                                                        std::span<const CapturedWrite> writes) = 0;
};

// What the storage reports for monitoring (Storage::Metrics; docs/metrics.md). The
// WiredTiger figures come from its statistics (statistics=(fast)); they are -1 when the
// statistics could not be read (the error goes to on_message).
struct StorageMetrics {
  int64_t cache_bytes = -1;        // bytes in the cache
  int64_t cache_dirty_bytes = -1;  // of which dirty (written, not yet checkpointed or evicted)
  // Checkpoints WiredTiger completed since Open and their total and most recent durations
  // (it measures them in whole milliseconds).
  int64_t checkpoints = -1;
  double checkpoint_seconds = 0;
  double last_checkpoint_seconds = 0;
  // The flusher's log flushes (one fsync each, group commit) since Open.
  HistogramSnapshot log_flushes;
};

class Storage {
 public:
  // Opens (creating if needed) the WiredTiger database in options.path, runs recovery,
  // and starts the flusher thread. Fails with kBusy when another process has it open.
  static Result<std::unique_ptr<Storage>> Open(const StorageOptions& options);
  // Stops the flusher after a final flush, closes every session and the connection
  // (which takes a checkpoint). All Sessions must have been destroyed.
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // Creates the table if it does not exist, then returns its id. Idempotent; the kind
  // must match the existing table's. Names are [A-Za-z0-9_.@-]+.
  Result<TableId> OpenTable(std::string_view name, TableKind kind);
  // Drops a table and its data. No session should use it concurrently: it waits for each
  // session's operation in progress, closes the cursors sessions cached on it, and later
  // uses of its TableId fail with kNotFound. Fails with kBusy while a transaction that
  // touched the table is open, and with kInvalidArgument when called inside an operation
  // (e.g. a Scan callback) of a session on the calling thread.
  Status DropTable(std::string_view name);
  // Whether a table of this name exists on disk.
  Result<bool> TableExists(std::string_view name);
  // Names of existing tables that start with `prefix`, sorted.
  Result<std::vector<std::string>> ListTables(std::string_view prefix);

  Result<std::unique_ptr<Session>> OpenSession();

  // Group commit. Calls `done` (from the flusher thread, never inline) once every
  // transaction that committed before this call is durable; Status is non-OK if the
  // flush failed. `done` must be quick and must not call back into WhenDurable's waits.
  void WhenDurable(std::function<void(Status)> done);
  // Blocks until every transaction that committed before this call is durable.
  Status WaitDurable();
  // Number of log flushes the flusher has begun so far (monitoring and tests). While a
  // WhenDurable callback runs it is the number of the flush that completed it.
  uint64_t FlushCount() const;
  // Tells `observer` of every flush from now on (null: none). It must outlive its
  // installation (install null before destroying it).
  void SetFlushObserver(FlushObserver* observer);
  // A snapshot for monitoring: reads a few WiredTiger statistics, no table. Any thread;
  // waits while a schema operation (OpenTable, DropTable) runs.
  StorageMetrics Metrics();

  const StorageOptions& options() const;
  // The panic's cause once WiredTiger panicked (see StorageOptions::on_fatal_error), else OK.
  Status FatalError() const;

  class Impl;

 private:
  explicit Storage(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend class Session;
};

// One thread's handle on the database: transactions and table access. Key/value views
// passed to callbacks are valid only during the callback. A scan callback may use the same
// Session for other table operations (including nested scans) but must not Begin, Commit
// or Rollback: Begin and Commit fail with kInvalidArgument; Rollback leaves the transaction
// open and makes every scan in progress on the session stop after that callback and
// return kInvalidArgument. A Remove without a transaction that fails inside a callback
// rolls back its own transaction, which resets the scans' cursors, so they stop too and
// return its error. Empty byte keys are not allowed (WiredTiger rejects them). Errors: kAborted
// is a write conflict (inside an explicit transaction, Rollback and retry it; see Begin);
// kInvalidArgument a misuse (wrong table kind, bad key); kNotFound a dropped table.
class Session {
 public:
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Explicit transactions. Without one, each write is its own transaction.
  // `snapshot` gives repeatable reads for the transaction's duration, and is the only
  // isolation in which WiredTiger 3.2.1 detects write-write conflicts (kAborted); in a
  // read-committed transaction concurrent writers of one key both succeed and the last
  // commit wins, so writers that can race on a key must use snapshot transactions.
  Status Begin(bool snapshot = false);
  Status Commit();
  void Rollback();
  bool in_transaction() const;

  // Byte-keyed tables.
  // Returns false when the key is absent.
  Result<bool> Get(TableId table, std::string_view key, std::string* value);
  Status Put(TableId table, std::string_view key, std::string_view value);
  // Writes the record only when the key is absent; returns whether it wrote (one search,
  // where Get then Put is two).
  Result<bool> Insert(TableId table, std::string_view key, std::string_view value);
  // Returns false when the key was absent.
  Result<bool> Remove(TableId table, std::string_view key);
  // Visits keys in [begin, end) in ascending order (descending when `reverse`), calling
  // fn(key, value) until it returns false. An empty `end` means "to the end of the table".
  Status Scan(TableId table, std::string_view begin, std::string_view end, bool reverse,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);

  // Log tables (int64 keys, which must be >= 0).
  // Inserts a record; a record is written once: kAlreadyExists when the key holds one.
  Status PutRecord(TableId table, int64_t key, std::string_view value);
  Result<bool> GetRecord(TableId table, int64_t key, std::string* value);
  // Deletes the record at `key`; returns false when there was none. Not collected for the
  // commit hook: records are written once, and only a log's own tail is ever cut (the
  // replication log truncating a divergent tail, docs/cluster.md).
  Result<bool> RemoveRecord(TableId table, int64_t key);
  // Visits keys in [from, to) ascending, until fn returns false.
  Status ScanRecords(TableId table, int64_t from, int64_t to,
                     const std::function<bool(int64_t key, std::string_view value)>& fn);
  // The largest key of the table, or -1 when it is empty.
  Result<int64_t> LastRecordKey(TableId table);
  // The smallest key of the table, or -1 when it is empty.
  Result<int64_t> FirstRecordKey(TableId table);

  // While suspended, this session's writes are not collected for the commit hook (nor
  // wrapped in transactions of their own): a follower applying replicated writes suspends
  // it so that they are not logged again. Changed only between transactions.
  void SuspendCapture(bool suspended);

  class Impl;

 private:
  friend class Storage;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata
