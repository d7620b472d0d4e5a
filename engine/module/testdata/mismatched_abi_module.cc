// Built with -DSTRATA_SDK_VERSION_FOR_STAMP=999: an otherwise valid module whose ABI stamp
// no host shares. The loader must refuse it from its ABI note, before dlopen runs any of
// its code: its static initialiser sets STRATA_TEST_MISMATCHED_ABI_INITIALISED=1, which
// loader_test checks stays unset.
#include <cstdlib>

#include "strata/module.h"

namespace {

[[maybe_unused]] const bool kInitialised = [] {
  return ::setenv("STRATA_TEST_MISMATCHED_ABI_INITIALISED", "1", 1) == 0;
}();

void Define(strata::ModuleBuilder& m) {
  auto in = m.Depot("*in", strata::DepotPartitioning::Random());
  m.Stream("noop").Source(in).Each([](strata::TopologyContext&, const strata::Value&) {});
}

}  // namespace

STRATA_MODULE(mismatched, Define)
