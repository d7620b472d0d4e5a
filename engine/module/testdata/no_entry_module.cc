// A plain shared library: no STRATA_MODULE, so no strata_module_entry_v1.
extern "C" __attribute__((visibility("default"))) int not_a_strata_module() { return 1; }
