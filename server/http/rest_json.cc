#include "rest_json.h"

#include "strata/json.h"

namespace strata::server::http {
namespace proto = strata::protocol;

namespace {

Value Strings(const std::vector<std::string>& names) {
  Value::List list;
  list.reserve(names.size());
  for (const std::string& name : names) list.emplace_back(name);
  return Value(std::move(list));
}

template <typename T, typename F>
Value ListOf(const std::vector<T>& items, F&& convert) {
  Value::List list;
  list.reserve(items.size());
  for (const T& item : items) list.push_back(convert(item));
  return Value(std::move(list));
}

Value ErrorObject(proto::ErrorCode code, std::string_view message) {
  return Object({{"code", std::string(proto::ErrorCodeName(code))}, {"message", message}});
}

}  // namespace

Value Object(std::initializer_list<std::pair<Value, Value>> members) {
  return Value::MapOf(members);
}

Value ModuleJson(const proto::ModuleInfo& m) {
  return Object({
      {"name", m.name},
      {"version", m.version},
      {"partitions", m.partitions},
      {"load_error", m.load_error},
      {"depots", ListOf(m.depots,
                        [](const proto::DepotInfo& d) {
                          return Object({{"name", d.name},
                                         {"partitioning", d.partitioning},
                                         {"schema", d.record_schema_text}});
                        })},
      {"pstates", ListOf(m.pstates,
                         [](const proto::PStateInfo& p) {
                           return Object({{"name", p.name}, {"schema", p.schema_text}});
                         })},
      {"topologies",
       ListOf(
           m.topologies,
           [](const proto::TopologyInfo& t) {
             return Object({{"name", t.name}, {"kind", t.kind}, {"sources", Strings(t.sources)}});
           })},
      {"queries", ListOf(m.queries,
                         [](const proto::QueryInfo& q) {
                           return Object(
                               {{"name", q.name},
                                {"params", ListOf(q.params, [](const proto::QueryParamInfo& p) {
                                   return Object({{"name", p.name}, {"schema", p.schema_text}});
                                 })}});
                         })},
      {"depends_on", Strings(m.depends_on)},
      {"dependents", Strings(m.dependents)},
  });
}

Value ModuleListJson(const proto::ModuleList& list) {
  return Object({{"modules", ListOf(list.modules, ModuleJson)}});
}

Value AppendResultJson(const proto::AppendResult& r) {
  Value::Map returns;
  returns.reserve(r.ack_returns.size());
  for (const auto& [topology, value] : r.ack_returns) returns.emplace_back(topology, value);
  Value out = Object({{"partition", r.partition},
                      {"offset", r.offset},
                      {"ack_returns", Value::MapOf(std::move(returns))}});
  if (r.failure) out.Insert("failure", ErrorObject(r.failure->code, r.failure->message));
  return out;
}

Value ModuleStatsJson(const proto::ModuleStats& s) {
  return Object({
      {"module", s.module},
      {"load_error", s.load_error},
      {"depots", ListOf(s.depots,
                        [](const proto::DepotPartitionStats& d) {
                          return Object({{"depot", d.depot},
                                         {"partition", d.partition},
                                         {"start_offset", d.start_offset},
                                         {"end_offset", d.end_offset}});
                        })},
      {"topologies", ListOf(s.topologies,
                            [](const proto::TopologyPartitionStats& t) {
                              return Object({{"topology", t.topology},
                                             {"depot", t.depot},
                                             {"partition", t.partition},
                                             {"processed_offset", t.processed_offset},
                                             {"lag", t.lag}});
                            })},
      {"failures", s.failures},
      {"failure_page", ListOf(s.failure_page,
                              [](const proto::TopologyFailure& f) {
                                return Object({{"topology", f.topology},
                                               {"depot", f.depot},
                                               {"partition", f.partition},
                                               {"offset", f.offset},
                                               {"message", f.message}});
                              })},
      {"rebuilds", ListOf(s.rebuilds,
                          [](const proto::RebuildProgress& r) {
                            return Object({{"kind", r.kind},
                                           {"names", Strings(r.names)},
                                           {"records_done", r.records_done},
                                           {"records_total", r.records_total}});
                          })},
      {"microbatches",
       ListOf(
           s.microbatches,
           [](const proto::MicrobatchStats& m) {
             return Object({{"topology", m.topology}, {"batch", m.batch}, {"stalled", m.stalled}});
           })},
  });
}

Value StatsJson(const proto::StatsResult& stats) {
  return Object({{"server", Object({{"uptime_ms", stats.server.uptime_ms},
                                    {"connections", stats.server.connections},
                                    {"total_connections", stats.server.total_connections},
                                    {"requests", stats.server.requests}})},
                 {"modules", ListOf(stats.modules, ModuleStatsJson)}});
}

Value DepotRecordsJson(const proto::DepotRecords& records, int64_t from) {
  const int64_t next = records.records.empty() ? from : records.records.back().offset + 1;
  return Object({{"records", ListOf(records.records,
                                    [](const proto::DepotRecord& r) {
                                      return Object({{"offset", r.offset}, {"value", r.value}});
                                    })},
                 {"next", next}});
}

Value UpdatedJson(const proto::Updated& u) {
  return Object({{"module", ModuleJson(u.module)},
                 {"version", u.version},
                 {"created", Strings(u.created)},
                 {"dropped", Strings(u.dropped)},
                 {"widened", Strings(u.widened)},
                 {"backfilling", Strings(u.backfilling)},
                 {"migrated", Strings(u.migrated)},
                 {"pause_us", u.pause_us}});
}

std::string ErrorJson(proto::ErrorCode code, std::string_view message) {
  return ToJson(Object({{"error", ErrorObject(code, message)}}));
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
    case proto::ErrorCode::kTopologyFailed:
    case proto::ErrorCode::kQueryFailed:
    case proto::ErrorCode::kIoError:
    case proto::ErrorCode::kInternal:
      return 500;
    case proto::ErrorCode::kOverloaded:
    case proto::ErrorCode::kShuttingDown:
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
