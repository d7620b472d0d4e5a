#include "replication/group_log.h"

#include <algorithm>
#include <cstring>

#include "replication/log_entry.h"

namespace strata::replication {
namespace {

// replstate keys (docs/cluster.md): "applied", "leader", "start", "rebuilding", "fuzzy",
// "epoch" ‖ 8-byte big-endian epoch.
constexpr std::string_view kAppliedKey = "applied";
constexpr std::string_view kLeaderKey = "leader";
constexpr std::string_view kStartKey = "start";
constexpr std::string_view kRebuildingKey = "rebuilding";
constexpr std::string_view kSwitchedKey = "switched";
constexpr std::string_view kFuzzyKey = "fuzzy";
constexpr std::string_view kEpochPrefix = "epoch";
// Entries applied per transaction by ApplyUpTo.
constexpr int64_t kApplyBatch = 256;
// Log records deleted per transaction by compaction and snapshots.
constexpr int64_t kDeleteBatch = 1024;

std::string Int64Value(int64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
  return out;
}

Result<int64_t> Int64FromValue(std::string_view bytes, std::string_view what) {
  if (bytes.size() != 8) {
    return Status::Corruption("replication state: " + std::string(what) + " is not 8 bytes");
  }
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  return static_cast<int64_t>(v);
}

std::string EpochKey(int64_t epoch) {
  std::string key(kEpochPrefix);
  for (int i = 7; i >= 0; --i)
    key.push_back(static_cast<char>((static_cast<uint64_t>(epoch) >> (8 * i)) & 0xff));
  return key;
}

// A transaction of a GroupLog method: the session's capture is suspended for its span (what
// a follower applies, and the log's own bookkeeping, are not logged again), and it is rolled
// back unless committed.
class Txn {
 public:
  explicit Txn(Session& session) : session_(session) { session_.SuspendCapture(true); }
  ~Txn() {
    if (open_) session_.Rollback();
    session_.SuspendCapture(false);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  Status Begin() {
    if (session_.in_transaction()) {
      return Status::InvalidArgument("replication log: the session has a transaction open");
    }
    STRATA_RETURN_IF_ERROR(session_.Begin(/*snapshot=*/false));
    open_ = true;
    return Status::Ok();
  }
  Status Commit() {
    open_ = false;
    return session_.Commit();
  }

 private:
  Session& session_;
  bool open_ = false;
};

}  // namespace

std::string LogTableName(const GroupId& id) {
  return "replog." + id.module + "." + std::to_string(id.group);
}
std::string StateTableName(const GroupId& id) {
  return "replstate." + id.module + "." + std::to_string(id.group);
}

Result<std::unique_ptr<GroupLog>> GroupLog::Open(Storage& storage, Session& session, GroupId id) {
  STRATA_ASSIGN_OR_RETURN(TableId log_table, storage.OpenTable(LogTableName(id), TableKind::kLog));
  STRATA_ASSIGN_OR_RETURN(TableId state_table,
                          storage.OpenTable(StateTableName(id), TableKind::kBytes));
  std::unique_ptr<GroupLog> log(new GroupLog(std::move(id), log_table, state_table));
  log->storage_ = &storage;
  STRATA_ASSIGN_OR_RETURN(int64_t last, session.LastRecordKey(log_table));
  std::vector<std::pair<std::string, std::string>> rows;
  STRATA_RETURN_IF_ERROR(
      session.Scan(state_table, "", "", false, [&](std::string_view key, std::string_view value) {
        rows.emplace_back(key, value);
        return true;
      }));
  MutexLock lock(&log->mu_);
  int64_t leader_epoch = kNoEpoch;
  for (const auto& [key, value] : rows) {
    STRATA_ASSIGN_OR_RETURN(int64_t v, Int64FromValue(value, key));
    if (key == kAppliedKey) {
      log->applied_end_ = v;
    } else if (key == kStartKey) {
      log->start_ = v;
    } else if (key == kRebuildingKey) {
      log->rebuilding_ = v != 0;
    } else if (key == kSwitchedKey) {
      log->switched_ = v;
    } else if (key == kFuzzyKey) {
      log->fuzzy_end_ = v;
    } else if (key == kLeaderKey) {
      log->leading_ = true;
      leader_epoch = v;
    } else if (key.size() == kEpochPrefix.size() + 8 && key.starts_with(kEpochPrefix)) {
      uint64_t epoch = 0;
      for (size_t i = kEpochPrefix.size(); i < key.size(); ++i) {
        epoch = (epoch << 8) | static_cast<uint8_t>(key[i]);
      }
      log->epochs_.push_back({static_cast<int64_t>(epoch), v});
    }
  }
  // A compacted log that is empty (a snapshot was just loaded) ends at its start.
  log->end_ = std::max(last + 1, log->start_);
  STRATA_RETURN_IF_ERROR(log->CheckStateLocked(leader_epoch));
  return log;
}

Status GroupLog::CheckStateLocked(int64_t leader_epoch) const {
  const int64_t end = end_;  // (the analysis does not see mu_ held inside a lambda)
  auto bad = [&](const std::string& what) {
    return Status::Corruption("replication state " + StateTableName(id_) + " (log end " +
                              std::to_string(end) + "): " + what);
  };
  // A snapshot being loaded: the log and the tables are replaced by the next load (a crash
  // inside BeginSnapshot may have left any prefix of its deletions).
  if (rebuilding_) {
    if (leading_) return bad("led while a snapshot is being loaded");
    return Status::Ok();
  }
  for (size_t i = 0; i < epochs_.size(); ++i) {
    const EpochStart& e = epochs_[i];
    // Epoch keys are big-endian, so they are scanned in ascending order while >= 0.
    if (e.epoch < 0 || (i > 0 && e.epoch <= epochs_[i - 1].epoch)) {
      return bad("epoch " + std::to_string(e.epoch) + " out of order");
    }
    if (e.start_offset < 0 || e.start_offset > end_ ||
        (i > 0 && e.start_offset < epochs_[i - 1].start_offset)) {
      return bad("epoch " + std::to_string(e.epoch) + " starts at " +
                 std::to_string(e.start_offset) + ", out of order or past the log end");
    }
  }
  if (applied_end_ < 0 || applied_end_ > end_) {
    return bad("applied offset " + std::to_string(applied_end_) + " past the log end");
  }
  if (start_ < 0 || (!leading_ && applied_end_ < start_)) {
    return bad("log start " + std::to_string(start_) + " past the applied offset " +
               std::to_string(applied_end_));
  }
  if (leading_ && (epochs_.empty() || epochs_.back().epoch != leader_epoch)) {
    return bad("led at epoch " + std::to_string(leader_epoch) +
               ", which is not the latest epoch of its cache");
  }
  return Status::Ok();
}

int64_t GroupLog::EndOffset() const {
  MutexLock lock(&mu_);
  return end_;
}
int64_t GroupLog::LatestEpoch() const {
  MutexLock lock(&mu_);
  return epochs_.empty() ? kNoEpoch : epochs_.back().epoch;
}
std::vector<EpochStart> GroupLog::Epochs() const {
  MutexLock lock(&mu_);
  return epochs_;
}
int64_t GroupLog::AppliedEnd() const {
  MutexLock lock(&mu_);
  return AppliedEndLocked();
}
bool GroupLog::leading() const {
  MutexLock lock(&mu_);
  return leading_;
}
int64_t GroupLog::StartOffset() const {
  MutexLock lock(&mu_);
  return start_;
}
int64_t GroupLog::SwitchedAt() const {
  MutexLock lock(&mu_);
  return switched_;
}

bool GroupLog::rebuilding() const {
  MutexLock lock(&mu_);
  return rebuilding_;
}
int64_t GroupLog::FuzzyEnd() const {
  MutexLock lock(&mu_);
  return fuzzy_end_;
}

EpochEndOffset GroupLog::EndOffsetFor(int64_t epoch) const {
  MutexLock lock(&mu_);
  auto after = std::upper_bound(epochs_.begin(), epochs_.end(), epoch,
                                [](int64_t e, const EpochStart& s) { return e < s.epoch; });
  if (after == epochs_.begin()) {
    return {kNoEpoch, epochs_.empty() ? end_ : epochs_.front().start_offset};
  }
  const EpochStart& found = *(after - 1);
  return {found.epoch, after == epochs_.end() ? end_ : after->start_offset};
}

Status GroupLog::BecomeLeader(Session& session, int64_t epoch) {
  MutexLock lock(&mu_);
  if (leading_ && !epochs_.empty() && epochs_.back().epoch == epoch) return Status::Ok();
  if (!epochs_.empty() && epoch <= epochs_.back().epoch) {
    return Status::InvalidArgument("group " + id_.ToString() + ": cannot lead at epoch " +
                                   std::to_string(epoch) + ", not above its latest epoch " +
                                   std::to_string(epochs_.back().epoch));
  }
  const auto not_a_state = [&](const std::string& why) {
    return Status::Aborted("group " + id_.ToString() + ": cannot lead at epoch " +
                           std::to_string(epoch) + ": " + why);
  };
  if (rebuilding_) return not_a_state("a snapshot of the leader's rows is being loaded");
  if (end_ < fuzzy_end_) {
    return not_a_state("its log ends at " + std::to_string(end_) +
                       ", below the end of the snapshot it loaded (" + std::to_string(fuzzy_end_) +
                       "): its tables are not a state of the group");
  }
  if (!leading_) STRATA_RETURN_IF_ERROR(ApplyUpToLocked(session, end_));
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, EpochKey(epoch), Int64Value(end_)));
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, kLeaderKey, Int64Value(epoch)));
  // A switch applied but not reloaded: the module's start drops the tables it orphaned.
  if (switched_ >= 0) STRATA_RETURN_IF_ERROR(session.Remove(state_table_, kSwitchedKey).status());
  STRATA_RETURN_IF_ERROR(txn.Commit());
  epochs_.push_back({epoch, end_});
  leading_ = true;
  switched_ = -1;
  return Status::Ok();
}

Status GroupLog::BecomeFollower(Session& session) {
  MutexLock lock(&mu_);
  if (!leading_) return Status::Ok();
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, kAppliedKey, Int64Value(end_)));
  STRATA_RETURN_IF_ERROR(session.Remove(state_table_, kLeaderKey).status());
  STRATA_RETURN_IF_ERROR(txn.Commit());
  applied_end_ = end_;
  leading_ = false;
  return Status::Ok();
}

Result<std::vector<ShippedEntry>> GroupLog::Read(Session& session, int64_t from,
                                                 int64_t max_entries) const {
  if (from < 0 || max_entries < 1) {
    return Status::InvalidArgument("group " + id_.ToString() + ": bad read of " +
                                   std::to_string(max_entries) + " entries from " +
                                   std::to_string(from));
  }
  int64_t to = 0;
  const auto compacted = [&](int64_t start) {
    return Status::NotFound("log " + LogTableName(id_) + ": offset " + std::to_string(from) +
                            " was compacted away (the log starts at " + std::to_string(start) +
                            ")");
  };
  {
    MutexLock lock(&mu_);
    if (from < start_) return compacted(start_);
    to = std::min(end_, from + max_entries);
  }
  std::vector<ShippedEntry> entries;
  STRATA_RETURN_IF_ERROR(
      session.ScanRecords(log_table_, from, to, [&](int64_t offset, std::string_view bytes) {
        entries.push_back({offset, std::string(bytes)});
        return true;
      }));
  if (static_cast<int64_t>(entries.size()) != std::max<int64_t>(to - from, 0)) {
    // A compaction deleted them meanwhile.
    if (const int64_t start = StartOffset(); from < start) return compacted(start);
    return Status::Corruption("log " + LogTableName(id_) + " has a hole in [" +
                              std::to_string(from) + ", " + std::to_string(to) + ")");
  }
  return entries;
}

Status GroupLog::Apply(Session& session, std::span<const ShippedEntry> entries) {
  MutexLock lock(&mu_);
  const std::string table = LogTableName(id_);
  if (leading_) {
    return Status::InvalidArgument("group " + id_.ToString() +
                                   ": the leader does not apply entries");
  }
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  int64_t end = end_;
  std::vector<EpochStart> epochs = epochs_;
  for (const ShippedEntry& entry : entries) {
    if (entry.offset < end) {
      std::string held;
      STRATA_ASSIGN_OR_RETURN(bool found, session.GetRecord(log_table_, entry.offset, &held));
      if (!found || held != entry.bytes) {
        return Status::Corruption("log " + table + " holds other bytes at offset " +
                                  std::to_string(entry.offset) +
                                  " than the entry shipped for it: the logs diverge (truncate "
                                  "to the truncation point first)");
      }
      continue;
    }
    if (entry.offset > end) {
      return Status::InvalidArgument("log " + table + " ends at " + std::to_string(end) +
                                     ": cannot apply an entry at offset " +
                                     std::to_string(entry.offset));
    }
    STRATA_ASSIGN_OR_RETURN(LogEntry decoded, DecodeEntry(entry.bytes));
    const int64_t epoch = decoded.epoch;
    const int64_t latest = epochs.empty() ? kNoEpoch : epochs.back().epoch;
    if (epoch < latest) {
      return Status::Corruption(
          "log " + table + ": the entry at offset " + std::to_string(entry.offset) + " has epoch " +
          std::to_string(epoch) + ", below the latest epoch " + std::to_string(latest));
    }
    if (epoch > latest) {
      STRATA_RETURN_IF_ERROR(session.Put(state_table_, EpochKey(epoch), Int64Value(entry.offset)));
      epochs.push_back({epoch, entry.offset});
    }
    STRATA_RETURN_IF_ERROR(session.PutRecord(log_table_, entry.offset, entry.bytes));
    ++end;
  }
  STRATA_RETURN_IF_ERROR(txn.Commit());
  end_ = end;
  epochs_ = std::move(epochs);
  return Status::Ok();
}

Status GroupLog::ApplyUpTo(Session& session, int64_t high_watermark) {
  MutexLock lock(&mu_);
  if (leading_ || rebuilding_) return Status::Ok();  // a snapshot replaces the tables
  return ApplyUpToLocked(session, std::min(high_watermark, end_));
}

Status GroupLog::ApplyUpToLocked(Session& session, int64_t target) {
  while (applied_end_ < target) {
    const int64_t batch_end = std::min(target, applied_end_ + kApplyBatch);
    Txn txn(session);
    STRATA_RETURN_IF_ERROR(txn.Begin());
    std::vector<std::string> batch;
    STRATA_RETURN_IF_ERROR(session.ScanRecords(log_table_, applied_end_, batch_end,
                                               [&](int64_t, std::string_view bytes) {
                                                 batch.emplace_back(bytes);
                                                 return true;
                                               }));
    if (static_cast<int64_t>(batch.size()) != batch_end - applied_end_) {
      return Status::Corruption("log " + LogTableName(id_) + " has a hole in [" +
                                std::to_string(applied_end_) + ", " + std::to_string(batch_end) +
                                ")");
    }
    int64_t switched = -1;
    for (size_t i = 0; i < batch.size(); ++i) {
      const int64_t offset = applied_end_ + static_cast<int64_t>(i);
      bool changed = false;
      STRATA_RETURN_IF_ERROR(ApplyOps(session, batch[i], offset, &changed));
      if (changed) switched = offset;
    }
    // A module's row changed (an update, recompute or rescale switched it): the leader has
    // dropped the tables the old row named, which no entry says. Noted durably with the
    // switch: the copy is reloaded from a snapshot, and until then a promotion drops them.
    if (switched >= 0) {
      STRATA_RETURN_IF_ERROR(session.Put(state_table_, kSwitchedKey, Int64Value(switched)));
    }
    STRATA_RETURN_IF_ERROR(session.Put(state_table_, kAppliedKey, Int64Value(batch_end)));
    STRATA_RETURN_IF_ERROR(txn.Commit());
    applied_end_ = batch_end;
    if (switched >= 0) switched_ = switched;
  }
  return Status::Ok();
}

Status GroupLog::ApplyOps(Session& session, const std::string& bytes, int64_t offset,
                          bool* switched) {
  Result<LogEntry> entry = DecodeEntry(bytes);
  if (!entry.ok()) {
    return Status::Corruption("log " + LogTableName(id_) + " at offset " + std::to_string(offset) +
                              ": " + entry.status().message());
  }
  for (const CapturedWrite& op : entry->ops) {
    auto it = tables_.find(op.table);
    if (it == tables_.end()) {
      STRATA_ASSIGN_OR_RETURN(TableId id, storage_->OpenTable(op.table, op.kind));
      it = tables_.emplace(op.table, id).first;
    }
    switch (op.op) {
      case WriteOp::kPut:
        if (switched != nullptr && op.table == kModulesTable) {
          std::string held;
          STRATA_ASSIGN_OR_RETURN(bool found, session.Get(it->second, op.key, &held));
          // Inside a snapshot's fuzzy window the copy may hold the new row already while
          // its tables were read before the change: any row written there counts.
          *switched = *switched || (found && (held != op.value || offset < fuzzy_end_));
        }
        STRATA_RETURN_IF_ERROR(session.Put(it->second, op.key, op.value));
        break;
      case WriteOp::kRemove:
        STRATA_RETURN_IF_ERROR(session.Remove(it->second, op.key).status());
        break;
      case WriteOp::kPutRecord:
        // Inside a snapshot's fuzzy window the copy may hold the record already (a record
        // is written once: the same one).
        if (offset < fuzzy_end_) {
          std::string held;
          STRATA_ASSIGN_OR_RETURN(bool found, session.GetRecord(it->second, op.record, &held));
          if (found) break;
        }
        STRATA_RETURN_IF_ERROR(session.PutRecord(it->second, op.record, op.value));
        break;
    }
  }
  return Status::Ok();
}

Status GroupLog::AppendLocked(Session& session, const std::string& bytes) {
  return session.PutRecord(log_table_, end_, bytes);
}

Result<Truncation> GroupLog::TruncateTo(Session& session, int64_t offset) {
  MutexLock lock(&mu_);
  if (offset < 0) {
    return Status::InvalidArgument("group " + id_.ToString() + ": cannot truncate to offset " +
                                   std::to_string(offset));
  }
  // Inside a snapshot's fuzzy window (the log short of its fuzzy end) the tables may hold
  // effects of entries this log does not have yet, which a new leader may lack: nothing
  // proves they are committed, so any truncation against a new leader needs a rebuild.
  if (rebuilding_ || fuzzy_end_ > end_) return Truncation::kNeedsRebuild;
  if (offset >= end_) return Truncation::kTruncated;
  if (AppliedEndLocked() > offset || fuzzy_end_ > offset) return Truncation::kNeedsRebuild;
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  for (int64_t o = offset; o < end_; ++o) {
    STRATA_RETURN_IF_ERROR(session.RemoveRecord(log_table_, o).status());
  }
  std::vector<EpochStart> epochs = epochs_;
  while (!epochs.empty() && epochs.back().start_offset >= offset) {
    STRATA_RETURN_IF_ERROR(session.Remove(state_table_, EpochKey(epochs.back().epoch)).status());
    epochs.pop_back();
  }
  STRATA_RETURN_IF_ERROR(txn.Commit());
  end_ = offset;
  epochs_ = std::move(epochs);
  return Truncation::kTruncated;
}

Status GroupLog::CutAndReapply(Session& session, int64_t offset) {
  MutexLock lock(&mu_);
  if (leading_) {
    return Status::InvalidArgument("group " + id_.ToString() + " is led here: follow it first");
  }
  if (offset < 0) {
    return Status::InvalidArgument("group " + id_.ToString() + ": cannot truncate to offset " +
                                   std::to_string(offset));
  }
  if (start_ > 0) {
    return Status::InvalidArgument("group " + id_.ToString() + ": its log starts at " +
                                   std::to_string(start_) +
                                   " (compacted): the tables cannot be rebuilt from it");
  }
  const int64_t cut = std::min(offset, end_);
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  for (int64_t o = cut; o < end_; ++o) {
    STRATA_RETURN_IF_ERROR(session.RemoveRecord(log_table_, o).status());
  }
  std::vector<EpochStart> epochs = epochs_;
  while (!epochs.empty() && epochs.back().start_offset >= cut) {
    STRATA_RETURN_IF_ERROR(session.Remove(state_table_, EpochKey(epochs.back().epoch)).status());
    epochs.pop_back();
  }
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, kAppliedKey, Int64Value(0)));
  STRATA_RETURN_IF_ERROR(session.Remove(state_table_, kFuzzyKey).status());
  STRATA_RETURN_IF_ERROR(txn.Commit());
  end_ = cut;
  epochs_ = std::move(epochs);
  applied_end_ = 0;
  fuzzy_end_ = 0;
  tables_.clear();  // the tables were dropped: their ids are stale
  return Status::Ok();
}

Status GroupLog::DeleteRecords(Session& session, int64_t from, int64_t to) {
  for (int64_t batch = from; batch < to; batch += kDeleteBatch) {
    Txn txn(session);
    STRATA_RETURN_IF_ERROR(txn.Begin());
    for (int64_t o = batch; o < std::min(to, batch + kDeleteBatch); ++o) {
      STRATA_RETURN_IF_ERROR(session.RemoveRecord(log_table_, o).status());
    }
    STRATA_RETURN_IF_ERROR(txn.Commit());
  }
  return Status::Ok();
}

Result<int64_t> GroupLog::CompactTo(Session& session, int64_t offset) {
  int64_t start = 0;
  {
    MutexLock lock(&mu_);
    if (rebuilding_) return start_;
    start = std::min(offset, AppliedEndLocked());
    if (start > start_) {
      Txn txn(session);
      STRATA_RETURN_IF_ERROR(txn.Begin());
      STRATA_RETURN_IF_ERROR(session.Put(state_table_, kStartKey, Int64Value(start)));
      STRATA_RETURN_IF_ERROR(txn.Commit());
      start_ = start;
    }
    start = start_;
  }
  // Below the start nothing reads the log any more (Read refuses it), and only this
  // deletes there. The first record, not the old start: a crash may have left some.
  STRATA_ASSIGN_OR_RETURN(int64_t first, session.FirstRecordKey(log_table_));
  if (first >= 0 && first < start) STRATA_RETURN_IF_ERROR(DeleteRecords(session, first, start));
  return start;
}

Status GroupLog::BeginSnapshot(Session& session, int64_t offset,
                               std::span<const EpochStart> epochs) {
  const auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument("group " + id_.ToString() + ": cannot load a snapshot: " + why);
  };
  if (offset < 0) return refuse("offset " + std::to_string(offset) + " is negative");
  {
    MutexLock lock(&mu_);
    if (leading_) return refuse("this node leads the group");
    // Rebuilding first: a crash from here until FinishSnapshot leaves a node that knows its
    // log and tables are not a state of the group, and loads a snapshot again.
    Txn txn(session);
    STRATA_RETURN_IF_ERROR(txn.Begin());
    STRATA_RETURN_IF_ERROR(session.Put(state_table_, kRebuildingKey, Int64Value(1)));
    STRATA_RETURN_IF_ERROR(session.Remove(state_table_, kSwitchedKey).status());
    STRATA_RETURN_IF_ERROR(txn.Commit());
    rebuilding_ = true;
    switched_ = -1;
  }
  STRATA_ASSIGN_OR_RETURN(int64_t first, session.FirstRecordKey(log_table_));
  STRATA_ASSIGN_OR_RETURN(int64_t last, session.LastRecordKey(log_table_));
  if (first >= 0) STRATA_RETURN_IF_ERROR(DeleteRecords(session, first, last + 1));
  MutexLock lock(&mu_);
  std::vector<EpochStart> kept;
  for (const EpochStart& e : epochs) {
    if (e.start_offset > offset) break;
    if (e.epoch < 0 || (!kept.empty() && (e.epoch <= kept.back().epoch ||
                                          e.start_offset < kept.back().start_offset))) {
      return Status::Corruption("group " + id_.ToString() +
                                ": the snapshot's epoch cache is out of order");
    }
    kept.push_back(e);
  }
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  for (const EpochStart& e : epochs_) {
    STRATA_RETURN_IF_ERROR(session.Remove(state_table_, EpochKey(e.epoch)).status());
  }
  for (const EpochStart& e : kept) {
    STRATA_RETURN_IF_ERROR(
        session.Put(state_table_, EpochKey(e.epoch), Int64Value(e.start_offset)));
  }
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, kStartKey, Int64Value(offset)));
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, kAppliedKey, Int64Value(offset)));
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, kFuzzyKey, Int64Value(offset)));
  STRATA_RETURN_IF_ERROR(txn.Commit());
  start_ = end_ = applied_end_ = fuzzy_end_ = offset;
  epochs_ = std::move(kept);
  tables_.clear();  // the caller drops the tables: their ids go stale
  return Status::Ok();
}

Status GroupLog::LoadSnapshotRows(Session& session, std::string_view bytes) {
  MutexLock lock(&mu_);
  if (!rebuilding_) {
    return Status::InvalidArgument("group " + id_.ToString() + ": no snapshot is being loaded");
  }
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  STRATA_RETURN_IF_ERROR(ApplyOps(session, std::string(bytes), start_, /*switched=*/nullptr));
  return txn.Commit();
}

Status GroupLog::FinishSnapshot(Session& session, int64_t fuzzy_end) {
  MutexLock lock(&mu_);
  if (!rebuilding_) {
    return Status::InvalidArgument("group " + id_.ToString() + ": no snapshot is being loaded");
  }
  const int64_t end = std::max(fuzzy_end, start_);
  Txn txn(session);
  STRATA_RETURN_IF_ERROR(txn.Begin());
  STRATA_RETURN_IF_ERROR(session.Put(state_table_, kFuzzyKey, Int64Value(end)));
  STRATA_RETURN_IF_ERROR(session.Remove(state_table_, kRebuildingKey).status());
  STRATA_RETURN_IF_ERROR(txn.Commit());
  fuzzy_end_ = end;
  rebuilding_ = false;
  return Status::Ok();
}

Result<int64_t> TruncationPoint(const GroupLog& follower,
                                const std::function<Result<EpochEndOffset>(int64_t epoch)>& ask) {
  const int64_t end = follower.EndOffset();
  int64_t bound = follower.LatestEpoch();
  if (bound == kNoEpoch) return end;  // an empty cache: an empty log
  while (true) {
    STRATA_ASSIGN_OR_RETURN(EpochEndOffset leader, ask(bound));
    if (leader.epoch == kNoEpoch) return std::min(leader.end_offset, end);
    EpochEndOffset mine = follower.EndOffsetFor(leader.epoch);
    if (mine.epoch == leader.epoch) return std::min(leader.end_offset, mine.end_offset);
    if (mine.epoch == kNoEpoch) {
      // Every epoch of the follower is above the leader's answer: none reached the leader.
      return std::min(leader.end_offset, mine.end_offset);
    }
    bound = mine.epoch;  // < leader.epoch <= bound: the loop ends
  }
}

}  // namespace strata::replication
