#include "runtime/replication_impl.h"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>

#include "module/loader.h"
#include "replication/log_entry.h"
#include "runtime/engine_impl.h"
#include "runtime/meta_tables.h"
#include "strata/key_codec.h"
#include "strata/value_codec.h"

namespace strata::runtime {
namespace {

namespace fs = std::filesystem;
using replication::GroupLog;

// Entries read from a group's log per GroupLog::Read while a Read fills its bytes.
constexpr int64_t kReadChunk = 64;

// The engine-wide meta tables whose rows are replicated (keys start with enc(module)).
constexpr const char* kReplicatedMetaTables[] = {"meta.modules", "meta.progress", "meta.failures",
                                                 "meta.outbox"};

// The digest of one snapshot: every replicated row of a group, framed so that no two
// different sequences of rows give the same bytes.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Add(std::string_view bytes) {
    const uint64_t size = bytes.size();
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(size >> (8 * i));
    EVP_DigestUpdate(ctx_, length, sizeof(length));
    EVP_DigestUpdate(ctx_, bytes.data(), bytes.size());
  }
  std::string Hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_, digest, &size);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
      out.push_back(kHex[digest[i] >> 4]);
      out.push_back(kHex[digest[i] & 0xf]);
    }
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

// The group whose state table `table` is (replstate.<module>.<group>; module names contain
// no '.'), or nullopt for a name the log does not write.
std::optional<replication::GroupId> GroupOfStateTable(std::string_view table) {
  const std::string rest(table.substr(std::string_view("replstate.").size()));
  const size_t dot = rest.find('.');
  if (dot == std::string::npos || dot == 0) return std::nullopt;
  replication::GroupId id{rest.substr(0, dot), 0};
  try {
    id.group = std::stoi(rest.substr(dot + 1));
  } catch (const std::exception&) {
    return std::nullopt;
  }
  return id;
}

// An 8-byte little-endian replstate value.
int64_t LittleEndian64(std::string_view bytes) {
  uint64_t v = 0;
  for (int b = 7; b >= 0; --b) v = (v << 8) | static_cast<uint8_t>(bytes[b]);
  return static_cast<int64_t>(v);
}

// A module file as the row names it: "modules/<file>" with no other directory.
bool IsModuleFileName(const std::string& file) {
  if (!file.starts_with("modules/")) return false;
  const std::string name = file.substr(8);
  return !name.empty() && name.find('/') == std::string::npos && name != "." && name != "..";
}

}  // namespace

ReplicationImpl::ReplicationImpl(EngineImpl& engine, std::shared_ptr<replication::LogWriter> writer)
    : engine_(engine), writer_(std::move(writer)) {
  writer_->SetOnEndMoved([this](const GroupId& id, int64_t end) { OnEndMoved(id, end); });
}

Status ReplicationImpl::OpenGroups() {
  Storage& storage = engine_.storage();
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables, storage.ListTables("replstate."));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage.OpenSession());
  for (const std::string& table : tables) {
    const std::optional<GroupId> group = GroupOfStateTable(table);
    if (!group) continue;  // not a table the log writes
    const GroupId& id = *group;
    STRATA_ASSIGN_OR_RETURN(GroupLog * log, writer_->Open(storage, id));
    STRATA_RETURN_IF_ERROR(log->BecomeFollower(*session));
    if (log->AppliedEnd() == 0 && log->EndOffset() > 0) {
      // A follower with nothing applied has no effects in its tables: what is there was
      // left by a RebuildFromLog that a crash interrupted.
      STRATA_RETURN_IF_ERROR(engine_.DropLocalCopy(id.module, /*keep_files=*/true));
    }
    MutexLock lock(&mu_);
    tracked_[id].durable_end = log->EndOffset();
  }
  storage.SetFlushObserver(this);
  return Status::Ok();
}

void ReplicationImpl::Close() {
  engine_.storage().SetFlushObserver(nullptr);
  std::vector<GroupId> groups;
  {
    MutexLock lock(&mu_);
    closed_ = true;
    for (const auto& [id, tracked] : tracked_) groups.push_back(id);
  }
  for (const GroupId& id : groups) ReleaseWaiters(id);
}

int ReplicationImpl::Groups(const std::string& module) const {
  return writer_->layout().Groups(module);
}

Result<GroupLog*> ReplicationImpl::Group(const std::string& module, int group, bool create) {
  if (group < 0 || group >= Groups(module)) {
    return Status::InvalidArgument("module " + module + " has " + std::to_string(Groups(module)) +
                                   " replica groups: there is no group " + std::to_string(group));
  }
  const GroupId id{module, group};
  // The common case answers without the storage's schema lock (a leader's long polls ask
  // from commit callbacks).
  if (GroupLog* open = writer_->Find(id)) return open;
  Storage& storage = engine_.storage();
  if (!create) {
    STRATA_ASSIGN_OR_RETURN(bool exists, storage.TableExists(replication::StateTableName(id)));
    if (!exists) {
      return Status::NotFound("replica group " + id.ToString() + " has no log on this node");
    }
  }
  return writer_->Open(storage, id);
}

Status ReplicationImpl::Lead(const std::string& module, int group, int64_t epoch) {
  MutexLock leadership(&leadership_mu_);
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/true));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine_.storage().OpenSession());
  STRATA_RETURN_IF_ERROR(log->BecomeLeader(*session, epoch));
  for (int g = 0; g < Groups(module); ++g) {
    Result<GroupLog*> other = Group(module, g, /*create=*/false);
    if (!other.ok() || !(*other)->leading()) return Status::Ok();  // not all led yet
  }
  Status started = engine_.StartLedModule(module);
  if (!started.ok()) {
    return Status(started.code(), "module " + module + " leads group " + std::to_string(group) +
                                      " at epoch " + std::to_string(epoch) +
                                      " but could not start: " + started.message());
  }
  return Status::Ok();
}

Status ReplicationImpl::Follow(const std::string& module, int group) {
  MutexLock leadership(&leadership_mu_);
  Result<GroupLog*> log = Group(module, group, /*create=*/false);
  if (log.status().code() == StatusCode::kNotFound) return Status::Ok();
  if (!log.ok()) return log.status();
  if (!(*log)->leading()) return Status::Ok();
  STRATA_RETURN_IF_ERROR(engine_.StopModule(module));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine_.storage().OpenSession());
  Status followed = (*log)->BecomeFollower(*session);
  ReleaseWaiters(GroupId{module, group});
  return followed;
}

Result<std::vector<ReplicaEntry>> ReplicationImpl::Read(const std::string& module, int group,
                                                        int64_t from, int64_t below,
                                                        int64_t max_bytes) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  const int64_t to = std::min(below, log->EndOffset());
  std::vector<ReplicaEntry> out;
  if (from >= to) return out;
  STRATA_RETURN_IF_ERROR(engine_.WithPooledSession([&](Session& session) -> Status {
    int64_t bytes = 0;
    for (int64_t next = from; next < to;) {
      STRATA_ASSIGN_OR_RETURN(std::vector<replication::ShippedEntry> chunk,
                              log->Read(session, next, std::min(kReadChunk, to - next)));
      if (chunk.empty()) break;
      for (replication::ShippedEntry& entry : chunk) {
        const int64_t size = static_cast<int64_t>(entry.bytes.size());
        if (!out.empty() && bytes + size > max_bytes) return Status::Ok();
        bytes += size;
        out.push_back({entry.offset, std::move(entry.bytes)});
      }
      next = out.back().offset + 1;
    }
    return Status::Ok();
  }));
  return out;
}

Result<EpochEnd> ReplicationImpl::EndOffsetFor(const std::string& module, int group,
                                               int64_t epoch) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  const replication::EpochEndOffset end = log->EndOffsetFor(epoch);
  return EpochEnd{end.epoch, end.end_offset};
}

void ReplicationImpl::WhenLogPasses(const std::string& module, int group, int64_t end,
                                    std::function<void()> fn) {
  Result<GroupLog*> log = Group(module, group, /*create=*/false);
  {
    MutexLock lock(&mu_);
    // Checked under mu_: a commit that moves the end past `end` after this check notifies
    // (OnEndMoved takes mu_) and finds the waiter.
    if (!closed_ && log.ok() && (*log)->leading() && (*log)->EndOffset() <= end) {
      tracked_[GroupId{module, group}].waiters.push_back({end, std::move(fn)});
      return;
    }
  }
  fn();
}

Status ReplicationImpl::Append(const std::string& module, int group,
                               std::span<const ReplicaEntry> entries) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/true));
  std::vector<replication::ShippedEntry> shipped;
  shipped.reserve(entries.size());
  for (const ReplicaEntry& entry : entries) shipped.push_back({entry.offset, entry.bytes});
  STRATA_RETURN_IF_ERROR(
      engine_.WithPooledSession([&](Session& session) { return log->Apply(session, shipped); }));
  NoteModuleRows(module, entries);
  OnEndMoved(log->id(), log->EndOffset());
  return Status::Ok();
}

Result<int64_t> ReplicationImpl::FindModuleRowEntry(const std::string& module, int group,
                                                    int64_t from) {
  const std::string key = EncodeKey(Value(module));
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  int64_t found = -1;
  for (int64_t next = std::max(from, log->StartOffset());;) {
    STRATA_ASSIGN_OR_RETURN(std::vector<ReplicaEntry> entries,
                            Read(module, group, next, INT64_MAX, 1 << 20));
    if (entries.empty()) break;
    for (const ReplicaEntry& entry : entries) {
      if (entry.bytes.find(replication::kModulesTable) == std::string::npos) continue;
      STRATA_ASSIGN_OR_RETURN(replication::LogEntry decoded, replication::DecodeEntry(entry.bytes));
      for (const CapturedWrite& op : decoded.ops) {
        if (op.table == replication::kModulesTable && op.key == key) found = entry.offset;
      }
    }
    next = entries.back().offset + 1;
  }
  if (found < 0) {
    return Status::NotFound("no entry of module " + module + " group " + std::to_string(group) +
                            " from offset " + std::to_string(from) + " writes its row");
  }
  return found;
}

void ReplicationImpl::NoteModuleRows(const std::string& module,
                                     std::span<const ReplicaEntry> entries) {
  const std::string key = EncodeKey(Value(module));
  for (const ReplicaEntry& entry : entries) {
    // FlexBuffers stores the table name as is: an entry without these bytes writes no
    // module row, and decoding every entry a second time was a tenth of a follower's CPU.
    if (entry.bytes.find("meta.modules") == std::string::npos) continue;
    Result<replication::LogEntry> decoded = replication::DecodeEntry(entry.bytes);
    if (!decoded.ok()) continue;  // Apply decoded it already
    for (const CapturedWrite& op : decoded->ops) {
      if (op.table != "meta.modules" || op.key != key) continue;
      MutexLock lock(&mu_);
      if (op.op == WriteOp::kRemove) {
        logged_rows_.erase(module);
        continue;
      }
      Result<Value> value = DecodeValue(op.value);
      if (!value.ok()) continue;
      Result<ModuleRow> row = ModuleRowFromValue(module, *value);
      if (row.ok()) logged_rows_[module] = std::move(row).value();
    }
  }
}

Status ReplicationImpl::ApplyUpTo(const std::string& module, int group, int64_t high_watermark) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  return engine_.WithPooledSession(
      [&](Session& session) { return log->ApplyUpTo(session, high_watermark); });
}

Result<int64_t> ReplicationImpl::TruncationPoint(
    const std::string& module, int group,
    const std::function<Result<EpochEnd>(int64_t epoch)>& ask) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/true));
  return replication::TruncationPoint(
      *log, [&ask](int64_t epoch) -> Result<replication::EpochEndOffset> {
        STRATA_ASSIGN_OR_RETURN(EpochEnd end, ask(epoch));
        return replication::EpochEndOffset{end.epoch, end.end_offset};
      });
}

Result<bool> ReplicationImpl::TruncateTo(const std::string& module, int group, int64_t offset) {
  MutexLock leadership(&leadership_mu_);
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/true));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine_.storage().OpenSession());
  STRATA_ASSIGN_OR_RETURN(replication::Truncation truncated, log->TruncateTo(*session, offset));
  if (truncated == replication::Truncation::kNeedsRebuild) return false;
  MutexLock lock(&mu_);
  Tracked& tracked = tracked_[log->id()];
  tracked.durable_end = std::min(tracked.durable_end, log->EndOffset());
  // The entry that wrote a logged row may be cut: rows are read from the tables again.
  logged_rows_.erase(module);
  return true;
}

Status ReplicationImpl::DropReplica(const std::string& module) {
  MutexLock leadership(&leadership_mu_);
  for (int g = 0; g < Groups(module); ++g) {
    Result<GroupLog*> log = Group(module, g, /*create=*/false);
    if (log.ok() && (*log)->leading()) {
      return Status::InvalidArgument("cannot drop the replica of module " + module +
                                     ": this node leads its group " + std::to_string(g) +
                                     " (follow it first)");
    }
  }
  if (engine_.Running(module)) {
    return Status::InvalidArgument("cannot drop the replica of module " + module +
                                   ": it runs here");
  }
  std::vector<GroupId> groups;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, tracked] : tracked_) {
      if (id.module == module) groups.push_back(id);
    }
  }
  for (const GroupId& id : groups) ReleaseWaiters(id);
  writer_->Forget(module);
  {
    MutexLock lock(&mu_);
    std::erase_if(tracked_, [&](const auto& entry) { return entry.first.module == module; });
    logged_rows_.erase(module);
  }
  // The logs first: a crash part-way leaves tables without a log, which a repeated
  // DropReplica removes, never a log whose applied offset claims effects that are gone.
  Storage& storage = engine_.storage();
  for (const std::string prefix : {"replstate.", "replog."}) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables,
                            storage.ListTables(prefix + module + "."));
    for (const std::string& table : tables) STRATA_RETURN_IF_ERROR(storage.DropTable(table));
  }
  return engine_.DropLocalCopy(module);
}

Status ReplicationImpl::RebuildFromLog(const std::string& module, int group, int64_t offset) {
  MutexLock leadership(&leadership_mu_);
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  if (log->leading() || engine_.Running(module)) {
    return Status::InvalidArgument("cannot rebuild the tables of module " + module +
                                   ": this node leads it (follow it first)");
  }
  // Nothing applied first, then the tables: a crash in between leaves "nothing applied"
  // over stale tables, which OpenGroups clears at the next start (a followed group with
  // nothing applied has no effects in the tables).
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine_.storage().OpenSession());
  STRATA_RETURN_IF_ERROR(log->CutAndReapply(*session, offset));
  return engine_.DropLocalCopy(module, /*keep_files=*/true);
}

Result<std::vector<std::string>> ReplicationImpl::LocalModules() {
  STRATA_ASSIGN_OR_RETURN(std::vector<std::string> tables,
                          engine_.storage().ListTables("replstate."));
  std::vector<std::string> modules;
  for (const std::string& table : tables) {
    if (const std::optional<GroupId> group = GroupOfStateTable(table)) {
      modules.push_back(group->module);
    }
  }
  std::sort(modules.begin(), modules.end());
  modules.erase(std::unique(modules.begin(), modules.end()), modules.end());
  return modules;
}

Result<ReplicaGroupStatus> ReplicationImpl::GroupStatus(const std::string& module, int group) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  ReplicaGroupStatus status;
  status.leading = log->leading();
  status.epoch = log->LatestEpoch();
  status.log_start = log->StartOffset();
  status.rebuilding = log->rebuilding();
  status.switched_at = log->SwitchedAt();
  status.fuzzy_end = log->FuzzyEnd();
  status.log_end = log->EndOffset();
  status.applied_end = log->AppliedEnd();
  MutexLock lock(&mu_);
  status.durable_end = std::min(tracked_[log->id()].durable_end, status.log_end);
  return status;
}

void ReplicationImpl::FlushStarting(uint64_t flush) {
  // Every entry below these ends committed before the flush starts: it makes them durable.
  std::map<GroupId, int64_t> ends;
  for (GroupLog* log : writer_->Groups()) ends[log->id()] = log->EndOffset();
  MutexLock lock(&mu_);
  flush_ = flush;
  flush_ends_ = std::move(ends);
}

void ReplicationImpl::FlushDone(uint64_t flush, const Status& status) {
  std::map<GroupId, int64_t> ends;
  {
    MutexLock lock(&mu_);
    if (!status.ok() || flush != flush_) return;
    ends.swap(flush_ends_);
  }
  MarkDurable(ends);
}

void ReplicationImpl::MarkDurable(const std::map<GroupId, int64_t>& ends) {
  std::vector<std::pair<GroupId, int64_t>> moved;
  {
    MutexLock lock(&mu_);
    for (const auto& [id, end] : ends) {
      auto it = tracked_.find(id);
      if (it == tracked_.end()) continue;  // dropped meanwhile
      if (end > it->second.durable_end) {
        it->second.durable_end = end;
        moved.emplace_back(id, end);
      }
    }
  }
  if (moved.empty()) return;
  MutexLock lock(&listener_mu_);
  if (!listener_) return;
  for (const auto& [id, end] : moved) listener_(id.module, id.group, end);
}

void ReplicationImpl::OnDurableEnd(std::function<void(const std::string&, int, int64_t)> fn) {
  MutexLock lock(&listener_mu_);
  listener_ = std::move(fn);
}

void ReplicationImpl::WhenDurable(std::function<void(Status)> done) {
  engine_.storage().WhenDurable(std::move(done));
}

void ReplicationImpl::OnEndMoved(const GroupId& id, int64_t end) {
  std::vector<std::function<void()>> ready;
  {
    MutexLock lock(&mu_);
    std::vector<Waiter>& waiters = tracked_[id].waiters;
    for (auto it = waiters.begin(); it != waiters.end();) {
      if (end > it->end) {
        ready.push_back(std::move(it->fn));
        it = waiters.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& fn : ready) fn();
  TrackDurable();
}

void ReplicationImpl::TrackDurable() {
  {
    MutexLock lock(&mu_);
    if (closed_) return;
    if (durable_requested_) {
      durable_again_ = true;
      return;
    }
    durable_requested_ = true;
  }
  // The ends now: every entry below them committed before the WhenDurable call below.
  auto ends = std::make_shared<std::map<GroupId, int64_t>>();
  for (GroupLog* log : writer_->Groups()) (*ends)[log->id()] = log->EndOffset();
  engine_.storage().WhenDurable([this, ends](Status flushed) {
    if (flushed.ok()) MarkDurable(*ends);
    bool again = false;
    {
      MutexLock lock(&mu_);
      durable_requested_ = false;
      again = durable_again_ && !closed_ && flushed.ok();
      durable_again_ = false;
    }
    if (again) TrackDurable();
  });
}

void ReplicationImpl::ReleaseWaiters(const GroupId& id) {
  std::vector<Waiter> waiters;
  {
    MutexLock lock(&mu_);
    auto it = tracked_.find(id);
    if (it == tracked_.end()) return;
    waiters.swap(it->second.waiters);
  }
  for (Waiter& waiter : waiters) waiter.fn();
}

Result<std::string> ReplicationImpl::ModuleFilePath(const std::string& module,
                                                    std::string* checksum) {
  // The applied row, or the row of the latest entry appended that wrote it when that one
  // is of a later version: after an update a follower needs the new version's file before
  // it reports the switch durable (the leader then acknowledges it, and this node may be
  // promoted), which is before it applies the switch.
  STRATA_ASSIGN_OR_RETURN(std::optional<ModuleRow> row, engine_.ReadModuleRow(module));
  {
    MutexLock lock(&mu_);
    auto logged = logged_rows_.find(module);
    if (logged != logged_rows_.end() && (!row || logged->second.version > row->version)) {
      row = logged->second;
    }
  }
  if (!row) return Status::NotFound("module " + module + " has no row on this node");
  if (!IsModuleFileName(row->file)) {
    return Status::Corruption("the row of module " + module + " names the file " + row->file +
                              ", which is not in the modules directory");
  }
  *checksum = row->checksum;
  return (fs::path(engine_.options().data_dir) / row->file).string();
}

Result<std::string> ReplicationImpl::ModuleName(const std::string& so_path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(so_path, ec)) {
    return Status::NotFound("module file " + so_path + " does not exist");
  }
  Result<std::unique_ptr<LoadedModule>> loaded = LoadedModule::Load(so_path);
  if (!loaded.ok()) {
    return Status(loaded.status().code(), "loading " + so_path + ": " + loaded.status().message());
  }
  return (*loaded)->def().name;
}

Result<std::string> ReplicationImpl::ModuleFile(const std::string& module) {
  std::string checksum;
  STRATA_ASSIGN_OR_RETURN(std::string path, ModuleFilePath(module, &checksum));
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("module file " + path + " of module " + module + " is missing");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return Status::IOError("reading module file " + path);
  return bytes;
}

Status ReplicationImpl::InstallModuleFile(const std::string& module, const std::string& bytes) {
  std::string checksum;
  Result<std::string> row_path = ModuleFilePath(module, &checksum);
  if (!row_path.ok() && row_path.status().code() != StatusCode::kNotFound) {
    return row_path.status();
  }
  // No row yet: where Deploy puts the file; checked against the row when the module starts.
  const std::string path = row_path.ok() ? *row_path : DefaultModuleFilePath(module);
  uint64_t n = 0;
  {
    MutexLock lock(&mu_);
    n = install_counter_++;
  }
  const fs::path staged =
      fs::path(engine_.options().data_dir) / "modules" /
      (".install-" + std::to_string(getpid()) + "-" + std::to_string(n) + ".so");
  std::error_code ec;
  {
    std::ofstream out(staged, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    if (!out) {
      fs::remove(staged, ec);
      return Status::IOError("writing " + staged.string());
    }
  }
  Result<std::string> got = ModuleFileChecksum(staged.string());
  if (!got.ok() || (row_path.ok() && *got != checksum)) {
    fs::remove(staged, ec);
    if (!got.ok()) return got.status();
    return Status::InvalidArgument("the file sent for module " + module + " has checksum " + *got +
                                   ", not " + checksum + " as its row records");
  }
  Status installed = EngineImpl::InstallFileDurably(staged.string(), path);
  if (!installed.ok()) fs::remove(staged, ec);
  return installed;
}

std::string ReplicationImpl::DefaultModuleFilePath(const std::string& module) const {
  return (fs::path(engine_.options().data_dir) / DeployedModuleFile(module)).string();
}

bool ReplicationImpl::NeedsModuleFile(const std::string& module) {
  std::string checksum;
  Result<std::string> path = ModuleFilePath(module, &checksum);
  std::error_code ec;
  if (path.status().code() == StatusCode::kNotFound) {
    return !fs::is_regular_file(DefaultModuleFilePath(module), ec);
  }
  if (!path.ok()) return true;
  if (!fs::is_regular_file(*path, ec)) return true;
  {
    MutexLock lock(&mu_);
    auto checked = checked_files_.find(*path);
    if (checked != checked_files_.end() && checked->second == checksum) return false;
  }
  Result<std::string> got = ModuleFileChecksum(*path);
  if (!got.ok() || *got != checksum) return true;
  MutexLock lock(&mu_);
  checked_files_[*path] = checksum;
  return false;
}

Result<std::vector<ReplicationImpl::GroupTable>> ReplicationImpl::GroupTables(const GroupId& id) {
  Storage& storage = engine_.storage();
  const replication::GroupLayout& layout = writer_->layout();
  std::vector<GroupTable> tables;
  for (const std::string kind : kTableKinds) {
    STRATA_ASSIGN_OR_RETURN(std::vector<std::string> names,
                            storage.ListTables(kind + id.module + "."));
    for (const std::string& name : names) {
      if (layout.GroupOf(name, "") != std::optional<GroupId>(id)) continue;
      tables.push_back(
          {name, kind == std::string("depot.") ? TableKind::kLog : TableKind::kBytes, {}});
    }
  }
  for (const char* meta : kReplicatedMetaTables) tables.push_back({meta, TableKind::kBytes, {}});
  std::sort(tables.begin(), tables.end(),
            [](const GroupTable& a, const GroupTable& b) { return a.name < b.name; });
  for (GroupTable& table : tables) {
    STRATA_ASSIGN_OR_RETURN(table.id, storage.OpenTable(table.name, table.kind));
  }
  return tables;
}

Status ReplicationImpl::ScanGroupRows(Session& session, const GroupId& id, const GroupTable& table,
                                      const SnapshotCursor& after,
                                      const std::function<bool(const CapturedWrite&)>& fn) {
  const bool resume = after.table == table.name;
  CapturedWrite row;
  row.table = table.name;
  row.kind = table.kind;
  if (table.kind == TableKind::kLog) {
    row.op = WriteOp::kPutRecord;
    const int64_t from = resume ? after.record + 1 : 0;
    return session.ScanRecords(table.id, from, INT64_MAX,
                               [&](int64_t record, std::string_view value) {
                                 row.record = record;
                                 row.value.assign(value);
                                 return fn(row);
                               });
  }
  row.op = WriteOp::kPut;
  // The smallest key after `after.key`: the key with a zero byte appended.
  std::string begin = resume ? after.key + std::string(1, '\0') : std::string();
  std::string end;
  const bool meta = table.name.starts_with("meta.");
  if (meta) {
    const std::string prefix = EncodeKey(Value(id.module));
    begin = std::max(begin, prefix);
    end = PrefixEnd(prefix);
  }
  const replication::GroupLayout& layout = writer_->layout();
  return session.Scan(table.id, begin, end, false,
                      [&](std::string_view key, std::string_view value) {
                        if (meta && layout.GroupOf(table.name, key) != std::optional<GroupId>(id)) {
                          return true;
                        }
                        row.key.assign(key);
                        row.value.assign(value);
                        return fn(row);
                      });
}

Result<std::string> ReplicationImpl::Digest(const std::string& module, int group) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  const GroupId id = log->id();
  Storage& storage = engine_.storage();
  // Tables listed before the snapshot: one created later has no rows in it.
  STRATA_ASSIGN_OR_RETURN(std::vector<GroupTable> tables, GroupTables(id));
  STRATA_ASSIGN_OR_RETURN(TableId log_table,
                          storage.OpenTable(replication::LogTableName(id), TableKind::kLog));
  STRATA_ASSIGN_OR_RETURN(TableId state_table,
                          storage.OpenTable(replication::StateTableName(id), TableKind::kBytes));
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, storage.OpenSession());
  STRATA_RETURN_IF_ERROR(session->Begin(/*snapshot=*/true));
  Sha256 sha;
  Status st;
  for (size_t i = 0; st.ok() && i < tables.size(); ++i) {
    bool named = false;  // a table's name is hashed before its first row: empty ones add nothing
    st = ScanGroupRows(*session, id, tables[i], {}, [&](const CapturedWrite& row) {
      if (!named) {
        sha.Add(row.table);
        named = true;
      }
      sha.Add(row.kind == TableKind::kLog ? std::to_string(row.record) : row.key);
      sha.Add(row.value);
      return true;
    });
  }
  // The applied end in the same snapshot: a leader's tables hold its whole log.
  int64_t applied_end = 0;
  if (st.ok()) {
    std::string value;
    Result<bool> leading = session->Get(state_table, "leader", &value);
    Result<int64_t> last = session->LastRecordKey(log_table);
    Result<bool> applied = session->Get(state_table, "applied", &value);
    if (!leading.ok() || !last.ok() || !applied.ok()) {
      st = !leading.ok() ? leading.status() : !last.ok() ? last.status() : applied.status();
    } else if (*leading) {
      applied_end = *last + 1;
    } else if (*applied && value.size() == 8) {
      applied_end = LittleEndian64(value);
    }
  }
  session->Rollback();
  STRATA_RETURN_IF_ERROR(st);
  return "{\"digest\":\"" + sha.Hex() + "\",\"applied_end\":" + std::to_string(applied_end) + "}";
}

Result<int64_t> ReplicationImpl::Compact(const std::string& module, int group, int64_t below) {
  // Serialized with the methods that replace or drop the log (a snapshot's start, a drop's
  // table removal, which a compaction's open cursor would make fail).
  MutexLock leadership(&leadership_mu_);
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  Result<int64_t> start = 0;
  STRATA_RETURN_IF_ERROR(engine_.WithPooledSession([&](Session& session) {
    start = log->CompactTo(session, below);
    return start.status();
  }));
  return start;
}

Result<SnapshotChunk> ReplicationImpl::ReadSnapshot(const std::string& module, int group,
                                                    const SnapshotCursor& after,
                                                    int64_t max_bytes) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  if (!log->leading()) {
    return Status::NotLeader("this node does not lead module " + module + " group " +
                             std::to_string(group));
  }
  const GroupId id = log->id();
  STRATA_ASSIGN_OR_RETURN(TableId log_table, engine_.storage().OpenTable(
                                                 replication::LogTableName(id), TableKind::kLog));
  STRATA_ASSIGN_OR_RETURN(
      TableId state_table,
      engine_.storage().OpenTable(replication::StateTableName(id), TableKind::kBytes));
  SnapshotChunk chunk;
  for (const replication::EpochStart& e : log->Epochs()) {
    chunk.epochs.push_back({e.epoch, e.start_offset});
  }
  std::vector<CapturedWrite> rows;
  int64_t bytes = 0;
  // Read while no lifecycle change runs: an update, rescale or recompute changes the
  // module's row and then drops the tables the old row named, which no entry says — a
  // chunk read in between would copy tables the leader no longer has.
  Status st = engine_.WithModulesSteady([&] {
    return engine_.WithPooledSession([&](Session& session) -> Status {
      STRATA_RETURN_IF_ERROR(session.Begin(/*snapshot=*/true));
      struct Rollback {
        Session& s;
        ~Rollback() { s.Rollback(); }
      } rollback{session};
      // The log end in the rows' snapshot: the leader writes each entry in the transaction of
      // its effects, so the rows hold the effects of exactly the entries below it.
      STRATA_ASSIGN_OR_RETURN(int64_t last, session.LastRecordKey(log_table));
      chunk.log_end = std::max(last + 1, log->StartOffset());
      // The epoch led in the same snapshot: the follower checks it is the one it follows.
      std::string led;
      STRATA_ASSIGN_OR_RETURN(bool leading, session.Get(state_table, "leader", &led));
      if (!leading || led.size() != 8) {
        return Status::NotLeader("this node does not lead module " + module + " group " +
                                 std::to_string(group));
      }
      chunk.epoch = LittleEndian64(led);
      // Tables listed once the snapshot is taken (by the read above): a table created before
      // it, which entries below the log end may have written, is in the list; one created
      // after it has no rows in it, and the entries that write it are at or above the end.
      STRATA_ASSIGN_OR_RETURN(std::vector<GroupTable> tables, GroupTables(id));
      bool full = false;
      for (const GroupTable& table : tables) {
        if (!after.table.empty() && table.name < after.table) continue;
        STRATA_RETURN_IF_ERROR(
            ScanGroupRows(session, id, table, after, [&](const CapturedWrite& row) {
              // About the row's encoded size (FlexBuffers frames each op and repeats the table).
              const auto size =
                  static_cast<int64_t>(row.key.size() + row.value.size() + row.table.size() + 32);
              if (!rows.empty() && bytes + size > max_bytes) {
                full = true;
                return false;
              }
              bytes += size;
              rows.push_back(row);
              return true;
            }));
        if (full) break;
      }
      chunk.done = !full;
      return Status::Ok();
    });
  });
  STRATA_RETURN_IF_ERROR(st);
  if (!rows.empty()) {
    const CapturedWrite& last = rows.back();
    chunk.next = {last.table, last.kind == TableKind::kLog ? std::string() : last.key,
                  last.kind == TableKind::kLog ? last.record : -1};
  } else {
    chunk.next = after;
  }
  chunk.row_count = static_cast<int64_t>(rows.size());
  chunk.rows = replication::EncodeEntry(replication::LogEntry{0, std::move(rows)});
  return chunk;
}

Status ReplicationImpl::BeginSnapshot(const std::string& module, int group, int64_t offset,
                                      std::span<const LogEpoch> epochs) {
  MutexLock leadership(&leadership_mu_);
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/true));
  if (log->leading() || engine_.Running(module)) {
    return Status::InvalidArgument("cannot load a snapshot of module " + module +
                                   ": this node leads it (follow it first)");
  }
  std::vector<replication::EpochStart> cache;
  for (const LogEpoch& e : epochs) cache.push_back({e.epoch, e.start_offset});
  STRATA_ASSIGN_OR_RETURN(std::unique_ptr<Session> session, engine_.storage().OpenSession());
  STRATA_RETURN_IF_ERROR(log->BeginSnapshot(*session, offset, cache));
  {
    MutexLock lock(&mu_);
    Tracked& tracked = tracked_[log->id()];
    tracked.durable_end = std::min(tracked.durable_end, offset);
    logged_rows_.erase(module);
  }
  return engine_.DropLocalCopy(module, /*keep_files=*/true);
}

Status ReplicationImpl::LoadSnapshot(const std::string& module, int group,
                                     const std::string& rows) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  return engine_.WithPooledSession(
      [&](Session& session) { return log->LoadSnapshotRows(session, rows); });
}

Status ReplicationImpl::FinishSnapshot(const std::string& module, int group, int64_t fuzzy_end) {
  STRATA_ASSIGN_OR_RETURN(GroupLog * log, Group(module, group, /*create=*/false));
  return engine_.WithPooledSession(
      [&](Session& session) { return log->FinishSnapshot(session, fuzzy_end); });
}

}  // namespace strata::runtime
