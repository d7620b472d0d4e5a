// TopologyContext::Append's shared part (topology_append.h).
#include "runtime/topology_append.h"

#include "module/record_check.h"
#include "runtime/partitioning.h"
#include "strata/value_codec.h"

namespace strata::runtime {

Result<std::optional<TopologyAppend>> PrepareTopologyAppend(ModuleRuntime& m, Outbox& outbox,
                                                            Session& session, int partition,
                                                            const DepotRef& ref, Value record,
                                                            const std::function<Status()>& begin) {
  const std::vector<DepotDef>& depots = m.def->depots;
  if (ref.index < 0 || ref.index >= static_cast<int>(depots.size()) ||
      depots[ref.index].name != ref.name) {
    return Status::InvalidArgument("module " + m.name + " has no depot " + ref.name);
  }
  if (!depots[ref.index].mirror_of.empty()) {
    return Status::InvalidArgument("depot " + ref.name + " of module " + m.name +
                                   " is a mirror of module " + depots[ref.index].mirror_of +
                                   "'s: nothing appends to it through " + m.name);
  }
  STRATA_RETURN_IF_ERROR(CheckRecord(depots[ref.index], record));
  if (m.is_shadow) return std::optional<TopologyAppend>();  // the log holds them already
  STRATA_ASSIGN_OR_RETURN(int target,
                          ChoosePartition(depots[ref.index], record, m.partitions, partition));
  STRATA_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, EncodeValueChecked(record));
  TopologyAppend append{ref.index, target, AppendItem{}};
  append.item.bytes.assign(bytes.begin(), bytes.end());
  // The record commits with the step (outbox.h); it is appended after that commit.
  if (begin) STRATA_RETURN_IF_ERROR(begin());
  STRATA_ASSIGN_OR_RETURN(append.item.outbox_key,
                          outbox.Put(session, m.name, ref.name, target, append.item.bytes));
  append.item.record = std::move(record);
  return std::optional<TopologyAppend>(std::move(append));
}

}  // namespace strata::runtime
