#include "server.h"

#include <unistd.h>

#include <csignal>
#include <utility>
#include <vector>

#include <asio/post.hpp>

#include "log.h"

namespace strata::server {

namespace {

int IoThreadCount(const ServerOptions& options) {
  if (options.io_threads > 0) return options.io_threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

std::vector<std::unique_ptr<asio::io_context>> MakeContexts(int count) {
  std::vector<std::unique_ptr<asio::io_context>> contexts;
  // Concurrency hint 1: each io_context is run by exactly one thread.
  for (int i = 0; i < count; ++i) contexts.push_back(std::make_unique<asio::io_context>(1));
  return contexts;
}

// The engine's Logger (strata/logger.h): its messages become lines of stratad's log.
class ServerLogger final : public Logger {
 public:
  void Log(Level level, std::string_view message) override {
    switch (level) {
      case Level::kInfo:
        return LogInfo(message);
      case Level::kWarning:
        return LogWarning(message);
      case Level::kError:
        return LogError(message);
    }
  }
};

// Runs an io thread. Connection handlers never throw (Connection guards them); should
// another handler throw, asio leaves the io_context usable: log and go on serving.
void RunIoContext(asio::io_context& context) {
  for (;;) {
    try {
      context.run();
      return;
    } catch (const std::exception& e) {
      LogError(std::string("a network handler failed: ") + e.what() + "; still serving");
    } catch (...) {
      LogError(
          "a network handler failed with an exception that is not a std::exception; still serving");
    }
  }
}

std::string SignalName(int signal) {
  if (signal == SIGINT) return "SIGINT";
  if (signal == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(signal);
}

// How long a graceful shutdown waits for connections to finish before closing them.
constexpr std::chrono::seconds kDrainGrace{5};

// The exit code after a fatal storage error (sysexits' EX_IOERR; docs/storage.md). The
// storage is dead (a WiredTiger panic: disk full, out of file descriptors, a damaged page):
// log the cause and end at once, so that a supervisor restarts the server. Every
// acknowledged write is already durable (acks follow a successful log flush); a graceful
// shutdown could only hang in the dead storage.
constexpr int kExitStorageFailure = 74;

void ExitOnStorageFailure(const Status& cause) {
  LogError("fatal storage error: " + cause.ToString() + "; exiting with code " +
           std::to_string(kExitStorageFailure) + " (acknowledged writes are durable)");
  _exit(kExitStorageFailure);
}

}  // namespace

Server::Server(const ServerOptions& options)
    : options_(options),
      frame_budget_(options.max_partial_frame_bytes),
      io_contexts_(MakeContexts(IoThreadCount(options))),
      acceptor_(*io_contexts_[0]),
      accept_retry_timer_(*io_contexts_[0]),
      signals_(*io_contexts_[0], SIGINT, SIGTERM) {
  limits_.max_frame_size = options.max_frame_size;
  limits_.max_in_flight = options.max_in_flight;
  limits_.max_queued_bytes = options.max_queued_bytes;
  limits_.subscriptions.max_per_connection = options.max_subscriptions_per_connection;
  limits_.subscriptions.max_pending_bytes = options.subscription_buffer_bytes;
  limits_.subscriptions.max_frame_size = options.max_frame_size;
  limits_.idle_timeout = std::chrono::seconds(options.idle_timeout_s);
  limits_.write_timeout = std::chrono::seconds(options.write_timeout_s);
  limits_.frame_timeout = std::chrono::seconds(options.frame_timeout_s);
  limits_.welcome.protocol_version = protocol::kProtocolVersion;
  limits_.welcome.server_version = STRATA_VERSION;
  limits_.welcome.max_frame_size = options.max_frame_size;
  limits_.welcome.max_in_flight = options.max_in_flight;
  for (auto& context : io_contexts_) work_guards_.push_back(asio::make_work_guard(*context));
}

Server::~Server() {
  // Run() normally stops everything; this covers a Server that never ran.
  // Joined but never ran (a --deploy refused at the start): the node's thread reaches the
  // replicas through on_view_change, and the engine through its ack gate, until they stop.
  if (cluster_) cluster_->Leave();
  replicas_ptr_.store(nullptr);
  replicas_.reset();
  work_guards_.clear();
  for (auto& context : io_contexts_) context->stop();
  for (std::thread& thread : io_threads_) thread.join();
  if (blocking_pool_) blocking_pool_->join();
}

Result<std::unique_ptr<Server>> Server::Create(const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server(options));
  STRATA_RETURN_IF_ERROR(server->Listen());
  if (options.http.enabled) {
    Result<std::unique_ptr<http::HttpService>> http =
        http::HttpService::Bind(options.http, server->counters_);
    if (!http.ok()) return http.status();
    server->http_ = std::move(http).value();
  }
  STRATA_RETURN_IF_ERROR(server->OpenEngine());
  // In a cluster, --deploy deploys across it, once joined.
  if (options.cluster.enabled) STRATA_RETURN_IF_ERROR(server->JoinCluster());
  STRATA_RETURN_IF_ERROR(server->DeployAtStart());
  return server;
}

Status Server::JoinCluster() {
  const ClusterSettings& settings = options_.cluster;
  cluster::ClusterNodeOptions node;
  Result<cluster::ClusterUrl> url = cluster::ParseClusterUrl(settings.url);
  if (!url.ok()) return url.status();  // checked by ParseCommandLine already
  node.url = *url;
  node.self.id = settings.node_id;
  node.self.advertise = settings.advertise.empty() ? listen_address() : settings.advertise;
  node.self.http = http_address();
  node.self.pid = getpid();
  node.self.started = cluster::IsoTimeNow();
  node.session_timeout = std::chrono::seconds(settings.session_timeout_s);
  node.connect_timeout = std::chrono::seconds(10);
  node.auto_rebalance_after = std::chrono::seconds(settings.auto_rebalance_s);
  node.log_info = [](const std::string& line) { LogInfo(line); };
  node.log_warning = [](const std::string& line) { LogWarning(line); };
  node.on_view_change = [this](const cluster::ClusterView& view) {
    if (cluster::ReplicaManager* replicas = replicas_ptr_.load()) {
      replicas->OnAssignments(cluster::AssignmentsOf(view), cluster::ModulesOf(view));
    }
  };
  cluster::ReplicaManagerOptions manager;
  manager.node_id = node.self.id;
  manager.incarnation = cluster::Incarnation(node.self);
  manager.replica_lag = std::chrono::seconds(settings.replica_lag_s);
  manager.log_retention = settings.log_retention;
  manager.request_isr_change = [this](const std::string& module, int group, int64_t epoch,
                                      const std::vector<std::string>& isr) -> Status {
    cluster::ClusterNode* joined = cluster_ptr_.load();
    if (joined == nullptr) return Status::Aborted("not joined yet");
    return joined->RequestIsrChange(module, group, epoch, isr);
  };
  manager.request_resign = [this](const std::string& module, int group, int64_t epoch,
                                  const std::vector<std::string>& isr) -> Status {
    cluster::ClusterNode* joined = cluster_ptr_.load();
    if (joined == nullptr) return Status::Aborted("not joined yet");
    return joined->RequestIsrChange(module, group, epoch, isr, /*resign=*/true);
  };
  manager.log_info = node.log_info;
  manager.log_warning = node.log_warning;
  replicas_ = std::make_unique<cluster::ReplicaManager>(*engine_, std::move(manager));
  replicas_ptr_.store(replicas_.get());
  Result<std::unique_ptr<cluster::ClusterNode>> joined = cluster::ClusterNode::Join(node);
  if (!joined.ok()) {
    return Status(joined.status().code(), "cannot join the cluster at " + url->ToString() +
                                              " as node " + settings.node_id + ": " +
                                              joined.status().message());
  }
  cluster_ = std::move(joined).value();
  cluster_ptr_.store(cluster_.get());
  cluster_service_ =
      std::make_unique<ClusterService>(*engine_, *cluster_, *replicas_, options_.max_frame_size);
  dispatcher_->SetCluster(cluster_service_.get());
  return Status::Ok();
}

Status Server::OpenEngine() {
  EngineOptions engine_options = options_.engine;
  engine_options.on_fatal_storage_error = ExitOnStorageFailure;
  engine_options.on_storage_warning = [](const std::string& warning) { LogWarning(warning); };
  engine_options.logger = std::make_shared<ServerLogger>();
  if (options_.cluster.enabled) {
    // A cluster node replicates (docs/cluster.md): appends are acknowledged once the
    // in-sync replicas have them.
    engine_options.replicated = true;
    engine_options.ack_gate = [this](const std::string& module,
                                     std::function<void(Status)> release) {
      cluster::ReplicaManager* replicas = replicas_ptr_.load();
      if (replicas == nullptr) {
        release(Status::Aborted("the node has not joined the cluster yet"));
        return;
      }
      replicas->GateAck(module, std::move(release));
    };
  }
  Result<std::unique_ptr<Engine>> engine = Engine::Open(engine_options);
  if (!engine.ok()) {
    if (engine.status().code() == StatusCode::kBusy) {
      return Status::Busy("another stratad is using " + options_.engine.data_dir + " (" +
                          engine.status().message() + ")");
    }
    return Status(engine.status().code(), "cannot open data directory " + options_.engine.data_dir +
                                              ": " + engine.status().message());
  }
  engine_ = std::move(engine).value();
  const unsigned pool_threads = std::max(4u, 2 * std::thread::hardware_concurrency());
  blocking_pool_ = std::make_unique<asio::thread_pool>(pool_threads);
  dispatcher_ =
      std::make_unique<Dispatcher>(*engine_, counters_, *blocking_pool_, options_.engine.data_dir);

  Result<std::vector<ModuleInfo>> modules = engine_->Modules();
  if (!modules.ok()) return modules.status();
  std::string names;
  size_t loaded = 0;
  for (const ModuleInfo& m : *modules) {
    if (!m.load_error.empty()) continue;
    names += (names.empty() ? "" : ", ") + m.name;
    ++loaded;
  }
  LogInfo("opened data directory " + options_.engine.data_dir + ": " + std::to_string(loaded) +
          " module(s) reloaded" + (names.empty() ? "" : " (" + names + ")"));
  for (const ModuleInfo& m : *modules) {
    if (m.load_error.empty()) continue;
    LogError("module " + m.name + " failed to load and serves no requests (the others do): " +
             m.load_error + "; its data is kept: destroy it, or restore its file and restart");
  }
  return Status::Ok();
}

Status Server::DeployAtStart() {
  // In passes, so that the order of --deploy does not matter: a module that depends on
  // another one given later (its deploy is refused until that one is deployed) is tried
  // again after it. The passes end when one deploys nothing more.
  std::vector<std::string> pending = options_.deploy;
  while (!pending.empty()) {
    std::vector<std::string> refused;
    Status first_refusal;
    for (const std::string& path : pending) {
      Result<ModuleInfo> info = dispatcher_->DeployFile(path, DeployOptions{}.partitions);
      if (info.ok()) {
        LogInfo("deployed module " + info->name + " from " + path + " (" +
                std::to_string(info->partitions) + " partitions)");
      } else if (info.status().code() == StatusCode::kAlreadyExists) {
        LogInfo("--deploy " + path + ": " + info.status().message() + "; keeping the deployed one");
      } else if (info.status().code() == StatusCode::kInvalidArgument &&
                 info.status().message().find("depends on what is missing") != std::string::npos) {
        if (first_refusal.ok()) first_refusal = info.status();
        refused.push_back(path);
      } else {
        return Status(info.status().code(), "--deploy " + path + ": " + info.status().message());
      }
    }
    if (refused.size() == pending.size()) {
      return Status(first_refusal.code(),
                    "--deploy " + refused.front() + ": " + first_refusal.message());
    }
    pending = std::move(refused);
  }
  return Status::Ok();
}

Status Server::Listen() {
  const std::string wanted = FormatListenAddress(options_.listen.host, options_.listen.port);
  std::error_code ec;
  asio::ip::tcp::resolver resolver(*io_contexts_[0]);
  auto results = resolver.resolve(options_.listen.host, std::to_string(options_.listen.port),
                                  asio::ip::tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return Status::InvalidArgument("cannot resolve listen address " + wanted + ": " +
                                   (ec ? ec.message() : "no address"));
  }
  const asio::ip::tcp::endpoint endpoint = results.begin()->endpoint();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::IOError("cannot listen on " + wanted + ": " + ec.message());
  return Status::Ok();
}

std::string Server::listen_address() const {
  std::error_code ec;
  const asio::ip::tcp::endpoint endpoint = acceptor_.local_endpoint(ec);
  if (ec) return "?";
  return FormatListenAddress(endpoint.address().to_string(), endpoint.port());
}

void Server::Accept() {
  asio::io_context& context = *io_contexts_[next_context_];
  next_context_ = (next_context_ + 1) % io_contexts_.size();
  acceptor_.async_accept(context, [this](const std::error_code& ec, asio::ip::tcp::socket socket) {
    OnAccepted(ec, std::move(socket));
  });
}

void Server::OnAccepted(const std::error_code& ec, asio::ip::tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
  if (ec) {
    // Typically out of file descriptors: wait a little instead of spinning.
    LogWarning("accepting a connection failed: " + ec.message() + "; retrying in 100 ms");
    accept_retry_timer_.expires_after(std::chrono::milliseconds(100));
    accept_retry_timer_.async_wait([this](const std::error_code& wait_ec) {
      if (!wait_ec && acceptor_.is_open()) Accept();
    });
    return;
  }
  try {
    // Under mu_ so that a shutdown either sees this connection (and drains it) or this
    // accept sees the shutdown.
    MutexLock lock(&mu_);
    if (stop_signal_.has_value()) return;  // the socket closes as it goes out of scope
    auto connection =
        std::make_shared<Connection>(std::move(socket), *dispatcher_, counters_, limits_,
                                     frame_budget_, [this](Connection* c) { Unregister(c); });
    connections_.emplace(connection.get(), connection);
    asio::post(connection->executor(), [connection] { connection->Start(); });
  } catch (const std::exception& e) {
    // Out of memory for one more connection: refuse it (its socket closes with the
    // Connection or as it goes out of scope), forget it, and keep accepting.
    LogError("setting up an accepted connection failed: " + std::string(e.what()) + "; closed it");
    MutexLock lock(&mu_);
    std::erase_if(connections_, [](const auto& entry) { return entry.second.expired(); });
  }
  Accept();
}

void Server::Unregister(Connection* connection) {
  MutexLock lock(&mu_);
  connections_.erase(connection);
  cv_.SignalAll();
}

void Server::OnSignal(const std::error_code& ec, int signal) {
  if (ec) return;
  MutexLock lock(&mu_);
  stop_signal_ = signal;
  cv_.SignalAll();
}

void Server::ForEachConnection(void (Connection::*action)()) {
  MutexLock lock(&mu_);
  for (auto& [raw, weak] : connections_) {
    if (std::shared_ptr<Connection> connection = weak.lock()) {
      asio::post(connection->executor(), [connection, action] { ((*connection).*action)(); });
    }
  }
}

bool Server::WaitForConnections(std::chrono::steady_clock::time_point deadline) {
  MutexLock lock(&mu_);
  while (!connections_.empty()) {
    if (!cv_.WaitUntil(&mu_, deadline)) return connections_.empty();
  }
  return true;
}

int Server::Run() {
  signals_.async_wait([this](const std::error_code& ec, int signal) { OnSignal(ec, signal); });
  Accept();
  for (auto& context : io_contexts_) {
    io_threads_.emplace_back([&context] { RunIoContext(*context); });
  }
  if (http_) http_->Start(*engine_, *dispatcher_, cluster_.get());
  LogInfo("serving with " + std::to_string(io_contexts_.size()) + " network thread(s)" +
          (http_ ? ", HTTP on " + http_->address() +
                       (options_.http.admin ? " (admin operations on)" : "")
                 : ""));

  size_t open = 0;
  int signal = 0;
  {
    MutexLock lock(&mu_);
    while (!stop_signal_.has_value()) cv_.Wait(&mu_);
    signal = *stop_signal_;
    open = connections_.size();
  }
  LogInfo("received " + SignalName(signal) + ": shutting down, draining " + std::to_string(open) +
          " connection(s)");
  if (cluster_) {
    // First, so that the other nodes see this one leave at once rather than after its
    // session timeout. The node object stays for /rest/cluster until HTTP has stopped.
    cluster_->Leave();
    LogInfo("cluster: left (ZooKeeper session closed)");
    // Appends waiting for replicas fail now (ABORTED): another node leads from here on.
    replicas_->Shutdown();
  }
  asio::post(*io_contexts_[0], [this] {
    std::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_timer_.cancel();
  });
  ForEachConnection(&Connection::Drain);
  // HTTP drains beside the binary connections: its requests in progress finish, idle
  // keep-alive connections close within kKeepAliveSeconds.
  std::thread http_stop([this] {
    if (http_) http_->Stop();
  });
  const auto deadline = std::chrono::steady_clock::now() + limits_.write_timeout + kDrainGrace;
  if (!WaitForConnections(deadline)) {
    LogWarning("connections still open at the shutdown deadline; closing them");
    ForEachConnection(&Connection::Abort);
    if (!WaitForConnections(std::chrono::steady_clock::now() + kDrainGrace)) {
      LogError("connections did not close; stopping anyway");
    }
  }
  http_stop.join();
  blocking_pool_->join();
  dispatcher_->SetCluster(nullptr);
  cluster_service_.reset();
  replicas_ptr_.store(nullptr);
  replicas_.reset();
  cluster_ptr_.store(nullptr);
  cluster_.reset();
  // The engine drains its queued work and flushes; late completions are posted to the
  // io_contexts, still running, where closed connections ignore them.
  const Status closed = engine_->Close();
  engine_.reset();
  int exit_code = 0;
  if (closed.ok()) {
    LogInfo("engine closed (final flush done)");
  } else {
    LogError("engine closed, but " + closed.message() +
             ": what was committed since the last successful flush may be lost");
    exit_code = 1;
  }
  work_guards_.clear();
  for (auto& context : io_contexts_) context->stop();
  for (std::thread& thread : io_threads_) thread.join();
  io_threads_.clear();
  LogInfo(exit_code == 0 ? "stopped" : "stopped after an error (exit code 1)");
  return exit_code;
}

}  // namespace strata::server
