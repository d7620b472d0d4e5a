// The check of a depot record against its depot's declared record schema
// (DepotDef::record_schema), shared by every path into a depot log: client appends and
// TopologyContext::Append. See docs/modules.md ("Record schemas").
#pragma once

#include "strata/module.h"
#include "strata/status.h"
#include "strata/value.h"

namespace strata {

// OK when `record` matches depot.record_schema (always, for the default Any). Otherwise
// kSchemaViolation naming the path inside the record (starting with the depot's name, e.g.
// *deposits.amount), the expected type and the value (cut when long), e.g.
//   *deposits.amount: expected int64, got string "ten"
// A matching record costs no string work. Thread-safe.
Status CheckRecord(const DepotDef& depot, const Value& record);

}  // namespace strata
