#include "rest_json.h"

#include "strata/json.h"
#include "strata/protocol/documents.h"

namespace strata::server::http {
namespace proto = strata::protocol;

Value Object(std::initializer_list<std::pair<Value, Value>> members) {
  return Value::MapOf(members);
}

Value ModuleListJson(const proto::ModuleList& list) {
  Value::List modules;
  modules.reserve(list.modules.size());
  for (const proto::ModuleInfo& m : list.modules) modules.push_back(proto::ModuleDocument(m));
  return Object({{"modules", Value(std::move(modules))}});
}

Value StatsJson(const proto::StatsResult& stats) {
  Value::List modules;
  modules.reserve(stats.modules.size());
  for (const proto::ModuleStats& m : stats.modules) {
    modules.push_back(proto::ModuleStatsDocument(m));
  }
  return Object({{"server", proto::ServerStatsDocument(stats.server)},
                 {"modules", Value(std::move(modules))}});
}

Value ClusterJson(const cluster::ClusterView& view) {
  Value::List nodes;
  nodes.reserve(view.nodes.size());
  for (const cluster::NodeInfo& node : view.nodes) {
    nodes.push_back(Object({{"id", node.id}, {"advertise", node.advertise}, {"http", node.http}}));
  }
  return Object({{"node", view.node},
                 {"controller", view.controller.empty() ? Value::Nil() : Value(view.controller)},
                 {"nodes", Value(std::move(nodes))}});
}

Value DepotRecordsJson(const proto::DepotRecords& records, int64_t from) {
  const int64_t next = records.records.empty() ? from : records.records.back().offset + 1;
  Value::List list;
  list.reserve(records.records.size());
  for (const proto::DepotRecord& r : records.records) {
    list.push_back(Object({{"offset", r.offset}, {"value", r.value}}));
  }
  return Object({{"records", Value(std::move(list))}, {"next", next}});
}

std::string ErrorJson(proto::ErrorCode code, std::string_view message, std::string_view leader) {
  Value error = proto::ErrorDocument(code, EscapeInvalidUtf8(message));
  if (!leader.empty()) error.Insert("leader", std::string(leader));
  return ToJson(Object({{"error", std::move(error)}}));
}

int HttpStatusFor(proto::ErrorCode code) {
  switch (code) {
    case proto::ErrorCode::kNone:
      return 200;
    case proto::ErrorCode::kBadFrame:
    case proto::ErrorCode::kUnsupportedVersion:
    case proto::ErrorCode::kHandshakeRequired:
    case proto::ErrorCode::kInvalidArgument:
    case proto::ErrorCode::kSchemaViolation:
      return 400;
    case proto::ErrorCode::kNotFound:
      return 404;
    case proto::ErrorCode::kUnsupported:
      return 405;
    case proto::ErrorCode::kAlreadyExists:
    case proto::ErrorCode::kConfirmationRequired:
    case proto::ErrorCode::kAborted:
      return 409;
    case proto::ErrorCode::kFrameTooLarge:
      return 413;
    // Misdirected Request: this node cannot serve it, another one can (Error.leader); a
    // client that retried the same node on a 503 would never reach the leader.
    case proto::ErrorCode::kNotLeader:
      return 421;
    case proto::ErrorCode::kTopologyFailed:
    case proto::ErrorCode::kQueryFailed:
    case proto::ErrorCode::kIoError:
    case proto::ErrorCode::kInternal:
      return 500;
    case proto::ErrorCode::kOverloaded:
    case proto::ErrorCode::kShuttingDown:
    case proto::ErrorCode::kNotEnoughReplicas:
      return 503;
    case proto::ErrorCode::kTimeout:
      return 504;
  }
  return 500;  // a code of a newer protocol
}

bool ParseAckLevel(std::string_view name, proto::AckLevel* level) {
  constexpr std::pair<std::string_view, proto::AckLevel> kLevels[] = {
      {"none", proto::AckLevel::kNone},
      {"appended", proto::AckLevel::kAppended},
      {"processed", proto::AckLevel::kProcessed},
      {"processed_streams", proto::AckLevel::kProcessedStreams}};
  for (const auto& [text, value] : kLevels) {
    if (name == text) {
      *level = value;
      return true;
    }
  }
  return false;
}

}  // namespace strata::server::http
