// The HTTP listener of stratad (docs/http.md): cpp-httplib's blocking server with its
// threads, queue and memory bounded. It knows nothing of the routes: the REST API, the
// metrics and the console register theirs through routes() before Start().
//
// Why cpp-httplib: Debian ships it as a maintained library (0.11) whose blocking handlers
// fit the Dispatcher's blocking calls one to one, with body, header and timeout limits
// built in; Boost.Beast would add Boost.Asio next to the standalone Asio of the binary
// protocol and leave the server loop (accept, keep-alive, limits) to us.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "../server_options.h"
#include "strata/status.h"

namespace httplib {
class Server;
}

namespace strata::server::http {

// An idle keep-alive connection is closed after this long, and after this many requests.
inline constexpr int kKeepAliveSeconds = 5;
inline constexpr size_t kKeepAliveRequests = 10'000;

class HttpServer {
 public:
  // `open_connections` and `total_connections` count the connections being served
  // (server-wide counters owned by the caller, which outlive this object).
  // Threads, body size and timeouts from `settings`.
  HttpServer(const HttpSettings& settings, std::atomic<int64_t>& open_connections,
             std::atomic<int64_t>& total_connections);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: any). kIoError naming the address when it cannot be bound.
  Status Bind(const std::string& host, uint16_t port);
  uint16_t port() const { return port_; }

  // Register routes here before Start().
  httplib::Server& routes() { return *server_; }

  // Serves on a thread of its own until Stop().
  void Start();
  // Stops accepting, lets requests in progress finish (an idle keep-alive connection is
  // closed within kKeepAliveSeconds) and joins the threads. Idempotent.
  void Stop();

 private:
  std::unique_ptr<httplib::Server> server_;
  uint16_t port_ = 0;
  std::thread listen_thread_;
};

}  // namespace strata::server::http
