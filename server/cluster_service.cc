#include "cluster_service.h"

#include <algorithm>
#include <future>
#include <memory>
#include <thread>

#include "dispatcher.h"
#include "strata/json.h"

namespace strata::server {

namespace proto = strata::protocol;

proto::Response ClusterErrorResponse(uint64_t id, const Status& status,
                                     const std::string& leader_address) {
  proto::Response response = ErrorResponse(id, proto::ErrorCodeFor(status), status.message());
  if (status.code() == StatusCode::kNotLeader) response.error->leader = leader_address;
  return response;
}

std::optional<std::string> ClusterService::LedModuleOf(const proto::RequestBody& body) {
  return std::visit(
      [](const auto& m) -> std::optional<std::string> {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, proto::AppendRequest> ||
                      std::is_same_v<T, proto::SelectRequest> ||
                      std::is_same_v<T, proto::SelectPageRequest> ||
                      std::is_same_v<T, proto::ReadDepotRequest> ||
                      std::is_same_v<T, proto::InvokeRequest> ||
                      std::is_same_v<T, proto::DescribeRequest> ||
                      std::is_same_v<T, proto::DestroyRequest> ||
                      std::is_same_v<T, proto::RecomputeRequest> ||
                      std::is_same_v<T, proto::SubscribeRequest>) {
          return m.module;
        } else if constexpr (std::is_same_v<T, proto::StatsRequest>) {
          if (m.module.empty()) return std::nullopt;
          return m.module;
        } else {
          return std::nullopt;
        }
      },
      body);
}

std::optional<proto::Response> ClusterService::Refusal(uint64_t id, const std::string& module,
                                                       bool append) {
  std::string leader_address;
  Status st = append ? replicas_.CheckAppend(module, &leader_address)
                     : replicas_.CheckLeader(module, &leader_address);
  if (st.ok() && !node_.ViewCurrent()) {
    // Cut off from ZooKeeper, this node may have been replaced as leader already: a read
    // could be stale and an append lost. The client retries (through another node).
    st = Status::NotLeader(
        "this node is cut off from ZooKeeper and cannot tell whether it "
        "still leads module " +
        module + ": retry");
  }
  if (st.ok()) return std::nullopt;
  return ClusterErrorResponse(id, st, leader_address);
}

Result<ModuleInfo> ClusterService::Deploy(const std::string& so_path, int partitions,
                                          int replication, int min_isr) {
  const cluster::ClusterView view = node_.View();
  const int live = static_cast<int>(view.nodes.size());
  if (replication == 0) replication = std::min(3, std::max(1, live));
  if (replication > live) {
    return Status::InvalidArgument("replication " + std::to_string(replication) + " needs " +
                                   std::to_string(replication) + " live nodes; the cluster has " +
                                   std::to_string(live));
  }
  if (min_isr == 0) min_isr = replication <= 2 ? 1 : 2;
  if (min_isr < 1 || min_isr > replication) {
    return Status::InvalidArgument("min_isr " + std::to_string(min_isr) + " is not in 1.." +
                                   std::to_string(replication));
  }
  Replication& replication_api = *engine_.replication();
  STRATA_ASSIGN_OR_RETURN(std::string name, replication_api.ModuleName(so_path));
  cluster::ModuleSpec spec;
  spec.name = name;
  spec.partitions = partitions;
  spec.replication = replication;
  spec.min_isr = min_isr;
  spec.origin = view.node;
  Status created = node_.CreateModule(spec);
  if (created.code() == StatusCode::kAlreadyExists) {
    return Status::AlreadyExists("module " + name +
                                 " is already deployed in the cluster (destroy it first)");
  }
  STRATA_RETURN_IF_ERROR(created);
  Status led = replicas_.WaitUntilLeading(name, kPlacementTimeout);
  Result<ModuleInfo> info =
      led.ok() ? engine_.Deploy(so_path, DeployOptions{partitions}) : Result<ModuleInfo>(led);
  if (!info.ok()) {
    Status deleted = node_.DeleteModule(name);
    return Status(
        info.status().code(),
        info.status().message() +
            (deleted.ok() ? "" : " (and removing its spec failed: " + deleted.message() + ")"));
  }
  // Answered once the in-sync replicas have the deploy (its meta.modules row) durably, as an
  // append is acknowledged: a follower promoted next must be able to start the module.
  STRATA_RETURN_IF_ERROR(WaitForInSyncReplicas(name, "deployed"));
  return info;
}

Result<std::string> ClusterService::ModuleNameOf(const std::string& so_path) {
  return engine_.replication()->ModuleName(so_path);
}

Result<UpdateResult> ClusterService::Update(const std::string& so_path,
                                            const UpdateOptions& options) {
  STRATA_ASSIGN_OR_RETURN(std::string name, ModuleNameOf(so_path));
  Replication& replication = *engine_.replication();
  STRATA_ASSIGN_OR_RETURN(ReplicaGroupStatus before, replication.GroupStatus(name, 0));
  STRATA_ASSIGN_OR_RETURN(UpdateResult result, engine_.Update(so_path, options));
  // The new version's row (the switch) durable on the in-sync replicas, as a deploy: a
  // follower promoted next runs the new version. Only through the switch: each follower
  // reloads its copy once it applies it, leaving the ISR meanwhile, so it may never have
  // the entries appended after it before it is out.
  Result<int64_t> switched = replication.FindModuleRowEntry(name, 0, before.log_end);
  int64_t through = 0;
  if (switched.ok()) {
    through = *switched + 1;
  } else {
    // Compacted away already: a leader compacts only below its high watermark, so the
    // in-sync replicas have it.
    STRATA_ASSIGN_OR_RETURN(ReplicaGroupStatus now, replication.GroupStatus(name, 0));
    through = now.log_start;
  }
  STRATA_RETURN_IF_ERROR(
      WaitForInSyncReplicas(name, "updated to version " + std::to_string(result.version), through));
  return result;
}

Status ClusterService::WaitForInSyncReplicas(const std::string& module,
                                             const std::string& done_what, int64_t through) {
  auto replicated = std::make_shared<std::promise<Status>>();
  std::future<Status> done = replicated->get_future();
  replicas_.GateAck(
      module, [replicated](Status st) { replicated->set_value(std::move(st)); }, through);
  if (done.wait_for(kPlacementTimeout) != std::future_status::ready) {
    return Status::Timeout("module " + module + " is " + done_what +
                           " on this node, its leader, but its in-sync replicas did not have it "
                           "within " +
                           std::to_string(kPlacementTimeout.count()) +
                           " ms: it may or may not be kept if this node fails now");
  }
  if (Status st = done.get(); !st.ok()) {
    return Status(st.code(), "module " + module + " is " + done_what +
                                 " on this node, its leader, but not acknowledged by its in-sync "
                                 "replicas: " +
                                 st.message());
  }
  return Status::Ok();
}

Status ClusterService::Destroy(const std::string& module) {
  Status destroyed = engine_.Destroy(module);
  // kNotFound: destroyed here by a destroy whose removal of the spec failed (or never
  // deployed here): the spec goes now, or the module could be neither used nor destroyed.
  if (!destroyed.ok() && destroyed.code() != StatusCode::kNotFound) return destroyed;
  Status deleted = node_.DeleteModule(module);
  if (!destroyed.ok() && deleted.code() == StatusCode::kNotFound) return destroyed;
  STRATA_RETURN_IF_ERROR(deleted);
  // Answered once the controller deleted the module's groups and this node dropped its
  // copy: a deploy of the same name right after must get new groups. Were the old ones
  // kept (the controller never saw the module missing), the followers would go on
  // following them with the old module's tables, which the engine's destroy dropped here
  // without logging it.
  Status gone = replicas_.WaitUntilGone(module, kPlacementTimeout);
  if (!gone.ok()) {
    return Status(gone.code(), "module " + module + " is destroyed, but " + gone.message() +
                                   ": deploy it again only once they are");
  }
  return Status::Ok();
}

Result<Value> ClusterService::ReplicaState(const std::string& module) {
  for (const cluster::ReplicaManager::GroupReport& r : replicas_.Report()) {
    if (r.module != module) continue;
    Replication& replication = *engine_.replication();
    STRATA_ASSIGN_OR_RETURN(ReplicaGroupStatus status, replication.GroupStatus(module, r.group));
    // {"digest": "…", "applied_end": N}: the digest of the rows, read at one snapshot.
    STRATA_ASSIGN_OR_RETURN(std::string digest_json, replication.Digest(module, r.group));
    STRATA_ASSIGN_OR_RETURN(Value digested, ParseJson(digest_json));
    const Value* digest = digested.Find("digest");
    const Value* digest_end = digested.Find("applied_end");
    if (digest == nullptr || digest_end == nullptr) {
      return Status::Internal("the engine's digest has no digest or applied_end: " + digest_json);
    }
    Value::List isr;
    for (const std::string& node : r.isr) isr.emplace_back(node);
    return Value::MapOf(
        {{Value("module"), Value(module)},
         {Value("group"), Value(int64_t{r.group})},
         {Value("role"), Value(r.role)},
         {Value("epoch"), Value(r.epoch)},
         {Value("log_start"), Value(status.log_start)},
         {Value("log_end"), Value(status.log_end)},
         {Value("rebuilding"), Value(status.rebuilding)},
         {Value("applied_end"), *digest_end},
         {Value("durable_end"), Value(status.durable_end)},
         {Value("high_watermark"), r.high_watermark < 0 ? Value::Nil() : Value(r.high_watermark)},
         {Value("isr"), Value(std::move(isr))},
         {Value("digest"), *digest}});
  }
  return Status::NotFound("this node holds no copy of module " + module);
}

proto::Response ClusterService::Placement(uint64_t id) {
  const cluster::ClusterView view = node_.View();
  proto::Placement placement;
  placement.node = view.node;
  placement.controller = view.controller;
  for (const cluster::NodeInfo& n : view.nodes) {
    placement.nodes.push_back(proto::NodeAddress{n.id, n.advertise});
  }
  for (const cluster::GroupAssignment& g : cluster::AssignmentsOf(view)) {
    proto::GroupPlacement p;
    p.module = g.module;
    p.group = g.group;
    p.leader = g.state.leader;
    p.leader_address = g.leader_address;
    p.epoch = g.state.epoch;
    p.replicas = g.state.replicas;
    p.isr = g.state.isr;
    p.min_isr = g.state.min_isr;
    p.target = g.state.target;
    placement.groups.push_back(std::move(p));
  }
  proto::Response response;
  response.id = id;
  response.body = std::move(placement);
  return response;
}

proto::Response ClusterService::Rebalance(uint64_t id) {
  Status asked = node_.RequestRebalance(kPlacementTimeout);
  if (!asked.ok()) return ClusterErrorResponse(id, asked, "");
  // The controller's writes reach this node's view through its watches, a moment after
  // they are made: the answer shows the targets as this node then sees them.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  return Placement(id);
}

void ClusterService::Fetch(uint64_t id, const proto::ReplicaFetchRequest& request,
                           std::function<void(proto::Response)> reply) {
  cluster::FetchAsk ask;
  ask.module = request.module;
  ask.group = request.group;
  ask.node = request.node;
  ask.epoch = request.epoch;
  ask.from = request.from;
  ask.durable_end = request.durable_end;
  ask.max_bytes = std::min<int64_t>(request.max_bytes, AnswerBudget());
  ask.wait = std::chrono::milliseconds(request.wait_ms);
  replicas_.Fetch(ask, [this, id, module = request.module, group = request.group,
                        reply = std::move(reply)](Result<cluster::FetchAnswer> answer) {
    if (!answer.ok()) {
      reply(ClusterErrorResponse(id, answer.status(), ""));
      return;
    }
    // Only a lone entry can exceed the budget (ReplicationImpl::Read stops before one).
    if (answer->entries.size() == 1 && !Fits(answer->entries[0].bytes.size())) {
      reply(ClusterErrorResponse(id,
                                 TooLarge("log entry " + std::to_string(answer->entries[0].offset) +
                                              " of " + module + "/" + std::to_string(group),
                                          answer->entries[0].bytes.size()),
                                 ""));
      return;
    }
    proto::ReplicaEntries out;
    out.epoch = answer->epoch;
    out.entries.reserve(answer->entries.size());
    for (ReplicaEntry& e : answer->entries) {
      out.entries.push_back(proto::ReplicaLogEntry{e.offset, std::move(e.bytes)});
    }
    out.log_end = answer->log_end;
    out.high_watermark = answer->high_watermark;
    out.log_start = answer->log_start;
    proto::Response response;
    response.id = id;
    response.body = std::move(out);
    reply(std::move(response));
  });
}

proto::Response ClusterService::EpochEnd(uint64_t id, const proto::ReplicaEpochRequest& request) {
  Result<strata::EpochEnd> end =
      replicas_.EpochEndFor(request.module, request.group, request.epoch, request.log_epoch);
  if (!end.ok()) return ClusterErrorResponse(id, end.status(), "");
  proto::Response response;
  response.id = id;
  response.body = proto::ReplicaEpochEnd{end->epoch, end->end_offset};
  return response;
}

proto::Response ClusterService::ModuleFile(uint64_t id, const proto::ModuleFileRequest& request) {
  Result<std::string> bytes = engine_.replication()->ModuleFile(request.module);
  if (!bytes.ok()) return ClusterErrorResponse(id, bytes.status(), "");
  proto::Response response;
  response.id = id;
  response.body = proto::ModuleFile{request.module, std::move(bytes).value()};
  return response;
}

proto::Response ClusterService::Snapshot(uint64_t id,
                                         const proto::ReplicaSnapshotRequest& request) {
  cluster::SnapshotAsk ask;
  ask.module = request.module;
  ask.group = request.group;
  ask.node = request.node;
  ask.epoch = request.epoch;
  ask.after = SnapshotCursor{request.table, request.key, request.record};
  ask.max_bytes = std::min<int64_t>(request.max_bytes, AnswerBudget());
  Result<SnapshotChunk> chunk = replicas_.Snapshot(ask);
  if (!chunk.ok()) return ClusterErrorResponse(id, chunk.status(), "");
  // Only a lone row can exceed the budget (ReadSnapshot stops before one).
  if (!Fits(chunk->rows.size() + chunk->next.key.size())) {
    return ClusterErrorResponse(
        id,
        TooLarge("a row of " + request.module + "/" + std::to_string(request.group) + " (table " +
                     chunk->next.table + ")",
                 chunk->rows.size()),
        "");
  }
  proto::ReplicaSnapshot out;
  out.epoch = chunk->epoch;
  out.rows = std::move(chunk->rows);
  out.row_count = chunk->row_count;
  out.next_table = std::move(chunk->next.table);
  out.next_key = std::move(chunk->next.key);
  out.next_record = chunk->next.record;
  out.done = chunk->done;
  out.log_end = chunk->log_end;
  for (const LogEpoch& e : chunk->epochs) out.epochs.push_back({e.epoch, e.start_offset});
  proto::Response response;
  response.id = id;
  response.body = std::move(out);
  return response;
}

int64_t ClusterService::AnswerBudget() const {
  // Half the frame: a chunk may pass its budget by one entry or row, and each entry is
  // framed (offset, vector header) on top of its bytes.
  return std::max<int64_t>(1, max_frame_size_ / 2);
}

bool ClusterService::Fits(size_t payload_bytes) const {
  return payload_bytes + kAnswerOverhead <= max_frame_size_;
}

Status ClusterService::TooLarge(const std::string& what, size_t bytes) const {
  return Status::InvalidArgument(what + " is " + std::to_string(bytes) +
                                 " bytes: it does not fit this node's --max-frame-size of " +
                                 std::to_string(max_frame_size_) +
                                 " bytes; start the nodes with a larger --max-frame-size");
}

}  // namespace strata::server
