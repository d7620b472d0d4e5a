#include "rest_api.h"

#include <future>
#include <memory>

#include <httplib.h>

#include "../cluster_service.h"
#include "event_streams.h"
#include "json_body.h"
#include "lag_history.h"
#include "rest_json.h"
#include "strata/json.h"
#include "strata/protocol/documents.h"

namespace strata::server::http {
namespace proto = strata::protocol;
using std::chrono::milliseconds;

namespace {

// The most records one append request may carry (docs/http.md).
constexpr size_t kMaxBatch = 10'000;
// The most depot records one read may ask for.
constexpr int64_t kMaxReadLimit = 10'000;
// Deploy, update and destroy may load and compile plans for a while: wait this long at least.
constexpr std::chrono::seconds kAdminWait{600};

std::string ErrorText(const Status& status) {
  return ErrorJson(proto::ErrorCodeFor(status), status.message());
}

// "/rest/a/b" -> {"a", "b"} (httplib has decoded %XX already); empty segments are kept so
// that "/rest//x" matches nothing.
std::vector<std::string> SegmentsAfterRest(const std::string& path) {
  std::vector<std::string> out;
  size_t start = std::string_view("/rest/").size();
  for (;;) {
    const size_t slash = path.find('/', start);
    out.push_back(
        path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) return out;
    start = slash + 1;
  }
}

// /rest/MODULE/pstate/PSTATE/subscribe
bool IsSubscribe(const std::vector<std::string>& path) {
  return path.size() == 4 && !path[0].empty() && path[1] == "pstate" && !path[2].empty() &&
         path[3] == "subscribe";
}

std::optional<std::string> Param(const httplib::Request& request, const char* name) {
  if (!request.has_param(name)) return std::nullopt;
  return request.get_param_value(name);
}

// "module" from "$$module"-free names: the API accepts PState names with or without "$$".
std::string PStateName(const std::string& name) {
  return name.rfind("$$", 0) == 0 ? name : "$$" + name;
}

}  // namespace

RestApi::RestApi(Dispatcher& dispatcher, ServerCounters& counters, const LagHistory& lag,
                 EventStreams& streams, const RestOptions& options,
                 const cluster::ClusterNode* cluster)
    : dispatcher_(dispatcher),
      counters_(counters),
      lag_(lag),
      streams_(streams),
      options_(options),
      cluster_(cluster) {}

void RestApi::Register(httplib::Server& server) {
  auto serve = [this](const httplib::Request& request, httplib::Response& response) {
    Serve(request, response);
  };
  constexpr const char* kPattern = R"(/rest/.*)";
  server.Get(kPattern, serve);
  server.Post(kPattern, serve);
  server.Delete(kPattern, serve);
  server.Put(kPattern, serve);
  server.Patch(kPattern, serve);
  // A request with neither Content-Length nor Transfer-Encoding has no body (RFC 9112,
  // 6.3), e.g. `curl -X POST URL`; httplib 0.11 would read one until the connection closes
  // (--http-timeout) and then answer 400. Such a request is served here, before httplib
  // reads, with its empty body.
  server.set_pre_routing_handler(
      [serve](const httplib::Request& request, httplib::Response& response) {
        const bool has_body_method =
            request.method == "POST" || request.method == "PUT" || request.method == "PATCH";
        if (!has_body_method || request.path.rfind("/rest/", 0) != 0 ||
            request.has_header("Content-Length") || request.has_header("Transfer-Encoding")) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        serve(request, response);
        return httplib::Server::HandlerResponse::Handled;
      });
}

void RestApi::Serve(const httplib::Request& request, httplib::Response& response) {
  const auto start = std::chrono::steady_clock::now();
  const Segments path = SegmentsAfterRest(request.path);
  if (request.method == "GET" && IsSubscribe(path)) {
    // An event stream: the response is written after this returns, on this thread
    // (event_streams.h); the latency observed is the subscription's start.
    streams_.Serve(request, response, path[0], PStateName(path[2]));
    counters_.requests.fetch_add(1, std::memory_order_relaxed);
    counters_.ObserveRequest("http", "subscribe", std::chrono::steady_clock::now() - start);
    return;
  }
  std::string_view kind = "not_found";
  Answer answer;
  try {
    answer = Route(request, path, &kind);
  } catch (const std::exception& e) {
    answer = {500,
              ErrorJson(proto::ErrorCode::kInternal, std::string("internal error: ") + e.what())};
  }
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  counters_.ObserveRequest("http", kind, std::chrono::steady_clock::now() - start);
  response.status = answer.status;
  if (answer.status == 503) response.set_header("Retry-After", "1");
  if (!answer.allow.empty()) response.set_header("Allow", answer.allow);
  response.set_content(std::move(answer.body), "application/json");
}

RestApi::Answer RestApi::Route(const httplib::Request& request, const Segments& path,
                               std::string_view* kind) {
  const std::string& method = request.method;
  // The methods a path shape answers; set by each match below, for the 405.
  const char* allowed = nullptr;
  auto is = [&](const char* m, const char* answers) {
    allowed = answers;
    return method == m;
  };
  auto admin = [&](std::string_view what) -> std::optional<Answer> {
    if (options_.admin) return std::nullopt;
    return Answer{403, ErrorJson(proto::ErrorCode::kUnsupported,
                                 std::string(what) +
                                     " is an admin operation (it runs module code): start "
                                     "stratad with --http-admin to serve it over HTTP, or use "
                                     "the shell or a driver on the binary protocol")};
  };
  const size_t n = path.size();
  const bool well_formed =
      std::none_of(path.begin(), path.end(), [](const std::string& s) { return s.empty(); });
  if (well_formed && n == 1 && path[0] == "modules") {
    if (is("GET", "GET, POST, PUT")) {
      *kind = "modules";
      return Reply<proto::ModuleList>(
          Call(proto::ListModulesRequest{}, request, milliseconds(options_.timeout)),
          ModuleListJson);
    }
    if (method == "POST") {
      *kind = "deploy";
      if (auto refused = admin("deploy")) return *refused;
      return Deploy(request);
    }
    if (method == "PUT") {
      *kind = "update";
      if (auto refused = admin("update")) return *refused;
      return Update(request);
    }
  } else if (well_formed && n == 1 && path[0] == "cluster") {
    if (is("GET", "GET")) {
      *kind = "cluster";
      if (cluster_ == nullptr) {
        return {404, ErrorJson(proto::ErrorCode::kNotFound,
                               "not in cluster mode: this stratad was started without --cluster "
                               "(docs/cluster.md)")};
      }
      return {200, ToJson(ClusterJson(cluster_->View()))};
    }
  } else if (well_formed && n == 1 && path[0] == "stats") {
    if (is("GET", "GET")) {
      *kind = "stats";
      return Stats(request, "");
    }
  } else if (well_formed && n == 1) {
    if (is("GET", "GET, DELETE")) {
      *kind = "describe";
      return Reply<proto::ModuleInfo>(
          Call(proto::DescribeRequest{path[0]}, request, milliseconds(options_.timeout)),
          proto::ModuleDocument);
    }
    if (method == "DELETE") {
      *kind = "destroy";
      if (auto refused = admin("destroy")) return *refused;
      return Destroy(request, path[0]);
    }
  } else if (well_formed && n == 2 && path[1] == "replica") {
    if (is("GET", "GET")) {
      *kind = "replica";
      ClusterService* cluster = dispatcher_.cluster();
      if (cluster == nullptr) {
        return {404, ErrorJson(proto::ErrorCode::kNotFound,
                               "not in cluster mode: this stratad was started without --cluster "
                               "(docs/cluster.md)")};
      }
      Result<Value> state = cluster->ReplicaState(path[0]);
      if (!state.ok()) {
        // 404 when this node holds no copy; a copy that cannot be read is not "no copy".
        const proto::ErrorCode code = proto::ErrorCodeFor(state.status());
        return {HttpStatusFor(code), ErrorJson(code, state.status().message())};
      }
      return {200, ToJson(*state)};
    }
  } else if (well_formed && n == 2 && path[1] == "stats") {
    if (is("GET", "GET")) {
      *kind = "stats";
      return Stats(request, path[0]);
    }
  } else if (well_formed && n == 2 && path[1] == "lag") {
    if (is("GET", "GET")) {
      *kind = "lag";
      // Answers NOT_FOUND for an unknown module, as every other endpoint.
      const proto::Response described =
          Call(proto::DescribeRequest{path[0]}, request, milliseconds(options_.timeout));
      return Reply<proto::ModuleInfo>(described,
                                      [&](const proto::ModuleInfo&) { return lag_.Of(path[0]); });
    }
  } else if (well_formed && n == 2 && path[1] == "recompute") {
    if (is("POST", "POST")) {
      *kind = "recompute";
      if (auto refused = admin("recompute")) return *refused;
      return Recompute(request, path[0]);
    }
  } else if (well_formed && n == 3 && path[1] == "depot") {
    if (is("GET", "GET")) {
      *kind = "read_depot";
      return ReadDepot(request, path[0], path[2]);
    }
  } else if (well_formed && n == 4 && path[1] == "depot" && path[3] == "append") {
    if (is("POST", "POST")) {
      *kind = "append";
      return Append(request, path[0], path[2]);
    }
  } else if (well_formed && n == 4 && path[1] == "pstate" &&
             (path[3] == "select" || path[3] == "selectOne" || path[3] == "page")) {
    if (is("POST", "POST")) {
      if (path[3] == "page") {
        *kind = "select_page";
        return Page(request, path[0], path[2]);
      }
      const bool one = path[3] == "selectOne";
      *kind = one ? "select_one" : "select";
      return Select(request, path[0], path[2], one);
    }
  } else if (IsSubscribe(path)) {
    allowed = "GET";  // served by Serve, before Route
  } else if (well_formed && n == 4 && path[1] == "query" && path[3] == "invoke") {
    if (is("POST", "POST")) {
      *kind = "invoke";
      return Invoke(request, path[0], path[2]);
    }
  }
  if (allowed != nullptr) {
    *kind = "method_not_allowed";
    return {405,
            ErrorJson(proto::ErrorCode::kUnsupported,
                      request.path + " answers " + allowed + ", not " + method),
            allowed};
  }
  return {404, ErrorJson(proto::ErrorCode::kNotFound,
                         "no endpoint " + method + " " + request.path +
                             " (the endpoints are listed in docs/http.md)")};
}

proto::Response RestApi::Call(proto::RequestBody body, const httplib::Request& request,
                              milliseconds wait) {
  if (Status checked = proto::Validate(body); !checked.ok()) {
    return ErrorResponse(0, proto::ErrorCode::kInvalidArgument, checked.message());
  }
  proto::Request call{0, std::move(body)};
  if (std::optional<proto::Response> answer = dispatcher_.AnswerInline(call)) return *answer;
  auto promise = std::make_shared<std::promise<proto::Response>>();
  std::future<proto::Response> future = promise->get_future();
  dispatcher_.Dispatch(
      std::move(call), "http " + request.remote_addr + ":" + std::to_string(request.remote_port),
      [promise](proto::Response response) { promise->set_value(std::move(response)); });
  if (future.wait_for(wait) != std::future_status::ready) {
    return ErrorResponse(
        0, proto::ErrorCode::kTimeout,
        "no answer within " + std::to_string(wait.count() / 1000) +
            " s (--http-timeout-s); the request goes on in the server and is not undone");
  }
  return future.get();
}

template <typename T, typename F>
RestApi::Answer RestApi::Reply(const proto::Response& response, F&& to_json, int status) {
  if (response.error) {
    return {HttpStatusFor(response.error->code),
            ErrorJson(response.error->code, response.error->message, response.error->leader)};
  }
  const T* body = std::get_if<T>(&response.body);
  if (body == nullptr) {
    return {500, ErrorJson(proto::ErrorCode::kInternal, "the server answered with another type")};
  }
  return {status, ToJson(to_json(*body))};
}

RestApi::Answer RestApi::Append(const httplib::Request& request, const std::string& module,
                                const std::string& depot) {
  Result<JsonBody> body = JsonBody::Parse(request.body);
  if (!body.ok()) return {400, ErrorText(body.status())};
  proto::AppendRequest append{module, depot, {}, proto::AckLevel::kProcessed};
  Result<std::string> ack = body->String("ack", "processed");
  if (!ack.ok()) return {400, ErrorText(ack.status())};
  if (!ParseAckLevel(*ack, &append.ack)) {
    return {400, ErrorJson(proto::ErrorCode::kInvalidArgument,
                           "field \"ack\" is \"" + *ack +
                               "\", not one of none, appended, processed_streams, processed")};
  }
  const Value* data = body->Find("data");
  const Value* batch = body->Find("batch");
  if ((data == nullptr) == (batch == nullptr)) {
    return {400, ErrorJson(proto::ErrorCode::kInvalidArgument,
                           std::string("the request body needs one of \"data\" (a record) and "
                                       "\"batch\" (a list of records), has ") +
                               (data == nullptr ? "neither" : "both"))};
  }
  if (data != nullptr) {
    append.records.push_back(*data);
  } else {
    if (!batch->is_list() || batch->as_list().empty() || batch->as_list().size() > kMaxBatch) {
      return {400, ErrorJson(proto::ErrorCode::kInvalidArgument,
                             "field \"batch\" must be a list of 1 to " + std::to_string(kMaxBatch) +
                                 " records")};
    }
    append.records = batch->as_list();
  }
  const proto::Response response = Call(std::move(append), request, milliseconds(options_.timeout));
  return Reply<proto::Appended>(response, [&](const proto::Appended& appended) {
    if (data != nullptr && appended.results.size() == 1) {
      return proto::AppendResultDocument(appended.results[0]);
    }
    Value::List results;
    results.reserve(appended.results.size());
    for (const proto::AppendResult& r : appended.results)
      results.push_back(proto::AppendResultDocument(r));
    return Object({{"results", Value(std::move(results))}});
  });
}

RestApi::Answer RestApi::Select(const httplib::Request& request, const std::string& module,
                                const std::string& pstate, bool one) {
  Result<JsonBody> body = JsonBody::Parse(request.body);
  if (!body.ok()) return {400, ErrorText(body.status())};
  proto::SelectRequest select{module, PStateName(pstate), Value(Value::List{}), std::nullopt, one};
  if (const Value* path = body->Find("path")) select.path = *path;
  if (const Value* key = body->Find("partition_key")) select.partition_key = *key;
  const proto::Response response = Call(std::move(select), request, milliseconds(options_.timeout));
  return Reply<proto::Selected>(response, [&](const proto::Selected& selected) {
    if (one) return Object({{"value", selected.values.empty() ? Value() : selected.values[0]}});
    return Object({{"values", Value(selected.values)}});
  });
}

RestApi::Answer RestApi::Page(const httplib::Request& request, const std::string& module,
                              const std::string& pstate) {
  Result<JsonBody> body = JsonBody::Parse(request.body);
  if (!body.ok()) return {400, ErrorText(body.status())};
  proto::SelectPageRequest page{module, PStateName(pstate), Value(Value::List{}), "", 100};
  if (const Value* path = body->Find("path")) page.path = *path;
  Result<int64_t> limit = body->Int("limit", 100);
  if (!limit.ok()) return {400, ErrorText(limit.status())};
  page.limit = *limit;
  if (const Value* token = body->Find("token"); token != nullptr && !token->is_nil()) {
    if (!token->is_bytes()) {
      return {400, ErrorJson(proto::ErrorCode::kInvalidArgument,
                             "field \"token\" must be the next_token of the previous page, "
                             "unchanged (a {\"$bytes\": …} value)")};
    }
    page.token = token->as_bytes();
  }
  const proto::Response response = Call(std::move(page), request, milliseconds(options_.timeout));
  return Reply<proto::SelectedPage>(response, [](const proto::SelectedPage& p) {
    return Object({{"values", Value(p.values)},
                   {"next_token", p.next_token.empty() ? Value() : Value::BytesOf(p.next_token)}});
  });
}

RestApi::Answer RestApi::Invoke(const httplib::Request& request, const std::string& module,
                                const std::string& query) {
  Result<JsonBody> body = JsonBody::Parse(request.body);
  if (!body.ok()) return {400, ErrorText(body.status())};
  Result<Value::List> args = body->List("args");
  if (!args.ok()) return {400, ErrorText(args.status())};
  Result<int64_t> timeout_ms = body->Int("timeout_ms", 10'000);
  if (!timeout_ms.ok()) return {400, ErrorText(timeout_ms.status())};
  // Wait for the query's own timeout (plus a margin for its answer), at least the usual.
  const milliseconds wait = std::max<milliseconds>(
      options_.timeout, milliseconds(std::max<int64_t>(*timeout_ms, 0) + 1000));
  const proto::Response response = Call(
      proto::InvokeRequest{module, query, std::move(args).value(), *timeout_ms}, request, wait);
  return Reply<proto::Invoked>(response, [](const proto::Invoked& invoked) {
    return Object({{"result", invoked.result}});
  });
}

RestApi::Answer RestApi::ReadDepot(const httplib::Request& request, const std::string& module,
                                   const std::string& depot) {
  proto::ReadDepotRequest read{module, depot};
  Result<int64_t> partition = IntParam("partition", Param(request, "partition"), 0, 0, INT32_MAX);
  Result<int64_t> from = IntParam("from", Param(request, "from"), 0, 0, INT64_MAX);
  Result<int64_t> to = IntParam("to", Param(request, "to"), INT64_MAX, 0, INT64_MAX);
  Result<int64_t> limit = IntParam("limit", Param(request, "limit"), 100, 1, kMaxReadLimit);
  for (const Status& s : {partition.status(), from.status(), to.status(), limit.status()}) {
    if (!s.ok()) return {400, ErrorText(s)};
  }
  read.partition = static_cast<int>(*partition);
  read.from = *from;
  read.to = *to;
  read.limit = *limit;
  const proto::Response response = Call(std::move(read), request, milliseconds(options_.timeout));
  return Reply<proto::DepotRecords>(response, [&](const proto::DepotRecords& records) {
    return DepotRecordsJson(records, *from);
  });
}

RestApi::Answer RestApi::Stats(const httplib::Request& request, const std::string& module) {
  Result<int64_t> from =
      IntParam("failures_from", Param(request, "failures_from"), 0, 0, INT64_MAX);
  Result<int64_t> limit = IntParam("failures_limit", Param(request, "failures_limit"), 100, 0,
                                   proto::kMaxStatsFailuresLimit);
  for (const Status& s : {from.status(), limit.status()}) {
    if (!s.ok()) return {400, ErrorText(s)};
  }
  const proto::Response response =
      Call(proto::StatsRequest{module, *from, *limit}, request, milliseconds(options_.timeout));
  return Reply<proto::StatsResult>(response, [&](const proto::StatsResult& stats) {
    if (module.empty()) return StatsJson(stats);
    // One module asked for: the engine answered NOT_FOUND otherwise.
    return stats.modules.empty() ? Value::EmptyMap() : proto::ModuleStatsDocument(stats.modules[0]);
  });
}

namespace {

bool IsModuleBytes(const httplib::Request& request) {
  return request.get_header_value("Content-Type").rfind("application/octet-stream", 0) == 0;
}

}  // namespace

RestApi::Answer RestApi::Deploy(const httplib::Request& request) {
  proto::DeployRequest deploy;
  Result<int64_t> partitions =
      IntParam("partitions", Param(request, "partitions"), 8, 1, proto::kMaxPartitions);
  if (!partitions.ok()) return {400, ErrorText(partitions.status())};
  deploy.partitions = static_cast<int>(*partitions);
  if (IsModuleBytes(request)) {
    deploy.so_bytes = request.body;
  } else {
    Result<JsonBody> body = JsonBody::Parse(request.body);
    if (!body.ok()) return {400, ErrorText(body.status())};
    Result<std::string> path = body->String("path", "");
    Result<int64_t> count = body->Int("partitions", deploy.partitions);
    for (const Status& s : {path.status(), count.status()}) {
      if (!s.ok()) return {400, ErrorText(s)};
    }
    deploy.path = *path;
    deploy.partitions = static_cast<int>(std::clamp<int64_t>(*count, -1, INT32_MAX));
  }
  const proto::Response response =
      Call(std::move(deploy), request, std::max<milliseconds>(options_.timeout, kAdminWait));
  return Reply<proto::ModuleInfo>(response, proto::ModuleDocument, 201);
}

RestApi::Answer RestApi::Update(const httplib::Request& request) {
  proto::UpdateRequest update;
  if (IsModuleBytes(request)) {
    update.so_bytes = request.body;
    Result<int64_t> partitions =
        IntParam("partitions", Param(request, "partitions"), 0, 0, proto::kMaxPartitions);
    if (!partitions.ok()) return {400, ErrorText(partitions.status())};
    update.partitions = static_cast<int>(*partitions);
    if (std::optional<std::string> drop = Param(request, "drop")) {
      for (size_t start = 0; start <= drop->size();) {
        const size_t comma = std::min(drop->find(',', start), drop->size());
        update.drop.push_back(drop->substr(start, comma - start));
        start = comma + 1;
      }
    }
    update.new_topologies_from_end = Param(request, "new_topologies_from_end") == "true";
  } else {
    Result<JsonBody> body = JsonBody::Parse(request.body);
    if (!body.ok()) return {400, ErrorText(body.status())};
    Result<std::string> path = body->String("path", "");
    Result<int64_t> partitions = body->Int("partitions", 0);
    Result<std::vector<std::string>> drop = body->Names("drop");
    Result<bool> from_end = body->Bool("new_topologies_from_end", false);
    for (const Status& s : {path.status(), partitions.status(), drop.status(), from_end.status()}) {
      if (!s.ok()) return {400, ErrorText(s)};
    }
    update.path = *path;
    update.partitions = static_cast<int>(std::clamp<int64_t>(*partitions, -1, INT32_MAX));
    update.drop = *drop;
    update.new_topologies_from_end = *from_end;
  }
  const proto::Response response =
      Call(std::move(update), request, std::max<milliseconds>(options_.timeout, kAdminWait));
  return Reply<proto::Updated>(response, proto::UpdatedDocument);
}

RestApi::Answer RestApi::Recompute(const httplib::Request& request, const std::string& module) {
  Result<JsonBody> body = JsonBody::Parse(request.body);
  if (!body.ok()) return {400, ErrorText(body.status())};
  Result<std::vector<std::string>> pstates = body->Names("pstates");
  if (!pstates.ok()) return {400, ErrorText(pstates.status())};
  const proto::Response response = Call(proto::RecomputeRequest{module, *pstates}, request,
                                        std::max<milliseconds>(options_.timeout, kAdminWait));
  return Reply<proto::RecomputeStarted>(response, [](const proto::RecomputeStarted& started) {
    Value::List names;
    for (const std::string& p : started.pstates) names.emplace_back(p);
    return Object({{"module", started.module}, {"pstates", Value(std::move(names))}});
  });
}

RestApi::Answer RestApi::Destroy(const httplib::Request& request, const std::string& module) {
  const std::string confirm = Param(request, "confirm").value_or("");
  const proto::Response response = Call(proto::DestroyRequest{module, confirm}, request,
                                        std::max<milliseconds>(options_.timeout, kAdminWait));
  return Reply<proto::Destroyed>(response, [](const proto::Destroyed& destroyed) {
    return Object({{"module", destroyed.module}});
  });
}

}  // namespace strata::server::http
