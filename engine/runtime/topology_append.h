// A record a topology step appends (TopologyContext::Append), shared by the stream and
// microbatch executors: checked against the depot's record schema, partitioned, encoded and
// written to meta.outbox in the step's open transaction (outbox.h), to be appended to its
// depot after that transaction commits. Runs on the step's thread.
#pragma once

#include <functional>
#include <optional>

#include "runtime/append_path.h"
#include "runtime/module_runtime.h"
#include "runtime/outbox.h"

namespace strata::runtime {

struct TopologyAppend {
  int depot;
  int partition;
  AppendItem item;
};

// `partition`: the step's (a NoClientAppends depot's record goes there). `begin` opens the
// step's transaction if it is not open yet. nullopt in a shadow runtime (a rebuild), whose
// appends are in the log already.
Result<std::optional<TopologyAppend>> PrepareTopologyAppend(ModuleRuntime& m, Outbox& outbox,
                                                            Session& session, int partition,
                                                            const DepotRef& ref, Value record,
                                                            const std::function<Status()>& begin);

}  // namespace strata::runtime
