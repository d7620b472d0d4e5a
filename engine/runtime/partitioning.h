// Choosing partitions: of a depot record (client appends and TopologyContext::Append) and of
// a value a partitioner op routes (docs/runtime.md, "The append path", "Topology
// execution"). Pure functions apart from RandomPartition's thread-local generator: any thread.
#pragma once

#include <string>

#include "strata/module.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata::runtime {

// A pseudo-random partition in [0, partitions) (thread-local generator).
int RandomPartition(int partitions);
// HashKey(key) % partitions.
int HashPartition(const Value& key, int partitions);
// "hash(<path>)", "random" or "no client appends" (DepotInfo::partitioning).
std::string PartitioningName(const DepotPartitioning& p);
// The depot partition `record` goes to; a NoClientAppends depot takes `current_partition`
// (the partition of the step that appends). kInvalidArgument when the depot's key path does
// not select one value from the record.
Result<int> ChoosePartition(const DepotDef& depot, const Value& record, int partitions,
                            int current_partition);

}  // namespace strata::runtime
