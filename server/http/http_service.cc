#include "http_service.h"

#include <unistd.h>

#include <filesystem>

#include <httplib.h>

#include "../log.h"
#include "../metrics.h"
#include "event_streams.h"
#include "http_server.h"
#include "lag_history.h"
#include "rest_api.h"
#include "rest_json.h"

namespace strata::server::http {

std::string DefaultConsoleDir() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "share/strata/console";
  return (exe.parent_path().parent_path() / "share" / "strata" / "console").string();
}

HttpService::HttpService(const HttpSettings& settings, ServerCounters& counters)
    : settings_(settings),
      counters_(counters),
      server_(std::make_unique<HttpServer>(settings, counters.http_open_connections,
                                           counters.http_total_connections)) {}

HttpService::~HttpService() { Stop(); }

Result<std::unique_ptr<HttpService>> HttpService::Bind(const HttpSettings& settings,
                                                       ServerCounters& counters) {
  std::unique_ptr<HttpService> service(new HttpService(settings, counters));
  STRATA_RETURN_IF_ERROR(service->server_->Bind(settings.listen.host, settings.listen.port));
  return service;
}

std::string HttpService::address() const {
  return FormatListenAddress(settings_.listen.host, server_->port());
}

void HttpService::Start(Engine& engine, Dispatcher& dispatcher,
                        const cluster::ClusterNode* cluster) {
  lag_ = std::make_unique<LagHistory>(engine);
  streams_ =
      std::make_unique<EventStreams>(engine, counters_, EventStreamLimits{settings_.max_streams});
  rest_ = std::make_unique<RestApi>(
      dispatcher, counters_, *lag_, *streams_,
      RestOptions{settings_.admin, std::chrono::seconds(settings_.timeout_s)}, cluster);
  httplib::Server& routes = server_->routes();
  rest_->Register(routes);
  routes.Get("/metrics", [this, &engine, cluster](const httplib::Request&,
                                                  httplib::Response& response) {
    const auto start = std::chrono::steady_clock::now();
    response.set_content(PrometheusText(engine, counters_, cluster), "text/plain; version=0.0.4");
    counters_.ObserveRequest("http", "metrics", std::chrono::steady_clock::now() - start);
  });

  const std::string console =
      settings_.console_dir.empty() ? DefaultConsoleDir() : settings_.console_dir;
  if (std::filesystem::is_regular_file(std::filesystem::path(console) / "index.html")) {
    routes.set_mount_point("/", console);
  } else {
    LogWarning("the web console's files are not in " + console +
               " (no index.html): / answers 404; give their directory with --console-dir");
  }
  // Errors httplib answers itself (413 for a body over --http-max-body, 400 for a request
  // it cannot parse, 404 for a path nothing serves) get the API's JSON error body too.
  routes.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& request, httplib::Response& response) {
        if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        protocol::ErrorCode code = protocol::ErrorCode::kInvalidArgument;
        std::string message = "bad request";
        if (response.status == 404) {
          code = protocol::ErrorCode::kNotFound;
          message = "nothing at " + request.method + " " + request.path +
                    " (the REST API is under /rest/, docs/http.md)";
        } else if (response.status == 413) {
          code = protocol::ErrorCode::kFrameTooLarge;
          message = "the request body is larger than --http-max-body";
        } else if (response.status == 414 || response.status == 431) {
          message = "the request line or headers are too long (8 KiB each at most)";
        } else if (response.status >= 500) {
          code = protocol::ErrorCode::kInternal;
          message = "internal error";
        }
        response.set_content(ErrorJson(code, message), "application/json");
        return httplib::Server::HandlerResponse::Handled;
      }));
  routes.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        LogError("an HTTP handler failed: " + what);
        response.status = 500;
        response.set_content(ErrorJson(protocol::ErrorCode::kInternal, "internal error: " + what),
                             "application/json");
      });
  server_->Start();
}

void HttpService::Stop() {
  // A stream holds its worker thread until it ends: end them first, or joining the threads
  // would wait for their clients.
  if (streams_) streams_->Shutdown();
  server_->Stop();
  rest_.reset();
  streams_.reset();
  lag_.reset();
}

}  // namespace strata::server::http
