// The REST API (docs/http.md): every /rest/… request becomes the binary protocol's request
// and goes through the same Validate and Dispatcher as one from the wire, so both answer
// alike; the answer is printed as JSON (rest_json.h).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "../dispatcher.h"
#include "cluster_node.h"
#include "strata/protocol/messages.h"
#include "strata/value.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace strata::server::http {

class LagHistory;
class EventStreams;

struct RestOptions {
  bool admin = false;                // serve deploy, update, recompute and destroy
  std::chrono::seconds timeout{30};  // longest wait for an answer (queries: their own timeout)
};

class RestApi {
 public:
  // All references, and `cluster` (null without --cluster), outlive the RestApi and every
  // request in flight.
  RestApi(Dispatcher& dispatcher, ServerCounters& counters, const LagHistory& lag,
          EventStreams& streams, const RestOptions& options,
          const cluster::ClusterNode* cluster = nullptr);

  // Routes /rest/… of `server` here.
  void Register(httplib::Server& server);

 private:
  // The JSON text and HTTP status of one answer.
  struct Answer {
    Answer(int status_ = 200, std::string body_ = {}, std::string allow_ = {})
        : status(status_), body(std::move(body_)), allow(std::move(allow_)) {}
    int status;
    std::string body;
    std::string allow;  // the Allow header of a 405
  };
  using Segments = std::vector<std::string>;

  void Serve(const httplib::Request& request, httplib::Response& response);
  Answer Route(const httplib::Request& request, const Segments& path, std::string_view* kind);
  // Runs one protocol request through the dispatcher and waits up to `wait` for it.
  protocol::Response Call(protocol::RequestBody body, const httplib::Request& request,
                          std::chrono::milliseconds wait);
  // The answer for `response`: its error, or `to_json` of its body of type T.
  template <typename T, typename F>
  static Answer Reply(const protocol::Response& response, F&& to_json, int status = 200);

  Answer Append(const httplib::Request& request, const std::string& module,
                const std::string& depot);
  Answer Select(const httplib::Request& request, const std::string& module,
                const std::string& pstate, bool one);
  Answer Page(const httplib::Request& request, const std::string& module,
              const std::string& pstate);
  Answer Invoke(const httplib::Request& request, const std::string& module,
                const std::string& query);
  Answer ReadDepot(const httplib::Request& request, const std::string& module,
                   const std::string& depot);
  Answer Stats(const httplib::Request& request, const std::string& module);
  Answer Deploy(const httplib::Request& request);
  // The module the new build names (its name is in the build, not in the URL).
  Answer Update(const httplib::Request& request);
  Answer Recompute(const httplib::Request& request, const std::string& module);
  Answer Destroy(const httplib::Request& request, const std::string& module);

  Dispatcher& dispatcher_;
  ServerCounters& counters_;
  const LagHistory& lag_;
  EventStreams& streams_;  // GET …/pstate/PSTATE/subscribe
  const RestOptions options_;
  const cluster::ClusterNode* const cluster_;  // GET /rest/cluster
};

}  // namespace strata::server::http
