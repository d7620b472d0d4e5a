// ZkClient: one ZooKeeper session over the multi-threaded C client (libzookeeper_mt), with
// synchronous operations that return Status and one-shot watches delivered to
// std::function. Paths are relative to the cluster's root (cluster_url.h), the session's
// chroot: "/nodes/n1" is ROOT/nodes/n1 on the ensemble.
//
// Threads: every operation may be called from any thread except the client's event
// thread — the thread that runs watch callbacks and the session-expired callback. A
// callback must not call a synchronous operation (it would wait for an answer that only
// that same thread can deliver): it hands the work to a thread of its own.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cluster_url.h"
#include "strata/status.h"
#include "strata/thread_annotations.h"

typedef struct _zhandle zhandle_t;

namespace strata::cluster {

struct ZkClientOptions {
  ClusterUrl url;
  // The session timeout asked for; the ensemble bounds it to [2, 20] × its tickTime and
  // the client keeps the negotiated one (session_timeout()). The session and its
  // ephemeral znodes end this long after the ensemble last heard from the client.
  std::chrono::milliseconds session_timeout{6000};
  // Connect() gives up this long after it started.
  std::chrono::milliseconds connect_timeout{10000};
  // Called once, on the event thread, when the ensemble reports the session expired
  // (the client was cut off longer than the session timeout): every ephemeral znode of
  // the session is gone and no operation of this client will succeed again; the owner
  // makes a new client.
  std::function<void()> on_session_expired;
  // Called on the event thread when the connection to the ensemble is lost (false: the
  // client is trying the servers again; the session may still live) and when it is back
  // (true), after the first connection. Must be quick and must not call this client.
  std::function<void(bool connected)> on_connection_change;
};

// What a watch reports: the znode and what happened to it.
struct WatchEvent {
  // kSessionExpired: the session expired before anything happened to the znode; the
  // watch will not fire otherwise.
  enum class Type { kCreated, kDeleted, kDataChanged, kChildrenChanged, kSessionExpired };
  Type type;
  std::string path;  // relative to the root, as the operation that set the watch named it
};
// A one-shot watch: called exactly once, on the event thread (see the file comment): on
// its event, or with kSessionExpired when the session expires first (before
// on_session_expired). Never called once the client is destroyed.
using Watch = std::function<void(const WatchEvent&)>;

enum class CreateMode { kPersistent, kEphemeral, kEphemeralSequential, kPersistentSequential };

struct ZnodeData {
  std::string data;
  int32_t version = 0;          // bumped by every set
  int64_t ephemeral_owner = 0;  // the session that owns an ephemeral znode; 0 otherwise
  int64_t created_zxid = 0;     // the transaction that created it (czxid): increases with
                                // every create, so a znode created again has a larger one
};

// The session's identity, to resume it in another handle (tests close a session through
// it to make its owner's session expire: testing/zk_server.h).
struct ZkSession {
  int64_t id = 0;
  std::string password;
};

class ZkClient {
 public:
  // Connects to url.servers, creates url.root (and its parents) when missing, and opens
  // the session chrooted at it. kTimeout "cannot reach ZooKeeper at SERVERS within N ms"
  // when no server answered within connect_timeout; kInvalidArgument "cannot reach
  // ZooKeeper at SERVERS: a server name does not resolve ..." at once.
  static Result<std::unique_ptr<ZkClient>> Connect(const ZkClientOptions& options);
  // Closes the session: its ephemeral znodes are deleted at once (not after the timeout).
  // Waits for a callback that is running; none is called afterwards.
  ~ZkClient();
  ZkClient(const ZkClient&) = delete;
  ZkClient& operator=(const ZkClient&) = delete;

  // Creates `path` holding `data`. Returns the znode's path (for the sequential modes,
  // `path` with the ensemble's 10-digit sequence number appended). kAlreadyExists when it
  // exists, kNotFound when its parent does not.
  Result<std::string> Create(const std::string& path, const std::string& data, CreateMode mode);
  // Creates `path` and its missing ancestors as empty persistent znodes; OK when it exists.
  Status CreateAll(const std::string& path);
  // kNotFound when missing. `watch`, when set, fires on the next change or deletion.
  Result<ZnodeData> Get(const std::string& path, Watch watch = nullptr);
  // Replaces the data when the znode's version is `expected_version` (-1: any); returns
  // the new version. kAborted when the version moved (someone else set it first).
  Result<int32_t> Set(const std::string& path, const std::string& data, int32_t expected_version);
  // Create and Set made atomically with a check that the znode `guard` exists (one
  // ZooKeeper multi): when it does not, nothing is written and the answer is kAborted
  // naming `guard`. Otherwise as Create and Set. What fences a controller's writes to the
  // ephemeral candidacy it was elected with (group_state.h).
  Result<std::string> CreateGuarded(const std::string& guard, const std::string& path,
                                    const std::string& data, CreateMode mode);
  Result<int32_t> SetGuarded(const std::string& guard, const std::string& path,
                             const std::string& data, int32_t expected_version);
  // kNotFound when missing, kAborted when the version moved, kBusy when it has children.
  Status Delete(const std::string& path, int32_t expected_version = -1);
  // The names (not paths) of the children, in the ensemble's order. `watch` fires when one
  // is created or deleted (or `path` is deleted).
  Result<std::vector<std::string>> Children(const std::string& path, Watch watch = nullptr);
  // Whether `path` exists. `watch` fires when it is created, changed or deleted; it is set
  // whether the znode exists or not.
  Result<bool> Exists(const std::string& path, Watch watch = nullptr);

  const ClusterUrl& url() const { return options_.url; }
  ZkSession session() const;
  // The timeout the ensemble granted.
  std::chrono::milliseconds session_timeout() const;
  // True once the session expired (on_session_expired was called).
  bool expired() const;

 private:
  explicit ZkClient(const ZkClientOptions& options);
  // The C client's watchers: OnEvent for the handle's session events, OnWatch for the node
  // events of one watch (its context is the watch's id).
  static void OnEvent(zhandle_t* handle, int type, int state, const char* path, void* context);
  static void OnWatch(zhandle_t* handle, int type, int state, const char* path, void* context);
  void OnSessionEvent(int state);
  void OnWatchEvent(uint64_t id, int type, const char* path);
  Status Open(const std::string& hosts, std::chrono::steady_clock::time_point deadline);
  // Registers `watch`; returns the context to give the C client (0 when no watch).
  uint64_t AddWatch(Watch watch);
  void DropWatch(uint64_t id);

  const ZkClientOptions options_;
  zhandle_t* handle_ = nullptr;
  mutable Mutex mu_;
  CondVar cv_;
  int state_ GUARDED_BY(mu_) = 0;  // the C client's last session state
  bool ever_connected_ GUARDED_BY(mu_) = false;
  bool expired_ GUARDED_BY(mu_) = false;
  uint64_t next_watch_ GUARDED_BY(mu_) = 1;
  // Watches set and not fired yet, by the id the C client holds as their context (an id,
  // not a pointer: the C client may keep a context whose registration failed).
  std::map<uint64_t, Watch> watches_ GUARDED_BY(mu_);
};

// The Status for the C client's error code `rc` of `operation` on `path`, e.g.
// kNotFound "znode /nodes/n1 does not exist (get)".
Status ZkStatus(int rc, const std::string& operation, const std::string& path);

}  // namespace strata::cluster
