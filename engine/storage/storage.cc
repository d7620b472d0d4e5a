#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <wiredtiger.h>

#include <algorithm>
#include <atomic>
#include <cassert>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>

#include "log_scan.h"
#include "strata/thread_annotations.h"

namespace strata {
namespace {

// Compressors are loadable extensions in WiredTiger 3.2.1 and recovery needs them, so
// every open names it. Debian's libwiredtiger0 installs it in the library directory that
// pkg-config reports for wiredtiger (multiarch: /usr/lib/<triplet>); CMake passes the path.
constexpr const char* kSnappyExtension = STRATA_WT_SNAPPY_EXTENSION;
// WiredTiger counts its own server threads (eviction, checkpoint, log, sweep) in
// session_max; this covers them plus the flusher's and the schema sessions of Storage.
constexpr int kInternalSessions = 40;

// WiredTiger reports the detail of an error through the event handler, separately from the
// return code. A thread that is about to turn a return code into a Status opens an
// ErrorCapture; errors raised while one is open are kept for the Status message instead of
// being printed. Errors on WiredTiger's own threads are printed to stderr.
thread_local int t_capture_depth = 0;
thread_local std::string t_captured_error;
// The last few error messages WiredTiger reported on this thread, oldest first: when a panic
// follows, they hold its cause (WT_PANIC_MSG reports the cause, then panics, on one thread).
thread_local std::deque<std::string> t_recent_errors;
constexpr size_t kRecentErrors = 8;

std::string_view StripWtPrefix(std::string_view message) {
  // "[1700000000:123][pid:tid], context: detail" -> "context: detail".
  while (!message.empty() && message.front() == '[') {
    size_t close = message.find(']');
    if (close == std::string_view::npos) break;
    message.remove_prefix(close + 1);
  }
  if (message.starts_with(", ")) message.remove_prefix(2);
  return message;
}

// "depot.m.d.0" for a message that names "depot.m.d.0.wt" (WiredTiger names files, Strata
// names tables: table:X lives in file X.wt), else "".
std::string TableInMessage(std::string_view message) {
  for (size_t at = message.find(".wt"); at != std::string_view::npos;
       at = message.find(".wt", at + 1)) {
    const size_t after = at + 3;
    if (after < message.size() && (std::isalnum(static_cast<unsigned char>(message[after])) ||
                                   message[after] == '_' || message[after] == '.')) {
      continue;
    }
    size_t begin = at;
    while (begin > 0) {
      const char c = message[begin - 1];
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') break;
      --begin;
    }
    std::string_view name = message.substr(begin, at - begin);
    if (!name.empty() && !name.starts_with("WiredTiger")) return std::string(name);
  }
  return "";
}

// The cause of a panic from the errors reported before it on the panicking thread: the two
// right before the panic message (WT_PANIC_MSG's own and, often, the failed call under it,
// e.g. a pwrite with ENOSPC and its file), and an earlier checksum report when there is one
// (a failed block read dumps the block between the two).
Status PanicCause(const std::string& path) {
  std::vector<std::string> parts;
  bool checksum = false;
  for (const std::string& message : t_recent_errors) {
    if (message.find("checksum") != std::string::npos) {
      parts.push_back(message);
      checksum = true;
      break;
    }
  }
  const size_t n = t_recent_errors.size();
  for (size_t i = n > 2 ? n - 2 : 0; i < n; ++i) {
    if (std::find(parts.begin(), parts.end(), t_recent_errors[i]) == parts.end()) {
      parts.push_back(t_recent_errors[i]);
    }
  }
  std::string cause;
  for (const std::string& part : parts) cause += (cause.empty() ? "" : "; ") + part;
  if (cause.empty()) cause = "no cause was reported";
  std::string table = TableInMessage(cause);
  std::string message = "WiredTiger panicked in '" + path + "'";
  if (!table.empty()) message += " on table '" + table + "'";
  message += ": " + cause + "; the storage is unusable until the process restarts";
  return Status(checksum ? StatusCode::kCorruption : StatusCode::kIOError, std::move(message));
}

}  // namespace

// Receives WiredTiger's error and message callbacks for one connection (WiredTiger passes
// back the WT_EVENT_HANDLER pointer, which is the first member). Created before
// wiredtiger_open, because recovery reports through it; owned by Storage::Impl afterwards.
struct EventSink {
  WT_EVENT_HANDLER handler{};
  std::string path;
  std::function<void(const Status&)> on_fatal_error;
  std::function<void(bool error, const std::string& message)> on_message;
  std::atomic<bool> panicked{false};
  mutable Mutex mu;
  Status fatal GUARDED_BY(mu);  // The panic's cause once panicked.

  // Records the first panic and tells on_fatal_error (or stderr), on the panicking thread.
  void Panic() {
    if (panicked.exchange(true)) return;
    Status cause = PanicCause(path);
    {
      MutexLock lock(&mu);
      fatal = cause;
    }
    if (on_fatal_error) {
      on_fatal_error(cause);
    } else {
      std::fprintf(stderr, "strata storage: %s\n", cause.ToString().c_str());
    }
  }
  // Tells on_message (or stderr) what no caller receives.
  void Report(bool error, const std::string& message) const {
    if (on_message) {
      on_message(error, message);
    } else {
      std::fprintf(stderr, "strata storage: %s\n", message.c_str());
    }
  }
  Status Fatal() const {
    MutexLock lock(&mu);
    return fatal;
  }
};

namespace {

int HandleWtError(WT_EVENT_HANDLER* handler, WT_SESSION*, int error, const char* message) {
  auto* sink = reinterpret_cast<EventSink*>(handler);
  std::string_view text = StripWtPrefix(message);
  if (error == WT_PANIC) {
    sink->Panic();
  } else if (text.find("(chunk ") == std::string_view::npos) {
    // Not the lines of a damaged block's hex dump, which would push the cause out.
    t_recent_errors.emplace_back(text);
    if (t_recent_errors.size() > kRecentErrors) t_recent_errors.pop_front();
  }
  if (t_capture_depth > 0) {
    if (t_captured_error.empty()) t_captured_error = text;
    return 0;
  }
  sink->Report(true, "WiredTiger error " + std::to_string(error) + ": " + message);
  return 0;
}

// WiredTiger's informational messages (recovery truncating a log, salvage) go to on_message (or
// stderr) with the errors: WiredTiger's default prints them on stdout, which stratad keeps
// for its readiness line.
int HandleWtMessage(WT_EVENT_HANDLER* handler, WT_SESSION*, const char* message) {
  reinterpret_cast<EventSink*>(handler)->Report(false, std::string("WiredTiger: ") + message);
  return 0;
}

StatusCode CodeForWtError(int ret) {
  switch (ret) {
    case WT_ROLLBACK:
      return StatusCode::kAborted;
    case WT_DUPLICATE_KEY:
      return StatusCode::kAlreadyExists;
    case EBUSY:
      return StatusCode::kBusy;
    case EINVAL:
      return StatusCode::kInvalidArgument;
    case ENOENT:
      return StatusCode::kNotFound;
    default:
      return StatusCode::kIOError;
  }
}

class ErrorCapture {
 public:
  ErrorCapture() {
    if (t_capture_depth++ == 0) {
      t_captured_error.clear();
      // A panic in this call is caused by this call's errors, not by an earlier one's.
      t_recent_errors.clear();
    }
  }
  ~ErrorCapture() { --t_capture_depth; }
  ErrorCapture(const ErrorCapture&) = delete;
  ErrorCapture& operator=(const ErrorCapture&) = delete;

  // "what: strerror (detail from WiredTiger)".
  Status ToStatus(int ret, std::string_view what) const {
    std::string message(what);
    message += ": ";
    message += wiredtiger_strerror(ret);
    if (!t_captured_error.empty()) {
      message += " (";
      message += t_captured_error;
      message += ")";
    }
    return Status(CodeForWtError(ret), std::move(message));
  }
};

bool ValidTableName(std::string_view name) {
  if (name.empty() || name.size() > 200 || name.starts_with("WiredTiger")) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == '@';
  });
}

Status BadTableName(std::string_view name) {
  return Status::InvalidArgument("bad table name '" + std::string(name) +
                                 "': use 1-200 characters of [A-Za-z0-9_.@-], not starting "
                                 "with 'WiredTiger'");
}

std::string TableUri(std::string_view name) { return "table:" + std::string(name); }

const char* KindName(TableKind kind) {
  return kind == TableKind::kBytes ? "byte-keyed" : "log (int64-keyed)";
}

// Byte-keyed tables have no prefix compression: with it, eviction spent most of W3's
// server time rebuilding keys (__wt_row_leaf_key_work) while reconciling PState pages;
// without it W3 and point selects are faster and the files somewhat larger.
// Their in-memory pages are rewritten at 1 MB instead of WiredTiger's 5 MB: keys written
// since a page was read live in its skip list until the page is evicted or rewritten, and
// searching the long lists of a freshly loaded PState partition (__wt_search_insert) took
// 27 % of the server's time in pipelined point reads; 256 KB made hot counter pages stall
// in forced eviction (docs/storage.md).
// Byte-keyed (PState) tables are not compressed: their hot pages are rewritten often, and
// snappy took 18% of the server's time under fan-out (W3); depot logs, written once, are.
// checksum=on: WiredTiger's default ("uncompressed") leaves compressed blocks unchecked, and
// a flipped byte in a snappy literal then reads back as altered data with no error.
const char* CreateConfig(TableKind kind) {
  return kind == TableKind::kBytes
             ? "key_format=u,value_format=u,block_compressor=none,checksum=on,"
               "prefix_compression=false,memory_page_max=1MB"
             : "key_format=q,value_format=u,block_compressor=snappy,checksum=on";
}

// The kind of an existing table from its metadata entry ("...,key_format=u,...").
Result<TableKind> KindFromMetadata(std::string_view name, std::string_view config) {
  size_t at = config.find("key_format=");
  if (at != std::string_view::npos) {
    std::string_view format = config.substr(at + 11);
    format = format.substr(0, format.find(','));
    if (format == "u") return TableKind::kBytes;
    if (format == "q") return TableKind::kLog;
  }
  return Status::InvalidArgument(
      "table '" + std::string(name) +
      "' exists but is not a Strata table (metadata: " + std::string(config) + ")");
}

// Tells the operator through StorageOptions::on_warning, or stderr.
void Warn(const StorageOptions& options, const std::string& warning) {
  if (options.on_warning) {
    options.on_warning(warning);
  } else {
    std::fprintf(stderr, "strata storage: %s\n", warning.c_str());
  }
}

// The data directory's own lock, held by an open Storage for its life: an exclusive flock
// on <dir>/strata.lock, which a second Storage (in this process or another) cannot take.
// Taken before the log scan, so a directory in use is kBusy and never scanned while its log
// is being written. WiredTiger's own lock (an fcntl lock on WiredTiger.lock) is not used:
// closing any descriptor of that file would drop the locks WiredTiger's connection in this
// process holds on it.
class DirectoryLock {
 public:
  DirectoryLock() = default;
  DirectoryLock(DirectoryLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  DirectoryLock& operator=(DirectoryLock&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~DirectoryLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  // Keeps the lock until the process exits (a panicked connection is never closed).
  void Leak() { fd_ = -1; }

  // kBusy when another Storage holds it, or another process (the wt tool, say) has
  // WiredTiger's lock; kIOError when the lock file cannot be created.
  static Result<DirectoryLock> Take(const std::string& dir) {
    DirectoryLock lock;
    const std::string path = dir + "/strata.lock";
    lock.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock.fd_ < 0) {
      return Status::IOError("cannot create the lock file '" + path + "': " + strerror(errno));
    }
    if (flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) {
        return Status::Busy("data directory '" + dir +
                            "' is already open in another process or Storage (strata.lock is "
                            "locked)");
      }
      return Status::IOError("cannot lock '" + path + "': " + strerror(errno));
    }
    // No Storage of this process has the directory (the flock is ours), so no WiredTiger
    // lock of this process is dropped by closing this descriptor.
    const int wt_fd = ::open((dir + "/WiredTiger.lock").c_str(), O_RDWR | O_CLOEXEC);
    if (wt_fd >= 0) {
      struct flock probe {};
      probe.l_type = F_WRLCK;
      probe.l_whence = SEEK_SET;
      probe.l_start = 0;
      probe.l_len = 0;  // the whole file
      const bool held = fcntl(wt_fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
      ::close(wt_fd);
      if (held) {
        return Status::Busy("data directory '" + dir + "' is already open in process " +
                            std::to_string(probe.l_pid) + " (WiredTiger.lock is locked)");
      }
    }
    return lock;
  }

 private:
  int fd_ = -1;
};

// Refuses to run recovery over a damaged log record that has valid records after it (see
// log_scan.h), unless the options accept the loss. A damaged last record is only reported:
// recovery has always ended before it, and refusing would leave nothing to decide.
Status CheckLogBeforeRecovery(const StorageOptions& options) {
  STRATA_ASSIGN_OR_RETURN(std::optional<LogDamage> damage, FindLogDamage(options.path));
  if (!damage) return Status::Ok();
  const std::string what = DescribeLogDamage(options.path, *damage);
  if (damage->records_after == 0) {
    Warn(options, what);
    return Status::Ok();
  }
  if (!options.accept_log_loss) {
    return Status::Corruption(
        what +
        ". Not opening: copy the data directory aside first, then see docs/storage.md "
        "(\"Damaged log\"): wt verify / wt salvage, or open with accept_log_loss "
        "(stratad --accept-log-loss) to recover up to the damaged record and lose the rest");
  }
  Warn(options, what +
                    "; accept_log_loss is set: recovering up to the damaged record and "
                    "dropping the rest");
  return Status::Ok();
}

// Tables created before checksum=on keep WiredTiger's default, which leaves compressed
// blocks unchecked (WiredTiger 3.2.1 cannot alter it): tell the operator once per Open.
void WarnAboutTablesWithoutChecksums(const StorageOptions& options, WT_SESSION* session) {
  WT_CURSOR* meta = nullptr;
  if (session->open_cursor(session, "metadata:", nullptr, nullptr, &meta) != 0) return;
  int count = 0;
  std::string example;
  meta->set_key(meta, "file:");
  int exact = 0;
  int ret = meta->search_near(meta, &exact);
  if (ret == 0 && exact < 0) ret = meta->next(meta);
  for (; ret == 0; ret = meta->next(meta)) {
    const char* key = nullptr;
    const char* value = nullptr;
    if (meta->get_key(meta, &key) != 0 || meta->get_value(meta, &value) != 0) break;
    std::string_view uri(key);
    if (!uri.starts_with("file:")) break;
    std::string_view file = uri.substr(5);
    if (file.starts_with("WiredTiger") || !file.ends_with(".wt")) continue;
    if (std::string_view(value).find("checksum=on") != std::string_view::npos) continue;
    if (count++ == 0) example = file.substr(0, file.size() - 3);
  }
  meta->close(meta);
  if (count == 0) return;
  Warn(options, std::to_string(count) + " table(s) in '" + options.path + "' (e.g. '" + example +
                    "') were created without checksum=on: their compressed pages are not "
                    "checksummed, so a damaged one can read back altered; docs/storage.md "
                    "(\"Checksums\") says how to rebuild them");
}

WT_ITEM Item(std::string_view bytes) {
  WT_ITEM item{};
  item.data = bytes.data();
  item.size = bytes.size();
  return item;
}

std::string_view View(const WT_ITEM& item) {
  return {static_cast<const char*>(item.data), item.size};
}

}  // namespace

// The part of a Session that DropTable, on another thread, reaches: a mutex that the
// owning thread holds during each operation, and the session while it is open.
struct SessionGate {
  Mutex mu;
  Session::Impl* session GUARDED_BY(mu) = nullptr;  // Null once the session is closed.
  // The thread inside an operation of the session, so that DropTable can refuse to wait
  // for its own thread.
  std::atomic<std::thread::id> holder{};
};

// ---------------------------------------------------------------------------------------
// Storage::Impl

class Storage::Impl {
 public:
  enum class TableState : uint8_t { kLive, kDropping, kDropped };
  struct TableInfo {
    std::string name;
    std::string uri;
    TableKind kind;
    TableState state;
  };

  Impl(StorageOptions options, DirectoryLock dir_lock, std::unique_ptr<EventSink> sink,
       WT_CONNECTION* conn, WT_SESSION* schema_session, WT_SESSION* flush_session)
      : dir_lock_(std::move(dir_lock)),
        options_(std::move(options)),
        sink_(std::move(sink)),
        conn_(conn),
        schema_session_(schema_session),
        flush_session_(flush_session) {
    flusher_ = std::thread([this] { FlusherLoop(); });
  }

  ~Impl() {
    {
      MutexLock lock(&flush_mu_);
      stop_ = true;
    }
    flush_cv_.Signal();
    flusher_.join();
    assert(sessions_.empty() && "every Session must be destroyed before its Storage");
    // Closing a panicked connection waits for transactions that will never end (it spun in
    // __wt_txn_activity_drain after a disk-full panic): leave it, and the event sink its
    // threads still report to, to the process exit.
    if (sink_->panicked.load()) {
      static_cast<void>(sink_.release());
      dir_lock_.Leak();
      return;
    }
    ErrorCapture capture;
    // Closing the connection closes the internal sessions and takes a checkpoint.
    int ret = conn_->close(conn_, nullptr);
    if (ret != 0) {
      sink_->Report(
          true,
          capture.ToStatus(ret, "closing the database in '" + options_.path + "'").ToString());
    }
  }

  Result<TableId> OpenTable(std::string_view name, TableKind kind);
  Status DropTable(std::string_view name);
  Result<bool> TableExists(std::string_view name);
  Result<std::vector<std::string>> ListTables(std::string_view prefix);
  Result<std::unique_ptr<Session>> OpenSession();

  void WhenDurable(std::function<void(Status)> done) {
    {
      MutexLock lock(&flush_mu_);
      waiters_.push_back(std::move(done));
    }
    flush_cv_.Signal();
  }

  uint64_t FlushCount() const { return flushes_started_.load(std::memory_order_acquire); }
  void SetFlushObserver(FlushObserver* observer) {
    MutexLock lock(&observer_mu_);
    observer_ = observer;
  }
  StorageMetrics Metrics();

  // Copies the table's description for a session that opens a cursor on it.
  Result<TableInfo> LookUpTable(TableId id) const {
    ReaderMutexLock lock(&tables_mu_);
    if (id >= tables_.size()) {
      return Status::InvalidArgument("unknown table id " + std::to_string(id));
    }
    const TableInfo& info = tables_[id];
    if (info.state != TableState::kLive) {
      return Status::NotFound("table '" + info.name + "' (id " + std::to_string(id) +
                              ") was dropped");
    }
    return info;
  }

  void Register(std::shared_ptr<SessionGate> gate) {
    MutexLock lock(&sessions_mu_);
    sessions_.push_back(std::move(gate));
  }
  void Unregister(const SessionGate* gate) {
    MutexLock lock(&sessions_mu_);
    sessions_.erase(std::find_if(sessions_.begin(), sessions_.end(),
                                 [gate](const auto& entry) { return entry.get() == gate; }));
  }

  // Declared first: released after the connection is closed (and the members destroyed).
  DirectoryLock dir_lock_;
  const StorageOptions options_;
  // Declared before conn_: it must outlive the connection, which reports through it.
  std::unique_ptr<EventSink> sink_;
  WT_CONNECTION* const conn_;
  // The Storage that owns this Impl (set by its constructor), for the commit hook.
  Storage* owner_ = nullptr;

 private:
  void FlusherLoop();
  Status Flush();
  Result<std::string> ReadTableMetadata(std::string_view name, bool* found) REQUIRES(schema_mu_);

  // Schema operations (create, drop, metadata reads) run one at a time on schema_session_.
  Mutex schema_mu_;
  WT_SESSION* const schema_session_ PT_GUARDED_BY(schema_mu_);

  // Lock order: a thread inside a session operation holds that session's gate and may take
  // any other lock (a scan callback may call OpenTable, which takes schema_mu_); DropTable
  // takes a gate while holding no other lock, so no cycle forms.
  mutable SharedMutex tables_mu_;
  std::vector<TableInfo> tables_ GUARDED_BY(tables_mu_);  // Index = id.
  std::unordered_map<std::string, TableId> live_tables_ GUARDED_BY(tables_mu_);

  Mutex sessions_mu_;
  std::vector<std::shared_ptr<SessionGate>> sessions_ GUARDED_BY(sessions_mu_);

  // Group commit.
  Mutex flush_mu_;
  CondVar flush_cv_;
  std::vector<std::function<void(Status)>> waiters_ GUARDED_BY(flush_mu_);
  bool stop_ GUARDED_BY(flush_mu_) = false;
  // Written under flush_mu_ by the flusher only, so that a waiter is in exactly the flush
  // whose number it did not see.
  std::atomic<uint64_t> flushes_started_{0};
  // Held by the flusher from FlushStarting to FlushDone, and by SetFlushObserver: an
  // observer being removed is not in a call once that returns.
  Mutex observer_mu_;
  FlushObserver* observer_ GUARDED_BY(observer_mu_) = nullptr;
  WT_SESSION* const flush_session_;    // Flusher thread only.
  DurationHistogram flush_durations_;  // every Flush, observed by the flusher
  std::thread flusher_;
};

// ---------------------------------------------------------------------------------------
// Session::Impl

class Session::Impl {
 public:
  Impl(Storage::Impl* storage, WT_SESSION* session)
      : storage_(storage),
        session_(session),
        gate_(std::make_shared<SessionGate>()),
        hook_(storage->options_.commit_hook.get()) {
    gate_->session = this;
    storage_->Register(gate_);
  }

  ~Impl() {
    {
      // Under the gate, so that a DropTable in progress either closes this session's
      // cursors before the close or finds the session gone.
      MutexLock lock(&gate_->mu);
      ErrorCapture capture;
      // Closes the cursors and rolls back an open transaction.
      int ret = session_->close(session_, nullptr);
      if (ret != 0) {
        storage_->sink_->Report(true, capture.ToStatus(ret, "closing a session").ToString());
      }
      gate_->session = nullptr;
    }
    storage_->Unregister(gate_.get());
  }

  // Holds the gate for the span of each public operation, so that DropTable (on another
  // thread) closes this session's cursors only between operations. Reentrant for nested
  // calls from scan callbacks.
  // The analysis cannot follow a lock taken by depth, hence NO_THREAD_SAFETY_ANALYSIS.
  class OpGuard {
   public:
    explicit OpGuard(Impl* impl) NO_THREAD_SAFETY_ANALYSIS : impl_(impl) {
      if (impl_->op_depth_++ == 0) {
        impl_->gate_->mu.Lock();
        impl_->gate_->holder.store(std::this_thread::get_id(), std::memory_order_relaxed);
      }
    }
    ~OpGuard() NO_THREAD_SAFETY_ANALYSIS {
      if (--impl_->op_depth_ == 0) {
        impl_->gate_->holder.store(std::thread::id(), std::memory_order_relaxed);
        impl_->gate_->mu.Unlock();
      }
    }
    OpGuard(const OpGuard&) = delete;
    OpGuard& operator=(const OpGuard&) = delete;

   private:
    Impl* impl_;
  };

  // A cursor borrowed for one operation; reset (or closed, when temporary) on release so
  // it pins no page between operations.
  class CursorRef {
   public:
    CursorRef() = default;
    CursorRef(WT_CURSOR* cursor, bool* busy, bool temporary)
        : cursor_(cursor), busy_(busy), temporary_(temporary) {}
    CursorRef(CursorRef&& other) noexcept
        : cursor_(std::exchange(other.cursor_, nullptr)),
          busy_(std::exchange(other.busy_, nullptr)),
          temporary_(other.temporary_) {}
    CursorRef& operator=(CursorRef&&) = delete;
    ~CursorRef() {
      if (cursor_ == nullptr) return;
      if (temporary_) {
        cursor_->close(cursor_);
      } else {
        cursor_->reset(cursor_);
      }
      if (busy_ != nullptr) *busy_ = false;
    }
    WT_CURSOR* operator->() const { return cursor_; }
    WT_CURSOR* get() const { return cursor_; }

   private:
    WT_CURSOR* cursor_ = nullptr;
    bool* busy_ = nullptr;
    bool temporary_ = false;
  };

  // Point operations use `cursor`; scans use `scan_cursor` so that a scan callback can
  // do point operations on the same table. A nested scan of the same table gets a
  // temporary cursor.
  struct Slot {
    WT_CURSOR* cursor = nullptr;
    WT_CURSOR* scan_cursor = nullptr;
    WT_CURSOR* insert_cursor = nullptr;  // byte-keyed tables: overwrite=false, for Insert
    bool scan_busy = false;
    TableKind kind = TableKind::kBytes;
    std::string name;
  };

  Result<CursorRef> PointCursor(TableId id, TableKind kind) {
    STRATA_ASSIGN_OR_RETURN(Slot * slot, SlotFor(id, kind));
    if (slot->cursor == nullptr) {
      STRATA_ASSIGN_OR_RETURN(slot->cursor, OpenCursor(*slot));
    }
    return CursorRef(slot->cursor, nullptr, false);
  }

  // A cursor whose inserts fail with WT_DUPLICATE_KEY on a present key (byte-keyed tables).
  Result<CursorRef> InsertCursor(TableId id) {
    STRATA_ASSIGN_OR_RETURN(Slot * slot, SlotFor(id, TableKind::kBytes));
    if (slot->insert_cursor == nullptr) {
      STRATA_ASSIGN_OR_RETURN(slot->insert_cursor, OpenCursor(*slot, "overwrite=false"));
    }
    return CursorRef(slot->insert_cursor, nullptr, false);
  }

  Result<CursorRef> ScanCursor(TableId id, TableKind kind) {
    STRATA_ASSIGN_OR_RETURN(Slot * slot, SlotFor(id, kind));
    if (slot->scan_busy) {
      STRATA_ASSIGN_OR_RETURN(WT_CURSOR * temporary, OpenCursor(*slot));
      return CursorRef(temporary, nullptr, true);
    }
    if (slot->scan_cursor == nullptr) {
      STRATA_ASSIGN_OR_RETURN(slot->scan_cursor, OpenCursor(*slot));
    }
    slot->scan_busy = true;
    return CursorRef(slot->scan_cursor, &slot->scan_busy, false);
  }

  // Called by DropTable with the gate held (this session is between operations).
  void ForgetTable(TableId id) {
    if (id >= slots_.size()) return;
    Slot& slot = slots_[id];
    if (slot.cursor != nullptr) slot.cursor->close(slot.cursor);
    if (slot.scan_cursor != nullptr) slot.scan_cursor->close(slot.scan_cursor);
    if (slot.insert_cursor != nullptr) slot.insert_cursor->close(slot.insert_cursor);
    slot = Slot();
  }

  Status Begin(bool snapshot);
  Status Commit();
  void Rollback();
  Result<bool> Get(TableId table, std::string_view key, std::string* value);
  Status Put(TableId table, std::string_view key, std::string_view value);
  Result<bool> Insert(TableId table, std::string_view key, std::string_view value);
  Result<bool> Remove(TableId table, std::string_view key);
  Status Scan(TableId table, std::string_view begin, std::string_view end, bool reverse,
              const std::function<bool(std::string_view, std::string_view)>& fn);
  Status PutRecord(TableId table, int64_t key, std::string_view value);
  Result<bool> GetRecord(TableId table, int64_t key, std::string* value);
  Result<bool> RemoveRecord(TableId table, int64_t key);
  Status ScanRecords(TableId table, int64_t from, int64_t to,
                     const std::function<bool(int64_t, std::string_view)>& fn);
  Result<int64_t> EdgeRecordKey(TableId table, bool last);

  bool in_transaction() const { return in_txn_; }
  void SuspendCapture(bool suspended) { capture_suspended_ = suspended; }

  Session* owner_ = nullptr;  // The public Session, passed to the commit hook.

 private:
  // Whether this session's writes go to the commit hook now.
  bool Capturing() const { return hook_ != nullptr && !in_hook_ && !capture_suspended_; }
  // With a commit hook, a write outside a transaction runs in one of its own (see
  // CommitHook); Remove always does (its answer is about the key it removed).
  bool NeedsOwnTxn() const { return !in_txn_ && Capturing(); }
  // Runs `write` in a transaction of its own: begin, write, commit (the hook with it). A
  // failure rolls it back and, inside a scan callback, stops the scans in progress (their
  // cursors were reset). A template, not a std::function: an auto-committed Remove takes
  // this path without a hook too, and must not allocate.
  template <typename Write>
  Status RunInOwnTxn(const Write& write);
  void Capture(TableId table, WriteOp op, std::string_view key, int64_t record,
               std::string_view value) {
    const Slot& slot = slots_[table];
    captured_.push_back(
        CapturedWrite{slot.name, slot.kind, op, std::string(key), record, std::string(value)});
  }
  Status PutInTxn(TableId table, std::string_view key, std::string_view value);
  Result<bool> InsertInTxn(TableId table, std::string_view key, std::string_view value);
  Status PutRecordInTxn(TableId table, int64_t key, std::string_view value);
  // Remove inside the transaction that is open: searches, then removes a present key.
  Result<bool> RemoveAt(TableId table, CursorRef& cursor, std::string_view key);

  Result<Slot*> SlotFor(TableId id, TableKind kind) {
    if (id < slots_.size() && !slots_[id].name.empty()) {
      Slot& slot = slots_[id];
      if (slot.kind != kind) return WrongKind(slot.name, slot.kind);
      return &slot;
    }
    STRATA_ASSIGN_OR_RETURN(Storage::Impl::TableInfo info, storage_->LookUpTable(id));
    if (info.kind != kind) return WrongKind(info.name, info.kind);
    if (id >= slots_.size()) slots_.resize(id + 1);
    slots_[id].kind = info.kind;
    slots_[id].name = std::move(info.name);
    return &slots_[id];
  }

  static Status WrongKind(const std::string& name, TableKind actual) {
    return Status::InvalidArgument(
        "table '" + name + "' is a " + KindName(actual) + " table; use the " +
        (actual == TableKind::kBytes ? "Get/Put/Remove/Scan" : "record") + " API for it");
  }

  // `config` null: the table kind's default. Log records are written once (a depot offset
  // is never reused), so an insert at an existing key fails with WT_DUPLICATE_KEY instead
  // of replacing the record.
  Result<WT_CURSOR*> OpenCursor(const Slot& slot, const char* config = nullptr) {
    ErrorCapture capture;
    WT_CURSOR* cursor = nullptr;
    std::string uri = TableUri(slot.name);
    if (config == nullptr && slot.kind == TableKind::kLog) config = "overwrite=false";
    int ret = session_->open_cursor(session_, uri.c_str(), nullptr, config, &cursor);
    if (ret != 0) return capture.ToStatus(ret, "opening a cursor on table '" + slot.name + "'");
    return cursor;
  }

  static Status CheckKey(std::string_view key, const char* op) {
    if (key.empty())
      return Status::InvalidArgument(std::string(op) + ": empty keys are not allowed");
    return Status::Ok();
  }

  // Transaction primitives without the misuse checks of the public calls (used inside
  // Remove, which may run in a scan callback).
  Status BeginTxn(bool snapshot);
  Status CommitTxn();
  void RollbackTxn();

  Status HookCheck(const char* op) const {
    if (in_hook_)
      return Status::InvalidArgument(std::string(op) + " is not allowed in a commit hook");
    return Status::Ok();
  }

  Status ScanDepthCheck(const char* op) const {
    if (scan_depth_ > 0) {
      return Status::InvalidArgument(std::string(op) + " is not allowed inside a scan callback");
    }
    return Status::Ok();
  }

  // Marks the span of a scan's callbacks. When the outermost scan ends, normally or because
  // a callback threw, the session is out of scans again and the stop request is cleared.
  class ScanFrame {
   public:
    explicit ScanFrame(Impl* impl) : impl_(impl) { ++impl_->scan_depth_; }
    ~ScanFrame() {
      if (--impl_->scan_depth_ == 0) impl_->scan_stop_ = Status::Ok();
    }
    ScanFrame(const ScanFrame&) = delete;
    ScanFrame& operator=(const ScanFrame&) = delete;

   private:
    Impl* impl_;
  };

  // Makes every scan in progress on this session stop after the current callback and
  // return `why` (the first reason wins). Used when a callback misused the session or when
  // a transaction ended inside a callback: ending one resets all the session's cursors, and
  // a reset scan cursor would continue from the first key.
  void StopScans(Status why) {
    if (scan_depth_ > 0 && scan_stop_.ok()) scan_stop_ = std::move(why);
  }

  Storage::Impl* const storage_;
  WT_SESSION* const session_;
  const std::shared_ptr<SessionGate> gate_;
  int op_depth_ = 0;    // Owning thread only.
  int scan_depth_ = 0;  // Owning thread only.
  Status scan_stop_;    // Owning thread only; see StopScans.
  bool in_txn_ = false;
  // The commit hook (StorageOptions::commit_hook) and this transaction's writes for it.
  // Owning thread only.
  CommitHook* const hook_;
  bool in_hook_ = false;            // BeforeCommit is running: its own writes are not collected
  bool capture_suspended_ = false;  // SuspendCapture
  std::vector<CapturedWrite> captured_;
  // Index = TableId. A deque, because growing it (a scan callback touching a new table)
  // must not move the slot of a scan in progress. Guarded by gate_->mu, held through
  // OpGuard (not annotated: the analysis cannot follow OpGuard's depth count).
  std::deque<Slot> slots_;
};

// ---------------------------------------------------------------------------------------
// Storage

Result<std::unique_ptr<Storage>> Storage::Open(const StorageOptions& options) {
  if (options.path.empty()) return Status::InvalidArgument("storage path is empty");
  if (options.cache_size_bytes < (1ull << 20)) {
    return Status::InvalidArgument("cache_size_bytes " + std::to_string(options.cache_size_bytes) +
                                   " is below the 1 MiB minimum");
  }
  if (options.checkpoint_interval_s < 1) {
    return Status::InvalidArgument("checkpoint_interval_s " +
                                   std::to_string(options.checkpoint_interval_s) +
                                   " must be >= 1 (without checkpoints the log grows forever)");
  }
  if (options.checkpoint_log_bytes > (2ull << 30)) {
    return Status::InvalidArgument("checkpoint_log_bytes " +
                                   std::to_string(options.checkpoint_log_bytes) +
                                   " is above WiredTiger's 2 GiB maximum");
  }
  if (options.log_file_max_bytes < (100ull << 10) || options.log_file_max_bytes > (2ull << 30)) {
    return Status::InvalidArgument("log_file_max_bytes " +
                                   std::to_string(options.log_file_max_bytes) +
                                   " is outside WiredTiger's range [100 KiB, 2 GiB]");
  }
  if (options.max_sessions < 1) {
    return Status::InvalidArgument("max_sessions " + std::to_string(options.max_sessions) +
                                   " must be >= 1");
  }
  if (access(kSnappyExtension, R_OK) != 0) {
    return Status::IOError(std::string("WiredTiger's snappy compressor extension is missing: ") +
                           kSnappyExtension +
                           " cannot be read (install the Debian package libwiredtiger0)");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.path, ec);
  if (ec) {
    return Status::IOError("cannot create the data directory '" + options.path +
                           "': " + ec.message());
  }

  std::string config = "create,config_base=false";
  config += ",cache_size=" + std::to_string(options.cache_size_bytes);
  config += ",session_max=" + std::to_string(options.max_sessions + kInternalSessions);
  config +=
      ",log=(enabled=true,archive=true,file_max=" + std::to_string(options.log_file_max_bytes) +
      ")";
  config += ",checkpoint=(wait=" + std::to_string(options.checkpoint_interval_s) +
            ",log_size=" + std::to_string(options.checkpoint_log_bytes) + ")";
  config += ",extensions=[" + std::string(kSnappyExtension) + "]";
  // Cache and checkpoint figures for Storage::Metrics; "fast" keeps only the cheap counters.
  config += ",statistics=(fast)";
  // Eviction starts writing dirty pages at 30% of the cache (WiredTiger: 5%) and makes
  // application threads help at 60% (20%): with the default, eviction threads rewrote hot
  // PState pages continuously under fan-out (W3 1.25-1.35x faster with these); the log and
  // the checkpoints, not eviction, are what bound recovery.
  config += ",eviction_dirty_target=30,eviction_dirty_trigger=60";

  auto sink = std::make_unique<EventSink>();
  sink->handler.handle_error = HandleWtError;
  sink->handler.handle_message = HandleWtMessage;
  sink->path = options.path;
  sink->on_fatal_error = options.on_fatal_error;
  sink->on_message = options.on_message;
  // Locked first: a directory another process or Storage has open is kBusy, never scanned.
  STRATA_ASSIGN_OR_RETURN(DirectoryLock dir_lock, DirectoryLock::Take(options.path));
  STRATA_RETURN_IF_ERROR(CheckLogBeforeRecovery(options));

  ErrorCapture capture;
  WT_CONNECTION* conn = nullptr;
  int ret = wiredtiger_open(options.path.c_str(), &sink->handler, config.c_str(), &conn);
  if (ret == EBUSY) {
    return Status::Busy(
        "data directory '" + options.path +
        "' is already open in another process or Storage (WiredTiger: " + t_captured_error + ")");
  }
  if (ret != 0) return capture.ToStatus(ret, "opening WiredTiger in '" + options.path + "'");

  WT_SESSION* sessions[2] = {nullptr, nullptr};
  for (WT_SESSION*& session : sessions) {
    ret = conn->open_session(conn, nullptr, nullptr, &session);
    if (ret != 0) {
      Status status =
          capture.ToStatus(ret, "opening an internal session in '" + options.path + "'");
      conn->close(conn, nullptr);
      return status;
    }
  }
  WarnAboutTablesWithoutChecksums(options, sessions[0]);
  auto impl = std::make_unique<Impl>(options, std::move(dir_lock), std::move(sink), conn,
                                     sessions[0], sessions[1]);
  return std::unique_ptr<Storage>(new Storage(std::move(impl)));
}

Storage::Storage(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->owner_ = this; }
Storage::~Storage() = default;

Result<TableId> Storage::OpenTable(std::string_view name, TableKind kind) {
  return impl_->OpenTable(name, kind);
}
Status Storage::DropTable(std::string_view name) { return impl_->DropTable(name); }
Result<bool> Storage::TableExists(std::string_view name) { return impl_->TableExists(name); }
Result<std::vector<std::string>> Storage::ListTables(std::string_view prefix) {
  return impl_->ListTables(prefix);
}
Result<std::unique_ptr<Session>> Storage::OpenSession() { return impl_->OpenSession(); }
void Storage::WhenDurable(std::function<void(Status)> done) { impl_->WhenDurable(std::move(done)); }

Status Storage::WaitDurable() {
  // The callback runs on the flusher thread; it notifies while holding `mu`, so this frame
  // (and `mu`, `cv`) outlive the notification.
  Mutex mu;
  CondVar cv;
  bool done = false;  // Under mu, like result.
  Status result;
  impl_->WhenDurable([&](Status status) {
    MutexLock lock(&mu);
    result = std::move(status);
    done = true;
    cv.Signal();
  });
  MutexLock lock(&mu);
  while (!done) cv.Wait(&mu);
  return result;
}

uint64_t Storage::FlushCount() const { return impl_->FlushCount(); }
void Storage::SetFlushObserver(FlushObserver* observer) { impl_->SetFlushObserver(observer); }
StorageMetrics Storage::Metrics() { return impl_->Metrics(); }
Status Storage::FatalError() const { return impl_->sink_->Fatal(); }
const StorageOptions& Storage::options() const { return impl_->options_; }

Result<std::string> Storage::Impl::ReadTableMetadata(std::string_view name, bool* found) {
  ErrorCapture capture;
  WT_CURSOR* meta = nullptr;
  int ret = schema_session_->open_cursor(schema_session_, "metadata:", nullptr, nullptr, &meta);
  if (ret != 0) return capture.ToStatus(ret, "opening the metadata cursor");
  std::string uri = TableUri(name);
  meta->set_key(meta, uri.c_str());
  ret = meta->search(meta);
  std::string config;
  *found = ret == 0;
  if (ret == 0) {
    const char* value = nullptr;
    ret = meta->get_value(meta, &value);
    if (ret == 0) config = value;
  } else if (ret == WT_NOTFOUND) {
    ret = 0;
  }
  meta->close(meta);
  if (ret != 0)
    return capture.ToStatus(ret, "reading the metadata of table '" + std::string(name) + "'");
  return config;
}

Result<TableId> Storage::Impl::OpenTable(std::string_view name, TableKind kind) {
  if (!ValidTableName(name)) return BadTableName(name);
  MutexLock schema(&schema_mu_);
  {
    ReaderMutexLock lock(&tables_mu_);
    auto it = live_tables_.find(std::string(name));
    if (it != live_tables_.end()) {
      const TableInfo& info = tables_[it->second];
      if (info.state == TableState::kDropping) {
        return Status::Busy("table '" + std::string(name) + "' is being dropped");
      }
      if (info.kind != kind) {
        return Status::InvalidArgument("table '" + std::string(name) + "' exists as a " +
                                       KindName(info.kind) + " table, not a " + KindName(kind) +
                                       " table");
      }
      return it->second;
    }
  }
  bool found = false;
  STRATA_ASSIGN_OR_RETURN(std::string metadata, ReadTableMetadata(name, &found));
  std::string uri = TableUri(name);
  if (found) {
    STRATA_ASSIGN_OR_RETURN(TableKind existing, KindFromMetadata(name, metadata));
    if (existing != kind) {
      return Status::InvalidArgument("table '" + std::string(name) + "' exists as a " +
                                     KindName(existing) + " table, not a " + KindName(kind) +
                                     " table");
    }
  } else {
    ErrorCapture capture;
    int ret = schema_session_->create(schema_session_, uri.c_str(), CreateConfig(kind));
    if (ret != 0) return capture.ToStatus(ret, "creating table '" + std::string(name) + "'");
  }
  WriterMutexLock lock(&tables_mu_);
  TableId id = static_cast<TableId>(tables_.size());
  tables_.push_back(TableInfo{std::string(name), std::move(uri), kind, TableState::kLive});
  live_tables_.emplace(std::string(name), id);
  return id;
}

Status Storage::Impl::DropTable(std::string_view name) {
  if (!ValidTableName(name)) return BadTableName(name);
  const std::string table(name);
  // schema_mu_ from the lookup to the drop: an OpenTable of the name in between would
  // register (or create) a table that the drop then removes under a live TableId.
  MutexLock schema(&schema_mu_);
  std::optional<TableId> id;
  {
    WriterMutexLock lock(&tables_mu_);
    auto it = live_tables_.find(table);
    if (it != live_tables_.end()) {
      id = it->second;
      if (tables_[*id].state == TableState::kDropping) {
        return Status::Busy("table '" + table + "' is already being dropped");
      }
      // From here no session can open a new cursor on the table.
      tables_[*id].state = TableState::kDropping;
    }
  }
  auto set_state = [&](TableState state) {
    WriterMutexLock lock(&tables_mu_);
    tables_[*id].state = state;
    if (state == TableState::kDropped) live_tables_.erase(table);
  };
  if (id) {
    // Waiting for a session's operation must not hold schema_mu_: a scan callback may call
    // OpenTable while its session holds the gate. Meanwhile the kDropping state reserves
    // the name (OpenTable and DropTable of it fail with kBusy).
    schema.Unlock();
    std::vector<std::shared_ptr<SessionGate>> gates;
    {
      MutexLock lock(&sessions_mu_);
      gates = sessions_;
    }
    for (const auto& gate : gates) {
      if (gate->holder.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
        set_state(TableState::kLive);
        return Status::InvalidArgument("DropTable('" + table +
                                       "') called inside an operation of a session on the "
                                       "same thread (a scan callback?)");
      }
      MutexLock lock(&gate->mu);
      if (gate->session != nullptr) gate->session->ForgetTable(*id);
    }
    schema.Lock();
  }
  ErrorCapture capture;
  const std::string uri = TableUri(name);
  int ret = schema_session_->drop(schema_session_, uri.c_str(), nullptr);
  if (id) set_state(ret == 0 ? TableState::kDropped : TableState::kLive);
  if (ret == ENOENT) return Status::NotFound("table '" + table + "' does not exist");
  if (ret == EBUSY) {
    return Status::Busy("cannot drop table '" + table +
                        "': an open transaction or cursor is using it");
  }
  if (ret != 0) return capture.ToStatus(ret, "dropping table '" + table + "'");
  return Status::Ok();
}

Result<bool> Storage::Impl::TableExists(std::string_view name) {
  if (!ValidTableName(name)) return BadTableName(name);
  MutexLock schema(&schema_mu_);
  bool found = false;
  STRATA_ASSIGN_OR_RETURN(std::string metadata, ReadTableMetadata(name, &found));
  return found;
}

Result<std::vector<std::string>> Storage::Impl::ListTables(std::string_view prefix) {
  MutexLock schema(&schema_mu_);
  ErrorCapture capture;
  WT_CURSOR* meta = nullptr;
  int ret = schema_session_->open_cursor(schema_session_, "metadata:", nullptr, nullptr, &meta);
  if (ret != 0) return capture.ToStatus(ret, "opening the metadata cursor");
  const std::string uri_prefix = TableUri(prefix);
  std::vector<std::string> names;
  meta->set_key(meta, uri_prefix.c_str());
  int exact = 0;
  ret = meta->search_near(meta, &exact);
  if (ret == 0 && exact < 0) ret = meta->next(meta);
  while (ret == 0) {
    const char* key = nullptr;
    ret = meta->get_key(meta, &key);
    if (ret != 0) break;
    std::string_view uri(key);
    if (!uri.starts_with(uri_prefix)) break;
    names.emplace_back(uri.substr(6));  // Without "table:".
    ret = meta->next(meta);
  }
  meta->close(meta);
  if (ret != 0 && ret != WT_NOTFOUND) {
    return capture.ToStatus(ret, "listing tables with prefix '" + std::string(prefix) + "'");
  }
  return names;  // Metadata keys are sorted, so the names are too.
}

Result<std::unique_ptr<Session>> Storage::Impl::OpenSession() {
  ErrorCapture capture;
  WT_SESSION* session = nullptr;
  int ret = conn_->open_session(conn_, nullptr, nullptr, &session);
  if (ret != 0) {
    return capture.ToStatus(
        ret, "opening a session (max_sessions=" + std::to_string(options_.max_sessions) + ")");
  }
  return std::unique_ptr<Session>(new Session(std::make_unique<Session::Impl>(this, session)));
}

// Group commit: each flush serves every waiter registered before it began. A waiter that
// registers while a flush runs waits for the next one, because the running flush may
// already have passed the log position of that waiter's commit.
void Storage::Impl::FlusherLoop() {
  std::vector<std::function<void(Status)>> batch;
  MutexLock lock(&flush_mu_);
  for (;;) {
    while (!stop_ && waiters_.empty()) flush_cv_.Wait(&flush_mu_);
    if (waiters_.empty()) break;  // stop_ and nothing left to acknowledge.
    batch.swap(waiters_);
    const uint64_t flush = flushes_started_.fetch_add(1, std::memory_order_release) + 1;
    lock.Unlock();
    Status status;
    {
      MutexLock observing(&observer_mu_);
      if (observer_ != nullptr) observer_->FlushStarting(flush);
      status = Flush();
      if (observer_ != nullptr) observer_->FlushDone(flush, status);
    }
    for (auto& done : batch) done(status);
    batch.clear();
    lock.Lock();
  }
  lock.Unlock();
  // Commits that nobody waited for become durable before the connection closes too.
  Status status = Flush();
  if (!status.ok()) sink_->Report(true, status.ToString());
}

// A flush that fails leaves its commits not durable whatever WiredTiger's code was, so it is
// always kIOError; the message keeps WiredTiger's error.
Status Storage::Impl::Flush() {
  ErrorCapture capture;
  const auto started = std::chrono::steady_clock::now();
  int ret = flush_session_->log_flush(flush_session_, "sync=on");
  flush_durations_.Observe(std::chrono::steady_clock::now() - started);
  if (ret != 0) {
    return Status::IOError(
        capture.ToStatus(ret, "flushing the log of '" + options_.path + "'").message());
  }
  return Status::Ok();
}

// The statistics cursor is opened on the schema session: a scrape a second costs no session
// of its own, and schema operations are rare and short.
StorageMetrics Storage::Impl::Metrics() {
  StorageMetrics metrics;
  metrics.log_flushes = flush_durations_.Snapshot();
  MutexLock lock(&schema_mu_);
  ErrorCapture capture;
  WT_CURSOR* stats = nullptr;
  int ret = schema_session_->open_cursor(schema_session_, "statistics:", nullptr, nullptr, &stats);
  if (ret != 0) {
    sink_->Report(
        true,
        capture.ToStatus(ret, "reading the statistics of '" + options_.path + "'").ToString());
    return metrics;
  }
  auto read = [&](int key) -> int64_t {
    stats->set_key(stats, key);
    char* description = nullptr;
    char* printed = nullptr;
    int64_t value = -1;
    if (stats->search(stats) != 0 || stats->get_value(stats, &description, &printed, &value) != 0) {
      return -1;
    }
    return value;
  };
  metrics.cache_bytes = read(WT_STAT_CONN_CACHE_BYTES_INUSE);
  metrics.cache_dirty_bytes = read(WT_STAT_CONN_CACHE_BYTES_DIRTY);
  metrics.checkpoints = read(WT_STAT_CONN_TXN_CHECKPOINT);
  metrics.checkpoint_seconds =
      static_cast<double>(std::max<int64_t>(read(WT_STAT_CONN_TXN_CHECKPOINT_TIME_TOTAL), 0)) / 1e3;
  metrics.last_checkpoint_seconds =
      static_cast<double>(std::max<int64_t>(read(WT_STAT_CONN_TXN_CHECKPOINT_TIME_RECENT), 0)) /
      1e3;
  stats->close(stats);
  return metrics;
}

// ---------------------------------------------------------------------------------------
// Session

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->owner_ = this; }
Session::~Session() = default;

Status Session::Begin(bool snapshot) { return impl_->Begin(snapshot); }
Status Session::Commit() { return impl_->Commit(); }
void Session::Rollback() { impl_->Rollback(); }
bool Session::in_transaction() const { return impl_->in_transaction(); }
Result<bool> Session::Get(TableId table, std::string_view key, std::string* value) {
  return impl_->Get(table, key, value);
}
Status Session::Put(TableId table, std::string_view key, std::string_view value) {
  return impl_->Put(table, key, value);
}
Result<bool> Session::Insert(TableId table, std::string_view key, std::string_view value) {
  return impl_->Insert(table, key, value);
}
Result<bool> Session::Remove(TableId table, std::string_view key) {
  return impl_->Remove(table, key);
}
Status Session::Scan(TableId table, std::string_view begin, std::string_view end, bool reverse,
                     const std::function<bool(std::string_view, std::string_view)>& fn) {
  return impl_->Scan(table, begin, end, reverse, fn);
}
Status Session::PutRecord(TableId table, int64_t key, std::string_view value) {
  return impl_->PutRecord(table, key, value);
}
Result<bool> Session::GetRecord(TableId table, int64_t key, std::string* value) {
  return impl_->GetRecord(table, key, value);
}
Result<bool> Session::RemoveRecord(TableId table, int64_t key) {
  return impl_->RemoveRecord(table, key);
}
Status Session::ScanRecords(TableId table, int64_t from, int64_t to,
                            const std::function<bool(int64_t, std::string_view)>& fn) {
  return impl_->ScanRecords(table, from, to, fn);
}
Result<int64_t> Session::LastRecordKey(TableId table) { return impl_->EdgeRecordKey(table, true); }
Result<int64_t> Session::FirstRecordKey(TableId table) {
  return impl_->EdgeRecordKey(table, false);
}
void Session::SuspendCapture(bool suspended) { impl_->SuspendCapture(suspended); }

Status Session::Impl::Begin(bool snapshot) {
  OpGuard guard(this);
  STRATA_RETURN_IF_ERROR(ScanDepthCheck("Begin"));
  STRATA_RETURN_IF_ERROR(HookCheck("Begin"));
  if (in_txn_)
    return Status::InvalidArgument("Begin: a transaction is already open on this session");
  return BeginTxn(snapshot);
}

Status Session::Impl::Commit() {
  OpGuard guard(this);
  STRATA_RETURN_IF_ERROR(ScanDepthCheck("Commit"));
  STRATA_RETURN_IF_ERROR(HookCheck("Commit"));
  if (!in_txn_) return Status::InvalidArgument("Commit: no transaction is open on this session");
  return CommitTxn();
}

Status Session::Impl::BeginTxn(bool snapshot) {
  ErrorCapture capture;
  int ret = session_->begin_transaction(session_, snapshot ? "isolation=snapshot" : nullptr);
  if (ret != 0) return capture.ToStatus(ret, "beginning a transaction");
  in_txn_ = true;
  captured_.clear();
  return Status::Ok();
}

Status Session::Impl::CommitTxn() {
  std::unique_ptr<CommitHook::Pending> pending;
  if (!captured_.empty()) {
    in_hook_ = true;
    Result<std::unique_ptr<CommitHook::Pending>> hooked =
        hook_->BeforeCommit(*storage_->owner_, *owner_, captured_);
    in_hook_ = false;
    captured_.clear();
    if (!hooked.ok()) {
      RollbackTxn();
      return hooked.status();
    }
    pending = std::move(hooked).value();
  }
  ErrorCapture capture;
  // A failed commit rolls the transaction back, so it is closed either way.
  in_txn_ = false;
  int ret = session_->commit_transaction(session_, nullptr);
  if (pending != nullptr) pending->Finished(ret == 0);
  if (ret != 0) return capture.ToStatus(ret, "committing a transaction");
  return Status::Ok();
}

template <typename Write>
Status Session::Impl::RunInOwnTxn(const Write& write) {
  STRATA_RETURN_IF_ERROR(BeginTxn(false));
  Status status = write();
  if (!status.ok()) {
    RollbackTxn();
    StopScans(Status(status.code(),
                     "scan stopped: a write in its callback failed and rolled "
                     "back its own transaction (" +
                         status.ToString() + ")"));
    return status;
  }
  Status committed = CommitTxn();
  if (!committed.ok()) {
    StopScans(Status(committed.code(),
                     "scan stopped: a write in its callback failed to "
                     "commit its own transaction (" +
                         committed.ToString() + ")"));
  }
  return committed;
}

void Session::Impl::Rollback() {
  OpGuard guard(this);
  // The hook's failure is how it rolls back: its commit then rolls the transaction back.
  if (in_hook_) return;
  if (scan_depth_ > 0) {
    // Refused like Begin and Commit. Rollback returns nothing, so the scans report it.
    StopScans(Status::InvalidArgument(
        "Rollback is not allowed inside a scan callback (it would restart the scan); the "
        "transaction is still open: roll it back after the scan returns"));
    return;
  }
  RollbackTxn();
}

void Session::Impl::RollbackTxn() {
  if (!in_txn_) return;
  in_txn_ = false;
  captured_.clear();
  ErrorCapture capture;
  int ret = session_->rollback_transaction(session_, nullptr);
  if (ret != 0) {
    storage_->sink_->Report(true, capture.ToStatus(ret, "rolling back a transaction").ToString());
  }
}

Result<bool> Session::Impl::Get(TableId table, std::string_view key, std::string* value) {
  OpGuard guard(this);
  STRATA_RETURN_IF_ERROR(CheckKey(key, "Get"));
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, PointCursor(table, TableKind::kBytes));
  ErrorCapture capture;
  WT_ITEM key_item = Item(key);
  cursor->set_key(cursor.get(), &key_item);
  int ret = cursor->search(cursor.get());
  if (ret == WT_NOTFOUND) return false;
  WT_ITEM value_item{};
  if (ret == 0) ret = cursor->get_value(cursor.get(), &value_item);
  if (ret != 0) return capture.ToStatus(ret, "reading from table '" + slots_[table].name + "'");
  value->assign(View(value_item));
  return true;
}

Status Session::Impl::Put(TableId table, std::string_view key, std::string_view value) {
  OpGuard guard(this);
  if (NeedsOwnTxn()) return RunInOwnTxn([&] { return PutInTxn(table, key, value); });
  return PutInTxn(table, key, value);
}

Status Session::Impl::PutInTxn(TableId table, std::string_view key, std::string_view value) {
  STRATA_RETURN_IF_ERROR(CheckKey(key, "Put"));
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, PointCursor(table, TableKind::kBytes));
  ErrorCapture capture;
  WT_ITEM key_item = Item(key);
  WT_ITEM value_item = Item(value);
  cursor->set_key(cursor.get(), &key_item);
  cursor->set_value(cursor.get(), &value_item);
  int ret = cursor->insert(cursor.get());
  if (ret != 0) return capture.ToStatus(ret, "writing to table '" + slots_[table].name + "'");
  if (Capturing()) Capture(table, WriteOp::kPut, key, 0, value);
  return Status::Ok();
}

Result<bool> Session::Impl::Insert(TableId table, std::string_view key, std::string_view value) {
  OpGuard guard(this);
  if (NeedsOwnTxn()) {
    bool wrote = false;
    STRATA_RETURN_IF_ERROR(RunInOwnTxn([&]() -> Status {
      STRATA_ASSIGN_OR_RETURN(wrote, InsertInTxn(table, key, value));
      return Status::Ok();
    }));
    return wrote;
  }
  return InsertInTxn(table, key, value);
}

Result<bool> Session::Impl::InsertInTxn(TableId table, std::string_view key,
                                        std::string_view value) {
  STRATA_RETURN_IF_ERROR(CheckKey(key, "Insert"));
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, InsertCursor(table));
  ErrorCapture capture;
  WT_ITEM key_item = Item(key);
  WT_ITEM value_item = Item(value);
  cursor->set_key(cursor.get(), &key_item);
  cursor->set_value(cursor.get(), &value_item);
  int ret = cursor->insert(cursor.get());
  if (ret == WT_DUPLICATE_KEY) return false;
  if (ret != 0) return capture.ToStatus(ret, "writing to table '" + slots_[table].name + "'");
  if (Capturing()) Capture(table, WriteOp::kPut, key, 0, value);
  return true;
}

Result<bool> Session::Impl::Remove(TableId table, std::string_view key) {
  OpGuard guard(this);
  STRATA_RETURN_IF_ERROR(CheckKey(key, "Remove"));
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, PointCursor(table, TableKind::kBytes));
  // WiredTiger's remove succeeds on an absent key, so search first; in one transaction so
  // that the answer is about the key that was removed.
  if (in_txn_) return RemoveAt(table, cursor, key);
  bool removed = false;
  STRATA_RETURN_IF_ERROR(RunInOwnTxn([&]() -> Status {
    STRATA_ASSIGN_OR_RETURN(removed, RemoveAt(table, cursor, key));
    return Status::Ok();
  }));
  return removed;
}

Result<bool> Session::Impl::RemoveAt(TableId table, CursorRef& cursor, std::string_view key) {
  ErrorCapture capture;
  WT_ITEM key_item = Item(key);
  cursor->set_key(cursor.get(), &key_item);
  int ret = cursor->search(cursor.get());
  if (ret == WT_NOTFOUND) return false;
  if (ret == 0) ret = cursor->remove(cursor.get());
  if (ret != 0) return capture.ToStatus(ret, "removing from table '" + slots_[table].name + "'");
  if (Capturing()) Capture(table, WriteOp::kRemove, key, 0, {});
  return true;
}

Status Session::Impl::Scan(TableId table, std::string_view begin, std::string_view end,
                           bool reverse,
                           const std::function<bool(std::string_view, std::string_view)>& fn) {
  OpGuard guard(this);
  if (!end.empty() && begin >= end) return Status::Ok();
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, ScanCursor(table, TableKind::kBytes));
  ErrorCapture capture;
  WT_CURSOR* c = cursor.get();
  int ret = 0;
  int exact = 0;
  // No bounds API in 3.2.1: position with search_near (which lands on either side of
  // the key), step onto the range, and stop at the far bound here.
  if (!reverse) {
    if (begin.empty()) {
      ret = c->next(c);
    } else {
      WT_ITEM start = Item(begin);
      c->set_key(c, &start);
      ret = c->search_near(c, &exact);
      if (ret == 0 && exact < 0) ret = c->next(c);
    }
  } else {
    if (end.empty()) {
      ret = c->prev(c);
    } else {
      WT_ITEM stop = Item(end);
      c->set_key(c, &stop);
      ret = c->search_near(c, &exact);
      if (ret == 0 && exact >= 0) ret = c->prev(c);  // `end` is exclusive.
    }
  }
  Status stopped;
  {
    ScanFrame frame(this);
    while (ret == 0) {
      WT_ITEM key_item{};
      WT_ITEM value_item{};
      ret = c->get_key(c, &key_item);
      if (ret == 0) ret = c->get_value(c, &value_item);
      if (ret != 0) break;
      std::string_view key = View(key_item);
      if (!reverse && !end.empty() && key >= end) break;
      if (reverse && !begin.empty() && key < begin) break;
      const bool more = fn(key, View(value_item));
      if (!scan_stop_.ok()) {
        stopped = scan_stop_;
        break;
      }
      if (!more) break;
      ret = reverse ? c->prev(c) : c->next(c);
    }
  }
  if (!stopped.ok()) return stopped;
  if (ret != 0 && ret != WT_NOTFOUND) {
    return capture.ToStatus(ret, "scanning table '" + slots_[table].name + "'");
  }
  return Status::Ok();
}

Status Session::Impl::PutRecord(TableId table, int64_t key, std::string_view value) {
  OpGuard guard(this);
  if (NeedsOwnTxn()) return RunInOwnTxn([&] { return PutRecordInTxn(table, key, value); });
  return PutRecordInTxn(table, key, value);
}

Status Session::Impl::PutRecordInTxn(TableId table, int64_t key, std::string_view value) {
  if (key < 0) return Status::InvalidArgument("PutRecord: negative key " + std::to_string(key));
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, PointCursor(table, TableKind::kLog));
  ErrorCapture capture;
  WT_ITEM value_item = Item(value);
  cursor->set_key(cursor.get(), key);
  cursor->set_value(cursor.get(), &value_item);
  int ret = cursor->insert(cursor.get());
  if (ret != 0) {
    return capture.ToStatus(
        ret, "writing record " + std::to_string(key) + " to table '" + slots_[table].name + "'");
  }
  if (Capturing()) Capture(table, WriteOp::kPutRecord, {}, key, value);
  return Status::Ok();
}

Result<bool> Session::Impl::GetRecord(TableId table, int64_t key, std::string* value) {
  OpGuard guard(this);
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, PointCursor(table, TableKind::kLog));
  ErrorCapture capture;
  cursor->set_key(cursor.get(), key);
  int ret = cursor->search(cursor.get());
  if (ret == WT_NOTFOUND) return false;
  WT_ITEM value_item{};
  if (ret == 0) ret = cursor->get_value(cursor.get(), &value_item);
  if (ret != 0) {
    return capture.ToStatus(
        ret, "reading record " + std::to_string(key) + " from table '" + slots_[table].name + "'");
  }
  value->assign(View(value_item));
  return true;
}

Result<bool> Session::Impl::RemoveRecord(TableId table, int64_t key) {
  OpGuard guard(this);
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, PointCursor(table, TableKind::kLog));
  ErrorCapture capture;
  cursor->set_key(cursor.get(), key);
  // A log table's cursors do not overwrite, and WiredTiger's remove then fails on an
  // absent key with WT_NOTFOUND, which is the answer.
  int ret = cursor->remove(cursor.get());
  if (ret == WT_NOTFOUND) return false;
  if (ret != 0) {
    return capture.ToStatus(
        ret, "removing record " + std::to_string(key) + " from table '" + slots_[table].name + "'");
  }
  return true;
}

Status Session::Impl::ScanRecords(TableId table, int64_t from, int64_t to,
                                  const std::function<bool(int64_t, std::string_view)>& fn) {
  OpGuard guard(this);
  if (from >= to) return Status::Ok();
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, ScanCursor(table, TableKind::kLog));
  ErrorCapture capture;
  WT_CURSOR* c = cursor.get();
  c->set_key(c, from);
  int exact = 0;
  int ret = c->search_near(c, &exact);
  if (ret == 0 && exact < 0) ret = c->next(c);
  Status stopped;
  {
    ScanFrame frame(this);
    while (ret == 0) {
      int64_t key = 0;
      WT_ITEM value_item{};
      ret = c->get_key(c, &key);
      if (ret == 0) ret = c->get_value(c, &value_item);
      if (ret != 0 || key >= to) break;
      const bool more = fn(key, View(value_item));
      if (!scan_stop_.ok()) {
        stopped = scan_stop_;
        break;
      }
      if (!more) break;
      ret = c->next(c);
    }
  }
  if (!stopped.ok()) return stopped;
  if (ret != 0 && ret != WT_NOTFOUND) {
    return capture.ToStatus(ret, "scanning records of table '" + slots_[table].name + "'");
  }
  return Status::Ok();
}

Result<int64_t> Session::Impl::EdgeRecordKey(TableId table, bool last) {
  OpGuard guard(this);
  STRATA_ASSIGN_OR_RETURN(CursorRef cursor, PointCursor(table, TableKind::kLog));
  ErrorCapture capture;
  WT_CURSOR* c = cursor.get();
  int ret = last ? c->prev(c) : c->next(c);
  if (ret == WT_NOTFOUND) return int64_t{-1};
  int64_t key = 0;
  if (ret == 0) ret = c->get_key(c, &key);
  if (ret != 0) {
    return capture.ToStatus(ret, std::string("finding the ") + (last ? "last" : "first") +
                                     " record of table '" + slots_[table].name + "'");
  }
  return key;
}

}  // namespace strata
