// stratad: the Engine behind an Asio acceptor. One io_context per network thread, each
// run by that thread alone; the acceptor hands connections round-robin to them.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>

#include "cluster_node.h"
#include "cluster_service.h"
#include "connection.h"
#include "dispatcher.h"
#include "http/http_service.h"
#include "replica_manager.h"
#include "server_options.h"
#include "strata/engine.h"
#include "strata/thread_annotations.h"

namespace strata::server {

class Server {
 public:
  // Binds the listening socket, then opens the engine on options.data_dir (kBusy, "another
  // stratad is using DIR", when another process has it), with --cluster joins the cluster
  // (ClusterNode::Join: fails when ZooKeeper cannot be reached within 10 s, or when a live
  // node has this node id), and deploys options.deploy (across the cluster with
  // --cluster): an address that cannot be bound fails before anything is written to the
  // data directory.
  static Result<std::unique_ptr<Server>> Create(const ServerOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // "HOST:PORT" actually bound (the real port when the options asked for port 0).
  std::string listen_address() const;
  // The same for HTTP; empty with --http off.
  std::string http_address() const { return http_ ? http_->address() : ""; }

  // Serves until SIGINT or SIGTERM, then shuts down gracefully: leaves the cluster (its
  // ZooKeeper session closes: the node's registration goes at once), stops accepting, lets
  // every connection finish its in-flight requests and write their responses, closes
  // the engine (final flush). Returns the process exit code: 0, or 1 when the final flush
  // failed (logged).
  int Run();

 private:
  explicit Server(const ServerOptions& options);
  Status OpenEngine();
  Status DeployAtStart();
  Status JoinCluster();
  Status Listen();
  void Accept();
  void OnAccepted(const std::error_code& ec, asio::ip::tcp::socket socket);
  void OnSignal(const std::error_code& ec, int signal);
  void Unregister(Connection* connection);
  // Posts `action` to every open connection's thread.
  void ForEachConnection(void (Connection::*action)());
  bool WaitForConnections(std::chrono::steady_clock::time_point deadline);

  const ServerOptions options_;
  ServerCounters counters_;
  ConnectionLimits limits_;
  FrameBudget frame_budget_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<asio::thread_pool> blocking_pool_;
  std::unique_ptr<Dispatcher> dispatcher_;
  std::unique_ptr<http::HttpService> http_;  // null with --http off
  // Null without --cluster; left by Run() at the signal (main thread only).
  std::unique_ptr<cluster::ClusterNode> cluster_;
  // With --cluster: this node's replicas (made before joining, so that the first view
  // reaches it) and the cluster's requests. The engine's ack gate and the view callback
  // reach the manager through replicas_ptr_, which is null until it exists.
  std::unique_ptr<cluster::ReplicaManager> replicas_;
  std::atomic<cluster::ReplicaManager*> replicas_ptr_{nullptr};
  std::atomic<cluster::ClusterNode*> cluster_ptr_{nullptr};
  std::unique_ptr<ClusterService> cluster_service_;

  std::vector<std::unique_ptr<asio::io_context>> io_contexts_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_guards_;
  std::vector<std::thread> io_threads_;
  // The acceptor, its retry timer and the signals run on io_contexts_[0].
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_timer_;
  asio::signal_set signals_;
  size_t next_context_ = 0;  // accept handler only

  Mutex mu_;
  CondVar cv_;
  std::optional<int> stop_signal_ GUARDED_BY(mu_);
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_ GUARDED_BY(mu_);
};

}  // namespace strata::server
