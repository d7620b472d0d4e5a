// A shared library with a valid ABI note (so the loader dlopens it) but no STRATA_MODULE
// entry point: the loader must refuse it for the missing strata_module_entry_v1.
#include "strata/module.h"

STRATA_DETAIL_ABI_NOTE(no_entry)

extern "C" __attribute__((visibility("default"))) int not_a_strata_module() { return 1; }
