#include "strata/protocol/messages.h"

#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

#include "strata/protocol/frame.h"
#include "strata/value_codec.h"
#include "strata_generated.h"

namespace strata::protocol {
namespace {

namespace fb = flatbuffers;
namespace w = strata::wire;

template <class... Fs>
struct Overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
Overloaded(Fs...) -> Overloaded<Fs...>;

// The error table has one source, strata.fbs's enum ErrorCode. messages.h keeps a C++ enum
// for the public API (the generated header stays private); ToWire and FromWire are the
// only bridge between the two, and the build checks that they agree: each switch names
// every enumerator of its enum (this file compiles with -Werror=switch,
// protocol/CMakeLists.txt), and ErrorTablesAgree that each schema code maps to a C++ code
// of the same number and back. docs/protocol.md's table is checked by
// error_table_test.cc.
constexpr w::ErrorCode ToWire(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return w::ErrorCode::NONE;
    case ErrorCode::kBadFrame:
      return w::ErrorCode::BAD_FRAME;
    case ErrorCode::kFrameTooLarge:
      return w::ErrorCode::FRAME_TOO_LARGE;
    case ErrorCode::kUnsupportedVersion:
      return w::ErrorCode::UNSUPPORTED_VERSION;
    case ErrorCode::kHandshakeRequired:
      return w::ErrorCode::HANDSHAKE_REQUIRED;
    case ErrorCode::kUnsupported:
      return w::ErrorCode::UNSUPPORTED;
    case ErrorCode::kInvalidArgument:
      return w::ErrorCode::INVALID_ARGUMENT;
    case ErrorCode::kNotFound:
      return w::ErrorCode::NOT_FOUND;
    case ErrorCode::kAlreadyExists:
      return w::ErrorCode::ALREADY_EXISTS;
    case ErrorCode::kSchemaViolation:
      return w::ErrorCode::SCHEMA_VIOLATION;
    case ErrorCode::kTopologyFailed:
      return w::ErrorCode::TOPOLOGY_FAILED;
    case ErrorCode::kOverloaded:
      return w::ErrorCode::OVERLOADED;
    case ErrorCode::kAborted:
      return w::ErrorCode::ABORTED;
    case ErrorCode::kIoError:
      return w::ErrorCode::IO_ERROR;
    case ErrorCode::kInternal:
      return w::ErrorCode::INTERNAL;
    case ErrorCode::kShuttingDown:
      return w::ErrorCode::SHUTTING_DOWN;
    case ErrorCode::kConfirmationRequired:
      return w::ErrorCode::CONFIRMATION_REQUIRED;
    case ErrorCode::kTimeout:
      return w::ErrorCode::TIMEOUT;
    case ErrorCode::kQueryFailed:
      return w::ErrorCode::QUERY_FAILED;
    case ErrorCode::kNotLeader:
      return w::ErrorCode::NOT_LEADER;
    case ErrorCode::kNotEnoughReplicas:
      return w::ErrorCode::NOT_ENOUGH_REPLICAS;
  }
  // Not an enumerator: a code received from a newer peer, forwarded with its number.
  return static_cast<w::ErrorCode>(code);
}

constexpr ErrorCode FromWire(w::ErrorCode code) {
  switch (code) {
    case w::ErrorCode::NONE:
      return ErrorCode::kNone;
    case w::ErrorCode::BAD_FRAME:
      return ErrorCode::kBadFrame;
    case w::ErrorCode::FRAME_TOO_LARGE:
      return ErrorCode::kFrameTooLarge;
    case w::ErrorCode::UNSUPPORTED_VERSION:
      return ErrorCode::kUnsupportedVersion;
    case w::ErrorCode::HANDSHAKE_REQUIRED:
      return ErrorCode::kHandshakeRequired;
    case w::ErrorCode::UNSUPPORTED:
      return ErrorCode::kUnsupported;
    case w::ErrorCode::INVALID_ARGUMENT:
      return ErrorCode::kInvalidArgument;
    case w::ErrorCode::NOT_FOUND:
      return ErrorCode::kNotFound;
    case w::ErrorCode::ALREADY_EXISTS:
      return ErrorCode::kAlreadyExists;
    case w::ErrorCode::SCHEMA_VIOLATION:
      return ErrorCode::kSchemaViolation;
    case w::ErrorCode::TOPOLOGY_FAILED:
      return ErrorCode::kTopologyFailed;
    case w::ErrorCode::OVERLOADED:
      return ErrorCode::kOverloaded;
    case w::ErrorCode::ABORTED:
      return ErrorCode::kAborted;
    case w::ErrorCode::IO_ERROR:
      return ErrorCode::kIoError;
    case w::ErrorCode::INTERNAL:
      return ErrorCode::kInternal;
    case w::ErrorCode::SHUTTING_DOWN:
      return ErrorCode::kShuttingDown;
    case w::ErrorCode::CONFIRMATION_REQUIRED:
      return ErrorCode::kConfirmationRequired;
    case w::ErrorCode::TIMEOUT:
      return ErrorCode::kTimeout;
    case w::ErrorCode::QUERY_FAILED:
      return ErrorCode::kQueryFailed;
    case w::ErrorCode::NOT_LEADER:
      return ErrorCode::kNotLeader;
    case w::ErrorCode::NOT_ENOUGH_REPLICAS:
      return ErrorCode::kNotEnoughReplicas;
  }
  // A code this build does not know (a newer server): it keeps its number, which
  // ErrorCodeName calls "UNKNOWN" and StatusCodeFor treats as kInternal.
  return static_cast<ErrorCode>(code);
}

constexpr bool ErrorTablesAgree() {
  using Number = std::underlying_type_t<w::ErrorCode>;
  static_assert(std::is_same_v<Number, std::underlying_type_t<ErrorCode>>);
  for (Number n = 0; n <= static_cast<Number>(w::ErrorCode::MAX); ++n) {
    const auto schema_code = static_cast<w::ErrorCode>(n);
    if (static_cast<Number>(FromWire(schema_code)) != n) return false;
    if (ToWire(FromWire(schema_code)) != schema_code) return false;
  }
  return true;
}
static_assert(ErrorTablesAgree(),
              "protocol::ErrorCode (messages.h) differs from strata.fbs's enum ErrorCode");

// ---- Encoding ----------------------------------------------------------------------------

// Strings that are optional on the wire are left out when empty, so "absent" and ""
// mean the same to every decoder.
fb::Offset<fb::String> OptionalString(fb::FlatBufferBuilder& b, const std::string& s) {
  return s.empty() ? fb::Offset<fb::String>() : b.CreateString(s);
}

fb::Offset<fb::Vector<uint8_t>> ValueField(fb::FlatBufferBuilder& b, const Value& v) {
  std::vector<uint8_t> bytes = EncodeValue(v);
  return b.CreateVector(bytes);
}

fb::Offset<fb::Vector<fb::Offset<w::ValueBytes>>> ValueList(fb::FlatBufferBuilder& b,
                                                            const std::vector<Value>& values) {
  std::vector<fb::Offset<w::ValueBytes>> offsets;
  offsets.reserve(values.size());
  for (const Value& v : values) offsets.push_back(w::CreateValueBytes(b, ValueField(b, v)));
  return b.CreateVector(offsets);
}

fb::Offset<fb::Vector<fb::Offset<fb::String>>> StringList(fb::FlatBufferBuilder& b,
                                                          const std::vector<std::string>& list) {
  std::vector<fb::Offset<fb::String>> offsets;
  offsets.reserve(list.size());
  for (const std::string& s : list) offsets.push_back(b.CreateString(s));
  return b.CreateVector(offsets);
}

// Builds one table per element with `make` and returns the vector of their offsets.
template <typename Table, typename T, typename Make>
fb::Offset<fb::Vector<fb::Offset<Table>>> TableList(fb::FlatBufferBuilder& b,
                                                    const std::vector<T>& items, Make make) {
  std::vector<fb::Offset<Table>> offsets;
  offsets.reserve(items.size());
  for (const T& item : items) offsets.push_back(make(b, item));
  return b.CreateVector(offsets);
}

fb::Offset<fb::Vector<uint8_t>> OptionalBytes(fb::FlatBufferBuilder& b, const std::string& bytes) {
  if (bytes.empty()) return {};
  return b.CreateVector(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

fb::Offset<w::Error> EncodeError(fb::FlatBufferBuilder& b, const Error& e) {
  return w::CreateError(b, ToWire(e.code), OptionalString(b, e.message),
                        OptionalString(b, e.leader));
}

std::pair<w::RequestBody, fb::Offset<void>> EncodeRequestBody(fb::FlatBufferBuilder& b,
                                                              const RequestBody& body) {
  return std::visit(
      Overloaded{
          [&](const Hello& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {
                w::RequestBody::Hello,
                w::CreateHello(b, m.protocol_version, OptionalString(b, m.client_name)).Union()};
          },
          [&](const DeployRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto so_bytes = OptionalBytes(b, m.so_bytes);
            auto path = OptionalString(b, m.path);
            return {
                w::RequestBody::DeployRequest,
                w::CreateDeployRequest(b, path, so_bytes, m.partitions, m.replication, m.min_isr)
                    .Union()};
          },
          [&](const ListModulesRequest&) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {w::RequestBody::ListModulesRequest, w::CreateListModulesRequest(b).Union()};
          },
          [&](const DescribeRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {w::RequestBody::DescribeRequest,
                    w::CreateDescribeRequest(b, OptionalString(b, m.module)).Union()};
          },
          [&](const DestroyRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto confirm = OptionalString(b, m.confirm);
            return {w::RequestBody::DestroyRequest,
                    w::CreateDestroyRequest(b, module, confirm).Union()};
          },
          [&](const AppendRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto depot = OptionalString(b, m.depot);
            auto records = ValueList(b, m.records);
            return {
                w::RequestBody::AppendRequest,
                w::CreateAppendRequest(b, module, depot, records, static_cast<w::AckLevel>(m.ack))
                    .Union()};
          },
          [&](const SelectRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto pstate = OptionalString(b, m.pstate);
            auto path = ValueField(b, m.path);
            fb::Offset<fb::Vector<uint8_t>> key;
            if (m.partition_key.has_value()) key = ValueField(b, *m.partition_key);
            return {w::RequestBody::SelectRequest,
                    w::CreateSelectRequest(b, module, pstate, path, key, m.one).Union()};
          },
          [&](const ReadDepotRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto depot = OptionalString(b, m.depot);
            return {w::RequestBody::ReadDepotRequest,
                    w::CreateReadDepotRequest(b, module, depot, m.partition, m.from, m.to, m.limit)
                        .Union()};
          },
          [&](const StatsRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {w::RequestBody::StatsRequest,
                    w::CreateStatsRequest(b, OptionalString(b, m.module), m.failures_from,
                                          m.failures_limit)
                        .Union()};
          },
          [&](const UpdateRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto path = OptionalString(b, m.path);
            auto so_bytes = OptionalBytes(b, m.so_bytes);
            fb::Offset<fb::Vector<fb::Offset<fb::String>>> drop;
            if (!m.drop.empty()) drop = StringList(b, m.drop);
            return {w::RequestBody::UpdateRequest,
                    w::CreateUpdateRequest(b, path, so_bytes, drop, m.partitions,
                                           m.new_topologies_from_end)
                        .Union()};
          },
          [&](const RecomputeRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto pstates = StringList(b, m.pstates);
            return {w::RequestBody::RecomputeRequest,
                    w::CreateRecomputeRequest(b, module, pstates).Union()};
          },
          [&](const InvokeRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto query = OptionalString(b, m.query);
            auto args = ValueList(b, m.args);
            return {w::RequestBody::InvokeRequest,
                    w::CreateInvokeRequest(b, module, query, args, m.timeout_ms).Union()};
          },
          [&](const SelectPageRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto pstate = OptionalString(b, m.pstate);
            auto path = ValueField(b, m.path);
            auto token = OptionalBytes(b, m.token);
            return {w::RequestBody::SelectPageRequest,
                    w::CreateSelectPageRequest(b, module, pstate, path, token, m.limit).Union()};
          },
          [&](const SubscribeRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto pstate = OptionalString(b, m.pstate);
            auto path = ValueField(b, m.path);
            fb::Offset<fb::Vector<uint8_t>> key;
            if (m.partition_key) key = ValueField(b, *m.partition_key);
            return {w::RequestBody::SubscribeRequest,
                    w::CreateSubscribeRequest(b, module, pstate, path, key, m.one).Union()};
          },
          [&](const UnsubscribeRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {w::RequestBody::UnsubscribeRequest,
                    w::CreateUnsubscribeRequest(b, m.subscription).Union()};
          },
          [&](const PlacementRequest&) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {w::RequestBody::PlacementRequest, w::CreatePlacementRequest(b).Union()};
          },
          [&](const RebalanceRequest&) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {w::RequestBody::RebalanceRequest, w::CreateRebalanceRequest(b).Union()};
          },
          [&](const ReplicaFetchRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto node = OptionalString(b, m.node);
            return {w::RequestBody::ReplicaFetchRequest,
                    w::CreateReplicaFetchRequest(b, module, m.group, node, m.epoch, m.from,
                                                 m.durable_end, m.max_bytes, m.wait_ms)
                        .Union()};
          },
          [&](const ReplicaEpochRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto node = OptionalString(b, m.node);
            return {w::RequestBody::ReplicaEpochRequest,
                    w::CreateReplicaEpochRequest(b, module, m.group, node, m.epoch, m.log_epoch)
                        .Union()};
          },
          [&](const ModuleFileRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            return {w::RequestBody::ModuleFileRequest,
                    w::CreateModuleFileRequest(b, OptionalString(b, m.module)).Union()};
          },
          [&](const ReplicaSnapshotRequest& m) -> std::pair<w::RequestBody, fb::Offset<void>> {
            auto module = OptionalString(b, m.module);
            auto node = OptionalString(b, m.node);
            auto table = OptionalString(b, m.table);
            auto key = b.CreateVector(reinterpret_cast<const uint8_t*>(m.key.data()), m.key.size());
            return {w::RequestBody::ReplicaSnapshotRequest,
                    w::CreateReplicaSnapshotRequest(b, module, m.group, node, m.epoch, table, key,
                                                    m.record, m.max_bytes)
                        .Union()};
          },
      },
      body);
}

fb::Offset<w::ModuleInfo> EncodeModuleInfo(fb::FlatBufferBuilder& b, const ModuleInfo& m) {
  auto name = OptionalString(b, m.name);
  auto depots = TableList<w::DepotInfo>(b, m.depots, [](auto& b, const DepotInfo& d) {
    auto name = OptionalString(b, d.name);
    auto partitioning = OptionalString(b, d.partitioning);
    fb::Offset<fb::Vector<uint8_t>> schema;
    if (!d.record_schema.is_nil()) schema = ValueField(b, d.record_schema);
    return w::CreateDepotInfo(b, name, partitioning, schema,
                              OptionalString(b, d.record_schema_text));
  });
  auto pstates = TableList<w::PStateInfo>(b, m.pstates, [](auto& b, const PStateInfo& p) {
    auto name = OptionalString(b, p.name);
    auto schema = ValueField(b, p.schema);
    return w::CreatePStateInfo(b, name, schema, OptionalString(b, p.schema_text));
  });
  auto topologies = TableList<w::TopologyInfo>(b, m.topologies, [](auto& b, const TopologyInfo& t) {
    auto name = OptionalString(b, t.name);
    auto sources = StringList(b, t.sources);
    return w::CreateTopologyInfo(b, name, sources, OptionalString(b, t.kind));
  });
  auto load_error = OptionalString(b, m.load_error);
  // Left out when empty, as a server without queries or dependencies sends them.
  fb::Offset<fb::Vector<fb::Offset<w::QueryInfo>>> queries;
  if (!m.queries.empty()) {
    queries = TableList<w::QueryInfo>(b, m.queries, [](auto& b, const QueryInfo& q) {
      auto name = OptionalString(b, q.name);
      auto params = TableList<w::QueryParamInfo>(b, q.params, [](auto& b, const QueryParamInfo& p) {
        auto name = OptionalString(b, p.name);
        auto schema = ValueField(b, p.schema);
        return w::CreateQueryParamInfo(b, name, schema, OptionalString(b, p.schema_text));
      });
      return w::CreateQueryInfo(b, name, params);
    });
  }
  fb::Offset<fb::Vector<fb::Offset<fb::String>>> depends_on, dependents;
  if (!m.depends_on.empty()) depends_on = StringList(b, m.depends_on);
  if (!m.dependents.empty()) dependents = StringList(b, m.dependents);
  return w::CreateModuleInfo(b, name, m.partitions, depots, pstates, topologies, load_error,
                             m.version, queries, depends_on, dependents);
}

fb::Offset<w::AppendResult> EncodeAppendResult(fb::FlatBufferBuilder& b, const AppendResult& r) {
  std::vector<fb::Offset<w::AckReturn>> acks;
  acks.reserve(r.ack_returns.size());
  for (const auto& [topology, value] : r.ack_returns) {
    auto name = OptionalString(b, topology);
    acks.push_back(w::CreateAckReturn(b, name, ValueField(b, value)));
  }
  auto ack_returns = b.CreateVector(acks);
  fb::Offset<w::Error> failure;
  if (r.failure.has_value()) failure = EncodeError(b, *r.failure);
  return w::CreateAppendResult(b, r.partition, r.offset, ack_returns, failure);
}

fb::Offset<w::ModuleStats> EncodeModuleStats(fb::FlatBufferBuilder& b, const ModuleStats& m) {
  auto module = OptionalString(b, m.module);
  auto depots =
      TableList<w::DepotPartitionStats>(b, m.depots, [](auto& b, const DepotPartitionStats& d) {
        return w::CreateDepotPartitionStats(b, OptionalString(b, d.depot), d.partition,
                                            d.start_offset, d.end_offset);
      });
  auto topologies = TableList<w::TopologyPartitionStats>(
      b, m.topologies, [](auto& b, const TopologyPartitionStats& t) {
        auto topology = OptionalString(b, t.topology);
        auto depot = OptionalString(b, t.depot);
        return w::CreateTopologyPartitionStats(b, topology, depot, t.partition, t.processed_offset,
                                               t.lag);
      });
  auto failures =
      TableList<w::TopologyFailure>(b, m.failure_page, [](auto& b, const TopologyFailure& f) {
        auto topology = OptionalString(b, f.topology);
        auto depot = OptionalString(b, f.depot);
        auto message = OptionalString(b, f.message);
        return w::CreateTopologyFailure(b, topology, depot, f.partition, f.offset, message);
      });
  auto load_error = OptionalString(b, m.load_error);
  fb::Offset<fb::Vector<fb::Offset<w::RebuildProgress>>> rebuilds;
  if (!m.rebuilds.empty()) {
    rebuilds = TableList<w::RebuildProgress>(b, m.rebuilds, [](auto& b, const RebuildProgress& r) {
      auto kind = OptionalString(b, r.kind);
      auto names = StringList(b, r.names);
      return w::CreateRebuildProgress(b, kind, names, r.records_done, r.records_total);
    });
  }
  fb::Offset<fb::Vector<fb::Offset<w::MicrobatchStats>>> microbatches;
  if (!m.microbatches.empty()) {
    microbatches =
        TableList<w::MicrobatchStats>(b, m.microbatches, [](auto& b, const MicrobatchStats& s) {
          auto topology = OptionalString(b, s.topology);
          auto stalled = OptionalString(b, s.stalled);
          return w::CreateMicrobatchStats(b, topology, s.batch, stalled);
        });
  }
  return w::CreateModuleStats(b, module, depots, topologies, m.failures, failures, load_error,
                              rebuilds, microbatches);
}

std::pair<w::ResponseBody, fb::Offset<void>> EncodeResponseBody(fb::FlatBufferBuilder& b,
                                                                const ResponseBody& body) {
  using Encoded = std::pair<w::ResponseBody, fb::Offset<void>>;
  return std::visit(
      Overloaded{
          [&](const std::monostate&) -> Encoded {
            return {w::ResponseBody::NONE, 0};
          },
          [&](const Welcome& m) -> Encoded {
            auto version = OptionalString(b, m.server_version);
            return {w::ResponseBody::Welcome, w::CreateWelcome(b, m.protocol_version, version,
                                                               m.max_frame_size, m.max_in_flight)
                                                  .Union()};
          },
          [&](const ModuleInfo& m) -> Encoded {
            return {w::ResponseBody::ModuleInfo, EncodeModuleInfo(b, m).Union()};
          },
          [&](const ModuleList& m) -> Encoded {
            auto modules = TableList<w::ModuleInfo>(b, m.modules, EncodeModuleInfo);
            return {w::ResponseBody::ModuleList, w::CreateModuleList(b, modules).Union()};
          },
          [&](const Destroyed& m) -> Encoded {
            return {w::ResponseBody::Destroyed,
                    w::CreateDestroyed(b, OptionalString(b, m.module)).Union()};
          },
          [&](const Appended& m) -> Encoded {
            auto results = TableList<w::AppendResult>(b, m.results, EncodeAppendResult);
            return {w::ResponseBody::Appended, w::CreateAppended(b, results).Union()};
          },
          [&](const Selected& m) -> Encoded {
            return {w::ResponseBody::Selected,
                    w::CreateSelected(b, ValueList(b, m.values)).Union()};
          },
          [&](const DepotRecords& m) -> Encoded {
            auto records =
                TableList<w::DepotRecord>(b, m.records, [](auto& b, const DepotRecord& r) {
                  return w::CreateDepotRecord(b, r.offset, ValueField(b, r.value));
                });
            return {w::ResponseBody::DepotRecords, w::CreateDepotRecords(b, records).Union()};
          },
          [&](const StatsResult& m) -> Encoded {
            const ServerStats& s = m.server;
            auto server = w::CreateServerStats(b, s.uptime_ms, s.connections, s.total_connections,
                                               s.requests);
            auto modules = TableList<w::ModuleStats>(b, m.modules, EncodeModuleStats);
            return {w::ResponseBody::StatsResult, w::CreateStatsResult(b, server, modules).Union()};
          },
          [&](const Updated& m) -> Encoded {
            auto module = EncodeModuleInfo(b, m.module);
            auto created = StringList(b, m.created);
            auto dropped = StringList(b, m.dropped);
            auto widened = StringList(b, m.widened);
            auto backfilling = StringList(b, m.backfilling);
            auto migrated = StringList(b, m.migrated);
            return {w::ResponseBody::Updated,
                    w::CreateUpdated(b, module, m.version, created, dropped, widened, backfilling,
                                     m.pause_us, migrated)
                        .Union()};
          },
          [&](const RecomputeStarted& m) -> Encoded {
            auto module = OptionalString(b, m.module);
            auto pstates = StringList(b, m.pstates);
            return {w::ResponseBody::RecomputeStarted,
                    w::CreateRecomputeStarted(b, module, pstates).Union()};
          },
          [&](const Invoked& m) -> Encoded {
            return {w::ResponseBody::Invoked, w::CreateInvoked(b, ValueField(b, m.result)).Union()};
          },
          [&](const SelectedPage& m) -> Encoded {
            auto values = ValueList(b, m.values);
            auto token = OptionalBytes(b, m.next_token);
            return {w::ResponseBody::SelectedPage, w::CreateSelectedPage(b, values, token).Union()};
          },
          [&](const Subscribed& m) -> Encoded {
            auto value = ValueField(b, m.value);
            return {w::ResponseBody::Subscribed,
                    w::CreateSubscribed(b, m.subscription, m.partition, value).Union()};
          },
          [&](const Unsubscribed& m) -> Encoded {
            return {w::ResponseBody::Unsubscribed,
                    w::CreateUnsubscribed(b, m.subscription).Union()};
          },
          [&](const SubscriptionUpdate& m) -> Encoded {
            auto diffs = TableList<w::Diff>(b, m.diffs, [](auto& b, const Diff& d) {
              fb::Offset<fb::Vector<uint8_t>> at, key, value;
              if (!d.at.empty()) at = ValueField(b, Value(d.at));
              if (d.op == Diff::Op::kKeySet || d.op == Diff::Op::kKeyRemoved) {
                key = ValueField(b, d.key);
              }
              if (d.op != Diff::Op::kKeyRemoved && d.op != Diff::Op::kSeqRemove) {
                value = ValueField(b, d.value);
              }
              return w::CreateDiff(b, static_cast<w::DiffOp>(d.op), at, key, value, d.index);
            });
            fb::Offset<w::Error> ended;
            if (m.ended) ended = EncodeError(b, *m.ended);
            return {w::ResponseBody::SubscriptionUpdate,
                    w::CreateSubscriptionUpdate(b, m.subscription, diffs, ended).Union()};
          },
          [&](const Placement& m) -> Encoded {
            auto node = OptionalString(b, m.node);
            auto controller = OptionalString(b, m.controller);
            auto nodes = TableList<w::NodeAddress>(b, m.nodes, [](auto& b, const NodeAddress& n) {
              auto id = OptionalString(b, n.id);
              return w::CreateNodeAddress(b, id, OptionalString(b, n.advertise));
            });
            auto groups =
                TableList<w::GroupPlacement>(b, m.groups, [](auto& b, const GroupPlacement& g) {
                  auto module = OptionalString(b, g.module);
                  auto leader = OptionalString(b, g.leader);
                  auto address = OptionalString(b, g.leader_address);
                  auto replicas = StringList(b, g.replicas);
                  auto isr = StringList(b, g.isr);
                  auto target = StringList(b, g.target);
                  return w::CreateGroupPlacement(b, module, g.group, leader, address, g.epoch,
                                                 replicas, isr, g.min_isr, target);
                });
            return {w::ResponseBody::Placement,
                    w::CreatePlacement(b, node, controller, nodes, groups).Union()};
          },
          [&](const ReplicaEntries& m) -> Encoded {
            auto entries =
                TableList<w::ReplicaLogEntry>(b, m.entries, [](auto& b, const ReplicaLogEntry& e) {
                  auto bytes = b.CreateVector(reinterpret_cast<const uint8_t*>(e.bytes.data()),
                                              e.bytes.size());
                  return w::CreateReplicaLogEntry(b, e.offset, bytes);
                });
            return {w::ResponseBody::ReplicaEntries,
                    w::CreateReplicaEntries(b, m.epoch, entries, m.log_end, m.high_watermark,
                                            m.log_start)
                        .Union()};
          },
          [&](const ReplicaSnapshot& m) -> Encoded {
            auto rows =
                b.CreateVector(reinterpret_cast<const uint8_t*>(m.rows.data()), m.rows.size());
            auto table = OptionalString(b, m.next_table);
            auto key = b.CreateVector(reinterpret_cast<const uint8_t*>(m.next_key.data()),
                                      m.next_key.size());
            auto epochs =
                TableList<w::LogEpochStart>(b, m.epochs, [](auto& b, const LogEpochStart& e) {
                  return w::CreateLogEpochStart(b, e.epoch, e.start_offset);
                });
            return {w::ResponseBody::ReplicaSnapshot,
                    w::CreateReplicaSnapshot(b, m.epoch, rows, m.row_count, table, key,
                                             m.next_record, m.done, m.log_end, epochs)
                        .Union()};
          },
          [&](const ReplicaEpochEnd& m) -> Encoded {
            return {w::ResponseBody::ReplicaEpochEnd,
                    w::CreateReplicaEpochEnd(b, m.epoch, m.end_offset).Union()};
          },
          [&](const ModuleFile& m) -> Encoded {
            auto module = OptionalString(b, m.module);
            auto bytes =
                b.CreateVector(reinterpret_cast<const uint8_t*>(m.bytes.data()), m.bytes.size());
            return {w::ResponseBody::ModuleFile, w::CreateModuleFile(b, module, bytes).Union()};
          },
      },
      body);
}

std::string BuilderBytes(const fb::FlatBufferBuilder& b) {
  return std::string(reinterpret_cast<const char*>(b.GetBufferPointer()), b.GetSize());
}

// ---- Decoding ----------------------------------------------------------------------------
// The converters below run on verified buffers only. They report a field that is
// missing, empty, out of range or not a decodable value as kInvalidArgument naming it;
// DecodeResponse turns that into kCorruption (a server's bytes were wrong).

std::string Str(const fb::String* s) { return s == nullptr ? std::string() : s->str(); }

Result<Value> RequiredValue(const fb::Vector<uint8_t>* bytes, std::string_view field) {
  if (bytes == nullptr) return Status::InvalidArgument(std::string(field) + " is missing");
  Result<Value> v = DecodeValue(bytes->data(), bytes->size());
  if (!v.ok()) {
    return Status::InvalidArgument(std::string(field) +
                                   " is not a valid value: " + v.status().message());
  }
  return v;
}

std::string Indexed(std::string_view field, size_t i) {
  return std::string(field) + "[" + std::to_string(i) + "]";
}

Result<std::vector<Value>> ValueListOf(const fb::Vector<fb::Offset<w::ValueBytes>>* list,
                                       std::string_view field) {
  std::vector<Value> values;
  if (list == nullptr) return values;
  values.reserve(list->size());
  for (fb::uoffset_t i = 0; i < list->size(); ++i) {
    STRATA_ASSIGN_OR_RETURN(Value v, RequiredValue(list->Get(i)->data(), Indexed(field, i)));
    values.push_back(std::move(v));
  }
  return values;
}

std::vector<std::string> StringsOf(const fb::Vector<fb::Offset<fb::String>>* list) {
  std::vector<std::string> out;
  if (list == nullptr) return out;
  out.reserve(list->size());
  for (const fb::String* s : *list) out.push_back(s->str());
  return out;
}

// A module file's path and bytes (DeployRequest, UpdateRequest; Validate checks that exactly
// one is set).
void ReadModuleSource(const fb::String* path, const fb::Vector<uint8_t>* so_bytes,
                      std::string* path_out, std::string* bytes_out) {
  *path_out = Str(path);
  if (so_bytes != nullptr) {
    bytes_out->assign(reinterpret_cast<const char*>(so_bytes->data()), so_bytes->size());
  }
}

Error ErrorOf(const w::Error& e) {
  return Error{FromWire(e.code()), Str(e.message()), Str(e.leader())};
}

Result<Hello> ConvertHello(const w::Hello& m) {
  return Hello{m.protocol_version(), Str(m.client_name())};
}

Result<DeployRequest> ConvertDeploy(const w::DeployRequest& m) {
  DeployRequest out;
  ReadModuleSource(m.path(), m.so_bytes(), &out.path, &out.so_bytes);
  out.partitions = m.partitions();
  out.replication = m.replication();
  out.min_isr = m.min_isr();
  return out;
}

Result<DescribeRequest> ConvertDescribe(const w::DescribeRequest& m) {
  return DescribeRequest{Str(m.module_())};
}

Result<DestroyRequest> ConvertDestroy(const w::DestroyRequest& m) {
  // An absent or wrong `confirm` is the server's CONFIRMATION_REQUIRED, not a decode error.
  return DestroyRequest{Str(m.module_()), Str(m.confirm())};
}

Result<AppendRequest> ConvertAppend(const w::AppendRequest& m) {
  AppendRequest out;
  out.module = Str(m.module_());
  out.depot = Str(m.depot());
  STRATA_ASSIGN_OR_RETURN(out.records, ValueListOf(m.records(), "AppendRequest.records"));
  const auto ack = static_cast<uint8_t>(m.ack());
  if (ack > static_cast<uint8_t>(AckLevel::kProcessedStreams)) {
    return Status::InvalidArgument(
        "AppendRequest.ack " + std::to_string(ack) +
        " is not an AckLevel (0 NONE, 1 APPENDED, 2 PROCESSED, 3 PROCESSED_STREAMS)");
  }
  out.ack = static_cast<AckLevel>(ack);
  return out;
}

// SelectRequest and SubscribeRequest: the same fields (`name` is the table's, for errors).
template <typename Out, typename In>
Result<Out> ConvertPathRequest(const In& m, const std::string& name) {
  Out out;
  out.module = Str(m.module_());
  out.pstate = Str(m.pstate());
  STRATA_ASSIGN_OR_RETURN(out.path, RequiredValue(m.path(), name + ".path"));
  if (m.partition_key() != nullptr) {
    STRATA_ASSIGN_OR_RETURN(out.partition_key,
                            RequiredValue(m.partition_key(), name + ".partition_key"));
  }
  out.one = m.one();
  return out;
}

Result<SelectRequest> ConvertSelect(const w::SelectRequest& m) {
  return ConvertPathRequest<SelectRequest>(m, "SelectRequest");
}

Result<ReadDepotRequest> ConvertReadDepot(const w::ReadDepotRequest& m) {
  ReadDepotRequest out;
  out.module = Str(m.module_());
  out.depot = Str(m.depot());
  out.partition = m.partition();
  out.from = m.from();
  out.to = m.to();
  out.limit = m.limit();
  return out;
}

Result<StatsRequest> ConvertStats(const w::StatsRequest& m) {
  StatsRequest out{Str(m.module_()), m.failures_from(), m.failures_limit()};
  return out;
}

Result<UpdateRequest> ConvertUpdate(const w::UpdateRequest& m) {
  UpdateRequest out;
  ReadModuleSource(m.path(), m.so_bytes(), &out.path, &out.so_bytes);
  out.drop = StringsOf(m.drop());
  out.partitions = m.partitions();
  out.new_topologies_from_end = m.new_topologies_from_end();
  return out;
}

Result<RecomputeRequest> ConvertRecompute(const w::RecomputeRequest& m) {
  RecomputeRequest out;
  out.module = Str(m.module_());
  out.pstates = StringsOf(m.pstates());
  return out;
}

Result<InvokeRequest> ConvertInvoke(const w::InvokeRequest& m) {
  InvokeRequest out;
  out.module = Str(m.module_());
  out.query = Str(m.query());
  STRATA_ASSIGN_OR_RETURN(out.args, ValueListOf(m.args(), "InvokeRequest.args"));
  out.timeout_ms = m.timeout_ms();
  return out;
}

Result<SelectPageRequest> ConvertSelectPage(const w::SelectPageRequest& m) {
  SelectPageRequest out;
  out.module = Str(m.module_());
  out.pstate = Str(m.pstate());
  STRATA_ASSIGN_OR_RETURN(out.path, RequiredValue(m.path(), "SelectPageRequest.path"));
  if (m.token() != nullptr) {
    out.token.assign(reinterpret_cast<const char*>(m.token()->data()), m.token()->size());
  }
  out.limit = m.limit();
  return out;
}

Result<SubscribeRequest> ConvertSubscribe(const w::SubscribeRequest& m) {
  return ConvertPathRequest<SubscribeRequest>(m, "SubscribeRequest");
}

Result<ReplicaFetchRequest> ConvertReplicaFetch(const w::ReplicaFetchRequest& m) {
  ReplicaFetchRequest out;
  out.module = Str(m.module_());
  out.group = m.group();
  out.node = Str(m.node());
  out.epoch = m.epoch();
  out.from = m.from();
  out.durable_end = m.durable_end();
  out.max_bytes = m.max_bytes();
  out.wait_ms = m.wait_ms();
  return out;
}

std::string BytesOf(const fb::Vector<uint8_t>* bytes) {
  if (bytes == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

Result<ReplicaSnapshotRequest> ConvertReplicaSnapshot(const w::ReplicaSnapshotRequest& m) {
  ReplicaSnapshotRequest out;
  out.module = Str(m.module_());
  out.group = m.group();
  out.node = Str(m.node());
  out.epoch = m.epoch();
  out.table = Str(m.table());
  if (m.key() != nullptr) out.key = BytesOf(m.key());
  out.record = m.record();
  out.max_bytes = m.max_bytes();
  return out;
}

Result<ReplicaEpochRequest> ConvertReplicaEpoch(const w::ReplicaEpochRequest& m) {
  return ReplicaEpochRequest{Str(m.module_()), m.group(), Str(m.node()), m.epoch(), m.log_epoch()};
}

template <typename T>
Result<RequestBody> AsBody(Result<T> r) {
  if (!r.ok()) return r.status();
  return RequestBody(std::move(r).value());
}

// The body of a verified Request; kInvalidArgument for no body. Unknown members are
// handled by the caller (kUnsupported).
Result<RequestBody> ConvertRequestBody(const w::Request& r) {
  // The verifier accepts a type without a table: the union's table field is optional.
  if (r.body() == nullptr) return Status::InvalidArgument("Request has no body");
  switch (r.body_type()) {
    case w::RequestBody::Hello:
      return AsBody(ConvertHello(*r.body_as_Hello()));
    case w::RequestBody::DeployRequest:
      return AsBody(ConvertDeploy(*r.body_as_DeployRequest()));
    case w::RequestBody::ListModulesRequest:
      return RequestBody(ListModulesRequest{});
    case w::RequestBody::DescribeRequest:
      return AsBody(ConvertDescribe(*r.body_as_DescribeRequest()));
    case w::RequestBody::DestroyRequest:
      return AsBody(ConvertDestroy(*r.body_as_DestroyRequest()));
    case w::RequestBody::AppendRequest:
      return AsBody(ConvertAppend(*r.body_as_AppendRequest()));
    case w::RequestBody::SelectRequest:
      return AsBody(ConvertSelect(*r.body_as_SelectRequest()));
    case w::RequestBody::ReadDepotRequest:
      return AsBody(ConvertReadDepot(*r.body_as_ReadDepotRequest()));
    case w::RequestBody::StatsRequest:
      return AsBody(ConvertStats(*r.body_as_StatsRequest()));
    case w::RequestBody::UpdateRequest:
      return AsBody(ConvertUpdate(*r.body_as_UpdateRequest()));
    case w::RequestBody::RecomputeRequest:
      return AsBody(ConvertRecompute(*r.body_as_RecomputeRequest()));
    case w::RequestBody::InvokeRequest:
      return AsBody(ConvertInvoke(*r.body_as_InvokeRequest()));
    case w::RequestBody::SelectPageRequest:
      return AsBody(ConvertSelectPage(*r.body_as_SelectPageRequest()));
    case w::RequestBody::SubscribeRequest:
      return AsBody(ConvertSubscribe(*r.body_as_SubscribeRequest()));
    case w::RequestBody::UnsubscribeRequest:
      return RequestBody(UnsubscribeRequest{r.body_as_UnsubscribeRequest()->subscription()});
    case w::RequestBody::PlacementRequest:
      return RequestBody(PlacementRequest{});
    case w::RequestBody::RebalanceRequest:
      return RequestBody(RebalanceRequest{});
    case w::RequestBody::ReplicaFetchRequest:
      return AsBody(ConvertReplicaFetch(*r.body_as_ReplicaFetchRequest()));
    case w::RequestBody::ReplicaEpochRequest:
      return AsBody(ConvertReplicaEpoch(*r.body_as_ReplicaEpochRequest()));
    case w::RequestBody::ModuleFileRequest:
      return RequestBody(ModuleFileRequest{Str(r.body_as_ModuleFileRequest()->module_())});
    case w::RequestBody::ReplicaSnapshotRequest:
      return AsBody(ConvertReplicaSnapshot(*r.body_as_ReplicaSnapshotRequest()));
    case w::RequestBody::NONE:
      break;
  }
  return Status::InvalidArgument("Request has no body");
}

Result<Diff> ConvertDiff(const w::Diff& d, fb::uoffset_t i) {
  const std::string field = Indexed("SubscriptionUpdate.diffs", i);
  if (d.op() > w::DiffOp::MAX) {
    return Status::InvalidArgument(field + ".op " + std::to_string(static_cast<unsigned>(d.op())) +
                                   " is unknown");
  }
  Diff out;
  out.op = static_cast<Diff::Op>(d.op());
  if (d.at() != nullptr) {
    STRATA_ASSIGN_OR_RETURN(Value at, RequiredValue(d.at(), field + ".at"));
    if (!at.is_list()) return Status::InvalidArgument(field + ".at is not a list");
    out.at = at.as_list();
  }
  // Only the fields of its op are read (the encoder writes only those).
  const bool keyed = out.op == Diff::Op::kKeySet || out.op == Diff::Op::kKeyRemoved;
  const bool valued = out.op != Diff::Op::kKeyRemoved && out.op != Diff::Op::kSeqRemove;
  if (keyed && d.key() != nullptr) {
    STRATA_ASSIGN_OR_RETURN(out.key, RequiredValue(d.key(), field + ".key"));
  }
  if (valued && d.value() != nullptr) {
    STRATA_ASSIGN_OR_RETURN(out.value, RequiredValue(d.value(), field + ".value"));
  }
  out.index = d.index();
  return out;
}

Result<ModuleInfo> ConvertModuleInfo(const w::ModuleInfo& m) {
  ModuleInfo out;
  out.name = Str(m.name());
  out.partitions = m.partitions();
  if (m.depots() != nullptr) {
    for (fb::uoffset_t i = 0; i < m.depots()->size(); ++i) {
      const w::DepotInfo* d = m.depots()->Get(i);
      DepotInfo info{Str(d->name()), Str(d->partitioning()), Value(), Str(d->record_schema_text())};
      if (d->record_schema() != nullptr) {
        STRATA_ASSIGN_OR_RETURN(
            info.record_schema,
            RequiredValue(d->record_schema(), Indexed("ModuleInfo.depots", i) + ".record_schema"));
      }
      out.depots.push_back(std::move(info));
    }
  }
  if (m.pstates() != nullptr) {
    for (fb::uoffset_t i = 0; i < m.pstates()->size(); ++i) {
      const w::PStateInfo* p = m.pstates()->Get(i);
      PStateInfo info;
      info.name = Str(p->name());
      STRATA_ASSIGN_OR_RETURN(
          info.schema, RequiredValue(p->schema(), Indexed("ModuleInfo.pstates", i) + ".schema"));
      info.schema_text = Str(p->schema_text());
      out.pstates.push_back(std::move(info));
    }
  }
  if (m.topologies() != nullptr) {
    for (const w::TopologyInfo* t : *m.topologies()) {
      std::string kind = Str(t->kind());
      out.topologies.push_back(TopologyInfo{Str(t->name()), StringsOf(t->sources()),
                                            kind.empty() ? "stream" : std::move(kind)});
    }
  }
  out.load_error = Str(m.load_error());
  out.version = m.version();
  if (m.queries() != nullptr) {
    for (fb::uoffset_t i = 0; i < m.queries()->size(); ++i) {
      const w::QueryInfo* q = m.queries()->Get(i);
      QueryInfo query{Str(q->name()), {}};
      if (q->params() != nullptr) {
        for (fb::uoffset_t j = 0; j < q->params()->size(); ++j) {
          const w::QueryParamInfo* p = q->params()->Get(j);
          QueryParamInfo param{Str(p->name()), Value(), Str(p->schema_text())};
          STRATA_ASSIGN_OR_RETURN(
              param.schema,
              RequiredValue(p->schema(),
                            Indexed(Indexed("ModuleInfo.queries", i) + ".params", j) + ".schema"));
          query.params.push_back(std::move(param));
        }
      }
      out.queries.push_back(std::move(query));
    }
  }
  out.depends_on = StringsOf(m.depends_on());
  out.dependents = StringsOf(m.dependents());
  return out;
}

Result<AppendResult> ConvertAppendResult(const w::AppendResult& r, size_t index) {
  AppendResult out;
  out.partition = r.partition();
  out.offset = r.offset();
  if (r.ack_returns() != nullptr) {
    for (fb::uoffset_t i = 0; i < r.ack_returns()->size(); ++i) {
      const w::AckReturn* a = r.ack_returns()->Get(i);
      STRATA_ASSIGN_OR_RETURN(
          Value v, RequiredValue(
                       a->value(),
                       Indexed(Indexed("Appended.results", index) + ".ack_returns", i) + ".value"));
      out.ack_returns.emplace_back(Str(a->topology()), std::move(v));
    }
  }
  if (r.failure() != nullptr) out.failure = ErrorOf(*r.failure());
  return out;
}

Result<StatsResult> ConvertStatsResult(const w::StatsResult& m) {
  StatsResult out;
  if (const w::ServerStats* s = m.server()) {
    out.server =
        ServerStats{s->uptime_ms(), s->connections(), s->total_connections(), s->requests()};
  }
  if (m.modules() == nullptr) return out;
  for (const w::ModuleStats* ms : *m.modules()) {
    ModuleStats stats;
    stats.module = Str(ms->module_());
    stats.failures = ms->failures();
    stats.load_error = Str(ms->load_error());
    if (ms->depots() != nullptr) {
      for (const w::DepotPartitionStats* d : *ms->depots()) {
        stats.depots.push_back(DepotPartitionStats{Str(d->depot()), d->partition(),
                                                   d->start_offset(), d->end_offset()});
      }
    }
    if (ms->topologies() != nullptr) {
      for (const w::TopologyPartitionStats* t : *ms->topologies()) {
        stats.topologies.push_back(TopologyPartitionStats{
            Str(t->topology()), Str(t->depot()), t->partition(), t->processed_offset(), t->lag()});
      }
    }
    if (ms->failure_page() != nullptr) {
      for (const w::TopologyFailure* f : *ms->failure_page()) {
        stats.failure_page.push_back(TopologyFailure{
            Str(f->topology()), Str(f->depot()), f->partition(), f->offset(), Str(f->message())});
      }
    }
    if (ms->rebuilds() != nullptr) {
      for (const w::RebuildProgress* r : *ms->rebuilds()) {
        stats.rebuilds.push_back(RebuildProgress{Str(r->kind()), StringsOf(r->names()),
                                                 r->records_done(), r->records_total()});
      }
    }
    if (ms->microbatches() != nullptr) {
      for (const w::MicrobatchStats* s : *ms->microbatches()) {
        stats.microbatches.push_back(
            MicrobatchStats{Str(s->topology()), s->batch(), Str(s->stalled())});
      }
    }
    out.modules.push_back(std::move(stats));
  }
  return out;
}

Placement ConvertPlacement(const w::Placement& m) {
  Placement out;
  out.node = Str(m.node());
  out.controller = Str(m.controller());
  if (m.nodes() != nullptr) {
    for (const w::NodeAddress* n : *m.nodes()) {
      out.nodes.push_back(NodeAddress{Str(n->id()), Str(n->advertise())});
    }
  }
  if (m.groups() != nullptr) {
    for (const w::GroupPlacement* g : *m.groups()) {
      out.groups.push_back(GroupPlacement{
          Str(g->module_()), g->group(), Str(g->leader()), Str(g->leader_address()), g->epoch(),
          StringsOf(g->replicas()), StringsOf(g->isr()), g->min_isr(), StringsOf(g->target())});
    }
  }
  return out;
}

Result<ReplicaEntries> ConvertReplicaEntries(const w::ReplicaEntries& m) {
  ReplicaEntries out;
  out.epoch = m.epoch();
  out.log_end = m.log_end();
  out.high_watermark = m.high_watermark();
  out.log_start = m.log_start();
  if (m.entries() != nullptr) {
    for (fb::uoffset_t i = 0; i < m.entries()->size(); ++i) {
      const w::ReplicaLogEntry* e = m.entries()->Get(i);
      if (e->bytes() == nullptr) {
        return Status::InvalidArgument(Indexed("ReplicaEntries.entries", i) + ".bytes is missing");
      }
      out.entries.push_back(ReplicaLogEntry{e->offset(), BytesOf(e->bytes())});
    }
  }
  return out;
}

Result<ReplicaSnapshot> ConvertReplicaSnapshotAnswer(const w::ReplicaSnapshot& m) {
  ReplicaSnapshot out;
  out.epoch = m.epoch();
  if (m.rows() == nullptr) return Status::InvalidArgument("ReplicaSnapshot.rows is missing");
  out.rows = BytesOf(m.rows());
  out.row_count = m.row_count();
  out.next_table = Str(m.next_table());
  if (m.next_key() != nullptr) out.next_key = BytesOf(m.next_key());
  out.next_record = m.next_record();
  out.done = m.done();
  out.log_end = m.log_end();
  if (m.epochs() != nullptr) {
    for (fb::uoffset_t i = 0; i < m.epochs()->size(); ++i) {
      const w::LogEpochStart* e = m.epochs()->Get(i);
      out.epochs.push_back(LogEpochStart{e->epoch(), e->start_offset()});
    }
  }
  return out;
}

template <typename T>
Result<ResponseBody> AsResponseBody(Result<T> r) {
  if (!r.ok()) return r.status();
  return ResponseBody(std::move(r).value());
}

Result<ResponseBody> ConvertResponseBody(const w::Response& r) {
  if (r.body() == nullptr) {
    if (r.body_type() == w::ResponseBody::NONE) return ResponseBody();
    return Status::InvalidArgument("Response body type " +
                                   std::to_string(static_cast<unsigned>(r.body_type())) +
                                   " has no table");
  }
  switch (r.body_type()) {
    case w::ResponseBody::NONE:
      return ResponseBody();
    case w::ResponseBody::Welcome: {
      const w::Welcome& m = *r.body_as_Welcome();
      return ResponseBody(Welcome{m.protocol_version(), Str(m.server_version()), m.max_frame_size(),
                                  m.max_in_flight()});
    }
    case w::ResponseBody::ModuleInfo:
      return AsResponseBody(ConvertModuleInfo(*r.body_as_ModuleInfo()));
    case w::ResponseBody::ModuleList: {
      ModuleList out;
      if (const auto* modules = r.body_as_ModuleList()->modules()) {
        for (const w::ModuleInfo* m : *modules) {
          STRATA_ASSIGN_OR_RETURN(ModuleInfo info, ConvertModuleInfo(*m));
          out.modules.push_back(std::move(info));
        }
      }
      return ResponseBody(std::move(out));
    }
    case w::ResponseBody::Destroyed:
      return ResponseBody(Destroyed{Str(r.body_as_Destroyed()->module_())});
    case w::ResponseBody::Appended: {
      Appended out;
      if (const auto* results = r.body_as_Appended()->results()) {
        for (fb::uoffset_t i = 0; i < results->size(); ++i) {
          STRATA_ASSIGN_OR_RETURN(AppendResult result, ConvertAppendResult(*results->Get(i), i));
          out.results.push_back(std::move(result));
        }
      }
      return ResponseBody(std::move(out));
    }
    case w::ResponseBody::Selected: {
      STRATA_ASSIGN_OR_RETURN(std::vector<Value> values,
                              ValueListOf(r.body_as_Selected()->values(), "Selected.values"));
      return ResponseBody(Selected{std::move(values)});
    }
    case w::ResponseBody::DepotRecords: {
      DepotRecords out;
      if (const auto* records = r.body_as_DepotRecords()->records()) {
        for (fb::uoffset_t i = 0; i < records->size(); ++i) {
          const w::DepotRecord* rec = records->Get(i);
          STRATA_ASSIGN_OR_RETURN(
              Value v, RequiredValue(rec->value(), Indexed("DepotRecords.records", i) + ".value"));
          out.records.push_back(DepotRecord{rec->offset(), std::move(v)});
        }
      }
      return ResponseBody(std::move(out));
    }
    case w::ResponseBody::StatsResult:
      return AsResponseBody(ConvertStatsResult(*r.body_as_StatsResult()));
    case w::ResponseBody::Updated: {
      const w::Updated& m = *r.body_as_Updated();
      Updated out;
      if (m.module_() != nullptr) {
        STRATA_ASSIGN_OR_RETURN(out.module, ConvertModuleInfo(*m.module_()));
      }
      out.version = m.version();
      out.created = StringsOf(m.created());
      out.dropped = StringsOf(m.dropped());
      out.widened = StringsOf(m.widened());
      out.backfilling = StringsOf(m.backfilling());
      out.pause_us = m.pause_us();
      out.migrated = StringsOf(m.migrated());
      return ResponseBody(std::move(out));
    }
    case w::ResponseBody::RecomputeStarted: {
      const w::RecomputeStarted& m = *r.body_as_RecomputeStarted();
      return ResponseBody(RecomputeStarted{Str(m.module_()), StringsOf(m.pstates())});
    }
    case w::ResponseBody::Invoked: {
      STRATA_ASSIGN_OR_RETURN(Value result,
                              RequiredValue(r.body_as_Invoked()->result(), "Invoked.result"));
      return ResponseBody(Invoked{std::move(result)});
    }
    case w::ResponseBody::SelectedPage: {
      const w::SelectedPage& m = *r.body_as_SelectedPage();
      SelectedPage out;
      STRATA_ASSIGN_OR_RETURN(out.values, ValueListOf(m.values(), "SelectedPage.values"));
      if (m.next_token() != nullptr) {
        out.next_token.assign(reinterpret_cast<const char*>(m.next_token()->data()),
                              m.next_token()->size());
      }
      return ResponseBody(std::move(out));
    }
    case w::ResponseBody::Subscribed: {
      const w::Subscribed& m = *r.body_as_Subscribed();
      STRATA_ASSIGN_OR_RETURN(Value value, RequiredValue(m.value(), "Subscribed.value"));
      return ResponseBody(Subscribed{m.subscription(), m.partition(), std::move(value)});
    }
    case w::ResponseBody::Unsubscribed:
      return ResponseBody(Unsubscribed{r.body_as_Unsubscribed()->subscription()});
    case w::ResponseBody::SubscriptionUpdate: {
      const w::SubscriptionUpdate& m = *r.body_as_SubscriptionUpdate();
      SubscriptionUpdate out;
      out.subscription = m.subscription();
      if (m.ended() != nullptr) out.ended = ErrorOf(*m.ended());
      if (m.diffs() != nullptr) {
        for (fb::uoffset_t i = 0; i < m.diffs()->size(); ++i) {
          STRATA_ASSIGN_OR_RETURN(Diff d, ConvertDiff(*m.diffs()->Get(i), i));
          out.diffs.push_back(std::move(d));
        }
      }
      return ResponseBody(std::move(out));
    }
    case w::ResponseBody::Placement:
      return ResponseBody(ConvertPlacement(*r.body_as_Placement()));
    case w::ResponseBody::ReplicaEntries:
      return AsResponseBody(ConvertReplicaEntries(*r.body_as_ReplicaEntries()));
    case w::ResponseBody::ReplicaSnapshot:
      return AsResponseBody(ConvertReplicaSnapshotAnswer(*r.body_as_ReplicaSnapshot()));
    case w::ResponseBody::ReplicaEpochEnd: {
      const w::ReplicaEpochEnd& m = *r.body_as_ReplicaEpochEnd();
      return ResponseBody(ReplicaEpochEnd{m.epoch(), m.end_offset()});
    }
    case w::ResponseBody::ModuleFile: {
      const w::ModuleFile& m = *r.body_as_ModuleFile();
      if (m.bytes() == nullptr) return Status::InvalidArgument("ModuleFile.bytes is missing");
      return ResponseBody(ModuleFile{Str(m.module_()), BytesOf(m.bytes())});
    }
  }
  return Status::InvalidArgument(
      "Response body type " + std::to_string(static_cast<unsigned>(r.body_type())) + " is unknown");
}

// FlatBuffers reads scalars in place, so the buffer must be aligned to the largest scalar
// (8). A frame inside a read buffer usually is not; it is then copied.
class AlignedBuffer {
 public:
  AlignedBuffer(const uint8_t* data, size_t size) : data_(data) {
    if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
      copy_ = std::make_unique<uint64_t[]>((size + 7) / 8);
      std::memcpy(copy_.get(), data, size);
      data_ = reinterpret_cast<const uint8_t*>(copy_.get());
    }
  }
  const uint8_t* data() const { return data_; }

 private:
  const uint8_t* data_;
  std::unique_ptr<uint64_t[]> copy_;
};

// Whether `size` bytes can be handed to flatbuffers::Verifier at all (it asserts on
// buffers of 2 GiB and more) and hold at least a root offset.
bool VerifiableSize(size_t size) {
  return size >= sizeof(fb::uoffset_t) && size < FLATBUFFERS_MAX_BUFFER_SIZE;
}

// The id of a Request whose full verification failed, when the root table and its id
// field verify on their own; so the client learns which request was bad.
std::optional<uint64_t> ReadIdOnly(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  fb::Verifier verifier(data, size, limits.max_depth, limits.max_tables);
  const fb::uoffset_t root = verifier.VerifyOffset(0);
  if (root == 0) return std::nullopt;
  const auto* table = reinterpret_cast<const fb::Table*>(data + root);
  if (!table->VerifyTableStart(verifier) ||
      !table->VerifyField<uint64_t>(verifier, w::Request::VT_ID, sizeof(uint64_t))) {
    return std::nullopt;
  }
  return table->GetField<uint64_t>(w::Request::VT_ID, 0);
}

}  // namespace

std::string_view ErrorCodeName(ErrorCode code) {
  const std::string_view name = w::EnumNameErrorCode(ToWire(code));  // "" when out of range
  return name.empty() ? "UNKNOWN" : name;
}

ErrorCode ErrorCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return ErrorCode::kNone;
    case StatusCode::kInvalidArgument:
      return ErrorCode::kInvalidArgument;
    case StatusCode::kNotFound:
      return ErrorCode::kNotFound;
    case StatusCode::kAlreadyExists:
      return ErrorCode::kAlreadyExists;
    case StatusCode::kSchemaViolation:
      return ErrorCode::kSchemaViolation;
    // Corrupt stored bytes are a storage failure to the client: nothing in its request
    // can fix them.
    case StatusCode::kCorruption:
      return ErrorCode::kIoError;
    case StatusCode::kIOError:
      return ErrorCode::kIoError;
    case StatusCode::kBusy:
      return ErrorCode::kOverloaded;
    case StatusCode::kAborted:
      return ErrorCode::kAborted;
    case StatusCode::kInternal:
      return ErrorCode::kInternal;
    case StatusCode::kUserError:
      return ErrorCode::kTopologyFailed;
    case StatusCode::kTimeout:
      return ErrorCode::kTimeout;
    case StatusCode::kNotLeader:
      return ErrorCode::kNotLeader;
    case StatusCode::kNotEnoughReplicas:
      return ErrorCode::kNotEnoughReplicas;
  }
  return ErrorCode::kInternal;
}

StatusCode StatusCodeFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return StatusCode::kOk;
    case ErrorCode::kBadFrame:
      return StatusCode::kCorruption;
    case ErrorCode::kFrameTooLarge:
      return StatusCode::kInvalidArgument;
    case ErrorCode::kUnsupportedVersion:
      return StatusCode::kInvalidArgument;
    case ErrorCode::kHandshakeRequired:
      return StatusCode::kInvalidArgument;
    case ErrorCode::kUnsupported:
      return StatusCode::kInvalidArgument;
    case ErrorCode::kInvalidArgument:
      return StatusCode::kInvalidArgument;
    case ErrorCode::kNotFound:
      return StatusCode::kNotFound;
    case ErrorCode::kAlreadyExists:
      return StatusCode::kAlreadyExists;
    case ErrorCode::kSchemaViolation:
      return StatusCode::kSchemaViolation;
    case ErrorCode::kTopologyFailed:
      return StatusCode::kUserError;
    case ErrorCode::kOverloaded:
      return StatusCode::kBusy;
    case ErrorCode::kAborted:
      return StatusCode::kAborted;
    case ErrorCode::kIoError:
      return StatusCode::kIOError;
    case ErrorCode::kInternal:
      return StatusCode::kInternal;
    case ErrorCode::kShuttingDown:
      return StatusCode::kBusy;
    case ErrorCode::kConfirmationRequired:
      return StatusCode::kInvalidArgument;
    case ErrorCode::kTimeout:
      return StatusCode::kTimeout;
    case ErrorCode::kQueryFailed:
      return StatusCode::kUserError;
    case ErrorCode::kNotLeader:
      return StatusCode::kNotLeader;
    case ErrorCode::kNotEnoughReplicas:
      return StatusCode::kNotEnoughReplicas;
  }
  return StatusCode::kInternal;  // a code from a newer server
}

std::string EncodeRequest(const Request& request) {
  fb::FlatBufferBuilder b(256);
  auto [type, body] = EncodeRequestBody(b, request.body);
  b.Finish(w::CreateRequest(b, request.id, type, body));
  return BuilderBytes(b);
}

std::variant<Request, RequestError> DecodeRequest(const uint8_t* data, size_t size,
                                                  const DecodeLimits& limits) {
  if (!VerifiableSize(size)) {
    return RequestError{std::nullopt,
                        {ErrorCode::kBadFrame, "request of " + std::to_string(size) +
                                                   " bytes cannot hold a FlatBuffers Request"}};
  }
  AlignedBuffer aligned(data, size);
  fb::Verifier verifier(aligned.data(), size, limits.max_depth, limits.max_tables);
  if (!verifier.VerifyBuffer<w::Request>(nullptr)) {
    return RequestError{
        ReadIdOnly(aligned.data(), size, limits),
        {ErrorCode::kBadFrame, "request of " + std::to_string(size) +
                                   " bytes does not verify as a FlatBuffers Request (strata.fbs)"}};
  }
  const w::Request& r = *fb::GetRoot<w::Request>(aligned.data());
  const uint64_t id = r.id();
  const auto type = static_cast<uint8_t>(r.body_type());
  if (type > static_cast<uint8_t>(w::RequestBody::MAX)) {
    return RequestError{id,
                        {ErrorCode::kUnsupported, "request body type " + std::to_string(type) +
                                                      " is unknown to protocol version " +
                                                      std::to_string(kProtocolVersion)}};
  }
  Result<RequestBody> body = ConvertRequestBody(r);
  if (!body.ok()) return RequestError{id, {ErrorCode::kInvalidArgument, body.status().message()}};
  if (Status checked = Validate(*body); !checked.ok()) {
    return RequestError{id, {ErrorCode::kInvalidArgument, checked.message()}};
  }
  return Request{id, std::move(body).value()};
}

std::string EncodeResponse(const Response& response) {
  fb::FlatBufferBuilder b(256);
  fb::Offset<w::Error> error;
  w::ResponseBody type = w::ResponseBody::NONE;
  fb::Offset<void> body;
  if (response.error.has_value()) {
    error = EncodeError(b, *response.error);
  } else {
    std::tie(type, body) = EncodeResponseBody(b, response.body);
  }
  b.Finish(w::CreateResponse(b, response.id, error, type, body));
  return BuilderBytes(b);
}

Result<Response> DecodeResponse(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  if (!VerifiableSize(size)) {
    return Status::Corruption("response of " + std::to_string(size) +
                              " bytes cannot hold a FlatBuffers Response");
  }
  AlignedBuffer aligned(data, size);
  fb::Verifier verifier(aligned.data(), size, limits.max_depth, limits.max_tables);
  if (!verifier.VerifyBuffer<w::Response>(nullptr)) {
    return Status::Corruption("response of " + std::to_string(size) +
                              " bytes does not verify as a FlatBuffers Response (strata.fbs)");
  }
  const w::Response& r = *fb::GetRoot<w::Response>(aligned.data());
  Response out;
  out.id = r.id();
  if (r.error() != nullptr) {
    out.error = ErrorOf(*r.error());
    return out;
  }
  Result<ResponseBody> body = ConvertResponseBody(r);
  if (!body.ok()) {
    return Status::Corruption("response " + std::to_string(out.id) + ": " +
                              body.status().message());
  }
  out.body = std::move(body).value();
  return out;
}

}  // namespace strata::protocol
