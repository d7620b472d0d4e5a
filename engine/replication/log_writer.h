// The leader's side of the replication log: a CommitHook (storage/storage.h) that writes,
// in each transaction, one entry into the log of every replica group the transaction wrote
// to (docs/cluster.md, "Replication log").
//
// Install it with StorageOptions::commit_hook. A group's log is opened at the group's first
// write (or by Open); a group with no state yet (a new database, a new module) is led from
// then on at `first_epoch` when `lead_new_groups` (a single node logs everything it
// writes), and followed otherwise (a replicated engine: only Lead makes it led). A write to
// a group this node follows fails the transaction with kInvalidArgument: only the leader
// writes.
//
// Order: the transactions that write one group hold the group's mutex from the assignment
// of their entry's offset until their WiredTiger commit has returned, so offsets are dense
// and in commit order (a transaction touching several groups takes their mutexes in GroupId
// order). Thread-safe; the GroupLogs live as long as the LogWriter, which must not outlive
// the Storage it is installed on except as an unused object.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "replication/group.h"
#include "replication/group_log.h"
#include "storage/storage.h"
#include "strata/thread_annotations.h"

namespace strata::replication {

class LogWriter final : public CommitHook {
 public:
  explicit LogWriter(GroupLayout layout, int64_t first_epoch = 0, bool lead_new_groups = true)
      : layout_(std::move(layout)), first_epoch_(first_epoch), lead_new_groups_(lead_new_groups) {}

  // Called after every commit that moved a group's log end, with the group and its new end,
  // on the committing thread with no lock of the group held (GroupLog::Apply's callers
  // notify for a follower's log). Set it before the storage commits anything; it must be
  // quick.
  using EndMoved = std::function<void(const GroupId&, int64_t end)>;
  void SetOnEndMoved(EndMoved fn) { on_end_moved_ = std::move(fn); }

  const GroupLayout& layout() const { return layout_; }

  // The group's log on `storage`, opened (with a session of its own) if it is not open yet;
  // it is not led unless its state says so — a group without state opened here is followed,
  // and a later write to it is refused, not led at first_epoch (a follower's way to open
  // its groups). The pointer lives as long as this LogWriter.
  Result<GroupLog*> Open(Storage& storage, const GroupId& id);
  // The group's log when it is open here, else null (no storage call).
  GroupLog* Find(const GroupId& id) const;
  // The open groups, in GroupId order.
  std::vector<GroupLog*> Groups() const;
  // Forgets the module's open groups (their tables are about to be dropped): Groups() and
  // Open no longer return them (Open opens them anew). No transaction may be writing to
  // them; a pointer to one that another thread still holds stays valid (as long as this
  // LogWriter) and reads its last state.
  void Forget(const std::string& module);

  // Leaves the mutexes of the groups written locked, for the returned Pending to release:
  // the analysis cannot follow that, hence NO_THREAD_SAFETY_ANALYSIS.
  Result<std::unique_ptr<Pending>> BeforeCommit(Storage& storage, Session& session,
                                                std::span<const CapturedWrite> writes) override
      NO_THREAD_SAFETY_ANALYSIS;

 private:
  class HeldGroups;
  // Open, under mu_; `lead_new` leads a group without state at first_epoch_.
  Result<GroupLog*> OpenLocked(Storage& storage, const GroupId& id, bool lead_new) REQUIRES(mu_);

  const GroupLayout layout_;
  const int64_t first_epoch_;
  const bool lead_new_groups_;
  EndMoved on_end_moved_;  // set before use, then read-only
  mutable Mutex mu_;
  std::map<GroupId, std::unique_ptr<GroupLog>> groups_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<GroupLog>> forgotten_ GUARDED_BY(mu_);  // Forget's, kept alive
};

}  // namespace strata::replication
