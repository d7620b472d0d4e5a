// strata::Client — the C++ driver for stratad (docs/drivers/cpp.md, docs/protocol.md).
//
//   auto client = strata::Client::Connect({.host = "127.0.0.1", .port = 7450});
//   if (!client.ok()) { std::cerr << client.error().ToString(); return 1; }
//   auto acked = (*client)->Append("wordcount", "*sentences", strata::Value("hello world"));
//   auto n = (*client)->SelectOne("wordcount", "$$word_counts", strata::Path().Key("hello"));
//
// One Client is one TCP connection (one per node of a cluster, below) with any number of requests
// in flight (pipelining; responses are matched by id). Every method is thread-safe; synchronous
// calls block the calling thread only. Async forms return a std::future, or call a callback on the
// driver's I/O thread (keep callbacks short; never make a blocking call of the same
// Client, or of a Client sharing its I/O thread, inside one). When the connection breaks, requests
// in flight fail with ErrorKind::kConnection and the next request reconnects (bounded attempts with
// backoff); a request is never re-sent automatically (an append might be applied twice).
//
// Clusters (docs/drivers/cpp.md, "Clusters"): a Client may be given several seed addresses.
// It keeps one connection per node it talks to; a request about a module goes to the node
// that leads the module's replica group: a NOT_LEADER answer naming the leader is followed
// (at most 3 redirects per request) and the module -> leader address remembered; a
// NOT_LEADER without a leader, or a failed connection to a module's leader once the client
// knows more than one node, forgets it and retries through the seeds with backoff (50 ms
// then 100 ms) until the request's own request_timeout. Only appends (and deploys,
// destroys, updates, recomputes) that were written on a connection that then broke are never
// re-sent: they fail with kConnection and ClientError::maybe_applied.
// Depends on protocol/ and the value/path libraries, never on the engine.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "strata/path.h"
#include "strata/protocol/messages.h"
#include "strata/value.h"

namespace strata {

class ClientIoThread;
class ClientRouter;

struct ClientOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 7450;
  // More nodes of the same cluster, "HOST:PORT" each ("[v6]:PORT" for IPv6), tried after
  // host:port to connect and to find a module's leader.
  std::vector<std::string> seeds;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};  // 0: none
  int reconnect_attempts = 3;                        // per request that finds no connection
  std::chrono::milliseconds reconnect_backoff{100};  // doubled per attempt, at most 2 s
  std::string client_name = "strata-cpp";
  // The I/O thread that runs this Client's connection and callbacks. Null (the default):
  // the Client starts its own. Many Clients can share one (many connections, one thread).
  std::shared_ptr<ClientIoThread> io_thread;
};

// An I/O thread for Clients to share (ClientOptions::io_thread). Each Client keeps a
// reference, so the thread runs until the last of them and the caller's handle are gone;
// the last one to let go joins it (never from inside a callback of a Client using it).
class ClientIoThread {
 public:
  static std::shared_ptr<ClientIoThread> Start();
  ~ClientIoThread();
  ClientIoThread(const ClientIoThread&) = delete;
  ClientIoThread& operator=(const ClientIoThread&) = delete;

  struct State;

 private:
  explicit ClientIoThread(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  friend class Client;
};

// How Client::Update replaces a deployed module (protocol::UpdateRequest; the rules are
// docs/modules.md, "Changing a deployed module").
// Client::Subscribe's settings (as a select's: docs/subscriptions.md).
struct ClientSubscribeOptions {
  std::optional<Value> partition_key;  // else the path's first key picks the partition
  bool one = false;  // the value is the one value selected (nil for none), not their list
};

struct ClientUpdateOptions {
  // Declared names ("*clicks", "$$counts", "count") of depots, PStates and topologies the
  // running version has and the new build does not: their data is deleted. An update that
  // leaves out such a name is refused, listing them.
  std::vector<std::string> drop;
  int partitions = 0;  // 0: keep the partition count; 1 to 1024: rescale to it
  // New topologies start at the end of their sources instead of backfilling from offset 0.
  bool new_topologies_from_end = false;
};

enum class ErrorKind : uint8_t {
  kServer,      // the server answered with an error: see code
  kConnection,  // could not connect, or the connection broke before the response
  kTimeout,     // no response within request_timeout (the request may still complete)
  kProtocol,    // the server sent bytes that do not decode
  kArgument,    // the call's arguments are invalid before anything is sent
};

// A typed error: where it came from, the server's wire code (kNone unless kServer) and a
// message saying what was wrong.
struct ClientError {
  ClientError() = default;
  ClientError(ErrorKind k, protocol::ErrorCode c, std::string m)
      : kind(k), code(c), message(std::move(m)) {}
  ErrorKind kind = ErrorKind::kServer;
  protocol::ErrorCode code = protocol::ErrorCode::kNone;
  std::string message;
  // kServer NOT_LEADER: the leader's HOST:PORT when the server knew it (the Client has
  // already followed it up to 3 times).
  std::string leader;
  // kConnection, kTimeout: the request was written before the connection broke or the time
  // ran out, so the server may have applied it.
  bool maybe_applied = false;
  // e.g. "NOT_FOUND: unknown module 'x'" or "connection: connection refused"
  std::string ToString() const;
};

// Either a T or a ClientError.
template <typename T>
class [[nodiscard]] ClientResult {
 public:
  ClientResult(T value) : rep_(std::in_place_index<0>, std::move(value)) {}
  ClientResult(ClientError error) : rep_(std::in_place_index<1>, std::move(error)) {}
  bool ok() const { return rep_.index() == 0; }
  T& value() & { return std::get<0>(rep_); }
  const T& value() const& { return std::get<0>(rep_); }
  T value() && { return std::get<0>(std::move(rep_)); }  // by value: safe in a range-for
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const ClientError& error() const { return std::get<1>(rep_); }

 private:
  std::variant<T, ClientError> rep_;
};

class Client {
 public:
  // protocol::AckLevel (strata/engine.h has an AckLevel of its own for embedded use).
  using AckLevel = protocol::AckLevel;

  // Connects and performs the handshake: one attempt, bounded by connect_timeout (a
  // kConnection error when refused, unresolvable or unanswered). Blocks the caller.
  static ClientResult<std::unique_ptr<Client>> Connect(const ClientOptions& options = {});
  // Fails every request in flight with kConnection and closes the connection.
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The server's Welcome of the current connection.
  protocol::Welcome server_info() const;

  // --- Synchronous calls -------------------------------------------------------------------
  // Deploys the plugin at `path` on the SERVER's file system. In cluster mode
  // (docs/cluster.md) `replication` nodes keep a replica (0: the cluster's default) and an
  // append needs `min_isr` in-sync replicas (0: the default); the node that received the
  // deploy leads the module, and the Client remembers it.
  ClientResult<protocol::ModuleInfo> Deploy(const std::string& path, int partitions = 8,
                                            int replication = 0, int min_isr = 0);
  // Deploys a plugin from its bytes (e.g. a local file read by the caller).
  ClientResult<protocol::ModuleInfo> DeployBytes(std::string so_bytes, int partitions = 8,
                                                 int replication = 0, int min_isr = 0);
  // Replaces the code of the deployed module that the plugin at `path` on the SERVER's file
  // system names, in place (docs/modules.md, "Changing a deployed module"); returns what
  // changed. A refused update (kServer: INVALID_ARGUMENT naming what is wrong, NOT_FOUND
  // when no module of that name is deployed) changes nothing. The call returns once the new
  // version serves; a rescale (options.partitions) moves every record first, so give such
  // a call a request_timeout to match.
  ClientResult<protocol::Updated> Update(const std::string& path,
                                         const ClientUpdateOptions& options = {});
  // The same from the plugin's bytes (e.g. a local file read by the caller).
  ClientResult<protocol::Updated> UpdateBytes(std::string so_bytes,
                                              const ClientUpdateOptions& options = {});
  // Starts rebuilding `pstates` ("$$" optional) of `module` from the log; returns once it
  // has started. Its progress is in Stats (ModuleStats::rebuilds) until it has replaced the
  // live PStates; kServer ALREADY_EXISTS while another rebuild of the module runs.
  ClientResult<protocol::RecomputeStarted> Recompute(const std::string& module,
                                                     std::vector<std::string> pstates);
  ClientResult<std::vector<protocol::ModuleInfo>> Modules();
  ClientResult<protocol::ModuleInfo> Describe(const std::string& module);
  // Deletes the module and its data (sends the confirmation the protocol requires).
  ClientResult<protocol::Destroyed> Destroy(const std::string& module);
  // A record's topology failure (with kProcessed) is returned as a kServer error with code
  // kTopologyFailed; AppendBatch reports failures per record instead.
  ClientResult<protocol::AppendResult> Append(const std::string& module, const std::string& depot,
                                              Value record, AckLevel ack = AckLevel::kProcessed);
  ClientResult<std::vector<protocol::AppendResult>> AppendBatch(
      const std::string& module, const std::string& depot, std::vector<Value> records,
      AckLevel ack = AckLevel::kProcessed);
  ClientResult<std::vector<Value>> Select(const std::string& module, const std::string& pstate,
                                          const Path& path,
                                          std::optional<Value> partition_key = std::nullopt);
  ClientResult<Value> SelectOne(const std::string& module, const std::string& pstate,
                                const Path& path,
                                std::optional<Value> partition_key = std::nullopt);
  // Runs query `query` of `module` with `args` (one per declared parameter, in order) and
  // returns its result (docs/modules.md, "Queries"). The server fails it with TIMEOUT when it
  // has not finished within `timeout_ms` (1 to protocol::kMaxInvokeTimeoutMs); the client's
  // request_timeout bounds the wait too, so give a longer query a client whose
  // request_timeout exceeds its timeout_ms. kServer errors name the query: NOT_FOUND (unknown
  // module or query), INVALID_ARGUMENT (wrong number of arguments), SCHEMA_VIOLATION (an
  // argument that does not match its parameter), QUERY_FAILED (the query's code threw,
  // returned an error or tried to write), TIMEOUT.
  ClientResult<Value> Invoke(const std::string& module, const std::string& query,
                             std::vector<Value> args, int64_t timeout_ms = 10'000);
  // A page of PState `pstate` ("$$" optional) over all its partitions: the next top-level
  // entries of its root map or set, at most `limit` (1 to protocol::kMaxPageLimit), in key
  // order, partition after partition, with `path` applied to each partition's part of them as one
  // sorted view (Path().All(): [key, value] pairs; Path().MapKeys(): the keys; Path(): the view as
  // one map per partition). `token` is empty for the first page, else the previous page's
  // next_token, unchanged; an empty next_token means there is no more. Each partition's
  // part of a page is read in one snapshot; pages are not one snapshot together.
  ClientResult<protocol::SelectedPage> SelectPage(const std::string& module,
                                                  const std::string& pstate, const Path& path,
                                                  std::string token = "", int64_t limit = 100);
  ClientResult<std::vector<protocol::DepotRecord>> ReadDepot(const std::string& module,
                                                             const std::string& depot,
                                                             int partition, int64_t from = 0,
                                                             int64_t to = INT64_MAX,
                                                             int64_t limit = 1000);
  // Server counters and, per module (every module when `module` is empty), its depots,
  // topology progress, failure count and the failures at positions
  // [failures_from, failures_from + failures_limit) in (topology, depot, partition, offset)
  // order (ModuleStats::failure_page; limit 0 to protocol::kMaxStatsFailuresLimit).
  ClientResult<protocol::StatsResult> Stats(const std::string& module = "",
                                            int64_t failures_from = 0,
                                            int64_t failures_limit = 100);
  // Where each module's replica group is led, as the node this Client first connected to
  // sees the cluster (docs/protocol.md, "Cluster requests"). kServer NOT_FOUND without
  // --cluster.
  ClientResult<protocol::Placement> Placement();
  // Asks the controller to rebalance the replica groups over the live nodes
  // (docs/cluster.md, "Rebalance"); returns the placement once every group has its target
  // (GroupPlacement::target: the move then runs in the background). kServer TIMEOUT when no
  // controller took it within 15 s; NOT_FOUND without --cluster.
  ClientResult<protocol::Placement> Rebalance();

  // --- Live subscriptions (docs/subscriptions.md) ---------------------------------------------
  // Subscribes to what `path` selects in one partition of PState `pstate`: returns its id,
  // partition and current value (protocol::Subscribed). Then `on_update` runs on the
  // driver's I/O thread for every change of the value, with diffs to apply to it in order
  // (strata::ApplyDiff, strata/diff.h; a RESYNC diff replaces it whole), and once at the
  // end: an update with `ended` set (the module was destroyed, an update dropped the
  // PState, the server is shutting down), or a kConnection error when the connection is
  // lost (subscribe again after reconnecting: the next call reconnects). Not called after
  // Unsubscribe returns. Keep it short and never make a blocking call of this Client in it.
  using SubscriptionHandler = std::function<void(ClientResult<protocol::SubscriptionUpdate>)>;
  ClientResult<protocol::Subscribed> Subscribe(const std::string& module, const std::string& pstate,
                                               const Path& path, SubscriptionHandler on_update,
                                               const ClientSubscribeOptions& options = {});
  ClientResult<protocol::Unsubscribed> Unsubscribe(uint64_t subscription);

  // --- Asynchronous calls --------------------------------------------------------------------
  // Any request, sent without waiting. The future / callback receives the response body
  // (one of protocol::ResponseBody's alternatives) or the error. The typed methods above
  // are built on these.
  using Body = protocol::ResponseBody;
  std::future<ClientResult<Body>> SendAsync(protocol::RequestBody request);
  void SendAsync(protocol::RequestBody request, std::function<void(ClientResult<Body>)> done);

  // Typed async forms of the hot calls.
  std::future<ClientResult<std::vector<protocol::AppendResult>>> AppendAsync(
      const std::string& module, const std::string& depot, std::vector<Value> records,
      AckLevel ack = AckLevel::kProcessed);
  std::future<ClientResult<std::vector<Value>>> SelectAsync(
      const std::string& module, const std::string& pstate, const Path& path,
      std::optional<Value> partition_key = std::nullopt);
  // Invoke without waiting. The callback form runs `done` on the driver's I/O thread (see
  // above); with it, many invocations can be in flight on one Client at once (pipelining,
  // bounded by the server's max_in_flight per connection: more wait in the driver).
  std::future<ClientResult<Value>> InvokeAsync(const std::string& module, const std::string& query,
                                               std::vector<Value> args,
                                               int64_t timeout_ms = 10'000);
  void InvokeAsync(const std::string& module, const std::string& query, std::vector<Value> args,
                   int64_t timeout_ms, std::function<void(ClientResult<Value>)> done);
  // Async forms of the lifecycle calls, which may take long on the server.
  std::future<ClientResult<protocol::Updated>> UpdateAsync(std::string path,
                                                           const ClientUpdateOptions& options = {});
  std::future<ClientResult<protocol::Updated>> UpdateBytesAsync(
      std::string so_bytes, const ClientUpdateOptions& options = {});
  std::future<ClientResult<protocol::RecomputeStarted>> RecomputeAsync(
      const std::string& module, std::vector<std::string> pstates);

  class Impl;

 private:
  Client(std::shared_ptr<ClientIoThread> io_thread, std::shared_ptr<ClientRouter> router);
  // Declared first, destroyed last: the connections close before their thread is released.
  std::shared_ptr<ClientIoThread> io_thread_;
  // The connections per node (one Impl each); shared with the completion handlers still
  // queued on the I/O thread after it closed.
  std::shared_ptr<ClientRouter> impl_;
};

}  // namespace strata
