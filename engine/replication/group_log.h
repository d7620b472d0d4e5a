// The replication log of one replica group on one node, and what a follower does with it
// (docs/cluster.md, "Replication log").
//
// The log of group g of module m is the log table replog.<m>.<g>: offset -> an encoded
// LogEntry (log_entry.h), offsets dense from 0 in commit order. Beside it, the byte table
// replstate.<m>.<g> holds the leader-epoch cache (epoch -> the offset of its first entry,
// Kafka KIP-101), the follower's applied offset and, while this node leads the group, the
// epoch it leads.
//
// A leader's entries are written by LogWriter (log_writer.h) in the transactions whose
// writes they carry, so the leader's tables always hold the effects of every entry of its
// log. A follower never runs module code: Apply copies shipped entries into its log at the
// same offsets, and ApplyUpTo writes the entries' ops into its tables up to the high
// watermark (the offset below which every entry is committed), recording how far it got in
// the same transaction. Entries beyond the high watermark are never applied, so a
// follower's divergent tail is cut by deleting log entries only (TruncateTo).
//
// Compaction and snapshots (docs/cluster.md, "Log compaction and snapshots"): a log keeps
// the entries [start, end); CompactTo deletes applied entries below a point, moving the
// start. A follower that needs entries its leader no longer has loads a copy of the leader's
// rows instead (BeginSnapshot, LoadSnapshotRows, FinishSnapshot) and fetches the log from
// the offset the copy began at. The copy is fuzzy — its chunks are read at different times,
// each holding the effects of at least the entries below that offset — and becomes exact
// once the entries up to the latest chunk's log end (the fuzzy end) are applied over it:
// every op is a whole-row put or delete, so applying an entry whose effect a chunk already
// holds changes nothing. Until then the node must not lead the group.
//
// Threading: every method is thread-safe; the group's mutex orders them (and is held by
// LogWriter from an entry's offset assignment to its commit). A Session argument belongs to
// the calling thread and must have no transaction open. Durability is the Storage's: a
// method's writes are committed when it returns and durable after a later WaitDurable.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "replication/group.h"
#include "storage/storage.h"
#include "strata/status.h"
#include "strata/thread_annotations.h"

namespace strata::replication {

inline constexpr int64_t kNoEpoch = -1;

std::string LogTableName(const GroupId& id);    // replog.<module>.<group>
std::string StateTableName(const GroupId& id);  // replstate.<module>.<group>

// An entry of the leader-epoch cache: `epoch` began at log offset `start_offset`.
struct EpochStart {
  int64_t epoch = 0;
  int64_t start_offset = 0;
  friend bool operator==(const EpochStart&, const EpochStart&) = default;
};
// A leader's answer to "where does your log of epoch E end" (KIP-279's OffsetsForLeaderEpoch):
// the largest epoch of its cache <= E and the offset where that epoch ends (the start of the
// next epoch, or its log end for its latest). kNoEpoch when every epoch it has is above E:
// then `end_offset` is where its first epoch starts.
struct EpochEndOffset {
  int64_t epoch = kNoEpoch;
  int64_t end_offset = 0;
  friend bool operator==(const EpochEndOffset&, const EpochEndOffset&) = default;
};

// One entry as it is shipped from a leader to a follower.
struct ShippedEntry {
  int64_t offset = 0;
  std::string bytes;
};

enum class Truncation {
  kTruncated,  // the log now ends at the truncation point (or already did)
  // This node's tables hold the effects of entries at or beyond the truncation point (it led
  // the group and wrote them): cutting the log cannot undo them. Nothing was changed; the
  // node must be rebuilt from a copy of the leader (a backup, then the log).
  kNeedsRebuild,
};

class GroupLog {
 public:
  // Opens (creating) the group's two tables and reads its state; kCorruption when the
  // state is not one this class writes (an epoch cache out of order or past the log end,
  // an applied offset past it, a leader whose epoch is not the cache's latest).
  static Result<std::unique_ptr<GroupLog>> Open(Storage& storage, Session& session, GroupId id);

  const GroupId& id() const { return id_; }
  int64_t EndOffset() const;    // the next offset: every offset in [start, end) holds an entry
  int64_t StartOffset() const;  // entries below it were compacted away (0: none were)
  int64_t LatestEpoch() const;  // kNoEpoch when the cache is empty
  std::vector<EpochStart> Epochs() const;
  // Offsets below it have their effects in this node's tables: the log end while leading.
  int64_t AppliedEnd() const;
  bool leading() const;
  // A snapshot's rows are being loaded (BeginSnapshot done, FinishSnapshot not yet): the
  // tables are incomplete.
  bool rebuilding() const;
  // Follower: the offset of the last entry applied that changed a module's row, whose copy
  // has not been reloaded since (BeginSnapshot) nor led (BecomeLeader); -1: none.
  int64_t SwitchedAt() const;
  // The tables may hold effects of entries below it (a snapshot's fuzzy end): they are
  // exact once AppliedEnd() reaches it. 0 when no snapshot was loaded.
  int64_t FuzzyEnd() const;

  // What this node answers, as the group's leader, to a follower whose latest epoch is
  // `epoch` (see EpochEndOffset).
  EpochEndOffset EndOffsetFor(int64_t epoch) const;

  // This node becomes the group's leader at `epoch`, which must exceed every epoch of its
  // cache: it first applies every entry of its log (a leader's log is committed), then
  // records (epoch, log end) in its cache. Idempotent when it already leads at `epoch`.
  // kAborted, changing nothing, while a snapshot is loaded or its log does not reach the
  // snapshot's fuzzy end (the tables are not a state of the group).
  Status BecomeLeader(Session& session, int64_t epoch);
  // This node stops leading: the effects of its whole log are recorded as applied.
  Status BecomeFollower(Session& session);

  // Entries [from, from + max_entries) that the log holds, for shipping; kNotFound when
  // `from` is below the start (compacted). They are committed
  // but not necessarily durable: a leader that crashes before its group commit flushed them
  // comes back without them, and, leading on at the same epoch, writes other entries at
  // those offsets, which a follower that already holds the lost ones refuses (kCorruption)
  // with no epoch to truncate by. The shipper must send only entries below the leader's
  // durable point (Storage::WhenDurable), or a restarted leader must lead at a new epoch.
  Result<std::vector<ShippedEntry>> Read(Session& session, int64_t from, int64_t max_entries) const;
  // Follower: writes shipped entries into this log at their offsets, in one transaction,
  // adding an epoch to the cache where an entry's epoch exceeds the latest. An offset already
  // present with the same bytes is skipped; with other bytes it is kCorruption (truncate
  // first); an offset beyond the log end (a gap) is kInvalidArgument; bytes that do not
  // decode, or an epoch lower than the cache's latest, are kCorruption. All or nothing.
  // kInvalidArgument while leading.
  Status Apply(Session& session, std::span<const ShippedEntry> entries);
  // Follower: applies the ops of the entries below min(high_watermark, log end) that are not
  // applied yet to this node's tables (creating a table, with the logged kind, at its first
  // write), with the applied offset, a batch of entries per transaction. Does nothing while
  // leading (a leader's effects are already there) or rebuilding. An entry that changes a
  // module's row (kModulesTable: an update, recompute or rescale switched the module to
  // other tables, and the leader dropped the old ones, which no entry says) is noted in the
  // same transaction (SwitchedAt): the copy still holds those tables, so the follower
  // reloads it from a snapshot of the leader's rows (BeginSnapshot) — or, promoted first,
  // the module's start drops them.
  Status ApplyUpTo(Session& session, int64_t high_watermark);
  // Cuts the log to end at `offset` (entries at and beyond it deleted, epochs that start at
  // or beyond it forgotten), in one transaction. kNeedsRebuild, changing nothing, when
  // AppliedEnd() > offset.
  Result<Truncation> TruncateTo(Session& session, int64_t offset);
  // Deletes the entries below min(offset, AppliedEnd()) (their effects are in the tables),
  // moving the start there; returns the start. The start is recorded first and the entries
  // deleted after it, a batch per transaction, without holding up the leader's appends; a
  // crash in between leaves entries below the start, which the next compaction deletes.
  Result<int64_t> CompactTo(Session& session, int64_t offset);

  // ---- Snapshots (a follower; not while leading: kInvalidArgument) ----
  // Starts loading a copy of the leader's rows read from log offset `offset` on: deletes
  // the whole log, and records start = end = applied = `offset`, the leader's epoch cache
  // `epochs` (those starting at or below `offset`) and that the tables are being rebuilt,
  // in one transaction. The caller then clears the group's tables and loads the rows.
  Status BeginSnapshot(Session& session, int64_t offset, std::span<const EpochStart> epochs);
  // Writes rows of the copy: `bytes` is an encoded entry (log_entry.h) whose ops put them.
  // One transaction. kInvalidArgument unless rebuilding.
  Status LoadSnapshotRows(Session& session, std::string_view bytes);
  // The copy is loaded; it holds effects of entries below `fuzzy_end` (the latest chunk's
  // log end). One transaction.
  Status FinishSnapshot(Session& session, int64_t fuzzy_end);
  // After the node's tables of this group were cleared (kNeedsRebuild: they held effects of
  // entries beyond the truncation point): cuts the log at `offset` as TruncateTo does, and
  // records that nothing is applied, in one transaction, so that ApplyUpTo (or BecomeLeader)
  // rebuilds the tables from the log this node keeps. The log below `offset` is never
  // dropped: the node keeps every entry it acknowledged as an in-sync replica while its
  // tables are rebuilt. kInvalidArgument while leading.
  Status CutAndReapply(Session& session, int64_t offset);

 private:
  friend class LogWriter;
  GroupLog(GroupId id, TableId log_table, TableId state_table)
      : id_(std::move(id)), log_table_(log_table), state_table_(state_table) {}

  int64_t AppliedEndLocked() const REQUIRES(mu_) { return leading_ ? end_ : applied_end_; }
  // Deletes the log's records in [from, to), a bounded batch per transaction.
  Status DeleteRecords(Session& session, int64_t from, int64_t to) EXCLUDES(mu_);
  // Open's check of the state read from disk (untrusted bytes): kCorruption for what no
  // sequence of this class's transactions leaves, e.g. a leader without its epoch in the
  // cache, which LogWriter would otherwise stamp entries from.
  Status CheckStateLocked(int64_t leader_epoch) const REQUIRES(mu_);
  Status ApplyUpToLocked(Session& session, int64_t target) REQUIRES(mu_);
  // `switched` (null: not watched) is set when an op overwrites a module's row in
  // meta.modules with other bytes.
  Status ApplyOps(Session& session, const std::string& bytes, int64_t offset, bool* switched)
      REQUIRES(mu_);
  // The leader's append (LogWriter::BeforeCommit): writes the entry at end_ in the caller's
  // transaction; end_ moves when the commit succeeded (Committed).
  Status AppendLocked(Session& session, const std::string& bytes) REQUIRES(mu_);

  const GroupId id_;
  const TableId log_table_;
  const TableId state_table_;
  Storage* storage_ = nullptr;  // set by Open; outlives this object

  mutable Mutex mu_;
  int64_t end_ GUARDED_BY(mu_) = 0;
  int64_t start_ GUARDED_BY(mu_) = 0;
  bool rebuilding_ GUARDED_BY(mu_) = false;
  int64_t switched_ GUARDED_BY(mu_) = -1;
  int64_t fuzzy_end_ GUARDED_BY(mu_) = 0;
  std::vector<EpochStart> epochs_ GUARDED_BY(mu_);  // ascending epochs and start offsets
  int64_t applied_end_ GUARDED_BY(mu_) = 0;         // meaningful while !leading_
  bool leading_ GUARDED_BY(mu_) = false;
  // The tables a follower applies to, by name.
  std::unordered_map<std::string, TableId> tables_ GUARDED_BY(mu_);
};

// Where a follower cuts its log before it fetches from a new leader (KIP-101 with KIP-279's
// fix): it asks the leader for the end of its own latest epoch; when it has the epoch the
// leader answers with, it cuts at the smaller of the two ends of that epoch; when it does
// not (its later epochs never reached the leader), it asks again with its largest epoch
// below the leader's answer. `ask` is the leader's EndOffsetFor (across the network in a
// cluster). The result never exceeds the follower's log end.
Result<int64_t> TruncationPoint(const GroupLog& follower,
                                const std::function<Result<EpochEndOffset>(int64_t epoch)>& ask);

}  // namespace strata::replication
