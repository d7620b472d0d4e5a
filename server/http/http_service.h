// stratad's HTTP side (docs/http.md): the listener, the REST API under /rest/, the
// Prometheus exposition at /metrics and the web console's files at /. Bound before the
// engine opens (a port in use fails the start before anything is written), started once
// the dispatcher exists.
#pragma once

#include <memory>
#include <string>

#include "../dispatcher.h"
#include "../server_options.h"
#include "cluster_node.h"
#include "strata/engine.h"
#include "strata/status.h"

namespace strata::server::http {

class HttpServer;
class RestApi;
class LagHistory;
class EventStreams;

class HttpService {
 public:
  // Binds settings.listen. `counters` outlives the service.
  static Result<std::unique_ptr<HttpService>> Bind(const HttpSettings& settings,
                                                   ServerCounters& counters);
  ~HttpService();

  // "HOST:PORT" bound (the real port when port 0 was asked for).
  std::string address() const;

  // Serves until Stop(). `engine`, `dispatcher` and `cluster` (null without --cluster)
  // outlive the service (or its Stop()).
  void Start(Engine& engine, Dispatcher& dispatcher, const cluster::ClusterNode* cluster);
  // Ends the subscription streams (an `ended` event), stops accepting and waits for the
  // requests in progress (idempotent).
  void Stop();

 private:
  HttpService(const HttpSettings& settings, ServerCounters& counters);

  const HttpSettings settings_;
  ServerCounters& counters_;
  std::unique_ptr<HttpServer> server_;
  std::unique_ptr<LagHistory> lag_;
  std::unique_ptr<EventStreams> streams_;
  std::unique_ptr<RestApi> rest_;
};

// The console's directory when --console-dir is not given: share/strata/console beside the
// bin/ directory of the running stratad (both in the build tree and when installed).
std::string DefaultConsoleDir();

}  // namespace strata::server::http
