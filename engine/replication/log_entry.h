// One entry of a group's replication log and its encoding (docs/cluster.md, "Replication
// log"): the leader epoch that wrote it and the writes of one transaction to one group, in
// the order they were made. Pure functions: any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.h"
#include "strata/status.h"

namespace strata::replication {

struct LogEntry {
  int64_t epoch = 0;
  std::vector<CapturedWrite> ops;
};

// The FlexBuffers encoding of the Value {"epoch": int, "ops": [[table, kind, op, key,
// value], …]} (strata/value_codec.h).
std::string EncodeEntry(const LogEntry& entry);
// The same bytes from the epoch and the ops in place (the leader's path: no copies).
std::string EncodeEntry(int64_t epoch, std::span<const CapturedWrite* const> ops);
// Refuses anything that is not such an encoding with kCorruption (untrusted bytes: they
// come from another node or from disk).
Result<LogEntry> DecodeEntry(std::string_view bytes);
// Only the epoch, without building the ops.
Result<int64_t> DecodeEntryEpoch(std::string_view bytes);

}  // namespace strata::replication
