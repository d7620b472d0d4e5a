#include "zk_client.h"

#include <zookeeper/zookeeper.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>

namespace strata::cluster {
namespace {

// The C client's own log lines are dropped: every failure reaches the caller as a Status
// that names the operation and the znode, while the library would print a line for each
// reconnection attempt (several a second while an ensemble is down).
void DropLogLine(const char*) {}

void QuietLibraryOnce() {
  static std::once_flag once;
  std::call_once(once, [] { zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR); });
}

int ModeFlags(CreateMode mode) {
  switch (mode) {
    case CreateMode::kPersistent:
      return ZOO_PERSISTENT;
    case CreateMode::kEphemeral:
      return ZOO_EPHEMERAL;
    case CreateMode::kEphemeralSequential:
      return ZOO_EPHEMERAL_SEQUENTIAL;
    case CreateMode::kPersistentSequential:
      return ZOO_PERSISTENT_SEQUENTIAL;
  }
  return ZOO_PERSISTENT;
}

}  // namespace

Status ZkStatus(int rc, const std::string& operation, const std::string& path) {
  const std::string where = "znode " + path + " (" + operation + ")";
  switch (rc) {
    case ZOK:
      return Status::Ok();
    case ZNONODE:
      return Status::NotFound(where + " does not exist");
    case ZNODEEXISTS:
      return Status::AlreadyExists(where + " exists already");
    case ZBADVERSION:
      return Status::Aborted(where + ": its version moved (someone else changed it first)");
    case ZNOTEMPTY:
      return Status::Busy(where + " has children");
    case ZNOCHILDRENFOREPHEMERALS:
      return Status::InvalidArgument(where + ": an ephemeral znode cannot have children");
    case ZBADARGUMENTS:
      return Status::InvalidArgument(where + ": bad arguments (" + zerror(rc) + ")");
    case ZCONNECTIONLOSS:
    case ZOPERATIONTIMEOUT:
      return Status::Timeout(where + ": lost the connection to ZooKeeper (" + zerror(rc) +
                             "); the outcome is unknown");
    case ZSESSIONEXPIRED:
    case ZINVALIDSTATE:
    case ZCLOSING:
      return Status::Aborted(where + ": the ZooKeeper session ended (" + zerror(rc) + ")");
    case ZNOAUTH:
    case ZAUTHFAILED:
      return Status::InvalidArgument(where + ": not allowed (" + zerror(rc) + ")");
    default:
      return Status::Internal(where + ": ZooKeeper error " + std::to_string(rc) + " (" +
                              zerror(rc) + ")");
  }
}

ZkClient::ZkClient(const ZkClientOptions& options) : options_(options) {}

ZkClient::~ZkClient() {
  // zookeeper_close joins the C client's threads: no callback runs after it.
  if (handle_ != nullptr) zookeeper_close(handle_);
  MutexLock lock(&mu_);
  watches_.clear();
}

Result<std::unique_ptr<ZkClient>> ZkClient::Connect(const ZkClientOptions& options) {
  QuietLibraryOnce();
  const auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
  {
    // The chroot must exist before a session can use it: create it in a session without.
    ZkClientOptions bootstrap_options = options;
    bootstrap_options.on_session_expired = nullptr;
    std::unique_ptr<ZkClient> bootstrap(new ZkClient(bootstrap_options));
    STRATA_RETURN_IF_ERROR(bootstrap->Open(options.url.ServersText(), deadline));
    STRATA_RETURN_IF_ERROR(bootstrap->CreateAll(options.url.root));
  }
  std::unique_ptr<ZkClient> client(new ZkClient(options));
  STRATA_RETURN_IF_ERROR(client->Open(options.url.ServersText() + options.url.root, deadline));
  return client;
}

Status ZkClient::Open(const std::string& hosts, std::chrono::steady_clock::time_point deadline) {
  handle_ = zookeeper_init2(hosts.c_str(), &ZkClient::OnEvent,
                            static_cast<int>(options_.session_timeout.count()), nullptr, this, 0,
                            &DropLogLine);
  if (handle_ == nullptr) {
    // zookeeper_init resolves every server at once: this is mostly a name that does not
    // resolve (errno is then whatever the resolver left).
    return Status::InvalidArgument("cannot reach ZooKeeper at " + options_.url.ServersText() +
                                   ": a server name does not resolve, or the list is invalid (" +
                                   std::strerror(errno) + ")");
  }
  MutexLock lock(&mu_);
  while (state_ != ZOO_CONNECTED_STATE) {
    if (state_ == ZOO_AUTH_FAILED_STATE) {
      return Status::InvalidArgument("ZooKeeper at " + options_.url.ServersText() +
                                     " refused the client's authentication");
    }
    if (!cv_.WaitUntil(&mu_, deadline) && state_ != ZOO_CONNECTED_STATE) {
      return Status::Timeout("cannot reach ZooKeeper at " + options_.url.ServersText() +
                             " within " + std::to_string(options_.connect_timeout.count()) + " ms");
    }
  }
  return Status::Ok();
}

void ZkClient::OnEvent(zhandle_t* /*handle*/, int type, int state, const char* /*path*/,
                       void* context) {
  if (type == ZOO_SESSION_EVENT) static_cast<ZkClient*>(context)->OnSessionEvent(state);
}

void ZkClient::OnSessionEvent(int state) {
  bool newly_expired = false;
  std::optional<bool> connection_change;
  std::map<uint64_t, Watch> pending;
  {
    MutexLock lock(&mu_);
    const bool was_connected = state_ == ZOO_CONNECTED_STATE;
    const bool connected = state == ZOO_CONNECTED_STATE;
    if (was_connected != connected && ever_connected_) {
      connection_change = connected;
    }
    ever_connected_ = ever_connected_ || connected;
    state_ = state;
    if (state == ZOO_EXPIRED_SESSION_STATE && !expired_) {
      expired_ = true;
      newly_expired = true;
      // The ensemble dropped the session's watches with it: they fire now, with the news.
      pending.swap(watches_);
    }
    cv_.SignalAll();
  }
  if (connection_change && !newly_expired && options_.on_connection_change) {
    options_.on_connection_change(*connection_change);
  }
  if (!newly_expired) return;
  for (auto& [id, watch] : pending) watch(WatchEvent{WatchEvent::Type::kSessionExpired, ""});
  if (options_.on_session_expired) options_.on_session_expired();
}

void ZkClient::OnWatch(zhandle_t* handle, int type, int /*state*/, const char* path,
                       void* context) {
  // Every watch also sees the handle's session events; it fires on a node event only.
  if (type == ZOO_SESSION_EVENT || type == ZOO_NOTWATCHING_EVENT) return;
  auto* client = static_cast<ZkClient*>(const_cast<void*>(zoo_get_context(handle)));
  client->OnWatchEvent(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(context)), type,
                       path == nullptr ? "" : path);
}

void ZkClient::OnWatchEvent(uint64_t id, int type, const char* path) {
  Watch watch;
  {
    MutexLock lock(&mu_);
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    watch = std::move(it->second);
    watches_.erase(it);
  }
  WatchEvent event{WatchEvent::Type::kDataChanged, path};
  if (type == ZOO_CREATED_EVENT) event.type = WatchEvent::Type::kCreated;
  if (type == ZOO_DELETED_EVENT) event.type = WatchEvent::Type::kDeleted;
  if (type == ZOO_CHILD_EVENT) event.type = WatchEvent::Type::kChildrenChanged;
  watch(event);
}

uint64_t ZkClient::AddWatch(Watch watch) {
  if (!watch) return 0;
  MutexLock lock(&mu_);
  const uint64_t id = next_watch_++;
  watches_.emplace(id, std::move(watch));
  return id;
}

void ZkClient::DropWatch(uint64_t id) {
  if (id == 0) return;
  MutexLock lock(&mu_);
  watches_.erase(id);
}

namespace {

void* WatchContext(uint64_t id) { return reinterpret_cast<void*>(static_cast<uintptr_t>(id)); }

}  // namespace

Result<std::string> ZkClient::Create(const std::string& path, const std::string& data,
                                     CreateMode mode) {
  // Room for the path, the 10-digit sequence number and the terminating NUL.
  std::string created(path.size() + 16, '\0');
  const int rc = zoo_create(handle_, path.c_str(), data.data(), static_cast<int>(data.size()),
                            &ZOO_OPEN_ACL_UNSAFE, ModeFlags(mode), created.data(),
                            static_cast<int>(created.size()));
  if (rc != ZOK) return ZkStatus(rc, "create", path);
  created.resize(std::strlen(created.c_str()));
  return created;
}

Status ZkClient::CreateAll(const std::string& path) {
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix = path.substr(0, slash);
    Result<std::string> created = Create(prefix, "", CreateMode::kPersistent);
    if (!created.ok() && created.status().code() != StatusCode::kAlreadyExists) {
      return created.status();
    }
    if (slash == std::string::npos) return Status::Ok();
  }
}

Result<ZnodeData> ZkClient::Get(const std::string& path, Watch watch) {
  const uint64_t id = AddWatch(std::move(watch));
  std::string buffer(4096, '\0');
  for (;;) {
    int length = static_cast<int>(buffer.size());
    struct Stat stat {};
    const int rc = zoo_wget(handle_, path.c_str(), id ? &ZkClient::OnWatch : nullptr,
                            WatchContext(id), buffer.data(), &length, &stat);
    if (rc != ZOK) {
      DropWatch(id);
      return ZkStatus(rc, "get", path);
    }
    if (stat.dataLength > static_cast<int32_t>(buffer.size())) {
      // Larger than the buffer: read it again with room for all of it (the watch is set
      // once; the C client keeps one entry per watcher and context).
      buffer.resize(static_cast<size_t>(stat.dataLength));
      continue;
    }
    buffer.resize(length < 0 ? 0 : static_cast<size_t>(length));
    return ZnodeData{std::move(buffer), stat.version, stat.ephemeralOwner, stat.czxid};
  }
}

Result<int32_t> ZkClient::Set(const std::string& path, const std::string& data,
                              int32_t expected_version) {
  struct Stat stat {};
  const int rc = zoo_set2(handle_, path.c_str(), data.data(), static_cast<int>(data.size()),
                          expected_version, &stat);
  if (rc != ZOK) return ZkStatus(rc, "set", path);
  return stat.version;
}

namespace {

// The Status of a multi of [check that `guard` exists, `op` on `path`] that returned `rc`.
Status GuardedStatus(int rc, const zoo_op_result_t (&results)[2], const std::string& guard,
                     const std::string& operation, const std::string& path) {
  if (rc == ZOK) return Status::Ok();
  if (results[0].err == ZNONODE) {
    return Status::Aborted("znode " + path + " (" + operation + "): the guard " + guard +
                           " does not exist (the writer's candidacy ended); nothing written");
  }
  // A failed multi reports the failing op's error, and ZRUNTIMEINCONSISTENCY for the
  // others; a lost connection fills in no results (left ZOK).
  if (results[1].err != ZOK && results[1].err != ZRUNTIMEINCONSISTENCY) {
    return ZkStatus(results[1].err, operation, path);
  }
  return ZkStatus(rc, operation, path);
}

}  // namespace

Result<std::string> ZkClient::CreateGuarded(const std::string& guard, const std::string& path,
                                            const std::string& data, CreateMode mode) {
  std::string created(path.size() + 16, '\0');
  zoo_op_t ops[2];
  zoo_op_result_t results[2] = {};
  zoo_check_op_init(&ops[0], guard.c_str(), -1);
  zoo_create_op_init(&ops[1], path.c_str(), data.data(), static_cast<int>(data.size()),
                     &ZOO_OPEN_ACL_UNSAFE, ModeFlags(mode), created.data(),
                     static_cast<int>(created.size()));
  const int rc = zoo_multi(handle_, 2, ops, results);
  STRATA_RETURN_IF_ERROR(GuardedStatus(rc, results, guard, "create", path));
  created.resize(std::strlen(created.c_str()));
  return created;
}

Result<int32_t> ZkClient::SetGuarded(const std::string& guard, const std::string& path,
                                     const std::string& data, int32_t expected_version) {
  struct Stat stat {};
  zoo_op_t ops[2];
  zoo_op_result_t results[2] = {};
  zoo_check_op_init(&ops[0], guard.c_str(), -1);
  zoo_set_op_init(&ops[1], path.c_str(), data.data(), static_cast<int>(data.size()),
                  expected_version, &stat);
  const int rc = zoo_multi(handle_, 2, ops, results);
  STRATA_RETURN_IF_ERROR(GuardedStatus(rc, results, guard, "set", path));
  return stat.version;
}

Status ZkClient::Delete(const std::string& path, int32_t expected_version) {
  return ZkStatus(zoo_delete(handle_, path.c_str(), expected_version), "delete", path);
}

Result<std::vector<std::string>> ZkClient::Children(const std::string& path, Watch watch) {
  const uint64_t id = AddWatch(std::move(watch));
  String_vector children{};
  const int rc = zoo_wget_children(handle_, path.c_str(), id ? &ZkClient::OnWatch : nullptr,
                                   WatchContext(id), &children);
  if (rc != ZOK) {
    DropWatch(id);
    return ZkStatus(rc, "children", path);
  }
  std::vector<std::string> names(children.data, children.data + children.count);
  deallocate_String_vector(&children);
  return names;
}

Result<bool> ZkClient::Exists(const std::string& path, Watch watch) {
  const uint64_t id = AddWatch(std::move(watch));
  struct Stat stat {};
  const int rc = zoo_wexists(handle_, path.c_str(), id ? &ZkClient::OnWatch : nullptr,
                             WatchContext(id), &stat);
  if (rc == ZOK) return true;
  if (rc == ZNONODE) return false;  // the watch is set: it fires when the znode is created
  DropWatch(id);
  return ZkStatus(rc, "exists", path);
}

ZkSession ZkClient::session() const {
  const clientid_t* id = zoo_client_id(handle_);
  return ZkSession{id->client_id, std::string(id->passwd, sizeof id->passwd)};
}

std::chrono::milliseconds ZkClient::session_timeout() const {
  return std::chrono::milliseconds(zoo_recv_timeout(handle_));
}

bool ZkClient::expired() const {
  MutexLock lock(&mu_);
  return expired_;
}

}  // namespace strata::cluster
