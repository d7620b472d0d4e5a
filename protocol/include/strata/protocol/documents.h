// The JSON documents of protocol responses, as Values printed with ToJson (docs/values.md,
// "JSON form"): one shape per response type, shared by the shell's --json output
// (docs/shell.md) and the REST API (docs/http.md), so that both show the same fields.
#pragma once

#include <string>
#include <vector>

#include "strata/protocol/messages.h"
#include "strata/value.h"

namespace strata::protocol {

// A list of strings.
Value StringListDocument(const std::vector<std::string>& items);

// {"name", "partitions", "version", "depots": [{"name", "partitioning", "record_schema",
// "record_schema_text"}], "pstates": [{"name", "schema", "schema_text"}], "topologies":
// [{"name", "kind", "sources"}], "queries": [{"name", "params": [{"name", "schema",
// "schema_text"}]}], "depends_on", "dependents"}, and "load_error" for a module that failed
// to load (absent otherwise). Schemas in their wire form (Schema::ToValue) and as text.
Value ModuleDocument(const ModuleInfo& module);

// {"partition", "offset", "ack_returns": {topology: value}}, and "failure": {"code",
// "message"} when a topology gave up on the record.
Value AppendResultDocument(const AppendResult& result);

// {"module", "depots": [{"depot", "partition", "start_offset", "end_offset"}], "topologies":
// [{"topology", "depot", "partition", "processed_offset", "lag"}], "failures",
// "failure_page": [{"topology", "depot", "partition", "offset", "message"}], "rebuilds":
// [{"kind", "names", "records_done", "records_total"}], "microbatches": [{"topology",
// "batch", "stalled"}]}, and "load_error" for a module that failed to load.
Value ModuleStatsDocument(const ModuleStats& stats);

// {"uptime_ms", "connections", "total_connections", "requests"}.
Value ServerStatsDocument(const ServerStats& stats);

// {"module": ModuleDocument, "version", "created", "dropped", "widened", "migrated",
// "backfilling", "pause_us"}.
Value UpdatedDocument(const Updated& updated);

// {"code": "NOT_FOUND", "message": "..."}.
Value ErrorDocument(ErrorCode code, std::string_view message);

// One diff of a live subscription (docs/subscriptions.md): {"op": "key_set", "at": [...],
// "key", "value", "index"} with only the fields its op uses ("op" and "at" always; "key" for
// key_set and key_removed; "value" for replace, key_set, set_added, set_removed,
// seq_insert and resync; "index" for seq_insert and seq_remove).
Value DiffDocument(const Diff& diff);

}  // namespace strata::protocol
