// The typed C++ form of every protocol message (protocol/strata.fbs, docs/protocol.md),
// shared by stratad and the drivers. Encode* build a frame payload (no length prefix);
// Decode* verify untrusted bytes with a bounded flatbuffers::Verifier, then convert,
// checking every field (required fields present, values decodable) — so the server and
// the drivers never touch an unverified buffer.
//
// Depends on FlatBuffers and the value library only: no engine, no sockets.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "strata/diff.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata::protocol {

// The numbered error table. Its source is protocol/strata.fbs's enum ErrorCode; this copy
// keeps the generated code out of the public API, and the build refuses it when it differs
// from the schema (messages.cc, ErrorTablesAgree). A code received from a newer server
// keeps its number, outside the enumerators.
enum class ErrorCode : uint16_t {
  kNone = 0,
  kBadFrame = 1,
  kFrameTooLarge = 2,
  kUnsupportedVersion = 3,
  kHandshakeRequired = 4,
  kUnsupported = 5,
  kInvalidArgument = 6,
  kNotFound = 7,
  kAlreadyExists = 8,
  kSchemaViolation = 9,
  kTopologyFailed = 10,
  kOverloaded = 11,
  kAborted = 12,
  kIoError = 13,
  kInternal = 14,
  kShuttingDown = 15,
  kConfirmationRequired = 16,
  kTimeout = 17,
  kQueryFailed = 18,
  kNotLeader = 19,
  kNotEnoughReplicas = 20,
};
std::string_view ErrorCodeName(ErrorCode code);  // "NOT_FOUND", ...
// The wire code for an engine Status (kOk -> kNone), and back (for drivers).
ErrorCode ErrorCodeFor(const Status& status);
StatusCode StatusCodeFor(ErrorCode code);

struct Error {
  // A constructor rather than an aggregate, so that Error{code, message} stays warning-free.
  Error() = default;
  Error(ErrorCode c, std::string m, std::string l = {})
      : code(c), message(std::move(m)), leader(std::move(l)) {}
  ErrorCode code = ErrorCode::kNone;
  std::string message;
  std::string leader;  // kNotLeader: the leader's HOST:PORT, when known
  bool operator==(const Error&) const = default;
};

// kProcessedStreams: as kProcessed, without waiting for microbatch topologies.
enum class AckLevel : uint8_t { kNone = 0, kAppended = 1, kProcessed = 2, kProcessedStreams = 3 };

// ---- Requests ----------------------------------------------------------------------------
struct Hello {
  uint32_t protocol_version = 1;
  std::string client_name;
  bool operator==(const Hello&) const = default;
};
struct DeployRequest {
  std::string path;      // a path on the server, or
  std::string so_bytes;  // the plugin's bytes (exactly one of the two is set)
  int partitions = 8;
  // Cluster mode: the nodes that keep a replica (0: the cluster default, min(3, live
  // nodes)), and the fewest in-sync replicas an append needs (0: 1 when replication <= 2,
  // else 2). Validate: replication 0 to kMaxReplication, min_isr 0 to replication (to
  // kMaxReplication when replication is 0); the server checks them against the cluster.
  int replication = 0;
  int min_isr = 0;
  bool operator==(const DeployRequest&) const = default;
};
struct ListModulesRequest {
  bool operator==(const ListModulesRequest&) const = default;
};
struct DescribeRequest {
  std::string module;
  bool operator==(const DescribeRequest&) const = default;
};
struct DestroyRequest {
  std::string module;
  std::string confirm;
  bool operator==(const DestroyRequest&) const = default;
};
struct AppendRequest {
  std::string module;
  std::string depot;
  std::vector<Value> records;  // at least one
  AckLevel ack = AckLevel::kProcessed;
  bool operator==(const AppendRequest&) const = default;
};
struct SelectRequest {
  std::string module;
  std::string pstate;
  Value path;  // Path wire form (docs/paths.md); the server parses it with Path::FromValue
  std::optional<Value> partition_key;
  bool one = false;
  bool operator==(const SelectRequest&) const = default;
};
struct ReadDepotRequest {
  std::string module;
  std::string depot;
  int partition = 0;
  int64_t from = 0;
  int64_t to = INT64_MAX;
  int64_t limit = 1000;
  bool operator==(const ReadDepotRequest&) const = default;
};
// The most failures one StatsRequest may list per module.
inline constexpr int64_t kMaxStatsFailuresLimit = 1000;
struct StatsRequest {
  std::string module;  // empty: every module
  // Lists each module's failures at positions [failures_from, failures_from +
  // failures_limit) in (topology, depot, partition, offset) order; limit 0 to
  // kMaxStatsFailuresLimit.
  int64_t failures_from = 0;
  int64_t failures_limit = 100;
  bool operator==(const StatsRequest&) const = default;
};

// The partition counts a module may have (DeployRequest, UpdateRequest).
inline constexpr int kMaxPartitions = 1024;
// The most replicas a module may ask for (DeployRequest.replication).
inline constexpr int kMaxReplication = 16;
struct UpdateRequest {
  std::string path;      // a path on the server, or
  std::string so_bytes;  // the plugin's bytes (exactly one of the two is set)
  // Declared names ("*clicks", "$$counts", "count") the new build drops; none empty.
  std::vector<std::string> drop;
  int partitions = 0;  // 0: keep; else rescale to 1..kMaxPartitions
  bool new_topologies_from_end = false;
  bool operator==(const UpdateRequest&) const = default;
};
struct RecomputeRequest {
  std::string module;
  std::vector<std::string> pstates;  // at least one, none empty; "$$" optional
  bool operator==(const RecomputeRequest&) const = default;
};
// The timeouts an InvokeRequest may ask for: 1 ms to one hour.
inline constexpr int64_t kMaxInvokeTimeoutMs = 3'600'000;
struct InvokeRequest {
  std::string module;
  std::string query;
  std::vector<Value> args;      // one per declared parameter, in order (the server checks them)
  int64_t timeout_ms = 10'000;  // 1 to kMaxInvokeTimeoutMs
  bool operator==(const InvokeRequest&) const = default;
};
// The most top-level entries one SelectPageRequest may ask for.
inline constexpr int64_t kMaxPageLimit = 10'000;
struct SelectPageRequest {
  std::string module;
  std::string pstate;   // "$$" optional
  Value path;           // Path wire form, applied to the page's sorted view; [] for the view
  std::string token;    // empty: the first page; else SelectedPage::next_token, unchanged
  int64_t limit = 100;  // top-level entries per page, 1 to kMaxPageLimit
  bool operator==(const SelectPageRequest&) const = default;
};

// A live subscription (docs/subscriptions.md): answered Subscribed, then the server pushes
// SubscriptionUpdate messages (a Response with id 0) until UnsubscribeRequest.
struct SubscribeRequest {
  std::string module;
  std::string pstate;  // "$$" optional
  Value path;          // Path wire form of a select path
  std::optional<Value> partition_key;
  bool one = false;  // the value is the one value selected (nil for none), not their list
  bool operator==(const SubscribeRequest&) const = default;
};
struct UnsubscribeRequest {
  uint64_t subscription = 0;
  bool operator==(const UnsubscribeRequest&) const = default;
};

// ---- Cluster requests (docs/protocol.md, "Cluster requests") ----
// Where each module's replica group is led, from the answering node's view: Placement.
struct PlacementRequest {
  bool operator==(const PlacementRequest&) const = default;
};
// The three below are sent by nodes to nodes only; clients never send them.
// The most wait a ReplicaFetchRequest may ask for (ms).
inline constexpr uint32_t kMaxReplicaFetchWaitMs = 60'000;
// A follower asks its group's leader for log entries from `from`: ReplicaEntries.
struct ReplicaFetchRequest {
  std::string module;
  int group = 0;
  std::string node;                // the follower's node id
  int64_t epoch = 0;               // the leader epoch the follower follows
  int64_t from = 0;                // the first offset wanted
  int64_t durable_end = 0;         // the follower's durable log end
  uint32_t max_bytes = 1'048'576;  // at least 1
  uint32_t wait_ms = 500;          // 0 to kMaxReplicaFetchWaitMs
  bool operator==(const ReplicaFetchRequest&) const = default;
};
// The end offset of the leader's entries of leader epoch `log_epoch`: ReplicaEpochEnd.
struct ReplicaEpochRequest {
  std::string module;
  int group = 0;
  std::string node;   // the follower's node id
  int64_t epoch = 0;  // the leader epoch the follower follows
  int64_t log_epoch = 0;
  bool operator==(const ReplicaEpochRequest&) const = default;
};
// A chunk of the leader's rows of a group after a cursor: ReplicaSnapshot.
struct ReplicaSnapshotRequest {
  std::string module;
  int group = 0;
  std::string node;   // the follower's node id
  int64_t epoch = 0;  // the leader epoch the follower follows
  std::string table;  // the cursor: the last row received ("" for none)
  std::string key;
  int64_t record = -1;
  uint32_t max_bytes = 4'194'304;  // at least 1
  bool operator==(const ReplicaSnapshotRequest&) const = default;
};
// Asks the controller to rebalance the replica groups: Placement.
struct RebalanceRequest {
  bool operator==(const RebalanceRequest&) const = default;
};
// A module's plugin file: ModuleFile.
struct ModuleFileRequest {
  std::string module;
  bool operator==(const ModuleFileRequest&) const = default;
};

using RequestBody =
    std::variant<Hello, DeployRequest, ListModulesRequest, DescribeRequest, DestroyRequest,
                 AppendRequest, SelectRequest, ReadDepotRequest, StatsRequest, UpdateRequest,
                 RecomputeRequest, InvokeRequest, SelectPageRequest, SubscribeRequest,
                 UnsubscribeRequest, PlacementRequest, ReplicaFetchRequest, ReplicaEpochRequest,
                 ModuleFileRequest, ReplicaSnapshotRequest, RebalanceRequest>;
struct Request {
  uint64_t id = 0;
  RequestBody body;
  bool operator==(const Request&) const = default;
};

// ---- Responses ---------------------------------------------------------------------------
struct Welcome {
  uint32_t protocol_version = 1;
  std::string server_version;
  uint32_t max_frame_size = 0;
  uint32_t max_in_flight = 0;
  bool operator==(const Welcome&) const = default;
};
struct DepotInfo {
  std::string name;
  std::string partitioning;
  Value record_schema;  // Schema::ToValue form; nil from a server that does not send it
  std::string record_schema_text;
  bool operator==(const DepotInfo&) const = default;
};
struct PStateInfo {
  std::string name;
  Value schema;  // PStateSchema::ToValue form
  std::string schema_text;
  bool operator==(const PStateInfo&) const = default;
};
struct TopologyInfo {
  std::string name;
  std::vector<std::string> sources;
  std::string kind;  // "stream" or "microbatch"
  bool operator==(const TopologyInfo&) const = default;
};
struct QueryParamInfo {
  std::string name;
  Value schema;  // Schema::ToValue form
  std::string schema_text;
  bool operator==(const QueryParamInfo&) const = default;
};
struct QueryInfo {
  std::string name;
  std::vector<QueryParamInfo> params;  // in order
  bool operator==(const QueryInfo&) const = default;
};
struct ModuleInfo {
  std::string name;
  int partitions = 0;
  std::vector<DepotInfo> depots;
  std::vector<PStateInfo> pstates;
  std::vector<TopologyInfo> topologies;
  std::string load_error;  // empty: loaded and serving; else why it failed to load
  int version = 0;         // 1 at deploy, +1 per update (0 from an older server)
  std::vector<QueryInfo> queries;
  std::vector<std::string> depends_on;  // modules whose depots, PStates or queries it uses
  std::vector<std::string> dependents;  // modules that use its depots, PStates or queries
  bool operator==(const ModuleInfo&) const = default;
};
struct ModuleList {
  std::vector<ModuleInfo> modules;
  bool operator==(const ModuleList&) const = default;
};
struct Destroyed {
  std::string module;
  bool operator==(const Destroyed&) const = default;
};
struct AppendResult {
  int partition = -1;
  int64_t offset = -1;
  std::vector<std::pair<std::string, Value>> ack_returns;  // topology -> value
  std::optional<Error> failure;
  bool operator==(const AppendResult&) const = default;
};
struct Appended {
  std::vector<AppendResult> results;
  bool operator==(const Appended&) const = default;
};
struct Selected {
  std::vector<Value> values;
  bool operator==(const Selected&) const = default;
};
struct DepotRecord {
  int64_t offset = 0;
  Value value;
  bool operator==(const DepotRecord&) const = default;
};
struct DepotRecords {
  std::vector<DepotRecord> records;
  bool operator==(const DepotRecords&) const = default;
};
struct DepotPartitionStats {
  std::string depot;
  int partition = 0;
  int64_t start_offset = 0;
  int64_t end_offset = 0;
  bool operator==(const DepotPartitionStats&) const = default;
};
struct TopologyPartitionStats {
  std::string topology;
  std::string depot;
  int partition = 0;
  int64_t processed_offset = 0;
  int64_t lag = 0;
  bool operator==(const TopologyPartitionStats&) const = default;
};
struct TopologyFailure {
  std::string topology;
  std::string depot;
  int partition = 0;
  int64_t offset = 0;
  std::string message;
  bool operator==(const TopologyFailure&) const = default;
};
// Work rebuilding views in the background (ModuleStats::rebuilds).
struct RebuildProgress {
  std::string kind;                // "backfill", "recompute" or "migration"
  std::vector<std::string> names;  // the topology (backfill) or the PStates (the others)
  // Depot records (backfill, recompute; the total as last measured, appends keep adding to
  // it), or partitions (migration).
  int64_t records_done = 0;
  int64_t records_total = 0;
  bool operator==(const RebuildProgress&) const = default;
};
struct MicrobatchStats {
  std::string topology;
  int64_t batch = 0;    // the last committed batch
  std::string stalled;  // why the last batch could not commit; empty: it did
  bool operator==(const MicrobatchStats&) const = default;
};
struct ModuleStats {
  std::string module;
  std::vector<DepotPartitionStats> depots;
  std::vector<TopologyPartitionStats> topologies;
  int64_t failures = 0;                       // all of the module's failures
  std::vector<TopologyFailure> failure_page;  // those StatsRequest asked for
  std::string load_error;                     // as ModuleInfo::load_error
  std::vector<RebuildProgress> rebuilds;      // running now
  std::vector<MicrobatchStats> microbatches;  // one per microbatch topology
  bool operator==(const ModuleStats&) const = default;
};
struct ServerStats {
  int64_t uptime_ms = 0;
  int64_t connections = 0;
  int64_t total_connections = 0;
  int64_t requests = 0;
  bool operator==(const ServerStats&) const = default;
};
struct StatsResult {
  ServerStats server;
  std::vector<ModuleStats> modules;
  bool operator==(const StatsResult&) const = default;
};

// What an update did (UpdateRequest).
struct Updated {
  ModuleInfo module;  // the module as it now runs
  int version = 0;
  std::vector<std::string> created;      // new depots and PStates
  std::vector<std::string> dropped;      // depots, PStates and topologies deleted
  std::vector<std::string> widened;      // PStates whose schema was widened in place
  std::vector<std::string> backfilling;  // new topologies catching up from offset 0
  int64_t pause_us = 0;                  // how long appends to the module waited
  std::vector<std::string> migrated;     // PStates with a new migration
  bool operator==(const Updated&) const = default;
};
struct RecomputeStarted {
  std::string module;
  std::vector<std::string> pstates;  // with their "$$"
  bool operator==(const RecomputeStarted&) const = default;
};
struct Invoked {
  Value result;  // the query's result
  bool operator==(const Invoked&) const = default;
};
struct SelectedPage {
  std::vector<Value> values;
  // Opaque bytes: pass them unchanged in the next SelectPageRequest; empty on the last page.
  std::string next_token;
  bool operator==(const SelectedPage&) const = default;
};

struct Subscribed {
  uint64_t subscription = 0;  // the id its SubscriptionUpdates carry
  int partition = 0;
  Value value;  // the current value
  bool operator==(const Subscribed&) const = default;
};
struct Unsubscribed {
  uint64_t subscription = 0;
  bool operator==(const Unsubscribed&) const = default;
};
// Pushed in a Response with id 0: the diffs of one change of the subscribed value, in
// order (strata/diff.h), or, with `ended` set, its end.
struct SubscriptionUpdate {
  uint64_t subscription = 0;
  std::vector<Diff> diffs;
  std::optional<Error> ended;
  bool operator==(const SubscriptionUpdate&) const = default;
};

// ---- Cluster answers ----
struct NodeAddress {
  std::string id;
  std::string advertise;  // HOST:PORT of its protocol listener
  bool operator==(const NodeAddress&) const = default;
};
// One replica group of a module, as the controller placed it.
struct GroupPlacement {
  std::string module;
  int group = 0;
  std::string leader;                 // node id; empty while the group has no live in-sync replica
  std::string leader_address;         // the leader's HOST:PORT; empty when unknown
  int64_t epoch = 0;                  // the leader epoch
  std::vector<std::string> replicas;  // node ids
  std::vector<std::string> isr;       // the in-sync replicas
  int min_isr = 0;
  std::vector<std::string> target;  // a move in progress: its replicas, the first to lead
  bool operator==(const GroupPlacement&) const = default;
};
struct Placement {
  std::string node;                // the answering node's id
  std::string controller;          // the controller's id; empty while none is known
  std::vector<NodeAddress> nodes;  // the live nodes
  std::vector<GroupPlacement> groups;
  bool operator==(const Placement&) const = default;
};
struct ReplicaLogEntry {
  int64_t offset = 0;
  std::string bytes;  // opaque to the protocol
  bool operator==(const ReplicaLogEntry&) const = default;
};
struct ReplicaEntries {
  int64_t epoch = 0;                     // the leader's epoch
  std::vector<ReplicaLogEntry> entries;  // consecutive offsets from the request's `from`
  int64_t log_end = 0;
  int64_t high_watermark = 0;
  int64_t log_start = 0;  // entries below it were compacted away
  bool operator==(const ReplicaEntries&) const = default;
};
struct LogEpochStart {
  int64_t epoch = 0;
  int64_t start_offset = 0;
  bool operator==(const LogEpochStart&) const = default;
};
struct ReplicaSnapshot {
  int64_t epoch = 0;  // the leader's epoch
  std::string rows;   // an encoded entry whose ops put the rows (opaque to the protocol)
  int64_t row_count = 0;
  std::string next_table;
  std::string next_key;
  int64_t next_record = -1;
  bool done = false;
  int64_t log_end = 0;
  std::vector<LogEpochStart> epochs;
  bool operator==(const ReplicaSnapshot&) const = default;
};
struct ReplicaEpochEnd {
  int64_t epoch = 0;       // the leader's epoch
  int64_t end_offset = 0;  // the end of the entries of the asked log epoch
  bool operator==(const ReplicaEpochEnd&) const = default;
};
struct ModuleFile {
  std::string module;
  std::string bytes;  // the plugin .so
  bool operator==(const ModuleFile&) const = default;
};

using ResponseBody =
    std::variant<std::monostate, Welcome, ModuleInfo, ModuleList, Destroyed, Appended, Selected,
                 DepotRecords, StatsResult, Updated, RecomputeStarted, Invoked, SelectedPage,
                 Subscribed, Unsubscribed, SubscriptionUpdate, Placement, ReplicaEntries,
                 ReplicaEpochEnd, ModuleFile, ReplicaSnapshot>;
struct Response {
  uint64_t id = 0;
  std::optional<Error> error;  // set on failure; body is then monostate
  ResponseBody body;
  bool operator==(const Response&) const = default;
};

// ---- Codec -------------------------------------------------------------------------------
// All functions are thread-safe and keep no state between calls. Encode* never fail: a
// value nested deeper than kMaxValueDepth is encoded, and the peer's decoder rejects it.
struct DecodeLimits {
  uint32_t max_depth = 64;  // FlatBuffers table nesting
  uint32_t max_tables = 1000000;
};

// A request that could not be decoded. `id` is set when the frame verified far enough to
// read it, so the error can be sent back as that request's response; otherwise the
// connection is answered with id 0 and closed (code kBadFrame). error.code is:
//  kBadFrame        the bytes do not verify as a Request; id set if the Request table and
//                   its id field verified on their own;
//  kUnsupported     a RequestBody union member this version does not know (id set);
//  kInvalidArgument no body, or a field missing, empty, out of range or not a decodable
//                   value; the message names the field ("AppendRequest.records[2]").
// With an id the frame boundary is intact: the server answers that request and keeps the
// connection.
struct RequestError {
  std::optional<uint64_t> id;
  Error error;
  bool operator==(const RequestError&) const = default;
};

std::string EncodeRequest(const Request& request);
// The field checks DecodeRequest applies after conversion, for a request built in another
// form (the REST API, server/http): names present, counts and limits in range, exactly one
// module source. kInvalidArgument naming the field ("ReadDepotRequest.limit 0 is below 1").
Status Validate(const RequestBody& body);
std::variant<Request, RequestError> DecodeRequest(const uint8_t* data, size_t size,
                                                  const DecodeLimits& limits = {});

std::string EncodeResponse(const Response& response);
// For clients: kCorruption when the server's bytes do not verify or convert.
Result<Response> DecodeResponse(const uint8_t* data, size_t size, const DecodeLimits& limits = {});

}  // namespace strata::protocol
