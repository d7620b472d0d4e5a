// Translates decoded protocol requests into Engine calls and engine results into
// responses. Knows nothing of sockets: a connection hands it a request and a Reply.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <asio/thread_pool.hpp>

#include "request_latencies.h"
#include "strata/engine.h"
#include "strata/protocol/messages.h"
#include "subscription_outbox.h"

namespace strata::server {

// Server-wide counters for Stats and GET /metrics (PrometheusText, metrics.h). Updated by
// io threads; read by any thread.
struct ServerCounters {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::chrono::system_clock::time_point start_wall = std::chrono::system_clock::now();
  // Binary protocol connections open now and accepted since start.
  std::atomic<int64_t> open_connections{0};
  std::atomic<int64_t> total_connections{0};
  std::atomic<int64_t> requests{0};  // binary requests answered (error responses included)
  // The HTTP listener's connections open now and accepted since start (it updates them).
  std::atomic<int64_t> http_open_connections{0};
  std::atomic<int64_t> http_total_connections{0};
  // HTTP subscription streams open now, and those refused at --http-max-streams since start
  // (http/event_streams.h updates them).
  std::atomic<int64_t> http_open_streams{0};
  std::atomic<int64_t> http_refused_streams{0};
  RequestLatencies latencies;

  // Counts one answered request of `protocol` ("binary" or "http") and `kind` (one of
  // kRequestKinds, else counted as "other"; binary kinds come from RequestKindName) that
  // took `elapsed`, from its decoding to its response handed to the connection's writer.
  // Lock-free; any thread.
  void ObserveRequest(std::string_view protocol, std::string_view kind,
                      std::chrono::nanoseconds elapsed) {
    latencies.Observe(protocol, kind, elapsed);
  }
};

// The kind of a binary request, as ObserveRequest counts it: "hello", "deploy", "modules",
// "describe", "destroy", "append", "select", "select_one" (a select with one = true),
// "read_depot", "stats", "update", "recompute", "invoke", "select_page".
std::string_view RequestKindName(const protocol::RequestBody& body);

// Called exactly once per request with its response, from any thread (the caller's, an
// engine thread, or a blocking-pool thread); the connection posts it to its own thread.
using Reply = std::function<void(protocol::Response)>;

class ClusterService;

class Dispatcher {
 public:
  // `engine`, `counters` and `blocking_pool` outlive the dispatcher and every request in
  // flight. Engine calls that block (deploy, update, recompute, destroy, describe, select,
  // select page, invoke, read, stats) run on `blocking_pool`, so network threads only parse,
  // dispatch and write (point reads excepted: AnswerInline answers them on the network
  // thread). Appends go to Engine::AppendAsync directly: it never blocks; at the engine's
  // global cap of unprocessed records the batch waits for admission, its request stays in
  // flight, and the connection's in-flight cap stops reading it (the backpressure on
  // appenders).
  Dispatcher(Engine& engine, ServerCounters& counters, asio::thread_pool& blocking_pool,
             std::string data_dir);
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // Any request but Hello (the connection does the handshake). Thread-safe. An exception
  // while a request is processed (on the pool or an engine thread) answers it INTERNAL
  // with a log line; one thrown here, on the caller's thread, is the caller's to handle.
  // `peer` ("HOST:PORT" of the client) names the client in the log lines of deploy,
  // update, recompute and destroy, which are logged with their outcome.
  void Dispatch(protocol::Request request, const std::string& peer, Reply reply);

  // The response to `request` when it is a point read (a select whose path navigates by
  // keys only: one storage lookup, bounded work), or a query that finishes within
  // kInlineQueryBudget, answered here on the caller's network thread without the two
  // thread hand-offs of the blocking pool; nullopt for any other request, which then goes
  // to Dispatch. Thread-safe. A point read whose page is not cached reads it from disk on
  // this thread (one page read). A query that does not finish within the budget is run
  // again on the pool — queries write nothing, so running one again is safe — and the
  // next kInlineQueryBackoff invocations of that query go to the pool directly. (The
  // budget is checked before each step call: one step that runs long holds the thread.)
  std::optional<protocol::Response> AnswerInline(const protocol::Request& request);
  static constexpr int64_t kInlineQueryBudgetMs = 2;
  static constexpr int kInlineQueryBackoff = 1000;

  // A connection's Subscribe and Unsubscribe requests (the connection routes them here
  // rather than to Dispatch, with the outbox that holds its subscriptions). They run on the
  // blocking pool and call `reply` once: Subscribe with Subscribed (or an error, OVERLOADED
  // past the outbox's cap), Unsubscribe with Unsubscribed (NOT_FOUND for an id that is not
  // the connection's).
  void Subscribe(uint64_t id, protocol::SubscribeRequest request,
                 std::shared_ptr<SubscriptionOutbox> outbox, Reply reply);
  void Unsubscribe(uint64_t id, protocol::UnsubscribeRequest request,
                   std::shared_ptr<SubscriptionOutbox> outbox, Reply reply);
  // Ends the engine's side of subscriptions whose connection went away (on the pool).
  void ReleaseSubscriptions(std::vector<uint64_t> ids);

  // With --cluster (set once the node joined, cleared at shutdown once no request is in
  // flight): requests of a module this node does not lead are answered NOT_LEADER with the
  // leader's address, deploy and destroy act on the cluster, and the cluster requests
  // (Placement, the replicas' fetches) are served. Null: single-node, and the cluster
  // requests are answered NOT_FOUND.
  void SetCluster(ClusterService* cluster) { cluster_.store(cluster); }
  ClusterService* cluster() const { return cluster_.load(); }

  // Blocking forms used at start (--deploy) and by the pool.
  // In a cluster: across it (ClusterService::Deploy; 0 for replication and min_isr: the
  // defaults); single-node: replication above 1 is refused (kInvalidArgument).
  Result<ModuleInfo> DeployFile(const std::string& path, int partitions, int replication = 0,
                                int min_isr = 0);

 private:
  void Post(std::function<void()> work);
  // Writes uploaded module bytes to a new file of the data directory and returns its path;
  // the caller removes it once the engine call returned (the engine keeps its own copy).
  Result<std::string> WriteUpload(const std::string& so_bytes);
  protocol::Response Deploy(uint64_t id, const protocol::DeployRequest& request);
  protocol::Response LoggedDeploy(uint64_t id, const protocol::DeployRequest& request,
                                  const std::string& peer);
  protocol::Response Update(uint64_t id, const protocol::UpdateRequest& request);
  protocol::Response LoggedUpdate(uint64_t id, const protocol::UpdateRequest& request,
                                  const std::string& peer);
  protocol::Response Recompute(uint64_t id, const protocol::RecomputeRequest& request);
  protocol::Response LoggedRecompute(uint64_t id, const protocol::RecomputeRequest& request,
                                     const std::string& peer);
  protocol::Response LoggedDestroy(uint64_t id, const protocol::DestroyRequest& request,
                                   const std::string& peer);
  protocol::Response ListModules(uint64_t id);
  protocol::Response Describe(uint64_t id, const protocol::DescribeRequest& request);
  protocol::Response Destroy(uint64_t id, const protocol::DestroyRequest& request);
  protocol::Response Select(uint64_t id, const protocol::SelectRequest& request);
  protocol::Response SelectPath(uint64_t id, const protocol::SelectRequest& request,
                                const Path& path);
  protocol::Response ReadDepot(uint64_t id, const protocol::ReadDepotRequest& request);
  protocol::Response Invoke(uint64_t id, const protocol::InvokeRequest& request);
  // The answer to an invocation: its result, or its error (QUERY_FAILED for the query's
  // own failure).
  static protocol::Response InvokeResponse(uint64_t id, Result<Value> result);
  protocol::Response SelectPage(uint64_t id, const protocol::SelectPageRequest& request);
  protocol::Response Stats(uint64_t id, const protocol::StatsRequest& request);
  void Append(uint64_t id, protocol::AppendRequest request, Reply reply);

  // Answers the cluster requests (Placement, ReplicaFetch, ReplicaEpoch, ModuleFile) and
  // the NOT_LEADER refusals: true when `request` was answered here.
  bool DispatchCluster(const protocol::Request& request, Reply& reply);

  Engine& engine_;
  std::atomic<ClusterService*> cluster_{nullptr};
  ServerCounters& counters_;
  asio::thread_pool& blocking_pool_;
  const std::string data_dir_;
  std::atomic<uint64_t> upload_counter_{0};
  // "module/query" -> invocations still to send to the pool after one overran the inline
  // budget (absent: answer inline first).
  std::mutex inline_mu_;
  std::unordered_map<std::string, int> inline_backoff_;  // guarded by inline_mu_
};

// An error response for request `id`.
protocol::Response ErrorResponse(uint64_t id, protocol::ErrorCode code, std::string message);

}  // namespace strata::server
