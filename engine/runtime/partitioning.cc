// Choosing partitions (partitioning.h).
#include "runtime/partitioning.h"

#include <random>

#include "strata/key_codec.h"

namespace strata::runtime {

int RandomPartition(int partitions) {
  thread_local std::minstd_rand rng(std::random_device{}());
  return static_cast<int>(rng() % static_cast<uint32_t>(partitions));
}

int HashPartition(const Value& key, int partitions) {
  return static_cast<int>(HashKey(key) % static_cast<uint64_t>(partitions));
}

std::string PartitioningName(const DepotPartitioning& p) {
  switch (p.kind) {
    case DepotPartitioning::Kind::kHash:
      return "hash(" + p.key_path.ToString() + ")";
    case DepotPartitioning::Kind::kRandom:
      return "random";
    case DepotPartitioning::Kind::kNoClientAppends:
      return "no client appends";
  }
  return "unknown";
}

// The depot partition a record goes to (client appends and TopologyContext::Append).
Result<int> ChoosePartition(const DepotDef& depot, const Value& record, int partitions,
                            int current_partition) {
  switch (depot.partitioning.kind) {
    case DepotPartitioning::Kind::kHash: {
      if (depot.partitioning.key_path.navigators().empty())
        return HashPartition(record, partitions);
      Result<Value> key = SelectOne(record, depot.partitioning.key_path);
      if (!key.ok()) {
        return Status::InvalidArgument("depot " + depot.name + " partitions by " +
                                       depot.partitioning.key_path.ToString() +
                                       ", which does not select one value from record " +
                                       record.ToString() + ": " + key.status().message());
      }
      return HashPartition(*key, partitions);
    }
    case DepotPartitioning::Kind::kRandom:
      return RandomPartition(partitions);
    case DepotPartitioning::Kind::kNoClientAppends:
      return current_partition;
  }
  return Status::Internal("unknown partitioning of depot " + depot.name);
}

}  // namespace strata::runtime
