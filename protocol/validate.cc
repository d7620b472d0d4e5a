// Validate: the field checks every request passes before the server acts on it, whichever
// form it arrived in (a decoded frame, a REST call).
#include <string>
#include <string_view>
#include <type_traits>

#include "strata/protocol/messages.h"

namespace strata::protocol {
namespace {

Status NonEmpty(const std::string& name, std::string_view field) {
  if (!name.empty()) return Status::Ok();
  return Status::InvalidArgument(std::string(field) + " is missing or empty");
}

Status NamesNonEmpty(const std::vector<std::string>& names, std::string_view field) {
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i].empty()) {
      return Status::InvalidArgument(std::string(field) + "[" + std::to_string(i) +
                                     "] is missing or empty");
    }
  }
  return Status::Ok();
}

Status OneModuleSource(const std::string& path, const std::string& so_bytes,
                       std::string_view request) {
  if (path.empty() != so_bytes.empty()) return Status::Ok();
  return Status::InvalidArgument(std::string(request) + " needs one of path and so_bytes, has " +
                                 (path.empty() ? "neither" : "both"));
}

Status Check(const Hello&) { return Status::Ok(); }
Status Check(const ListModulesRequest&) { return Status::Ok(); }

Status Check(const DeployRequest& m) {
  STRATA_RETURN_IF_ERROR(OneModuleSource(m.path, m.so_bytes, "DeployRequest"));
  if (m.partitions < 1 || m.partitions > kMaxPartitions) {
    return Status::InvalidArgument("DeployRequest.partitions " + std::to_string(m.partitions) +
                                   " is outside [1, " + std::to_string(kMaxPartitions) + "]");
  }
  if (m.replication < 0 || m.replication > kMaxReplication) {
    return Status::InvalidArgument("DeployRequest.replication " + std::to_string(m.replication) +
                                   " is outside [0, " + std::to_string(kMaxReplication) +
                                   "] (0: the cluster's default)");
  }
  const int most_isr = m.replication == 0 ? kMaxReplication : m.replication;
  if (m.min_isr < 0 || m.min_isr > most_isr) {
    return Status::InvalidArgument("DeployRequest.min_isr " + std::to_string(m.min_isr) +
                                   " is outside [0, " + std::to_string(most_isr) +
                                   "] (0: the default; at most the replication)");
  }
  return Status::Ok();
}

Status Check(const DescribeRequest& m) { return NonEmpty(m.module, "DescribeRequest.module"); }

// An absent or wrong `confirm` is the server's CONFIRMATION_REQUIRED, not a request error.
Status Check(const DestroyRequest& m) { return NonEmpty(m.module, "DestroyRequest.module"); }

Status Check(const AppendRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "AppendRequest.module"));
  STRATA_RETURN_IF_ERROR(NonEmpty(m.depot, "AppendRequest.depot"));
  if (m.records.empty()) {
    return Status::InvalidArgument("AppendRequest.records is empty; append at least one record");
  }
  const auto ack = static_cast<uint8_t>(m.ack);
  if (ack > static_cast<uint8_t>(AckLevel::kProcessedStreams)) {
    return Status::InvalidArgument(
        "AppendRequest.ack " + std::to_string(ack) +
        " is not an AckLevel (0 NONE, 1 APPENDED, 2 PROCESSED, 3 PROCESSED_STREAMS)");
  }
  return Status::Ok();
}

Status Check(const SelectRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "SelectRequest.module"));
  return NonEmpty(m.pstate, "SelectRequest.pstate");
}

Status Check(const ReadDepotRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "ReadDepotRequest.module"));
  STRATA_RETURN_IF_ERROR(NonEmpty(m.depot, "ReadDepotRequest.depot"));
  if (m.partition < 0) {
    return Status::InvalidArgument("ReadDepotRequest.partition " + std::to_string(m.partition) +
                                   " is negative");
  }
  if (m.from < 0 || m.to < m.from) {
    return Status::InvalidArgument("ReadDepotRequest range [" + std::to_string(m.from) + ", " +
                                   std::to_string(m.to) + ") needs 0 <= from <= to");
  }
  if (m.limit < 1) {
    return Status::InvalidArgument("ReadDepotRequest.limit " + std::to_string(m.limit) +
                                   " is below 1");
  }
  return Status::Ok();
}

Status Check(const StatsRequest& m) {
  if (m.failures_from < 0) {
    return Status::InvalidArgument("StatsRequest.failures_from " + std::to_string(m.failures_from) +
                                   " is below 0");
  }
  if (m.failures_limit < 0 || m.failures_limit > kMaxStatsFailuresLimit) {
    return Status::InvalidArgument("StatsRequest.failures_limit " +
                                   std::to_string(m.failures_limit) + " is not 0 to " +
                                   std::to_string(kMaxStatsFailuresLimit));
  }
  return Status::Ok();
}

Status Check(const UpdateRequest& m) {
  STRATA_RETURN_IF_ERROR(OneModuleSource(m.path, m.so_bytes, "UpdateRequest"));
  STRATA_RETURN_IF_ERROR(NamesNonEmpty(m.drop, "UpdateRequest.drop"));
  if (m.partitions < 0 || m.partitions > kMaxPartitions) {
    return Status::InvalidArgument("UpdateRequest.partitions " + std::to_string(m.partitions) +
                                   " is outside [0, " + std::to_string(kMaxPartitions) +
                                   "] (0 keeps the partition count)");
  }
  return Status::Ok();
}

Status Check(const RecomputeRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "RecomputeRequest.module"));
  STRATA_RETURN_IF_ERROR(NamesNonEmpty(m.pstates, "RecomputeRequest.pstates"));
  if (m.pstates.empty()) {
    return Status::InvalidArgument("RecomputeRequest.pstates is empty; name at least one PState");
  }
  return Status::Ok();
}

Status Check(const InvokeRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "InvokeRequest.module"));
  STRATA_RETURN_IF_ERROR(NonEmpty(m.query, "InvokeRequest.query"));
  if (m.timeout_ms < 1 || m.timeout_ms > kMaxInvokeTimeoutMs) {
    return Status::InvalidArgument("InvokeRequest.timeout_ms " + std::to_string(m.timeout_ms) +
                                   " is outside [1, " + std::to_string(kMaxInvokeTimeoutMs) + "]");
  }
  return Status::Ok();
}

Status Check(const SubscribeRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "SubscribeRequest.module"));
  return NonEmpty(m.pstate, "SubscribeRequest.pstate");
}

Status Check(const UnsubscribeRequest& m) {
  if (m.subscription == 0) {
    return Status::InvalidArgument("UnsubscribeRequest.subscription is 0 (ids start at 1)");
  }
  return Status::Ok();
}

Status Check(const SelectPageRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "SelectPageRequest.module"));
  STRATA_RETURN_IF_ERROR(NonEmpty(m.pstate, "SelectPageRequest.pstate"));
  if (m.limit < 1 || m.limit > kMaxPageLimit) {
    return Status::InvalidArgument("SelectPageRequest.limit " + std::to_string(m.limit) +
                                   " is outside [1, " + std::to_string(kMaxPageLimit) + "]");
  }
  return Status::Ok();
}

Status Check(const PlacementRequest&) { return Status::Ok(); }
Status Check(const RebalanceRequest&) { return Status::Ok(); }

Status NotNegative(int64_t value, std::string_view field) {
  if (value >= 0) return Status::Ok();
  return Status::InvalidArgument(std::string(field) + " " + std::to_string(value) + " is negative");
}

Status Check(const ReplicaFetchRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "ReplicaFetchRequest.module"));
  STRATA_RETURN_IF_ERROR(NonEmpty(m.node, "ReplicaFetchRequest.node"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.group, "ReplicaFetchRequest.group"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.epoch, "ReplicaFetchRequest.epoch"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.from, "ReplicaFetchRequest.from"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.durable_end, "ReplicaFetchRequest.durable_end"));
  if (m.max_bytes < 1) {
    return Status::InvalidArgument("ReplicaFetchRequest.max_bytes 0 is below 1");
  }
  if (m.wait_ms > kMaxReplicaFetchWaitMs) {
    return Status::InvalidArgument("ReplicaFetchRequest.wait_ms " + std::to_string(m.wait_ms) +
                                   " is above " + std::to_string(kMaxReplicaFetchWaitMs));
  }
  return Status::Ok();
}

Status Check(const ReplicaEpochRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "ReplicaEpochRequest.module"));
  STRATA_RETURN_IF_ERROR(NonEmpty(m.node, "ReplicaEpochRequest.node"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.group, "ReplicaEpochRequest.group"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.epoch, "ReplicaEpochRequest.epoch"));
  return NotNegative(m.log_epoch, "ReplicaEpochRequest.log_epoch");
}

Status Check(const ReplicaSnapshotRequest& m) {
  STRATA_RETURN_IF_ERROR(NonEmpty(m.module, "ReplicaSnapshotRequest.module"));
  STRATA_RETURN_IF_ERROR(NonEmpty(m.node, "ReplicaSnapshotRequest.node"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.group, "ReplicaSnapshotRequest.group"));
  STRATA_RETURN_IF_ERROR(NotNegative(m.epoch, "ReplicaSnapshotRequest.epoch"));
  if (m.max_bytes < 1) {
    return Status::InvalidArgument("ReplicaSnapshotRequest.max_bytes 0 is below 1");
  }
  return Status::Ok();
}

Status Check(const ModuleFileRequest& m) { return NonEmpty(m.module, "ModuleFileRequest.module"); }

}  // namespace

Status Validate(const RequestBody& body) {
  return std::visit([](const auto& m) { return Check(m); }, body);
}

}  // namespace strata::protocol
