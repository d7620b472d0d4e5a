#include "dispatcher.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <utility>

#include <asio/post.hpp>

#include "cluster_service.h"
#include "log.h"

namespace strata::server {

namespace fs = std::filesystem;
namespace proto = protocol;

std::string_view RequestKindName(const proto::RequestBody& body) {
  struct Kind {
    std::string_view operator()(const proto::Hello&) const { return "hello"; }
    std::string_view operator()(const proto::DeployRequest&) const { return "deploy"; }
    std::string_view operator()(const proto::ListModulesRequest&) const { return "modules"; }
    std::string_view operator()(const proto::DescribeRequest&) const { return "describe"; }
    std::string_view operator()(const proto::DestroyRequest&) const { return "destroy"; }
    std::string_view operator()(const proto::AppendRequest&) const { return "append"; }
    std::string_view operator()(const proto::SelectRequest& r) const {
      return r.one ? "select_one" : "select";
    }
    std::string_view operator()(const proto::ReadDepotRequest&) const { return "read_depot"; }
    std::string_view operator()(const proto::StatsRequest&) const { return "stats"; }
    std::string_view operator()(const proto::UpdateRequest&) const { return "update"; }
    std::string_view operator()(const proto::RecomputeRequest&) const { return "recompute"; }
    std::string_view operator()(const proto::InvokeRequest&) const { return "invoke"; }
    std::string_view operator()(const proto::SelectPageRequest&) const { return "select_page"; }
    std::string_view operator()(const proto::SubscribeRequest&) const { return "subscribe"; }
    std::string_view operator()(const proto::UnsubscribeRequest&) const { return "unsubscribe"; }
    std::string_view operator()(const proto::PlacementRequest&) const { return "placement"; }
    std::string_view operator()(const proto::ReplicaFetchRequest&) const { return "replica_fetch"; }
    std::string_view operator()(const proto::ReplicaEpochRequest&) const { return "replica_epoch"; }
    std::string_view operator()(const proto::ModuleFileRequest&) const { return "module_file"; }
    std::string_view operator()(const proto::ReplicaSnapshotRequest&) const {
      return "replica_snapshot";
    }
    std::string_view operator()(const proto::RebalanceRequest&) const { return "rebalance"; }
  };
  return std::visit(Kind{}, body);
}

proto::Response ErrorResponse(uint64_t id, proto::ErrorCode code, std::string message) {
  proto::Response response;
  response.id = id;
  response.error = proto::Error{code, std::move(message)};
  return response;
}

namespace {

proto::Response FromStatus(uint64_t id, const Status& status) {
  return ErrorResponse(id, proto::ErrorCodeFor(status), status.message());
}

// The error of an engine call on an uploaded module: the temporary file's name means
// nothing to the client that sent the bytes, so the message names the upload instead.
proto::Response FromUploadStatus(uint64_t id, const Status& status, const std::string& upload,
                                 size_t bytes) {
  std::string message = status.message();
  const std::string name = "the uploaded module (" + std::to_string(bytes) + " bytes)";
  for (size_t at = message.find(upload); at != std::string::npos;
       at = message.find(upload, at + name.size())) {
    message.replace(at, upload.size(), name);
  }
  return ErrorResponse(id, proto::ErrorCodeFor(status), std::move(message));
}

proto::Response Body(uint64_t id, proto::ResponseBody body) {
  proto::Response response;
  response.id = id;
  response.body = std::move(body);
  return response;
}

// The wire accepts names with or without their sigil (protocol/strata.fbs); the engine
// knows them with it.
std::string WithSigil(const std::string& name, std::string_view sigil) {
  if (name.starts_with(sigil)) return name;
  return std::string(sigil) + name;
}

proto::ModuleInfo ToWire(const ModuleInfo& info) {
  proto::ModuleInfo out;
  out.name = info.name;
  out.partitions = info.partitions;
  for (const DepotInfo& d : info.depots) {
    out.depots.push_back(
        {d.name, d.partitioning, d.record_schema.ToValue(), d.record_schema.ToString()});
  }
  for (const PStateInfo& p : info.pstates) {
    out.pstates.push_back({p.name, p.schema.ToValue(), p.schema.ToString()});
  }
  for (const TopologyInfo& t : info.topologies) {
    out.topologies.push_back({t.name, t.sources, t.kind});
  }
  for (const QueryInfo& q : info.queries) {
    proto::QueryInfo query{q.name, {}};
    for (const auto& [name, schema] : q.params) {
      query.params.push_back({name, schema.ToValue(), schema.ToString()});
    }
    out.queries.push_back(std::move(query));
  }
  out.depends_on = info.depends_on;
  out.dependents = info.dependents;
  out.load_error = info.load_error;
  out.version = info.version;
  return out;
}

proto::ModuleStats ToWire(const ModuleStats& stats) {
  proto::ModuleStats out;
  out.module = stats.module;
  for (const DepotPartitionStats& d : stats.depots) {
    out.depots.push_back({d.depot, d.partition, d.start_offset, d.end_offset});
  }
  for (const TopologyPartitionStats& t : stats.topologies) {
    out.topologies.push_back({t.topology, t.depot, t.partition, t.processed_offset, t.lag});
  }
  out.failures = stats.failures;
  for (const TopologyFailure& f : stats.failure_page) {
    out.failure_page.push_back({f.topology, f.depot, f.partition, f.offset, f.message});
  }
  out.load_error = stats.load_error;
  for (const ModuleStats::Microbatch& mb : stats.microbatches) {
    out.microbatches.push_back({mb.topology, mb.batch, mb.stalled});
  }
  for (const RebuildProgress& r : stats.rebuilds) {
    out.rebuilds.push_back({r.kind, r.names, r.records_done, r.records_total});
  }
  return out;
}

std::string Joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "" : ", ") + name;
  return out.empty() ? "none" : out;
}

// Where a module file of a deploy or update comes from, for the log.
std::string SourceOf(const std::string& path, const std::string& so_bytes) {
  return so_bytes.empty() ? "path " + path
                          : "an upload of " + std::to_string(so_bytes.size()) + " bytes";
}

proto::Response InternalError(uint64_t id, std::string_view what) {
  LogError("request " + std::to_string(id) +
           " failed with an internal error: " + std::string(what));
  return ErrorResponse(id, proto::ErrorCode::kInternal,
                       "internal server error while processing request " + std::to_string(id) +
                           ": " + std::string(what));
}

// Builds a response; an exception (bad_alloc, a bug) becomes an INTERNAL answer to this
// request, logged, so that it never escapes into a pool or engine thread (which would end
// stratad) and the request is still answered.
template <typename Make>
proto::Response ResponseOrInternal(uint64_t id, Make&& make) {
  try {
    return make();
  } catch (const std::exception& e) {
    return InternalError(id, e.what());
  } catch (...) {
    return InternalError(id, "an exception that is not a std::exception");
  }
}

// Replies with make()'s response (see ResponseOrInternal). When even that throws (out of
// memory for the error, or for posting the reply to its connection) the request is left
// unanswered and logged: its connection keeps it in flight until it closes.
template <typename Make>
void ReplyGuarded(uint64_t id, const Reply& reply, Make&& make) noexcept {
  try {
    reply(ResponseOrInternal(id, std::forward<Make>(make)));
  } catch (...) {
    try {
      LogError("request " + std::to_string(id) + " could not be answered (out of memory)");
    } catch (...) {
      // Not even the log line fits: nothing more can be done for this request.
    }
  }
}

// A path of key navigators only (key(...) or must(...)): selects at most one value with
// one lookup.
bool IsPointRead(const Path& path) {
  if (path.navigators().empty() || path.terminal().has_value()) return false;
  for (const Navigator& navigator : path.navigators()) {
    if (navigator.kind != Navigator::Kind::kKey && navigator.kind != Navigator::Kind::kMust)
      return false;
  }
  return true;
}

AckLevel ToEngine(proto::AckLevel level) {
  switch (level) {
    case proto::AckLevel::kNone:
      return AckLevel::kNone;
    case proto::AckLevel::kAppended:
      return AckLevel::kAppended;
    case proto::AckLevel::kProcessed:
      return AckLevel::kProcessed;
    case proto::AckLevel::kProcessedStreams:
      return AckLevel::kProcessedStreams;
  }
  return AckLevel::kProcessed;
}

}  // namespace

Dispatcher::Dispatcher(Engine& engine, ServerCounters& counters, asio::thread_pool& blocking_pool,
                       std::string data_dir)
    : engine_(engine),
      counters_(counters),
      blocking_pool_(blocking_pool),
      data_dir_(std::move(data_dir)) {}

void Dispatcher::Post(std::function<void()> work) { asio::post(blocking_pool_, std::move(work)); }

std::optional<proto::Response> Dispatcher::AnswerInline(const proto::Request& request) {
  // In a cluster, only the module's leader answers (Dispatch redirects the others).
  if (ClusterService* cluster = cluster_.load()) {
    std::optional<std::string> module = ClusterService::LedModuleOf(request.body);
    if (module && cluster->Refusal(request.id, *module, false)) return std::nullopt;
  }
  if (const auto* invoke = std::get_if<proto::InvokeRequest>(&request.body)) {
    // Within its own timeout, the budget is the query's answer: its TIMEOUT is final.
    if (invoke->timeout_ms <= kInlineQueryBudgetMs) return std::nullopt;
    const std::string name = invoke->module + "/" + invoke->query;
    {
      std::lock_guard lock(inline_mu_);
      auto it = inline_backoff_.find(name);
      if (it != inline_backoff_.end()) {
        if (--it->second <= 0) inline_backoff_.erase(it);
        return std::nullopt;
      }
    }
    Result<Value> result = engine_.Invoke(invoke->module, invoke->query, invoke->args,
                                          InvokeOptions{kInlineQueryBudgetMs});
    if (!result.ok() && result.status().code() == StatusCode::kTimeout) {
      std::lock_guard lock(inline_mu_);
      inline_backoff_[name] = kInlineQueryBackoff;
      return std::nullopt;  // Dispatch runs it again on the pool, with its own timeout
    }
    return ResponseOrInternal(request.id,
                              [&] { return InvokeResponse(request.id, std::move(result)); });
  }
  const auto* select = std::get_if<proto::SelectRequest>(&request.body);
  if (select == nullptr) return std::nullopt;
  Result<Path> path = Path::FromValue(select->path);
  if (!path.ok() || !IsPointRead(*path)) return std::nullopt;  // the pool reports a bad path
  return ResponseOrInternal(request.id, [&] { return SelectPath(request.id, *select, *path); });
}

bool Dispatcher::DispatchCluster(const proto::Request& request, Reply& reply) {
  ClusterService* cluster = cluster_.load();
  const uint64_t id = request.id;
  const proto::RequestBody& body = request.body;
  const bool for_nodes = std::holds_alternative<proto::PlacementRequest>(body) ||
                         std::holds_alternative<proto::ReplicaFetchRequest>(body) ||
                         std::holds_alternative<proto::ReplicaEpochRequest>(body) ||
                         std::holds_alternative<proto::ModuleFileRequest>(body) ||
                         std::holds_alternative<proto::ReplicaSnapshotRequest>(body) ||
                         std::holds_alternative<proto::RebalanceRequest>(body);
  if (for_nodes) {
    if (cluster == nullptr) {
      reply(ErrorResponse(id, proto::ErrorCode::kNotFound,
                          "not in cluster mode: this stratad was started without --cluster "
                          "(docs/cluster.md)"));
    } else if (std::holds_alternative<proto::PlacementRequest>(body)) {
      reply(cluster->Placement(id));
    } else if (const auto* fetch = std::get_if<proto::ReplicaFetchRequest>(&body)) {
      cluster->Fetch(id, *fetch, std::move(reply));  // a long poll: answered later
    } else if (const auto* epoch = std::get_if<proto::ReplicaEpochRequest>(&body)) {
      reply(cluster->EpochEnd(id, *epoch));
    } else if (std::holds_alternative<proto::RebalanceRequest>(body)) {
      // Waits for the controller: on a worker.
      Post([cluster, id, reply = std::move(reply)] {
        ReplyGuarded(id, reply, [&] { return cluster->Rebalance(id); });
      });
    } else if (const auto* snapshot = std::get_if<proto::ReplicaSnapshotRequest>(&body)) {
      // Reads up to max_bytes of rows: on a worker, not the connection's thread.
      Post([cluster, id, ask = *snapshot, reply = std::move(reply)] {
        ReplyGuarded(id, reply, [&] { return cluster->Snapshot(id, ask); });
      });
    } else {
      Post(
          [cluster, id, file = std::get<proto::ModuleFileRequest>(body), reply = std::move(reply)] {
            ReplyGuarded(id, reply, [&] { return cluster->ModuleFile(id, file); });
          });
    }
    return true;
  }
  if (cluster == nullptr) return false;
  if (std::optional<std::string> module = ClusterService::LedModuleOf(body)) {
    const bool append = std::holds_alternative<proto::AppendRequest>(body);
    if (std::optional<proto::Response> refusal = cluster->Refusal(id, *module, append)) {
      reply(std::move(*refusal));
      return true;
    }
  }
  return false;
}

void Dispatcher::Dispatch(proto::Request request, const std::string& peer, Reply reply) {
  const uint64_t id = request.id;
  if (DispatchCluster(request, reply)) return;
  std::visit(
      [&](auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, proto::Hello>) {
          reply(ErrorResponse(id, proto::ErrorCode::kInvalidArgument,
                              "Hello is only valid as a connection's handshake"));
        } else if constexpr (std::is_same_v<T, proto::AppendRequest>) {
          Append(id, std::move(body), std::move(reply));
        } else if constexpr (std::is_same_v<T, proto::SubscribeRequest> ||
                             std::is_same_v<T, proto::UnsubscribeRequest>) {
          // They need the connection's outbox: Connection routes them to Subscribe.
          reply(ErrorResponse(id, proto::ErrorCode::kInternal,
                              "subscriptions are handled by the connection"));
        } else if constexpr (std::is_same_v<T, proto::PlacementRequest> ||
                             std::is_same_v<T, proto::ReplicaFetchRequest> ||
                             std::is_same_v<T, proto::ReplicaEpochRequest> ||
                             std::is_same_v<T, proto::ModuleFileRequest> ||
                             std::is_same_v<T, proto::ReplicaSnapshotRequest> ||
                             std::is_same_v<T, proto::RebalanceRequest>) {
          // DispatchCluster answered them above, with or without a cluster.
          reply(ErrorResponse(id, proto::ErrorCode::kInternal,
                              "cluster requests are handled by DispatchCluster"));
        } else {
          Post([this, id, body = std::move(body), peer, reply = std::move(reply)] {
            ReplyGuarded(id, reply, [&] {
              if constexpr (std::is_same_v<T, proto::DeployRequest>) {
                return LoggedDeploy(id, body, peer);
              } else if constexpr (std::is_same_v<T, proto::ListModulesRequest>) {
                return ListModules(id);
              } else if constexpr (std::is_same_v<T, proto::DescribeRequest>) {
                return Describe(id, body);
              } else if constexpr (std::is_same_v<T, proto::DestroyRequest>) {
                return LoggedDestroy(id, body, peer);
              } else if constexpr (std::is_same_v<T, proto::SelectRequest>) {
                return Select(id, body);
              } else if constexpr (std::is_same_v<T, proto::ReadDepotRequest>) {
                return ReadDepot(id, body);
              } else if constexpr (std::is_same_v<T, proto::UpdateRequest>) {
                return LoggedUpdate(id, body, peer);
              } else if constexpr (std::is_same_v<T, proto::RecomputeRequest>) {
                return LoggedRecompute(id, body, peer);
              } else if constexpr (std::is_same_v<T, proto::InvokeRequest>) {
                return Invoke(id, body);
              } else if constexpr (std::is_same_v<T, proto::SelectPageRequest>) {
                return SelectPage(id, body);
              } else {
                static_assert(std::is_same_v<T, proto::StatsRequest>);
                return Stats(id, body);
              }
            });
          });
        }
      },
      request.body);
}

void Dispatcher::Subscribe(uint64_t id, proto::SubscribeRequest request,
                           std::shared_ptr<SubscriptionOutbox> outbox, Reply reply) {
  Post([this, id, request = std::move(request), outbox = std::move(outbox),
        reply = std::move(reply)] {
    ReplyGuarded(id, reply, [&] {
      if (ClusterService* cluster = cluster_.load()) {
        if (std::optional<proto::Response> refusal = cluster->Refusal(id, request.module, false)) {
          return std::move(*refusal);
        }
      }
      Result<Path> path = Path::FromValue(request.path);
      if (!path.ok()) {
        return ErrorResponse(
            id, proto::ErrorCode::kInvalidArgument,
            "invalid path " + request.path.ToString() + ": " + path.status().message());
      }
      if (!outbox->Reserve()) {
        return ErrorResponse(id, proto::ErrorCode::kOverloaded,
                             "this connection has as many subscriptions open as the server "
                             "allows one connection (--max-subscriptions-per-connection)");
      }
      SubscribeOptions options;
      options.partition_key = request.partition_key;
      options.one = request.one;
      Result<uint64_t> subscribed =
          engine_.Subscribe(request.module, WithSigil(request.pstate, "$$"), *path, options,
                            [outbox](const SubscriptionEvent& e) { outbox->OnEvent(e); });
      if (!subscribed.ok()) {
        outbox->Unreserve();
        return FromStatus(id, subscribed.status());
      }
      auto started = outbox->Started(*subscribed);
      if (!started) {  // the connection closed meanwhile
        engine_.Unsubscribe(*subscribed);
        return ErrorResponse(id, proto::ErrorCode::kShuttingDown, "the connection closed");
      }
      proto::Response answer =
          Body(id, proto::Subscribed{*subscribed, started->first, *started->second});
      const size_t size = proto::EncodeResponse(answer).size();
      if (size > outbox->max_frame_size()) {  // the connection could not send it
        outbox->Remove(*subscribed);
        engine_.Unsubscribe(*subscribed);
        return ErrorResponse(id, proto::ErrorCode::kInvalidArgument,
                             "the subscribed value is " + std::to_string(size) +
                                 " bytes encoded, above the max frame size " +
                                 std::to_string(outbox->max_frame_size()) +
                                 ": subscribe to a narrower path");
      }
      return answer;
    });
  });
}

void Dispatcher::Unsubscribe(uint64_t id, proto::UnsubscribeRequest request,
                             std::shared_ptr<SubscriptionOutbox> outbox, Reply reply) {
  Post([this, id, request, outbox = std::move(outbox), reply = std::move(reply)] {
    ReplyGuarded(id, reply, [&] {
      if (!outbox->Remove(request.subscription)) {
        return ErrorResponse(id, proto::ErrorCode::kNotFound,
                             "no subscription " + std::to_string(request.subscription) +
                                 " on this connection (it ended, or was never made here)");
      }
      engine_.Unsubscribe(request.subscription);
      return Body(id, proto::Unsubscribed{request.subscription});
    });
  });
}

void Dispatcher::ReleaseSubscriptions(std::vector<uint64_t> ids) {
  if (ids.empty()) return;
  Post([this, ids = std::move(ids)] {
    for (uint64_t id : ids) engine_.Unsubscribe(id);
  });
}

Result<ModuleInfo> Dispatcher::DeployFile(const std::string& path, int partitions, int replication,
                                          int min_isr) {
  if (ClusterService* cluster = cluster_.load()) {
    return cluster->Deploy(path, partitions, replication, min_isr);
  }
  if (replication > 1) {
    return Status::InvalidArgument("replication " + std::to_string(replication) +
                                   " needs a cluster (stratad --cluster, docs/cluster.md)");
  }
  DeployOptions options;
  options.partitions = partitions;
  return engine_.Deploy(path, options);
}

// Deploy, update, recompute and destroy change what the server holds: each is logged with
// its client and outcome, so that an operator can tell who changed what, and when.
proto::Response Dispatcher::LoggedDeploy(uint64_t id, const proto::DeployRequest& request,
                                         const std::string& peer) {
  const std::string source = SourceOf(request.path, request.so_bytes);
  proto::Response response = Deploy(id, request);
  if (response.error) {
    LogWarning("deploy from " + source + " (" + std::to_string(request.partitions) +
               " partitions) by " + peer +
               " failed: " + std::string(proto::ErrorCodeName(response.error->code)) + ": " +
               response.error->message);
  } else if (const auto* info = std::get_if<proto::ModuleInfo>(&response.body)) {
    LogInfo("deployed module " + info->name + " (" + std::to_string(info->partitions) +
            " partitions) from " + source + " for " + peer);
  }
  return response;
}

proto::Response Dispatcher::LoggedUpdate(uint64_t id, const proto::UpdateRequest& request,
                                         const std::string& peer) {
  const std::string source = SourceOf(request.path, request.so_bytes);
  proto::Response response = Update(id, request);
  if (response.error) {
    LogWarning("update from " + source + " by " + peer +
               " failed: " + std::string(proto::ErrorCodeName(response.error->code)) + ": " +
               response.error->message);
  } else if (const auto* updated = std::get_if<proto::Updated>(&response.body)) {
    LogInfo("updated module " + updated->module.name + " to version " +
            std::to_string(updated->version) + " from " + source + " for " + peer +
            " (created: " + Joined(updated->created) + "; dropped: " + Joined(updated->dropped) +
            "; widened: " + Joined(updated->widened) + "; migrated: " + Joined(updated->migrated) +
            "; backfilling: " + Joined(updated->backfilling) + "; " +
            std::to_string(updated->module.partitions) + " partitions; appends paused " +
            std::to_string(updated->pause_us) + " us)");
  }
  return response;
}

proto::Response Dispatcher::LoggedRecompute(uint64_t id, const proto::RecomputeRequest& request,
                                            const std::string& peer) {
  proto::Response response = Recompute(id, request);
  if (response.error) {
    LogWarning("recompute of " + Joined(request.pstates) + " of module " + request.module + " by " +
               peer + " failed: " + std::string(proto::ErrorCodeName(response.error->code)) + ": " +
               response.error->message);
  } else if (const auto* started = std::get_if<proto::RecomputeStarted>(&response.body)) {
    LogInfo("recompute of " + Joined(started->pstates) + " of module " + started->module +
            " started for " + peer);
  }
  return response;
}

proto::Response Dispatcher::LoggedDestroy(uint64_t id, const proto::DestroyRequest& request,
                                          const std::string& peer) {
  proto::Response response = Destroy(id, request);
  if (response.error) {
    LogWarning("destroy of module " + request.module + " by " + peer +
               " failed: " + std::string(proto::ErrorCodeName(response.error->code)) + ": " +
               response.error->message);
  } else {
    LogInfo("destroyed module " + request.module + " and its data for " + peer);
  }
  return response;
}

proto::Response Dispatcher::Deploy(uint64_t id, const proto::DeployRequest& request) {
  if (request.path.empty() == request.so_bytes.empty()) {
    return ErrorResponse(id, proto::ErrorCode::kInvalidArgument,
                         "deploy needs exactly one of path and so_bytes");
  }
  if (request.path.empty()) {
    Result<std::string> upload = WriteUpload(request.so_bytes);
    if (!upload.ok()) return FromStatus(id, upload.status());
    Result<ModuleInfo> info =
        DeployFile(*upload, request.partitions, request.replication, request.min_isr);
    std::error_code ignored;
    fs::remove(*upload, ignored);
    if (!info.ok()) return FromUploadStatus(id, info.status(), *upload, request.so_bytes.size());
    return Body(id, ToWire(*info));
  }
  Result<ModuleInfo> info =
      DeployFile(request.path, request.partitions, request.replication, request.min_isr);
  if (!info.ok()) return FromStatus(id, info.status());
  return Body(id, ToWire(*info));
}

// The bytes go to a file of the data directory only for the engine to copy; the engine
// keeps its own copy, so the caller removes the upload file whatever happens.
Result<std::string> Dispatcher::WriteUpload(const std::string& so_bytes) {
  const fs::path upload =
      fs::path(data_dir_) / (".upload-" + std::to_string(getpid()) + "-" +
                             std::to_string(upload_counter_.fetch_add(1)) + ".so");
  std::ofstream out(upload, std::ios::binary | std::ios::trunc);
  out.write(so_bytes.data(), static_cast<std::streamsize>(so_bytes.size()));
  out.close();
  if (!out) {
    std::error_code ignored;
    fs::remove(upload, ignored);
    return Status::IOError("cannot write the uploaded module to " + upload.string());
  }
  return upload.string();
}

proto::Response Dispatcher::Update(uint64_t id, const proto::UpdateRequest& request) {
  if (request.path.empty() == request.so_bytes.empty()) {
    return ErrorResponse(id, proto::ErrorCode::kInvalidArgument,
                         "update needs exactly one of path and so_bytes");
  }
  UpdateOptions options;
  options.drop = request.drop;
  options.partitions = request.partitions;
  options.new_topologies_from_end = request.new_topologies_from_end;
  std::string path = request.path;
  if (path.empty()) {
    Result<std::string> upload = WriteUpload(request.so_bytes);
    if (!upload.ok()) return FromStatus(id, upload.status());
    path = *upload;
  }
  Result<UpdateResult> result = Status::Internal("update: no result");
  if (ClusterService* cluster = cluster_.load()) {
    // The module it updates is named by its file: its leader updates it.
    Result<std::string> name = cluster->ModuleNameOf(path);
    std::optional<proto::Response> refusal;
    if (name.ok()) refusal = cluster->Refusal(id, *name, /*append=*/false);
    if (refusal) {
      if (request.path.empty()) {
        std::error_code ignored;
        fs::remove(path, ignored);
      }
      return std::move(*refusal);
    }
    result = name.ok() ? cluster->Update(path, options) : Result<UpdateResult>(name.status());
  } else {
    result = engine_.Update(path, options);
  }
  if (request.path.empty()) {
    std::error_code ignored;
    fs::remove(path, ignored);
  }
  if (!result.ok()) {
    return request.path.empty()
               ? FromUploadStatus(id, result.status(), path, request.so_bytes.size())
               : FromStatus(id, result.status());
  }
  proto::Updated updated;
  updated.module = ToWire(result->info);
  updated.version = result->version;
  updated.created = result->created;
  updated.dropped = result->dropped;
  updated.widened = result->widened;
  updated.backfilling = result->backfilling;
  updated.pause_us = result->pause_us;
  updated.migrated = result->migrated;
  return Body(id, std::move(updated));
}

proto::Response Dispatcher::Recompute(uint64_t id, const proto::RecomputeRequest& request) {
  std::vector<std::string> pstates;
  for (const std::string& name : request.pstates) pstates.push_back(WithSigil(name, "$$"));
  Status status = engine_.Recompute(request.module, pstates);
  if (!status.ok()) return FromStatus(id, status);
  return Body(id, proto::RecomputeStarted{request.module, std::move(pstates)});
}

proto::Response Dispatcher::ListModules(uint64_t id) {
  Result<std::vector<ModuleInfo>> modules = engine_.Modules();
  if (!modules.ok()) return FromStatus(id, modules.status());
  proto::ModuleList list;
  for (const ModuleInfo& info : *modules) list.modules.push_back(ToWire(info));
  return Body(id, std::move(list));
}

proto::Response Dispatcher::Describe(uint64_t id, const proto::DescribeRequest& request) {
  Result<ModuleInfo> info = engine_.Describe(request.module);
  if (!info.ok()) return FromStatus(id, info.status());
  return Body(id, ToWire(*info));
}

proto::Response Dispatcher::Destroy(uint64_t id, const proto::DestroyRequest& request) {
  if (request.confirm != request.module) {
    return ErrorResponse(id, proto::ErrorCode::kConfirmationRequired,
                         "destroying module '" + request.module +
                             "' deletes its data: set confirm to the module name (got '" +
                             request.confirm + "')");
  }
  ClusterService* cluster = cluster_.load();
  Status status =
      cluster != nullptr ? cluster->Destroy(request.module) : engine_.Destroy(request.module);
  if (!status.ok()) return FromStatus(id, status);
  return Body(id, proto::Destroyed{request.module});
}

proto::Response Dispatcher::Select(uint64_t id, const proto::SelectRequest& request) {
  Result<Path> path = Path::FromValue(request.path);
  if (!path.ok()) {
    return ErrorResponse(
        id, proto::ErrorCode::kInvalidArgument,
        "invalid path " + request.path.ToString() + ": " + path.status().message());
  }
  return SelectPath(id, request, *path);
}

proto::Response Dispatcher::SelectPath(uint64_t id, const proto::SelectRequest& request,
                                       const Path& path) {
  const std::string pstate = WithSigil(request.pstate, "$$");
  if (request.one) {
    Result<Value> value = engine_.SelectOne(request.module, pstate, path, request.partition_key);
    if (!value.ok()) return FromStatus(id, value.status());
    return Body(id, proto::Selected{{std::move(value).value()}});
  }
  Result<std::vector<Value>> values =
      engine_.Select(request.module, pstate, path, request.partition_key);
  if (!values.ok()) return FromStatus(id, values.status());
  return Body(id, proto::Selected{std::move(values).value()});
}

// A query runs whole on the calling thread (it may take up to its timeout), so it runs
// here on the blocking pool. Its code failing is the client's QUERY_FAILED, not the
// TOPOLOGY_FAILED of an append whose topology gave up.
proto::Response Dispatcher::Invoke(uint64_t id, const proto::InvokeRequest& request) {
  return InvokeResponse(id, engine_.Invoke(request.module, request.query, request.args,
                                           InvokeOptions{request.timeout_ms}));
}

proto::Response Dispatcher::InvokeResponse(uint64_t id, Result<Value> result) {
  if (!result.ok()) {
    if (result.status().code() == StatusCode::kUserError) {
      return ErrorResponse(id, proto::ErrorCode::kQueryFailed, result.status().message());
    }
    return FromStatus(id, result.status());
  }
  return Body(id, proto::Invoked{std::move(result).value()});
}

proto::Response Dispatcher::SelectPage(uint64_t id, const proto::SelectPageRequest& request) {
  Result<Path> path = Path::FromValue(request.path);
  if (!path.ok()) {
    return ErrorResponse(
        id, proto::ErrorCode::kInvalidArgument,
        "invalid path " + request.path.ToString() + ": " + path.status().message());
  }
  Result<SelectPageResult> page = engine_.SelectPage(
      request.module, WithSigil(request.pstate, "$$"), *path, request.token, request.limit);
  if (!page.ok()) return FromStatus(id, page.status());
  return Body(id, proto::SelectedPage{std::move(page->values), std::move(page->next_token)});
}

proto::Response Dispatcher::ReadDepot(uint64_t id, const proto::ReadDepotRequest& request) {
  Result<std::vector<DepotEntry>> entries =
      engine_.ReadDepot(request.module, WithSigil(request.depot, "*"), request.partition,
                        request.from, request.to, request.limit);
  if (!entries.ok()) return FromStatus(id, entries.status());
  proto::DepotRecords records;
  records.records.reserve(entries->size());
  for (DepotEntry& entry : *entries)
    records.records.push_back({entry.offset, std::move(entry.record)});
  return Body(id, std::move(records));
}

proto::Response Dispatcher::Stats(uint64_t id, const proto::StatsRequest& request) {
  proto::StatsResult result;
  result.server.uptime_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - counters_.start)
                                .count();
  result.server.connections = counters_.open_connections.load();
  result.server.total_connections = counters_.total_connections.load();
  result.server.requests = counters_.requests.load();

  std::vector<std::string> names;
  if (!request.module.empty()) {
    names.push_back(request.module);
  } else {
    Result<std::vector<ModuleInfo>> modules = engine_.Modules();
    if (!modules.ok()) return FromStatus(id, modules.status());
    for (const ModuleInfo& info : *modules) names.push_back(info.name);
  }
  for (const std::string& name : names) {
    Result<ModuleStats> stats =
        engine_.Stats(name, StatsOptions{request.failures_from, request.failures_limit});
    if (!stats.ok()) {
      // A module destroyed between Modules() and Stats() is simply gone.
      if (request.module.empty() && stats.status().code() == StatusCode::kNotFound) continue;
      return FromStatus(id, stats.status());
    }
    result.modules.push_back(ToWire(*stats));
  }
  return Body(id, std::move(result));
}

void Dispatcher::Append(uint64_t id, proto::AppendRequest request, Reply reply) {
  engine_.AppendAsync(
      request.module, WithSigil(request.depot, "*"), std::move(request.records),
      ToEngine(request.ack),
      [id, reply = std::move(reply)](Result<std::vector<AppendResult>> results) {
        // Runs on an engine task thread or the flusher, or inline on the io thread (an early
        // error, or an ack-none batch admitted at once).
        ReplyGuarded(id, reply, [&] {
          if (!results.ok()) return FromStatus(id, results.status());
          proto::Appended appended;
          appended.results.reserve(results->size());
          for (AppendResult& r : *results) {
            proto::AppendResult out;
            out.partition = r.partition;
            out.offset = r.offset;
            out.ack_returns = std::move(r.ack_returns);
            if (!r.failure.ok()) {
              out.failure = proto::Error{proto::ErrorCodeFor(r.failure), r.failure.message()};
            }
            appended.results.push_back(std::move(out));
          }
          return Body(id, std::move(appended));
        });
      });
}

}  // namespace strata::server
