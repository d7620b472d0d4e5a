// A module whose define function throws after declaring a depot.
#include <stdexcept>

#include "strata/module.h"

namespace {

void Define(strata::ModuleBuilder& m) {
  m.Depot("*in", strata::DepotPartitioning::Random());
  throw std::runtime_error("define refuses: no configuration");
}

}  // namespace

STRATA_MODULE(throwing_define, Define)
