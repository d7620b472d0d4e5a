#include "replication/log_writer.h"

#include <utility>

#include "replication/log_entry.h"

namespace strata::replication {
// Holds the mutexes of the groups a committing transaction wrote, from their offsets'
// assignment until the commit has returned; then moves each log's end past its entry.
class LogWriter::HeldGroups final : public CommitHook::Pending {
 public:
  explicit HeldGroups(const EndMoved* on_end_moved) : on_end_moved_(on_end_moved) {}
  ~HeldGroups() override { Release(false); }
  // `log` is locked by the caller; released by Finished or the destructor.
  void Add(GroupLog* log) { held_.push_back(log); }
  void Finished(bool committed) override { Release(committed); }

 private:
  void Release(bool committed) NO_THREAD_SAFETY_ANALYSIS {
    std::vector<std::pair<const GroupId*, int64_t>> moved;
    for (GroupLog* log : held_) {
      if (committed) {
        ++log->end_;
        moved.emplace_back(&log->id(), log->end_);
      }
      log->mu_.Unlock();
    }
    held_.clear();
    if (*on_end_moved_) {
      for (const auto& [id, end] : moved) (*on_end_moved_)(*id, end);
    }
  }
  const EndMoved* on_end_moved_;
  std::vector<GroupLog*> held_;
};

Result<GroupLog*> LogWriter::Open(Storage& storage, const GroupId& id) {
  MutexLock lock(&mu_);
  return OpenLocked(storage, id, /*lead_new=*/false);
}

GroupLog* LogWriter::Find(const GroupId& id) const {
  MutexLock lock(&mu_);
  auto it = groups_.find(id);
  return it == groups_.end() ? nullptr : it->second.get();
}

std::vector<GroupLog*> LogWriter::Groups() const {
  MutexLock lock(&mu_);
  std::vector<GroupLog*> out;
  for (const auto& [id, log] : groups_) out.push_back(log.get());
  return out;
}

void LogWriter::Forget(const std::string& module) {
  MutexLock lock(&mu_);
  for (auto it = groups_.begin(); it != groups_.end();) {
    if (it->first.module == module) {
      forgotten_.push_back(std::move(it->second));
      it = groups_.erase(it);
    } else {
      ++it;
    }
  }
}

Result<GroupLog*> LogWriter::OpenLocked(Storage& storage, const GroupId& id, bool lead_new) {
  auto it = groups_.find(id);
  if (it != groups_.end()) return it->second.get();
  // A session of its own: the caller may be inside a transaction (BeforeCommit), and
  // BecomeLeader commits.
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage.OpenSession());
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<GroupLog> log, GroupLog::Open(storage, *session, id));
  if (lead_new && log->LatestEpoch() == kNoEpoch && log->EndOffset() == 0) {
    STRATA_RETURN_IF_ERROR(log->BecomeLeader(*session, first_epoch_));
  }
  return groups_.emplace(id, std::move(log)).first->second.get();
}

Result<std::unique_ptr<CommitHook::Pending>> LogWriter::BeforeCommit(
    Storage& storage, Session& session, std::span<const CapturedWrite> writes) {
  // The writes of each group, in the order they were made. Consecutive writes are mostly
  // to one table (a batch of depot records, one PState partition), so the group of the
  // previous write's table is reused when the table and, for meta tables, the key match.
  std::map<GroupId, std::vector<const CapturedWrite*>> by_group;
  const CapturedWrite* previous = nullptr;
  std::vector<const CapturedWrite*>* previous_group = nullptr;
  for (const CapturedWrite& w : writes) {
    if (previous != nullptr && previous->table == w.table && !w.table.starts_with("meta.")) {
      if (previous_group != nullptr) previous_group->push_back(&w);
      previous = &w;
      continue;
    }
    std::optional<GroupId> group = layout_.GroupOf(w.table, w.key);
    previous = &w;
    previous_group = group ? &by_group[std::move(*group)] : nullptr;
    if (previous_group != nullptr) previous_group->push_back(&w);
  }
  if (by_group.empty()) return std::unique_ptr<Pending>();
  std::vector<GroupLog*> logs;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, ops] : by_group) {
      STRATA_ASSIGN_OR_RETURN(GroupLog * log, OpenLocked(storage, id, lead_new_groups_));
      logs.push_back(log);
    }
  }
  auto held = std::make_unique<HeldGroups>(&on_end_moved_);
  size_t i = 0;
  for (auto& [id, ops] : by_group) {
    GroupLog* log = logs[i++];
    log->mu_.Lock();
    held->Add(log);
    if (!log->leading_) {
      return Status::InvalidArgument("a transaction writes to replica group " + id.ToString() +
                                     " (table " + ops.front()->table +
                                     "), which this node follows: only its leader writes");
    }
    std::string bytes = EncodeEntry(log->epochs_.back().epoch, ops);
    STRATA_RETURN_IF_ERROR(log->AppendLocked(session, bytes));
  }
  return std::unique_ptr<Pending>(std::move(held));
}

}  // namespace strata::replication
