// EngineImpl's module lifecycle (docs/modules.md, "Changing a deployed module"): Update,
// Recompute and rescale.
#include "runtime/engine_impl.h"

namespace strata::runtime {

Result<UpdateResult> EngineImpl::Update(const std::string&, const UpdateOptions&) {
  return Status::Internal("Update is being implemented");
}

Status EngineImpl::Recompute(const std::string&, const std::vector<std::string>&) {
  return Status::Internal("Recompute is being implemented");
}

}  // namespace strata::runtime
