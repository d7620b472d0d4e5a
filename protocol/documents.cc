#include "strata/protocol/documents.h"

namespace strata::protocol {
namespace {

template <typename T, typename F>
Value ListOf(const std::vector<T>& items, F&& convert) {
  Value::List list;
  list.reserve(items.size());
  for (const T& item : items) list.push_back(convert(item));
  return Value(std::move(list));
}

Value SchemaDocument(const std::string& name, const Value& schema, const std::string& text) {
  return Value::MapOf({{"name", name}, {"schema", schema}, {"schema_text", text}});
}

}  // namespace

Value StringListDocument(const std::vector<std::string>& items) {
  return ListOf(items, [](const std::string& s) { return Value(s); });
}

Value ModuleDocument(const ModuleInfo& m) {
  Value doc = Value::MapOf({
      {"name", m.name},
      {"partitions", m.partitions},
      {"version", m.version},
      {"depots", ListOf(m.depots,
                        [](const DepotInfo& d) {
                          return Value::MapOf({{"name", d.name},
                                               {"partitioning", d.partitioning},
                                               {"record_schema", d.record_schema},
                                               {"record_schema_text", d.record_schema_text}});
                        })},
      {"pstates",
       ListOf(m.pstates,
              [](const PStateInfo& p) { return SchemaDocument(p.name, p.schema, p.schema_text); })},
      {"topologies", ListOf(m.topologies,
                            [](const TopologyInfo& t) {
                              return Value::MapOf({{"name", t.name},
                                                   {"kind", t.kind},
                                                   {"sources", StringListDocument(t.sources)}});
                            })},
      {"queries", ListOf(m.queries,
                         [](const QueryInfo& q) {
                           return Value::MapOf(
                               {{"name", q.name},
                                {"params", ListOf(q.params, [](const QueryParamInfo& p) {
                                   return SchemaDocument(p.name, p.schema, p.schema_text);
                                 })}});
                         })},
      {"depends_on", StringListDocument(m.depends_on)},
      {"dependents", StringListDocument(m.dependents)},
  });
  if (!m.load_error.empty()) doc.Insert("load_error", m.load_error);
  return doc;
}

Value AppendResultDocument(const AppendResult& r) {
  Value::Map returns;
  returns.reserve(r.ack_returns.size());
  for (const auto& [topology, value] : r.ack_returns) returns.emplace_back(topology, value);
  Value doc = Value::MapOf({{"partition", r.partition},
                            {"offset", r.offset},
                            {"ack_returns", Value::MapOf(std::move(returns))}});
  if (r.failure) doc.Insert("failure", ErrorDocument(r.failure->code, r.failure->message));
  return doc;
}

Value ModuleStatsDocument(const ModuleStats& s) {
  Value doc = Value::MapOf({
      {"module", s.module},
      {"depots", ListOf(s.depots,
                        [](const DepotPartitionStats& d) {
                          return Value::MapOf({{"depot", d.depot},
                                               {"partition", d.partition},
                                               {"start_offset", d.start_offset},
                                               {"end_offset", d.end_offset}});
                        })},
      {"topologies", ListOf(s.topologies,
                            [](const TopologyPartitionStats& t) {
                              return Value::MapOf({{"topology", t.topology},
                                                   {"depot", t.depot},
                                                   {"partition", t.partition},
                                                   {"processed_offset", t.processed_offset},
                                                   {"lag", t.lag}});
                            })},
      {"failures", s.failures},
      {"failure_page", ListOf(s.failure_page,
                              [](const TopologyFailure& f) {
                                return Value::MapOf({{"topology", f.topology},
                                                     {"depot", f.depot},
                                                     {"partition", f.partition},
                                                     {"offset", f.offset},
                                                     {"message", f.message}});
                              })},
      {"rebuilds", ListOf(s.rebuilds,
                          [](const RebuildProgress& r) {
                            return Value::MapOf({{"kind", r.kind},
                                                 {"names", StringListDocument(r.names)},
                                                 {"records_done", r.records_done},
                                                 {"records_total", r.records_total}});
                          })},
      {"microbatches", ListOf(s.microbatches,
                              [](const MicrobatchStats& m) {
                                return Value::MapOf({{"topology", m.topology},
                                                     {"batch", m.batch},
                                                     {"stalled", m.stalled}});
                              })},
  });
  if (!s.load_error.empty()) doc.Insert("load_error", s.load_error);
  return doc;
}

Value ServerStatsDocument(const ServerStats& s) {
  return Value::MapOf({{"uptime_ms", s.uptime_ms},
                       {"connections", s.connections},
                       {"total_connections", s.total_connections},
                       {"requests", s.requests}});
}

Value UpdatedDocument(const Updated& u) {
  return Value::MapOf({{"module", ModuleDocument(u.module)},
                       {"version", u.version},
                       {"created", StringListDocument(u.created)},
                       {"dropped", StringListDocument(u.dropped)},
                       {"widened", StringListDocument(u.widened)},
                       {"migrated", StringListDocument(u.migrated)},
                       {"backfilling", StringListDocument(u.backfilling)},
                       {"pause_us", u.pause_us}});
}

Value ErrorDocument(ErrorCode code, std::string_view message) {
  return Value::MapOf({{"code", std::string(ErrorCodeName(code))}, {"message", message}});
}

Value DiffDocument(const Diff& diff) {
  Value doc = Value::MapOf({{"op", std::string(DiffOpName(diff.op))}, {"at", Value(diff.at)}});
  const bool keyed = diff.op == Diff::Op::kKeySet || diff.op == Diff::Op::kKeyRemoved;
  const bool indexed = diff.op == Diff::Op::kSeqInsert || diff.op == Diff::Op::kSeqRemove;
  const bool valued = diff.op != Diff::Op::kKeyRemoved && diff.op != Diff::Op::kSeqRemove;
  if (keyed) doc.Insert("key", diff.key);
  if (valued) doc.Insert("value", diff.value);
  if (indexed) doc.Insert("index", diff.index);
  return doc;
}

}  // namespace strata::protocol
