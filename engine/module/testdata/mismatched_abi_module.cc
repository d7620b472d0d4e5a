// Built with -DSTRATA_SDK_VERSION_FOR_STAMP=999: an otherwise valid module whose ABI stamp
// no host shares. The loader must refuse it before running any of its code but the entry.
#include "strata/module.h"

namespace {

void Define(strata::ModuleBuilder& m) {
  auto in = m.Depot("*in", strata::DepotPartitioning::Random());
  m.Stream("noop").Source(in).Each([](strata::TopologyContext&, const strata::Value&) {});
}

}  // namespace

STRATA_MODULE(mismatched, Define)
