// ReplicationImpl: the replicated engine's Replication (strata/replication.h; docs/cluster.md,
// "The replicated engine"). It owns the engine's LogWriter (installed as the storage's
// commit hook by EngineImpl::Open) and drives the groups' logs (replication/group_log.h):
// Lead and Follow start and stop the module's runtime through EngineImpl, the follower's
// methods copy and apply shipped entries, and it tracks each group's durable log end and
// the leader's long polls (WhenLogPasses).
//
// Threading: every method is thread-safe. Lead, Follow, TruncateTo, DropReplica,
// RebuildFromLog, BeginSnapshot and Compact are serialized (leadership_mu_); the others run
// concurrently, each with a session of its own. The LogWriter notifies commits on the committing
// thread (OnEndMoved), the storage's durability on its flusher thread; both take only mu_ and run
// callbacks with no lock held.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "replication/group.h"
#include "replication/group_log.h"
#include "replication/log_writer.h"
#include "runtime/meta_tables.h"
#include "strata/replication.h"
#include "strata/thread_annotations.h"

namespace strata::runtime {

class EngineImpl;

class ReplicationImpl final : public Replication, public FlushObserver {
 public:
  // `engine` owns this object and outlives it; `writer` is (to be) its storage's hook.
  ReplicationImpl(EngineImpl& engine, std::shared_ptr<replication::LogWriter> writer);

  // At Open, once the storage is open: opens every group that has a log here and makes it
  // followed (a group this node led before a restart is led again only by Lead, at a new
  // epoch); what is on disk at Open is durable.
  Status OpenGroups();
  // At Close, before the storage closes: every WhenLogPasses callback runs, and durability
  // is no longer tracked.
  void Close();

  // The storage's flushes (installed by OpenGroups, removed by Close): the groups' ends at a
  // flush's start become their durable ends when it is done, before its callbacks run (a
  // leader's acknowledgements, released from them, find its own durable end up to date).
  void FlushStarting(uint64_t flush) override EXCLUDES(mu_);
  void FlushDone(uint64_t flush, const Status& status) override EXCLUDES(mu_);

  int Groups(const std::string& module) const override;
  Status Lead(const std::string& module, int group, int64_t epoch) override;
  Status Follow(const std::string& module, int group) override;
  Result<int64_t> FindModuleRowEntry(const std::string& module, int group, int64_t from) override;
  Result<std::vector<ReplicaEntry>> Read(const std::string& module, int group, int64_t from,
                                         int64_t below, int64_t max_bytes) override;
  Result<EpochEnd> EndOffsetFor(const std::string& module, int group, int64_t epoch) override;
  void WhenLogPasses(const std::string& module, int group, int64_t end,
                     std::function<void()> fn) override;
  Status Append(const std::string& module, int group,
                std::span<const ReplicaEntry> entries) override;
  Status ApplyUpTo(const std::string& module, int group, int64_t high_watermark) override;
  Result<int64_t> TruncationPoint(
      const std::string& module, int group,
      const std::function<Result<EpochEnd>(int64_t epoch)>& ask) override;
  Result<bool> TruncateTo(const std::string& module, int group, int64_t offset) override;
  Status DropReplica(const std::string& module) override;
  Status RebuildFromLog(const std::string& module, int group, int64_t offset) override;
  Result<ReplicaGroupStatus> GroupStatus(const std::string& module, int group) override;
  Result<std::vector<std::string>> LocalModules() override;
  void OnDurableEnd(std::function<void(const std::string&, int, int64_t)> fn) override
      EXCLUDES(listener_mu_);
  void WhenDurable(std::function<void(Status)> done) override;
  Result<std::string> ModuleFile(const std::string& module) override;
  Status InstallModuleFile(const std::string& module, const std::string& bytes) override;
  bool NeedsModuleFile(const std::string& module) override;
  Result<std::string> Digest(const std::string& module, int group) override;
  Result<int64_t> Compact(const std::string& module, int group, int64_t below) override;
  Result<SnapshotChunk> ReadSnapshot(const std::string& module, int group,
                                     const SnapshotCursor& after, int64_t max_bytes) override;
  Status BeginSnapshot(const std::string& module, int group, int64_t offset,
                       std::span<const LogEpoch> epochs) override;
  Status LoadSnapshot(const std::string& module, int group, const std::string& rows) override;
  Status FinishSnapshot(const std::string& module, int group, int64_t fuzzy_end) override;
  Result<std::string> ModuleName(const std::string& so_path) override;

 private:
  using GroupId = replication::GroupId;
  struct Waiter {
    int64_t end = 0;
    std::function<void()> fn;
  };
  // What this object tracks of a group beside its GroupLog.
  struct Tracked {
    int64_t durable_end = 0;
    std::vector<Waiter> waiters;  // WhenLogPasses callbacks not run yet
  };

  // A table whose rows belong to a group: its module's depots, PStates and rescale tables of
  // the group, and the shared meta tables (only the module's rows of the group are its).
  struct GroupTable {
    std::string name;
    TableKind kind = TableKind::kBytes;
    TableId id{};
  };
  // The group's tables, opened, ordered by name (the order of digests and snapshots).
  Result<std::vector<GroupTable>> GroupTables(const GroupId& id);
  // Visits the group's rows of `table` in order as whole-row writes (a put, or a record's
  // put), starting after `after` when it names this table, until fn returns false.
  Status ScanGroupRows(Session& session, const GroupId& id, const GroupTable& table,
                       const SnapshotCursor& after,
                       const std::function<bool(const CapturedWrite&)>& fn);
  // The group's log: opened (and created) when `create`, else kNotFound when it has no log
  // here. kInvalidArgument for a group out of range.
  Result<replication::GroupLog*> Group(const std::string& module, int group, bool create);
  // The LogWriter's notification, and a follower's Append: the log of `id` ends at `end`.
  void OnEndMoved(const GroupId& id, int64_t end) EXCLUDES(mu_);
  // Asks the storage for the durability of what is committed now, unless a request is out
  // (then it asks again when that one completes).
  void TrackDurable() EXCLUDES(mu_);
  // Runs (with no lock held) every WhenLogPasses callback of the group.
  void ReleaseWaiters(const GroupId& id) EXCLUDES(mu_);
  // modules/<module>.so in the data directory: where Deploy installs a module's file.
  std::string DefaultModuleFilePath(const std::string& module) const;
  // The module file's path from its row (checked to name a file in modules/): the row in
  // the tables, else one a follower's Append logged and has not applied yet.
  Result<std::string> ModuleFilePath(const std::string& module, std::string* checksum);
  // A follower's Append: notes the module rows the entries write (logged_rows_).
  void NoteModuleRows(const std::string& module, std::span<const ReplicaEntry> entries)
      EXCLUDES(mu_);

  EngineImpl& engine_;
  const std::shared_ptr<replication::LogWriter> writer_;

  Mutex leadership_mu_;  // serializes the methods named in the class comment

  Mutex mu_;
  std::map<GroupId, Tracked> tracked_ GUARDED_BY(mu_);
  bool durable_requested_ GUARDED_BY(mu_) = false;  // a WhenDurable of TrackDurable is out
  bool durable_again_ GUARDED_BY(mu_) = false;      // ends moved since it was asked
  bool closed_ GUARDED_BY(mu_) = false;
  // Raises the groups' durable ends to `ends` and tells the listener of those that moved.
  void MarkDurable(const std::map<GroupId, int64_t>& ends) EXCLUDES(mu_, listener_mu_);
  // Held while the listener runs, so that OnDurableEnd can replace it safely.
  Mutex listener_mu_;
  std::function<void(const std::string&, int, int64_t)> listener_ GUARDED_BY(listener_mu_);
  // The flush in progress (FlushStarting's number) and the ends of the open groups at its
  // start.
  uint64_t flush_ GUARDED_BY(mu_) = 0;
  std::map<GroupId, int64_t> flush_ends_ GUARDED_BY(mu_);
  uint64_t install_counter_ GUARDED_BY(mu_) = 0;
  // The meta.modules rows that shipped entries wrote, by module, while they may not be
  // applied yet: a follower fetches the file a row names before it reports the entry
  // durable, so that the leader acknowledges a deploy only once its followers could start
  // the module (an ISR member is promoted with its whole log applied, file included).
  std::map<std::string, ModuleRow> logged_rows_ GUARDED_BY(mu_);
  // Module files whose checksum NeedsModuleFile computed, by path: a follower asks before
  // every fetch, and hashing the file each time cost a sixth of its CPU. Files are only
  // ever replaced by rename (a new row names a new checksum, which misses here).
  std::map<std::string, std::string> checked_files_ GUARDED_BY(mu_);
};

}  // namespace strata::runtime
