// The JSON shapes of the REST API (docs/http.md): protocol responses as Values, which the
// API prints with ToJson (docs/values.md, "JSON form"), and the HTTP status of each
// protocol error code. No sockets, no HTTP library: the shapes alone, unit-tested.
#pragma once

#include <string>
#include <string_view>

#include "cluster_node.h"
#include "strata/protocol/messages.h"
#include "strata/value.h"

namespace strata::server::http {

// A map with string keys, from (name, value) pairs (Value::MapOf sorts them).
Value Object(std::initializer_list<std::pair<Value, Value>> members);

// The shapes of single modules, stats, append results and updates are those of
// strata/protocol/documents.h, which the shell's --json output shares; these are the
// REST API's own.
Value ModuleListJson(const protocol::ModuleList& list);  // GET /rest/modules
Value StatsJson(const protocol::StatsResult& stats);     // GET /rest/stats
// GET /rest/cluster: {"node", "controller" (null while unknown), "nodes": [{"id",
// "advertise", "http"}, ...]}.
Value ClusterJson(const cluster::ClusterView& view);
Value DepotRecordsJson(const protocol::DepotRecords& records, int64_t from);

// {"error": {"code": "NOT_FOUND", "message": "..."}} as compact JSON text; with a
// non-empty `leader` (NOT_LEADER: the leader's protocol address), also {"leader": ...}.
std::string ErrorJson(protocol::ErrorCode code, std::string_view message,
                      std::string_view leader = {});
// The HTTP status of a protocol error (docs/http.md, "Errors").
int HttpStatusFor(protocol::ErrorCode code);

// Ack levels by their REST names: "none", "appended", "processed", "processed_streams".
bool ParseAckLevel(std::string_view name, protocol::AckLevel* level);

}  // namespace strata::server::http
