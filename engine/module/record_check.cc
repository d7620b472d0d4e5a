#include "module/record_check.h"

namespace strata {

Status CheckRecord(const DepotDef& depot, const Value& record) {
  if (depot.record_schema.kind() == Schema::Kind::kAny) return Status::Ok();
  return ValidateValueAt(depot.record_schema, record, [&] { return depot.name; });
}

}  // namespace strata
